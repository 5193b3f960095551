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
import errno
import importlib
import signal
import sys
import threading
import warnings

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


def _at_least(convert: type, low: float, what: str):
    """An argparse type: ``convert(text)``, finite and ``>= low``, else an error saying ``what`` was expected."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not low <= value < float("inf"):  # also refuses nan
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what.replace(" ", "_")  # argparse names the type in some messages
    return parse


positive_int = _at_least(int, 1, "a positive integer")
non_negative_int = _at_least(int, 0, "a non-negative integer")
non_negative_float = _at_least(float, 0, "a non-negative number")


def example(text: str) -> dict[str, object]:
    """``add_parser`` keywords that print ``text`` (one command per line) under "example" in ``--help``."""
    return {"epilog": "example:\n  " + "\n  ".join(text.strip().splitlines()),
            "formatter_class": argparse.RawDescriptionHelpFormatter}


def _os_error(err: OSError) -> str:
    """One line for an operating-system error: what failed, on which file (disk full, permission, ...)."""
    what = err.strerror or str(err)
    if err.errno == errno.ENOSPC and "disk full" not in what:
        what = "disk full (no space left on device); files written before are intact"
    return f"{err.filename}: {what}" if err.filename else what


def main(argv: list[str] | None = None) -> int:
    """Run the command; bad input and stops end in one line on stderr, never a traceback.

    Exit codes: 0 success, 2 bad input, 1 an operating-system error (disk full, permission), 130 Ctrl-C,
    143 SIGTERM (both leave the last checkpoint intact and say how to resume).
    """
    args = build_parser().parse_args(argv)
    from .._optional import MissingExtraError

    prefix = f"cbam {args.command}: "
    warnings.formatwarning = lambda message, *_, **__: f"{prefix}warning: {message}\n"
    terminated: list[int] = []

    def stop(signum: int, frame: object) -> None:  # SIGTERM stops a run as Ctrl-C does: one line, resumable
        terminated.append(signum)
        raise KeyboardInterrupt

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop) if in_main_thread else None
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError, MissingExtraError) as err:  # user errors: one line, no traceback
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        if isinstance(err, OSError) and err.errno is not None:  # raised by the system, not by us
            message = _os_error(err)
        print(f"{prefix}error: {message}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"{prefix}error: {_os_error(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        print(f"{prefix}{'SIGTERM: ' if terminated else ''}{err or 'interrupted'}", file=sys.stderr)
        return 128 + signal.SIGTERM if terminated else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
