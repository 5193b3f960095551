"""Triton kernels of the fused operator's full-size passes (launched by :mod:`.passes_triton`).

Every kernel sees the feature map as (B, C, N = H*W) through its three strides, so NCHW (stride_n = 1)
and channels-last (stride_c = 1) run the same code; a program works on a [BLOCK_C, BLOCK_N] tile.
Values are converted to the accumulation dtype (float32, float64 for float64 maps) right after they
are loaded, and converted back only when a full-size result is stored.

Reductions are deterministic: a reduction over N (or C) is cut into SPLIT ranges of whole chunks,
each program loops over its range in order and writes a partial result, and :func:`finalize` combines
the partials in range order; no atomics. Max pools keep the first maximal element (a later chunk
replaces the running maximum only when strictly larger); a NaN counts as the largest value for the
index, and a row whose sum is NaN gets NaN as its maximum, as ``torch.max`` gives.
"""
from __future__ import annotations

import triton
import triton.language as tl

__all__ = ["backward_input", "backward_reduce", "channel_pool", "descriptor_dot", "finalize", "gate", "hw_pool"]


@triton.jit
def _load(ptr, mask, FP64: tl.constexpr):
    """Load (0 where masked) and convert to the accumulation dtype."""
    v = tl.load(ptr, mask=mask, other=0.0)
    if FP64:
        v = v.to(tl.float64)
    else:
        v = v.to(tl.float32)
    return v


@triton.jit
def _max_key(v, mask):
    """The max-pool key: NaN as +inf (so its index is found), masked lanes as -inf."""
    v = tl.where(v != v, float("inf"), v)
    return tl.where(mask, v, float("-inf"))


@triton.jit
def _store_pool(sum_ptr, max_ptr, idx_ptr, offs, mask, acc, run_max, run_idx, count,
                FINAL: tl.constexpr, DO_MAX: tl.constexpr, DO_INDEX: tl.constexpr):
    """Store a (partial) pool; FINAL: divide the sum by ``count`` (a mean) and give NaN rows a NaN maximum."""
    if FINAL:
        tl.store(sum_ptr + offs, acc / count, mask=mask)
        if DO_MAX:
            tl.store(max_ptr + offs, tl.where(acc != acc, acc, run_max), mask=mask)
    else:
        tl.store(sum_ptr + offs, acc, mask=mask)
        if DO_MAX:
            tl.store(max_ptr + offs, run_max, mask=mask)
    if DO_INDEX:
        tl.store(idx_ptr + offs, run_idx, mask=mask)


@triton.jit
def hw_pool(x_ptr, sum_ptr, max_ptr, idx_ptr, B, C, N, sxb, sxc, sxn, n_per_split, count,
            BLOCK_C: tl.constexpr, BLOCK_N: tl.constexpr, DO_MAX: tl.constexpr, DO_INDEX: tl.constexpr,
            FINAL: tl.constexpr, FP64: tl.constexpr):
    """Sum, max and first argmax over N, per (b, c): grid (C blocks, B, splits of N) -> (split, B, C)."""
    pid_c, b, split = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_c = offs_c < C
    n_lo = split * n_per_split
    n_hi = tl.minimum(n_lo + n_per_split, N)
    row = x_ptr + b.to(tl.int64) * sxb + offs_c[:, None].to(tl.int64) * sxc
    acc = tl.zeros([BLOCK_C], dtype=tl.float64 if FP64 else tl.float32)
    run_max = tl.full([BLOCK_C], float("-inf"), dtype=acc.dtype)
    run_idx = tl.zeros([BLOCK_C], dtype=tl.int64)
    for n0 in range(n_lo, n_hi, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        mask = mask_c[:, None] & (offs_n[None, :] < n_hi)
        v = _load(row + offs_n[None, :].to(tl.int64) * sxn, mask, FP64)
        acc += tl.sum(v, axis=1)
        if DO_MAX:
            key = _max_key(v, mask)
            m = tl.max(key, axis=1)
            if DO_INDEX:
                first = tl.min(tl.where(key == m[:, None], offs_n[None, :], N), axis=1)
                run_idx = tl.where(m > run_max, first.to(tl.int64), run_idx)
            run_max = tl.maximum(run_max, m)
    offs = (split * B + b) * C + offs_c
    _store_pool(sum_ptr, max_ptr, idx_ptr, offs, mask_c, acc, run_max, run_idx, count, FINAL, DO_MAX, DO_INDEX)


@triton.jit
def channel_pool(x_ptr, a_ptr, sum_ptr, max_ptr, idx_ptr, B, C, N, sxb, sxc, sxn, c_per_split, count,
                 BLOCK_C: tl.constexpr, BLOCK_N: tl.constexpr, HAS_A: tl.constexpr, DO_MAX: tl.constexpr,
                 DO_INDEX: tl.constexpr, FINAL: tl.constexpr, FP64: tl.constexpr):
    """Sum, max and first argmax over C of a[b, c] * x[b, c, n], per (b, n): grid (N blocks, B, splits of C)."""
    pid_n, b, split = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    c_lo = split * c_per_split
    c_hi = tl.minimum(c_lo + c_per_split, C)
    col = x_ptr + b.to(tl.int64) * sxb + offs_n[None, :].to(tl.int64) * sxn
    acc = tl.zeros([BLOCK_N], dtype=tl.float64 if FP64 else tl.float32)
    run_max = tl.full([BLOCK_N], float("-inf"), dtype=acc.dtype)
    run_idx = tl.zeros([BLOCK_N], dtype=tl.int64)
    for c0 in range(c_lo, c_hi, BLOCK_C):
        offs_c = c0 + tl.arange(0, BLOCK_C)
        mask_c = offs_c < c_hi
        mask = mask_c[:, None] & mask_n[None, :]
        v = _load(col + offs_c[:, None].to(tl.int64) * sxc, mask, FP64)
        if HAS_A:
            v = v * _load(a_ptr + b * C + offs_c, mask_c, FP64)[:, None]
        acc += tl.sum(v, axis=0)
        if DO_MAX:
            key = _max_key(v, mask)
            m = tl.max(key, axis=0)
            if DO_INDEX:
                first = tl.min(tl.where(key == m[None, :], offs_c[:, None], C), axis=0)
                run_idx = tl.where(m > run_max, first.to(tl.int64), run_idx)
            run_max = tl.maximum(run_max, m)
    offs = (split * B + b) * N + offs_n
    _store_pool(sum_ptr, max_ptr, idx_ptr, offs, mask_n, acc, run_max, run_idx, count, FINAL, DO_MAX, DO_INDEX)


@triton.jit
def finalize(sum_ptr, max_ptr, idx_ptr, sum_out, max_out, idx_out, M, SPLIT, count,
             BLOCK: tl.constexpr, DO_MAX: tl.constexpr, DO_INDEX: tl.constexpr, FP64: tl.constexpr):
    """Combine SPLIT partial pools (SPLIT, M) in order into (M,): sums added, the first maximum kept."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    acc = tl.zeros([BLOCK], dtype=tl.float64 if FP64 else tl.float32)
    run_max = tl.full([BLOCK], float("-inf"), dtype=acc.dtype)
    run_idx = tl.zeros([BLOCK], dtype=tl.int64)
    for split in range(0, SPLIT):
        acc += _load(sum_ptr + split * M + offs, mask, FP64)
        if DO_MAX:
            m = _load(max_ptr + split * M + offs, mask, FP64)
            if DO_INDEX:
                run_idx = tl.where(m > run_max, tl.load(idx_ptr + split * M + offs, mask=mask, other=0), run_idx)
            run_max = tl.maximum(run_max, m)
    _store_pool(sum_out, max_out, idx_out, offs, mask, acc, run_max, run_idx, count, True, DO_MAX, DO_INDEX)


@triton.jit
def gate(x_ptr, a_ptr, s_ptr, out_ptr, C, N, sxb, sxc, sxn,
         BLOCK_C: tl.constexpr, BLOCK_N: tl.constexpr, HAS_A: tl.constexpr, HAS_S: tl.constexpr,
         FP64: tl.constexpr):
    """out[b, c, n] = x * a[b, c] * s[b, n] (out has x's strides): grid (N blocks, C blocks, B)."""
    pid_n, pid_c, b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_n, mask_c = offs_n < N, offs_c < C
    mask = mask_c[:, None] & mask_n[None, :]
    offs = b.to(tl.int64) * sxb + offs_c[:, None].to(tl.int64) * sxc + offs_n[None, :].to(tl.int64) * sxn
    v = _load(x_ptr + offs, mask, FP64)
    if HAS_A:
        v = v * _load(a_ptr + b * C + offs_c, mask_c, FP64)[:, None]
    if HAS_S:
        v = v * _load(s_ptr + b * N + offs_n, mask_n, FP64)[None, :]
    tl.store(out_ptr + offs, v.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def backward_reduce(g_ptr, x_ptr, a_ptr, s_ptr, ds_ptr, da_ptr, B, C, N, sgb, sgc, sgn, sxb, sxc, sxn, c_per_split,
                    BLOCK_C: tl.constexpr, BLOCK_N: tl.constexpr, HAS_A: tl.constexpr, HAS_S: tl.constexpr,
                    WANT_DS: tl.constexpr, WANT_DA: tl.constexpr, FP64: tl.constexpr):
    """One read of g and x: ds partials (split, B, N) of sum_c g x a_c and da partials (N block, B, C) of
    sum_n g x s_n; grid (N blocks, B, splits of C)."""
    pid_n, b, split = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    c_lo = split * c_per_split
    c_hi = tl.minimum(c_lo + c_per_split, C)
    g_col = g_ptr + b.to(tl.int64) * sgb + offs_n[None, :].to(tl.int64) * sgn
    x_col = x_ptr + b.to(tl.int64) * sxb + offs_n[None, :].to(tl.int64) * sxn
    ds = tl.zeros([BLOCK_N], dtype=tl.float64 if FP64 else tl.float32)
    if HAS_S:
        s = _load(s_ptr + b * N + offs_n, mask_n, FP64)
    for c0 in range(c_lo, c_hi, BLOCK_C):
        offs_c = c0 + tl.arange(0, BLOCK_C)
        mask_c = offs_c < c_hi
        mask = mask_c[:, None] & mask_n[None, :]
        t = _load(g_col + offs_c[:, None].to(tl.int64) * sgc, mask, FP64) * \
            _load(x_col + offs_c[:, None].to(tl.int64) * sxc, mask, FP64)
        if WANT_DS:
            if HAS_A:
                ds += tl.sum(t * _load(a_ptr + b * C + offs_c, mask_c, FP64)[:, None], axis=0)
            else:
                ds += tl.sum(t, axis=0)
        if WANT_DA:
            if HAS_S:
                t = t * s[None, :]
            tl.store(da_ptr + (pid_n * B + b) * C + offs_c, tl.sum(t, axis=1), mask=mask_c)
    if WANT_DS:
        tl.store(ds_ptr + (split * B + b) * N + offs_n, ds, mask=mask_n)


@triton.jit
def descriptor_dot(x_ptr, avg_ptr, max_ptr, idx_ptr, out_ptr, B, C, N, sxb, sxc, sxn, n_per_split,
                   BLOCK_C: tl.constexpr, BLOCK_N: tl.constexpr, HAS_AVG: tl.constexpr, HAS_MAX: tl.constexpr,
                   FP64: tl.constexpr):
    """Partials (split, B, C) of sum_n x[b, c, n] (avg[b, n] + [idx[b, n] == c] max[b, n]):
    grid (C blocks, B, splits of N)."""
    pid_c, b, split = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_c = offs_c < C
    n_lo = split * n_per_split
    n_hi = tl.minimum(n_lo + n_per_split, N)
    row = x_ptr + b.to(tl.int64) * sxb + offs_c[:, None].to(tl.int64) * sxc
    acc = tl.zeros([BLOCK_C], dtype=tl.float64 if FP64 else tl.float32)
    for n0 in range(n_lo, n_hi, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        mask_n = offs_n < n_hi
        mask = mask_c[:, None] & mask_n[None, :]
        v = _load(row + offs_n[None, :].to(tl.int64) * sxn, mask, FP64)
        w = tl.zeros([BLOCK_C, BLOCK_N], dtype=acc.dtype)
        if HAS_AVG:
            w += _load(avg_ptr + b * N + offs_n, mask_n, FP64)[None, :]
        if HAS_MAX:
            idx = tl.load(idx_ptr + b * N + offs_n, mask=mask_n, other=-1)
            dmax = _load(max_ptr + b * N + offs_n, mask_n, FP64)
            w += tl.where(idx[None, :] == offs_c[:, None], dmax[None, :], 0.0)
        acc += tl.sum(v * w, axis=1)
    tl.store(out_ptr + (split * B + b) * C + offs_c, acc, mask=mask_c)


@triton.jit
def backward_input(g_ptr, dx_ptr, a_ptr, avg_c_ptr, max_c_ptr, idx_c_ptr, s_ptr, avg_s_ptr, max_s_ptr, idx_s_ptr,
                   C, N, sgb, sgc, sgn, sdb, sdc, sdn,
                   BLOCK_C: tl.constexpr, BLOCK_N: tl.constexpr, HAS_A: tl.constexpr, HAS_AVG_C: tl.constexpr,
                   HAS_MAX_C: tl.constexpr, HAS_S: tl.constexpr, HAS_AVG_S: tl.constexpr, HAS_MAX_S: tl.constexpr,
                   FP64: tl.constexpr):
    """dx = a_c (g s_n + avg_s_n + [idx_s_n == c] max_s_n) + avg_c + [n == idx_c] max_c: one read of g,
    one write; grid (N blocks, C blocks, B)."""
    pid_n, pid_c, b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_n, mask_c = offs_n < N, offs_c < C
    mask = mask_c[:, None] & mask_n[None, :]
    b64 = b.to(tl.int64)
    c64, n64 = offs_c[:, None].to(tl.int64), offs_n[None, :].to(tl.int64)
    t = _load(g_ptr + b64 * sgb + c64 * sgc + n64 * sgn, mask, FP64)
    if HAS_S:
        t = t * _load(s_ptr + b * N + offs_n, mask_n, FP64)[None, :]
        if HAS_AVG_S:
            t += _load(avg_s_ptr + b * N + offs_n, mask_n, FP64)[None, :]
        if HAS_MAX_S:
            idx_s = tl.load(idx_s_ptr + b * N + offs_n, mask=mask_n, other=-1)
            max_s = _load(max_s_ptr + b * N + offs_n, mask_n, FP64)
            t += tl.where(idx_s[None, :] == offs_c[:, None], max_s[None, :], 0.0)
    if HAS_A:
        t = t * _load(a_ptr + b * C + offs_c, mask_c, FP64)[:, None]
    if HAS_AVG_C:
        t += _load(avg_c_ptr + b * C + offs_c, mask_c, FP64)[:, None]
    if HAS_MAX_C:
        idx_c = tl.load(idx_c_ptr + b * C + offs_c, mask=mask_c, other=-1)
        max_c = _load(max_c_ptr + b * C + offs_c, mask_c, FP64)
        t += tl.where(idx_c[:, None] == offs_n[None, :], max_c[:, None], 0.0)
    tl.store(dx_ptr + b64 * sdb + c64 * sdc + n64 * sdn, t.to(dx_ptr.dtype.element_ty), mask=mask)
