"""The ``cbam`` command: a thin argparse layer over the library's functions.

Each sub-command lives in its own module of this package with ``add_parser(subparsers)`` (which
registers the parser and sets ``func``) and a ``run(args) -> int`` function; add it to ``_COMMANDS``.
Sub-command modules import only the standard library at module level: the library is imported
inside ``run``, so ``cbam --help`` and every parser start without torch.

Flags mean the same everywhere: ``--model`` is a registry name (``cbam.list_models()``),
``--weights`` a model folder (``config.json`` + ``model.safetensors``), ``--data`` a dataset.
"""
from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "build_parser"]

_COMMANDS = (
    "profile",
    "train",
    "eval",
    "compare",
    "ablate",
    "convert",
    "export",
    "detect",
    "gradcam",
    "attention",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cbam", description="CBAM: attention modules, models and experiments.",
                                     epilog="Every command has --help with an example, e.g. cbam train --help.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def example(text: str) -> dict[str, object]:
    """``add_parser`` keywords that print ``text`` (one command per line) under "example" in ``--help``."""
    return {"epilog": "example:\n  " + "\n  ".join(text.strip().splitlines()),
            "formatter_class": argparse.RawDescriptionHelpFormatter}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .._optional import MissingExtraError

    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError, MissingExtraError) as err:  # user errors: one line, no traceback
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"cbam {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
