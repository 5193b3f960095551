"""The full-size passes of the fused operator as C++/OpenMP CPU kernels (``csrc/fused_cpu.cpp``), compiled
on first use, for contiguous (NCHW) float32/float64 CPU tensors.

:func:`available` builds the kernels with :func:`torch.utils.cpp_extension.load` into torch's
extension cache (``$TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``; about 10 s
the first time, a cache hit afterwards) and registers them as ``torch.ops.cbam_cpu.*``. If the
build fails (no C++ compiler or ninja), it warns once and the operator runs its passes on PyTorch
operations (:mod:`.passes_torch`). ``CBAM_FAST_PATH=torch`` skips the kernels (see :mod:`.switch`).

Each pass streams its full-size inputs once and allocates no full-size temporary besides its result;
small results are in the dtype of the feature map. The functions have the signatures of
:mod:`.passes_torch`.
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
import warnings
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["available", "backward_input", "backward_reduce", "build_seconds", "channel_pool", "descriptor_dot",
           "gate", "hw_pool", "takes"]

_SOURCE = Path(__file__).with_name("csrc") / "fused_cpu.cpp"
_NAME = "cbam_fused_cpu"
_LOCK = threading.Lock()
_STATE: bool | None = None  # None: not tried yet; True: loaded; False: the build failed
_BUILD_SECONDS: float | None = None


def takes(x: Tensor) -> bool:
    """Whether the kernels take this feature map: a contiguous float32/float64 CPU tensor."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.is_contiguous()


def available() -> bool:
    """Whether the kernels are built and loaded (builds on the first call; warns once if that fails)."""
    global _STATE
    if _STATE is None:
        with _LOCK:
            if _STATE is None:
                _STATE = _load()
    return _STATE


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
            f"path runs on PyTorch operations (slower, same results); set CBAM_FAST_PATH=torch to silence this. "
            f"Cause: {type(error).__name__}: {str(error).strip()[-2000:]}",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    finally:
        _BUILD_SECONDS = time.perf_counter() - start
    return True


# ---- the passes (signatures of .passes_torch) ------------------------------------------------------


def hw_pool(x: Tensor, avg: bool, mx: bool, index: bool) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Mean, max and first argmax over H x W: (B, C) each."""
    mean, values, i = torch.ops.cbam_cpu.hw_pool(x, avg, mx, index)
    return (mean if avg else None), (values if mx else None), (i if mx and index else None)


def channel_pool(
    x: Tensor, scale: Tensor | None, avg: bool, mx: bool, index: bool, scratch: dict
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Mean, max and first argmax over C of scale[b, c] * x[b, c, n]: (B, N) each."""
    scale = scale if scale is not None else x.new_ones(x.shape[:2])
    mean, values, i = torch.ops.cbam_cpu.channel_pool(x, scale, avg, mx, index)
    return (mean if avg else None), (values if mx else None), (i if mx and index else None)


def gate(x: Tensor, a: Tensor | None, s: Tensor | None, scratch: dict) -> Tensor:
    """x * a[b, c] * s[b, n]."""
    b, c, h, w = x.shape
    return torch.ops.cbam_cpu.gate(x, a, s.reshape(b, h * w) if s is not None else None)


def backward_reduce(
    g: Tensor, x: Tensor, a: Tensor | None, s: Tensor | None, want_ds: bool, want_da: bool, scratch: dict
) -> tuple[Tensor | None, Tensor | None]:
    """ds[b, n] = sum_c g x a_c and da[b, c] = sum_n g x s_n (a, s: 1 where None)."""
    b, c, h, w = x.shape
    a_arg = (a if a is not None else x.new_ones(b, c)) if want_ds else None
    s_arg = (s if s is not None else x.new_ones(b, h * w)) if want_da else None
    ds, da = torch.ops.cbam_cpu.backward_reduce(g, x, a_arg, s_arg)
    return (ds if want_ds else None), (da if want_da else None)


def descriptor_dot(x: Tensor, d_avg: Tensor | None, d_max: Tensor | None, index: Tensor | None) -> Tensor:
    """r[b, c] = sum_n x[b, c, n] * (d_avg[b, n] + [index[b, n] == c] * d_max[b, n])."""
    b, _, h, w = x.shape
    zeros = x.new_zeros(b, h * w)
    index = index if index is not None else zeros.long()
    return torch.ops.cbam_cpu.descriptor_dot(x, _or(d_avg, zeros), _or(d_max, zeros), index)


def backward_input(
    g: Tensor, a: Tensor | None, avg_c: Tensor | None, max_c: Tensor | None, index_c: Tensor | None,
    s: Tensor | None, d_avg: Tensor | None, d_max: Tensor | None, index_s: Tensor | None, scratch: dict,
) -> Tensor:
    """dx = a_c (g s_n + d_avg_n + [index_s_n == c] d_max_n) + avg_c + [n == index_c] max_c."""
    b, c, h, w = g.shape
    spatial: tuple[Tensor | None, ...] = (None, None, None, None)
    if s is not None:
        zeros = g.new_zeros(b, h * w)
        index = index_s if index_s is not None else zeros.long()
        spatial = (s.reshape(b, h * w), _or(d_avg, zeros), _or(d_max, zeros), index)
    scale = a if a is not None else g.new_ones(b, c)
    return torch.ops.cbam_cpu.backward_input(g, scale, _or(avg_c, g.new_zeros(b, c)), max_c, index_c, *spatial)


def _or(t: Tensor | None, default: Tensor) -> Tensor:
    return t.contiguous() if t is not None else default
