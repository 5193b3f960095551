"""The fused operator ``cbam::fused_attention`` and its backward: F'' = M_s(F') * F', F' = M_c(F) * F.

Forward, in full-size passes over F (B, C, H, W): the H x W pools of F (1 read), the channel pools of
M_c * F without writing it (1 read), F * M_c * M_s (1 read, 1 write). Backward: sum_c and sum_hw of
grad * F together (1 read of each), the descriptor part of dL/dM_c (1 read of F, CBAM only), dL/dF
(1 read of grad, 1 write). Between the passes run the small parts of :mod:`.gates`. Saved for backward:
F, M_c (B, C), M_s (B, 1, H, W), the pooled descriptors, the argmax indices of both max pools, the conv
output and the BatchNorm batch statistics: all small but F.

Each pass has three back ends with the same signatures, chosen per call by :func:`passes_for`:
:mod:`.passes_cpp` (C++/OpenMP), :mod:`.passes_triton` (Triton) and :mod:`.passes_torch` (PyTorch
operations). The small parts run in float32 (float64 for float64 maps) with autocast off; the output
and dL/dF have the dtype and layout of F, parameter gradients the dtype of the parameters.

The operator is registered with ``torch.library`` (fake implementation and autograd formula), so
``torch.compile`` and ``torch.export`` capture it as one node; eager calls go through
:class:`FusedAttention`, which runs the same functions without the dispatcher round trip.
"""
from __future__ import annotations

import types

import torch
from torch import Tensor

from . import gates, passes_cpp, passes_torch, passes_triton, switch
from .gates import NORM_BATCH, NORM_NONE

__all__ = ["FusedAttention", "fused_attention_op", "passes_for"]


def passes_for(x: Tensor) -> types.ModuleType:
    """The back end of the full-size passes for this feature map under the current mode."""
    mode = switch.fast_path_mode()
    if mode == "triton":
        if not (passes_triton.available() and passes_triton.takes(x)):
            raise RuntimeError(
                "CBAM_FAST_PATH=triton: Triton kernels need an NCHW or channels-last CUDA tensor "
                "(or a CPU tensor with TRITON_INTERPRET=1 set before Triton is imported), got "
                f"a {x.device.type} tensor with strides {tuple(x.stride())}"
            )
        return passes_triton
    if mode == "auto" and x.device.type == "cuda" and passes_triton.available() and passes_triton.takes(x):
        return passes_triton
    if mode in ("auto", "cpp") and passes_cpp.takes(x) and passes_cpp.available():
        return passes_cpp
    return passes_torch


def _empty(x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    return x.new_empty((0,), dtype=dtype)


def _small(t: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return t.to(dtype) if t is not None else None


def _forward_impl(
    x: Tensor, w0: Tensor | None, b0: Tensor | None, w1: Tensor | None, b1: Tensor | None,
    conv_w: Tensor | None, conv_b: Tensor | None, norm_w: Tensor | None, norm_b: Tensor | None,
    pools: list[int], order: list[int], norm_mode: int, eps: float, need_grad: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(out, a, s, pooled, i_hw, desc, i_c, z, stats); pools/order: 0 = avg, 1 = max; absent ones empty."""
    given, x = x, _nchw_or_channels_last(x)
    passes, cdt = passes_for(x), passes_torch.compute_dtype(x)
    b, c, h, w = x.shape
    a, s, pooled, desc, z, stats = (_empty(x, cdt) for _ in range(6))  # outputs must not alias each other
    i_hw, i_c = _empty(x, torch.long), _empty(x, torch.long)
    scratch: dict = {}  # full-size temporaries a back end reuses between passes
    with torch.autocast(x.device.type, enabled=False):
        if pools:
            avg, mx, index = passes.hw_pool(x, 0 in pools, 1 in pools, need_grad)  # (B, C) each
            if need_grad and 1 in pools:
                i_hw = index
            pooled = torch.stack([avg if p == 0 else mx for p in pools])  # (P, B, C)
            a = gates.channel_gate(pooled, *(_small(t, cdt) for t in (w0, b0, w1, b1)))  # M_c: (B, C)
        if order:
            avg, mx, index = passes.channel_pool(x, a if pools else None, 0 in order, 1 in order, need_grad,
                                                  scratch)
            if need_grad and 1 in order:
                i_c = index
            desc = torch.stack([avg if p == 0 else mx for p in order], dim=1).view(b, len(order), h, w)
            spatial = (_small(t, cdt) for t in (conv_w, conv_b, norm_w, norm_b))
            s, z, stats = gates.spatial_gate(desc, *spatial, norm_mode, eps)  # M_s: (B, 1, H, W)
        out = passes.gate(x, a if pools else None, s.view(b, h * w) if order else None, scratch)
        out = _laid_out_like(out, given)
    return out, a, s, pooled, i_hw, desc, i_c, z, stats


def _backward_impl(
    grad: Tensor, x: Tensor, w0: Tensor | None, b0: Tensor | None, w1: Tensor | None, b1: Tensor | None,
    conv_w: Tensor | None, conv_b: Tensor | None, norm_w: Tensor | None, norm_b: Tensor | None,
    a: Tensor, s: Tensor, pooled: Tensor, i_hw: Tensor, desc: Tensor, i_c: Tensor, z: Tensor, stats: Tensor,
    pools: list[int], order: list[int], norm_mode: int, eps: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients (dx, dw0, db0, dw1, db1, dconv_w, dconv_b, dnorm_w, dnorm_b); absent ones are empty."""
    given, x = x, _nchw_or_channels_last(x)
    passes, cdt = passes_for(x), passes_torch.compute_dtype(x)
    b, c, h, w = x.shape
    n = h * w
    fmt = torch.channels_last if not x.is_contiguous() else torch.contiguous_format
    g = grad.to(x.dtype).contiguous(memory_format=fmt)
    params = [_small(t, cdt) for t in (w0, b0, w1, b1, conv_w, conv_b, norm_w, norm_b)]
    grads = [_empty(x, cdt) for _ in range(8)]
    spatial: tuple[Tensor | None, ...] = (None, None, None, None)
    scratch: dict = {}
    with torch.autocast(x.device.type, enabled=False):
        sf = s.view(b, n) if order else None  # M_s: (B, N)
        ds, da = passes.backward_reduce(g, x, a if pools else None, sf, bool(order), bool(pools), scratch)
        if order:  # dL/dM_s = sum_c grad * F' (B, N) -> dL/d(desc) through the conv and BatchNorm
            ddesc = gates.spatial_backward(ds, s, z, stats, desc, *params[4:], norm_mode, eps, grads)
            d_avg = ddesc[:, order.index(0)] / c if 0 in order else None  # to every channel
            d_max = ddesc[:, order.index(1)] if 1 in order else None  # to the argmax channel
            index = i_c if 1 in order else None
            if pools:  # dL/dM_c = sum_hw grad * M_s * F + sum_hw dL/d(desc) * d(desc)/dM_c
                da += passes.descriptor_dot(x, d_avg, d_max, index)
            spatial = (sf, d_avg, d_max, index)
        channel: tuple[Tensor | None, ...] = (None, None, None, None)
        if pools:  # dL/d(pooled) through the MLP -> H x W pool gradients per channel
            dpooled = gates.channel_backward(da, a, pooled, *params[:4], grads)
            avg_c = dpooled[pools.index(0)] / n if 0 in pools else None
            max_c, index_c = (dpooled[pools.index(1)], i_hw) if 1 in pools else (None, None)
            channel = (a, avg_c, max_c, index_c)
        dx = _laid_out_like(passes.backward_input(g, *channel, *spatial, scratch), given)
    param_grads = [_laid_out_like(gp.to(p.dtype), p) if p is not None and gp.numel() else gp for p, gp in
                   zip((w0, b0, w1, b1, conv_w, conv_b, norm_w, norm_b), grads)]
    return (dx, *param_grads)


def _nchw_or_channels_last(x: Tensor) -> Tensor:
    """``x`` itself when NCHW or channels-last (what the modules pass), else a contiguous copy: a compiled
    graph may hand the operator other strides."""
    if x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last):
        return x
    return x.contiguous()


def _laid_out_like(t: Tensor, like: Tensor) -> Tensor:
    """``t`` with the strides of ``torch.empty_like(like)``, as the fake implementation promises (compiled
    graphs check them): a copy only where they differ, e.g. for a channels-last conv weight."""
    if t.stride() == like.stride():  # empty_like keeps the strides of a dense tensor
        return t
    target = torch.empty_like(like, dtype=t.dtype)
    return t if t.stride() == target.stride() else target.copy_(t)


fused_attention_op = torch.library.custom_op("cbam::fused_attention", _forward_impl, mutates_args=())
_backward_op = torch.library.custom_op("cbam::fused_attention_backward", _backward_impl, mutates_args=())


@fused_attention_op.register_fake
def _(x, w0, b0, w1, b1, conv_w, conv_b, norm_w, norm_b, pools, order, norm_mode, eps, need_grad):
    b, c, h, w = x.shape
    cdt = passes_torch.compute_dtype(x)

    def new(present: bool, shape: tuple[int, ...], dtype: torch.dtype = cdt) -> Tensor:
        return x.new_empty(shape if present else (0,), dtype=dtype)

    return (
        torch.empty_like(x),
        new(bool(pools), (b, c)),
        new(bool(order), (b, 1, h, w)),
        new(bool(pools), (len(pools), b, c)),
        new(need_grad and 1 in pools, (b, c), torch.long),
        new(bool(order), (b, len(order), h, w)),
        new(need_grad and 1 in order, (b, h * w), torch.long),
        new(bool(order), (b, 1, h, w)),
        new(bool(order) and norm_mode == NORM_BATCH, (2,)),
    )


@_backward_op.register_fake
def _(grad, x, w0, b0, w1, b1, conv_w, conv_b, norm_w, norm_b, a, s, pooled, i_hw, desc, i_c, z, stats,
      pools, order, norm_mode, eps):
    cdt = passes_torch.compute_dtype(x)

    def like(t: Tensor | None, present: bool) -> Tensor:
        return torch.empty_like(t) if present and t is not None else x.new_empty((0,), dtype=cdt)

    affine = bool(order) and norm_mode != NORM_NONE and norm_w is not None
    return (
        torch.empty_like(x),
        like(w0, bool(pools)), like(b0, bool(pools)), like(w1, bool(pools)), like(b1, bool(pools)),
        like(conv_w, bool(order)), like(conv_b, bool(order)),
        like(norm_w, affine), like(norm_b, affine),
    )


def _setup_context(ctx, inputs, output) -> None:
    x, w0, b0, w1, b1, conv_w, conv_b, norm_w, norm_b, pools, order, norm_mode, eps, _ = inputs
    _, a, s, pooled, i_hw, desc, i_c, z, stats = output
    ctx.save_for_backward(x, w0, b0, w1, b1, conv_w, conv_b, norm_w, norm_b, a, s, pooled, i_hw, desc, i_c, z, stats)
    ctx.config = (pools, order, norm_mode, eps)


def _input_grads(saved: tuple, grads: tuple) -> list[Tensor | None]:
    """dx and the parameter gradients, ``None`` for absent parameters."""
    params = saved[1:9]
    return [grads[0]] + [None if p is None or gp.numel() == 0 else gp for p, gp in zip(params, grads[1:])]


def _backward(ctx, grad, *unused):
    saved = ctx.saved_tensors
    return (*_input_grads(saved, _backward_op(grad, *saved, *ctx.config)), None, None, None, None, None)


torch.library.register_autograd("cbam::fused_attention", _backward, setup_context=_setup_context)


class FusedAttention(torch.autograd.Function):
    """Eager entry: the operator's implementation and formula without the dispatcher round trip.

    ``torch.compile`` and ``torch.export`` get the registered operator instead; the first call of a
    ``torch.library`` operator in eager mode imports the tracing stack (sympy, dynamo), which costs seconds.
    """

    @staticmethod
    def forward(ctx, *inputs):
        output = _forward_impl(*inputs)
        _setup_context(ctx, inputs, output)
        ctx.mark_non_differentiable(*output[1:])
        ctx.set_materialize_grads(False)  # no zero-filled gradients for the eight small outputs
        return output

    @staticmethod
    def backward(ctx, grad, *unused):
        if grad is None:  # only the non-differentiable small outputs were used
            return (None,) * 14
        saved = ctx.saved_tensors
        return (*_input_grads(saved, _backward_impl(grad, *saved, *ctx.config)), None, None, None, None, None)
