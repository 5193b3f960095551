"""The one global setting of the fast path: which implementation the attention modules run.

Modes:

* ``"auto"`` (default): the fused operator, with the best back end for each input: Triton kernels for
  CUDA tensors (where Triton imports), the C++ kernels for contiguous float32/float64 CPU tensors
  (where they build), PyTorch operations otherwise;
* ``"cpp"`` / ``"triton"`` / ``"torch"``: the fused operator on that back end only (``"cpp"`` falls
  back to PyTorch operations for inputs its kernels do not take; ``"triton"`` on CPU tensors needs
  ``TRITON_INTERPRET=1`` set before Triton is imported, which is how the tests run the GPU kernels);
* ``"off"``: the modules' reference path (``x * sigmoid(...)`` made of standard operations).

The environment variable ``CBAM_FAST_PATH`` gives the starting mode; :func:`set_fast_path` and the
:func:`fast_path` context manager change it. ``True`` means ``"auto"`` and ``False`` ``"off"``. A
module's own ``fast = False`` attribute selects the reference path for that module alone.

The mode is read when the operator runs: a graph compiled with ``torch.compile`` keeps the fused
operator it captured and picks the back end at run time.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = ["ENV_VAR", "MODES", "fast_path", "fast_path_enabled", "fast_path_mode", "set_fast_path"]

ENV_VAR = "CBAM_FAST_PATH"
MODES = ("auto", "cpp", "triton", "torch", "off")


def _parse(mode: bool | str, source: str) -> str:
    if isinstance(mode, bool):
        return "auto" if mode else "off"
    if isinstance(mode, str) and mode.strip().lower() in MODES:
        return mode.strip().lower()
    raise ValueError(f"{source}: expected True, False or one of {MODES}, got {mode!r}")


_MODE = _parse(os.environ.get(ENV_VAR, "auto"), f"environment variable {ENV_VAR}")


def set_fast_path(mode: bool | str) -> None:
    """Select the fast-path mode for every module: ``True``/``"auto"``, ``"cpp"``, ``"triton"``,
    ``"torch"``, or ``False``/``"off"`` (the reference path)."""
    global _MODE
    _MODE = _parse(mode, "set_fast_path")


def fast_path_mode() -> str:
    """The current mode, one of :data:`MODES`."""
    return _MODE


def fast_path_enabled() -> bool:
    """Whether the modules use the fused operator where it applies (any mode but ``"off"``)."""
    return _MODE != "off"


@contextlib.contextmanager
def fast_path(mode: bool | str) -> Iterator[None]:
    """Context manager: ``with fast_path(False): model(x)`` runs the reference path."""
    previous = _MODE
    set_fast_path(mode)
    try:
        yield
    finally:
        set_fast_path(previous)
