"""The C++/OpenMP CPU kernels of the fused operator (``csrc/fused_cpu.cpp``), compiled on first use.

:func:`available` builds the kernels with :func:`torch.utils.cpp_extension.load` into torch's
extension cache (``$TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``; about 10 s
the first time, a cache hit afterwards) and registers them as ``torch.ops.cbam_cpu.*``. If the
build fails (no C++ compiler or ninja), it warns once and :mod:`cbam.nn.fused` keeps using its
PyTorch implementation. ``CBAM_CPU_KERNEL=0`` in the environment disables the kernels.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

__all__ = ["ENV_VAR", "available", "build_seconds", "disabled"]

ENV_VAR = "CBAM_CPU_KERNEL"
_SOURCE = Path(__file__).with_name("csrc") / "fused_cpu.cpp"
_NAME = "cbam_fused_cpu"
_LOCK = threading.Lock()
_STATE: bool | None = None  # None: not tried yet; True: loaded; False: the build failed
_BUILD_SECONDS: float | None = None
_SUSPENDED = False


def available() -> bool:
    """Whether the C++ kernels may be used: not disabled by ``CBAM_CPU_KERNEL=0`` and built (builds on first call)."""
    global _STATE
    if _SUSPENDED or os.environ.get(ENV_VAR, "1").strip() == "0":
        return False
    if _STATE is None:
        with _LOCK:
            if _STATE is None:
                _STATE = _load()
    return _STATE


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """``with disabled(): ...`` runs the fused operator on PyTorch operations (benchmarks, tests)."""
    global _SUSPENDED
    previous, _SUSPENDED = _SUSPENDED, True
    try:
        yield
    finally:
        _SUSPENDED = previous


def build_seconds() -> float | None:
    """Seconds the first :func:`available` call spent building or loading the kernels (``None`` before)."""
    return _BUILD_SECONDS


def _cflags() -> list[str]:
    """-O3 and OpenMP; reassociated sums (the kernels' reductions vectorize); AVX2/FMA where torch found them."""
    flags = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-fno-signed-zeros", "-fassociative-math"]
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        flags += ["-mavx2", "-mfma"]
    return flags


def _import_cpp_extension():
    """``torch.utils.cpp_extension``, without its import-time "No CUDA runtime is found" log line
    (a CPU build needs no CUDA runtime)."""
    log = logging.getLogger("torch.utils.cpp_extension")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        log.setLevel(level)
    return cpp_extension


def _put_ninja_on_path() -> None:
    """torch runs ``ninja`` from PATH: add the environment's own (the ``ninja`` wheel) when PATH has none."""
    here = Path(sys.executable).parent
    if shutil.which("ninja") is None and shutil.which("ninja", path=str(here)) is not None:
        os.environ["PATH"] = f"{here}{os.pathsep}{os.environ.get('PATH', '')}"


def _load() -> bool:
    global _BUILD_SECONDS
    start = time.perf_counter()
    try:
        _put_ninja_on_path()
        cpp_extension = _import_cpp_extension()

        cpp_extension.load(
            name=_NAME,
            sources=[str(_SOURCE)],
            extra_cflags=_cflags(),
            extra_ldflags=["-fopenmp"],
            is_python_module=False,
            verbose=False,
        )
        torch.ops.cbam_cpu.gate  # noqa: B018 - raises if the library did not register its operators
    except Exception as error:  # no compiler, no ninja, a failed build: fall back, say so once
        warnings.warn(
            f"cbam: the C++ CPU kernel ({_SOURCE.name}) could not be built or loaded, so the fused CBAM "
            f"path runs on PyTorch operations (slower, same results); set {ENV_VAR}=0 to silence this. "
            f"Cause: {type(error).__name__}: {str(error).strip()[-2000:]}",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    finally:
        _BUILD_SECONDS = time.perf_counter() - start
    return True
