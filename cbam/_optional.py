"""Optional dependencies: import one, or fail with one line naming the extra that installs it."""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """``import module``, or raise :class:`MissingExtraError` saying ``purpose`` needs ``pip install 'cbam[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(f"{purpose} needs {module.partition('.')[0]}, which is not installed: "
                                f"pip install 'cbam[{extra}]'") from None
