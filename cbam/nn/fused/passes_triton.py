"""The full-size passes of the fused operator as Triton kernels (:mod:`.triton_kernels`): CUDA tensors
of any float dtype, NCHW or channels-last; on CPU tensors only under the Triton interpreter
(``TRITON_INTERPRET=1`` set before Triton is imported), which is how the tests run them.

The functions have the signatures of :mod:`.passes_torch`. Reductions are cut into enough ranges to
fill the GPU (about four programs per SM) and combined in a fixed order, so results are bitwise
reproducible for a given shape and device.
"""
from __future__ import annotations

import functools
import importlib.util
import os

import torch
from torch import Tensor

from .passes_torch import compute_dtype

__all__ = ["available", "backward_input", "backward_reduce", "channel_pool", "descriptor_dot", "gate", "hw_pool",
           "takes"]

TILE = 2048  # elements of a [BLOCK_C, BLOCK_N] tile
LANES = 128  # most elements of a tile along the contiguous axis
#: Programs a reduction aims for; None: four per SM on CUDA, one elsewhere (tests set it to cut reductions).
TARGET_PROGRAMS: int | None = None


@functools.cache
def available() -> bool:
    """Whether Triton can be imported."""
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """Whether Triton runs kernels on the CPU with its interpreter."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def takes(x: Tensor) -> bool:
    """Whether the kernels take this feature map: CUDA (or CPU under the interpreter), NCHW or channels-last."""
    on_device = x.device.type == "cuda" or (x.device.type == "cpu" and interpreting())
    return on_device and (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last))


def _kernels():
    from . import triton_kernels  # imports Triton: only when a kernel runs

    return triton_kernels


def _p2(v: int) -> int:
    return 1 << max(0, int(v) - 1).bit_length()


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _view(t: Tensor) -> Tensor:
    """(B, C, H, W) -> the (B, C, N) view (no copy: NCHW or channels-last)."""
    b, c, h, w = t.shape
    return t.view(b, c, h * w)


def _tile(c: int, n: int, stride_n: int) -> tuple[int, int]:
    """(BLOCK_C, BLOCK_N): the contiguous axis gets up to LANES elements, the other fills the tile."""
    if stride_n == 1 or c == 1:
        block_n = min(LANES, _p2(n))
        return min(_p2(c), max(1, TILE // block_n)), block_n
    block_c = min(LANES, _p2(c))
    return block_c, min(_p2(n), max(1, TILE // block_c))


@functools.cache
def _device_programs(device: torch.device) -> int:
    if device.type == "cuda":
        return 4 * torch.cuda.get_device_properties(device).multi_processor_count
    return 1


def _split(length: int, block: int, programs: int, device: torch.device) -> tuple[int, int]:
    """(number of ranges, range length) for a reduction of ``length`` in chunks of ``block``."""
    target = TARGET_PROGRAMS if TARGET_PROGRAMS is not None else _device_programs(device)
    chunks = _cdiv(length, block)
    per = _cdiv(chunks, max(1, min(chunks, _cdiv(target, programs)))) * block
    return _cdiv(length, per), per


def _finalize(sums: Tensor, maxs: Tensor, idx: Tensor, count: int, do_max: bool, do_index: bool):
    """Combine the partials (SPLIT, B, K) in order: (B, K) mean-or-sum, max and index."""
    split, b, k = sums.shape
    out_sum, out_max = sums.new_empty(b, k), (sums.new_empty(b, k) if do_max else sums)
    out_idx = idx.new_empty(b, k) if do_index else idx
    block = min(1024, _p2(b * k))
    _kernels().finalize[(_cdiv(b * k, block),)](
        sums, maxs, idx, out_sum, out_max, out_idx, b * k, split, count,
        BLOCK=block, DO_MAX=do_max, DO_INDEX=do_index, FP64=sums.dtype == torch.float64,
    )
    return out_sum, out_max, out_idx


def _pool(x: Tensor, scale: Tensor | None, over_channels: bool, avg: bool, mx: bool, index: bool):
    xv = _view(x)
    b, c, n = xv.shape
    cdt = compute_dtype(x)
    block_c, block_n = _tile(c, n, xv.stride(2))
    do_index = mx and index
    if over_channels:  # keep N, reduce C
        blocks, (split, per), count = _cdiv(n, block_n), _split(c, block_c, b * _cdiv(n, block_n), x.device), c
    else:  # keep C, reduce N
        blocks, (split, per), count = _cdiv(c, block_c), _split(n, block_n, b * _cdiv(c, block_c), x.device), n
    keep = n if over_channels else c
    sums = torch.empty(split, b, keep, dtype=cdt, device=x.device)
    maxs = torch.empty_like(sums) if mx else sums
    idx = torch.empty(split, b, keep, dtype=torch.long, device=x.device) if do_index else sums
    flags = dict(BLOCK_C=block_c, BLOCK_N=block_n, DO_MAX=mx, DO_INDEX=do_index, FINAL=split == 1,
                 FP64=cdt == torch.float64)
    grid = (blocks, b, split)
    if over_channels:
        a = scale.contiguous() if scale is not None else sums
        _kernels().channel_pool[grid](xv, a, sums, maxs, idx, b, c, n, *xv.stride(), per, count,
                                      HAS_A=scale is not None, **flags)
    else:
        _kernels().hw_pool[grid](xv, sums, maxs, idx, b, c, n, *xv.stride(), per, count, **flags)
    if split == 1:
        sums, maxs, idx = sums[0], maxs[0], idx[0]
    else:
        sums, maxs, idx = _finalize(sums, maxs, idx, count, mx, do_index)
    return (sums if avg else None), (maxs if mx else None), (idx if do_index else None)


def hw_pool(x: Tensor, avg: bool, mx: bool, index: bool) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Mean, max and first argmax over H x W: (B, C) each."""
    return _pool(x, None, False, avg, mx, index)


def channel_pool(
    x: Tensor, scale: Tensor | None, avg: bool, mx: bool, index: bool, scratch: dict
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Mean, max and first argmax over C of scale[b, c] * x[b, c, n]: (B, N) each."""
    return _pool(x, scale, True, avg, mx, index)


def gate(x: Tensor, a: Tensor | None, s: Tensor | None, scratch: dict) -> Tensor:
    """x * a[b, c] * s[b, n], in the layout of x."""
    out = torch.empty_like(x)
    xv, ov = _view(x), _view(out)
    b, c, n = xv.shape
    assert ov.stride() == xv.stride()
    block_c, block_n = _tile(c, n, xv.stride(2))
    a_arg = a.contiguous() if a is not None else xv
    s_arg = s.reshape(b, n).contiguous() if s is not None else xv
    _kernels().gate[(_cdiv(n, block_n), _cdiv(c, block_c), b)](
        xv, a_arg, s_arg, ov, c, n, *xv.stride(), BLOCK_C=block_c, BLOCK_N=block_n,
        HAS_A=a is not None, HAS_S=s is not None, FP64=compute_dtype(x) == torch.float64,
    )
    return out


def backward_reduce(
    g: Tensor, x: Tensor, a: Tensor | None, s: Tensor | None, want_ds: bool, want_da: bool, scratch: dict
) -> tuple[Tensor | None, Tensor | None]:
    """ds[b, n] = sum_c g x a_c and da[b, c] = sum_n g x s_n (a, s: 1 where None), one read of g and x."""
    gv, xv = _view(g), _view(x)
    b, c, n = xv.shape
    cdt = compute_dtype(x)
    block_c, block_n = _tile(c, n, xv.stride(2))
    n_blocks = _cdiv(n, block_n)
    split, per = _split(c, block_c, b * n_blocks, x.device)
    ds = torch.empty(split if want_ds else 0, b, n, dtype=cdt, device=x.device)
    da = torch.empty(n_blocks if want_da else 0, b, c, dtype=cdt, device=x.device)
    a_arg = a.contiguous() if a is not None else ds
    s_arg = s.reshape(b, n).contiguous() if s is not None else ds
    _kernels().backward_reduce[(n_blocks, b, split)](
        gv, xv, a_arg, s_arg, ds, da, b, c, n, *gv.stride(), *xv.stride(), per,
        BLOCK_C=block_c, BLOCK_N=block_n, HAS_A=a is not None, HAS_S=s is not None,
        WANT_DS=want_ds, WANT_DA=want_da, FP64=cdt == torch.float64,
    )
    return (_sum(ds) if want_ds else None), (_sum(da) if want_da else None)


def _sum(parts: Tensor) -> Tensor:
    """Partials (SPLIT, B, K) -> (B, K), added in order."""
    return parts[0] if parts.shape[0] == 1 else _finalize(parts, parts, parts, 1, False, False)[0]


def descriptor_dot(x: Tensor, d_avg: Tensor | None, d_max: Tensor | None, index: Tensor | None) -> Tensor:
    """r[b, c] = sum_n x[b, c, n] * (d_avg[b, n] + [index[b, n] == c] * d_max[b, n])."""
    xv = _view(x)
    b, c, n = xv.shape
    cdt = compute_dtype(x)
    block_c, block_n = _tile(c, n, xv.stride(2))
    c_blocks = _cdiv(c, block_c)
    split, per = _split(n, block_n, b * c_blocks, x.device)
    parts = torch.empty(split, b, c, dtype=cdt, device=x.device)
    _kernels().descriptor_dot[(c_blocks, b, split)](
        xv, _small(d_avg, parts), _small(d_max, parts), _small(index, parts), parts, b, c, n, *xv.stride(), per,
        BLOCK_C=block_c, BLOCK_N=block_n, HAS_AVG=d_avg is not None, HAS_MAX=d_max is not None,
        FP64=cdt == torch.float64,
    )
    return _sum(parts)


def backward_input(
    g: Tensor, a: Tensor | None, avg_c: Tensor | None, max_c: Tensor | None, index_c: Tensor | None,
    s: Tensor | None, d_avg: Tensor | None, d_max: Tensor | None, index_s: Tensor | None, scratch: dict,
) -> Tensor:
    """dx = a_c (g s_n + d_avg_n + [index_s_n == c] d_max_n) + avg_c + [n == index_c] max_c, one read, one write."""
    dx = torch.empty_like(g)
    gv, dv = _view(g), _view(dx)
    b, c, n = gv.shape
    block_c, block_n = _tile(c, n, gv.stride(2))
    s_arg = s.reshape(b, n) if s is not None else None
    _kernels().backward_input[(_cdiv(n, block_n), _cdiv(c, block_c), b)](
        gv, dv, _small(a, gv), _small(avg_c, gv), _small(max_c, gv), _small(index_c, gv),
        _small(s_arg, gv), _small(d_avg, gv), _small(d_max, gv), _small(index_s, gv),
        c, n, *gv.stride(), *dv.stride(), BLOCK_C=block_c, BLOCK_N=block_n,
        HAS_A=a is not None, HAS_AVG_C=avg_c is not None, HAS_MAX_C=max_c is not None,
        HAS_S=s is not None, HAS_AVG_S=d_avg is not None, HAS_MAX_S=d_max is not None,
        FP64=compute_dtype(g) == torch.float64,
    )
    return dx


def _small(t: Tensor | None, placeholder: Tensor) -> Tensor:
    """A small operand as a contiguous tensor, or a placeholder pointer the kernel does not read."""
    return t.contiguous() if t is not None else placeholder
