"""The ``cbam`` command: a thin argparse layer over the library's functions.

Each sub-command lives in its own module of this package with ``add_parser(subparsers)`` (which
registers the parser and sets ``func``) and a ``run(args) -> int`` function; add it to ``_COMMANDS``.
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
    parser = argparse.ArgumentParser(prog="cbam", description="CBAM: attention modules, models and experiments.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as err:  # user errors: one clear line, no traceback
        print(f"cbam {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
