"""The full-size passes of the fused operator as PyTorch operations: the fallback for every device,
dtype and layout the kernels do not take (CPU half precision or channels-last, CUDA without Triton).

Every pass works on the (B, C, N = H*W) view of an NCHW or channels-last feature map, so no layout is
converted. Reductions accumulate in the compute dtype (float32, float64 for float64 maps) and the
small results (B, C) or (B, N) are in that dtype; full-size results have the feature map's dtype and
memory layout. Max pools return the first maximal index (``torch.max(dim)`` on the CPU; CUDA's
``max(dim)`` picks one maximal index, not documented as the first).

``scratch`` (every back end takes it; the kernels leave it alone) is a dict that lives for one forward or
one backward: a pass may leave a full-size tensor there for a later pass to reuse, so that this back end
allocates one full-size tensor each way: ``channel_pool`` leaves M_c * F for ``gate`` to gate in place,
``backward_reduce`` leaves grad * F for ``backward_input`` to overwrite with dx.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["backward_input", "backward_reduce", "channel_pool", "compute_dtype", "descriptor_dot", "gate",
           "hw_pool"]


def compute_dtype(x: Tensor) -> torch.dtype:
    """float64 for float64 maps, float32 otherwise."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _flat(t: Tensor) -> Tensor:
    """(B, C, H, W) -> the (B, C, N) view of an NCHW or channels-last map (never a copy: outputs are
    written through it)."""
    b, c, h, w = t.shape
    return t.view(b, c, h * w)


def hw_pool(x: Tensor, avg: bool, mx: bool, index: bool) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Mean, max and first argmax over H x W: (B, C) each (None where not asked)."""
    xf, cdt = _flat(x), compute_dtype(x)
    mean = xf.mean(dim=2, dtype=cdt) if avg else None
    if not mx:
        return mean, None, None
    if index:
        values, i = xf.max(dim=2)
        return mean, values.to(cdt), i
    return mean, xf.amax(dim=2).to(cdt), None


def channel_pool(
    x: Tensor, scale: Tensor | None, avg: bool, mx: bool, index: bool, scratch: dict
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Mean, max and first argmax over C of scale[b, c] * x[b, c, n]: (B, N) each."""
    xf, cdt = _flat(x), compute_dtype(x)
    b, c, _ = xf.shape
    mean = values = i = None
    if avg:  # sum_c scale_c x_c / C as a batched matrix-vector product: no full-size temporary
        weights = scale.unsqueeze(1) if scale is not None else x.new_ones(b, 1, c, dtype=cdt)
        mean = torch.bmm(weights.to(x.dtype), xf).squeeze(1).to(cdt) / c
    if mx:
        y = xf * scale.unsqueeze(2).to(x.dtype) if scale is not None else xf  # (B, C, N)
        if scale is not None:
            scratch["scaled"] = y  # M_c * F, gated in place by gate
        if index:
            values, i = y.max(dim=1)
        else:
            values = y.amax(dim=1)
        values = values.to(cdt)
    return mean, values, i


def gate(x: Tensor, a: Tensor | None, s: Tensor | None, scratch: dict) -> Tensor:
    """x * a[b, c] * s[b, n]: the output, in the layout of x."""
    scaled = scratch.pop("scaled", None)
    if scaled is not None and s is not None:  # M_c * F from channel_pool
        return scaled.mul_(s.unsqueeze(1).to(x.dtype)).view(x.shape)
    out = torch.empty_like(x)
    of, xf = _flat(out), _flat(x)
    if a is not None:
        torch.mul(xf, a.unsqueeze(2).to(x.dtype), out=of)
        if s is not None:
            of.mul_(s.unsqueeze(1).to(x.dtype))
    else:
        torch.mul(xf, s.unsqueeze(1).to(x.dtype), out=of)
    return out


def backward_reduce(
    g: Tensor, x: Tensor, a: Tensor | None, s: Tensor | None, want_ds: bool, want_da: bool, scratch: dict
) -> tuple[Tensor | None, Tensor | None]:
    """ds[b, n] = sum_c g x a_c and da[b, c] = sum_n g x s_n (a, s: 1 where None)."""
    gf, xf, cdt = _flat(g), _flat(x), compute_dtype(x)
    b, c, n = xf.shape
    t = gf * xf  # grad * F: the backward's one full-size tensor, overwritten with dx by backward_input
    scratch["buffer"] = t
    ds = da = None
    if want_ds:
        weights = a.unsqueeze(1).to(x.dtype) if a is not None else x.new_ones(b, 1, c)
        ds = torch.bmm(weights, t).squeeze(1).to(cdt)
    if want_da:
        da = torch.bmm(t, s.unsqueeze(2).to(x.dtype)).squeeze(2).to(cdt) if s is not None else t.sum(2, dtype=cdt)
    return ds, da


def descriptor_dot(x: Tensor, d_avg: Tensor | None, d_max: Tensor | None, index: Tensor | None) -> Tensor:
    """r[b, c] = sum_n x[b, c, n] * (d_avg[b, n] + [index[b, n] == c] * d_max[b, n])."""
    xf, cdt = _flat(x), compute_dtype(x)
    b, c, _ = xf.shape
    if d_avg is not None:
        r = torch.bmm(xf, d_avg.unsqueeze(2).to(x.dtype)).squeeze(2).to(cdt)
    else:
        r = torch.zeros(b, c, dtype=cdt, device=x.device)
    if d_max is not None:
        r.scatter_add_(1, index, d_max * xf.gather(1, index.unsqueeze(1)).squeeze(1).to(cdt))
    return r


def backward_input(
    g: Tensor, a: Tensor | None, avg_c: Tensor | None, max_c: Tensor | None, index_c: Tensor | None,
    s: Tensor | None, d_avg: Tensor | None, d_max: Tensor | None, index_s: Tensor | None, scratch: dict,
) -> Tensor:
    """dx = a_c (g s_n + d_avg_n + [index_s_n == c] d_max_n) + avg_c + [n == index_c] max_c, in g's layout.

    Terms that are None are absent (a: 1); the spatial terms need ``s``.
    """
    buffer = scratch.pop("buffer", None)
    df = buffer if buffer is not None else _flat(torch.empty_like(g))
    gf, dt = _flat(g), g.dtype
    if s is not None:
        if d_avg is not None:
            torch.addcmul(d_avg.unsqueeze(1).to(dt), gf, s.unsqueeze(1).to(dt), out=df)
        else:
            torch.mul(gf, s.unsqueeze(1).to(dt), out=df)
        if d_max is not None:
            df.scatter_add_(1, index_s.unsqueeze(1), d_max.unsqueeze(1).to(dt))
        gf = df
    if a is not None:
        if avg_c is not None:
            torch.addcmul(avg_c.unsqueeze(2).to(dt), gf, a.unsqueeze(2).to(dt), out=df)
        else:
            torch.mul(gf, a.unsqueeze(2).to(dt), out=df)
    elif gf is not df:
        df.copy_(gf)
    if max_c is not None:
        df.scatter_add_(2, index_c.unsqueeze(2), max_c.unsqueeze(2).to(dt))
    return df.view(g.shape)
