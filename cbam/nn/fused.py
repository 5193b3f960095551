"""Fused, memory-lean CBAM (https://arxiv.org/abs/1807.06521): one operator for F'' = M_s(F') * F', F' = M_c(F) * F.

The modules' reference path (``x * sigmoid(...)`` built from :mod:`cbam.nn.functional`) lets autograd
save F' besides F, and its backward builds a full-size temporary for every product, every ``amax``
and every branch that meets at F. The fused path computes the same function with hand-written
forward and backward:

* it saves only the block input F, the attention maps M_c (B, C) and M_s (B, 1, H, W), the pooled
  descriptors and the argmax indices of both max pools (B, C) and (B, H, W), all small but F;
* on the CPU the full-size passes are C++/OpenMP kernels (``csrc/fused_cpu.cpp``, compiled on first
  use, see :mod:`cbam.nn._cpu_kernel`): forward = H x W pools of F (1 read), channel pools of
  M_c * F without writing it (1 read), F * M_c * M_s (1 read, 1 write); backward = sum_c and sum_hw
  of grad * F together (1 read of each), the descriptor part of dL/dM_c (1 read of F, CBAM only),
  dL/dF (1 read of grad, 1 write). No full-size temporary besides the output and dx;
* where the kernels cannot be built (a warning says so once), with ``CBAM_CPU_KERNEL=0`` and on
  other devices the same passes are PyTorch operations: the forward allocates one full-size tensor
  (the output; M_s is applied in place), the backward one (``dx``, which first holds ``grad * F``),
  channel-axis means are batched matrix-vector products; in inference the max pools skip indices;
* the small parts (shared MLP, k x k conv, BatchNorm, sigmoids) are PyTorch operations with explicit
  backward formulas in both cases.

Differences from the reference path: sums are taken in another order (results agree to ~1e-6
relative in fp32), and at exact ties of a max pool the gradient goes to the first maximal element
(as ``torch.max(dim)``'s does) where ``amax`` splits it evenly among the ties; both are valid
subgradients and agree everywhere else.

Coverage: :class:`~cbam.nn.ChannelAttention` (and SE) with ``avg``/``max`` pools,
:class:`~cbam.nn.SpatialAttention` with the pooled descriptor (any order, kernel size, conv bias,
BatchNorm in train or eval mode), and channel-first :class:`~cbam.nn.CBAM` combining both, for
contiguous (NCHW) float32/float64 inputs outside autocast. Everything else (channels-last inputs,
half precision or autocast, ``lp``/``lse`` pools, the conv1x1 descriptor, spatial-first and parallel
arrangements, ONNX export, TorchScript) takes the reference path. The operator is registered with
``torch.library`` as ``cbam::fused_attention`` (with a fake implementation and autograd formula), so
``torch.compile`` and ``torch.export`` see one operator; ONNX export uses the reference path, which
is made of standard ONNX-exportable operations.

Switch: the fast path is on by default. ``set_fast_path(False)`` or ``with fast_path(False):``
select the reference path globally; ``module.fast = False`` does it for one module.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _cpu_kernel

__all__ = ["fast_path", "fast_path_enabled", "fused_attention", "set_fast_path", "supports"]

_ENABLED = True
_POOL_CODES = {"avg": 0, "max": 1}
_NORM_NONE, _NORM_AFFINE, _NORM_BATCH = 0, 1, 2


def set_fast_path(enabled: bool) -> None:
    """Use the fused operator (``True``, the default) or the reference path (``False``) in every module."""
    global _ENABLED
    _ENABLED = bool(enabled)


def fast_path_enabled() -> bool:
    """Whether the modules use the fused operator where it applies."""
    return _ENABLED


@contextlib.contextmanager
def fast_path(enabled: bool) -> Iterator[None]:
    """Context manager: ``with fast_path(False): model(x)`` runs the reference path."""
    previous = _ENABLED
    set_fast_path(enabled)
    try:
        yield
    finally:
        set_fast_path(previous)


# ---- shared small parts (B, C) and (B, 1, H, W) -------------------------------------------------------


def _empty(x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    return x.new_empty((0,), dtype=dtype)


def _channel_gate(pooled: Tensor, w0: Tensor, b0: Tensor | None, w1: Tensor, b1: Tensor | None) -> Tensor:
    """M_c (B, C) from the pooled descriptors (P, B, C) through the shared MLP."""
    hidden = F.relu(F.linear(pooled, w0, b0))  # (P, B, C/r)
    return torch.sigmoid(F.linear(hidden, w1, b1).sum(dim=0))


def _spatial_gate(
    desc: Tensor, conv_w: Tensor, conv_b: Tensor | None, norm_w: Tensor | None, norm_b: Tensor | None,
    norm_mode: int, eps: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """(M_s, conv output z, BatchNorm batch [mean, var] or empty), each (B, 1, H, W) but the last."""
    k = conv_w.shape[-1]
    z = F.conv2d(desc, conv_w, conv_b, padding=k // 2)  # (B, 1, H, W)
    logits, stats = z, _empty(desc)
    if norm_mode == _NORM_AFFINE:  # eval-mode BatchNorm folded into scale and shift
        logits = z * norm_w + norm_b
    elif norm_mode == _NORM_BATCH:  # train-mode BatchNorm: batch statistics of the single channel
        var, mean = torch.var_mean(z, correction=0)
        stats = torch.stack([mean, var])
        logits = (z - mean) * torch.rsqrt(var + eps)
        if norm_w is not None:
            logits = logits * norm_w + norm_b
    return torch.sigmoid(logits), z, stats


def _forward_impl(
    x: Tensor,
    w0: Tensor | None,
    b0: Tensor | None,
    w1: Tensor | None,
    b1: Tensor | None,
    conv_w: Tensor | None,
    conv_b: Tensor | None,
    norm_w: Tensor | None,
    norm_b: Tensor | None,
    pools: list[int],
    order: list[int],
    norm_mode: int,
    eps: float,
    need_grad: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Returns (out, a, s, pooled, i_hw, desc, i_c, z, stats); see :func:`fused_attention`."""
    forward = _forward_cpu if x.device.type == "cpu" and _cpu_kernel.available() else _forward_torch
    return forward(x, w0, b0, w1, b1, conv_w, conv_b, norm_w, norm_b, pools, order, norm_mode, eps, need_grad)


def _forward_cpu(x, w0, b0, w1, b1, conv_w, conv_b, norm_w, norm_b, pools, order, norm_mode, eps, need_grad):
    """The C++ kernels: H x W pools (1 read), channel pools of M_c * F (1 read), F * M_c * M_s (1 read, 1 write)."""
    ops = torch.ops.cbam_cpu
    b, c, h, w = x.shape
    a, s, pooled, desc, z, stats = (_empty(x) for _ in range(6))  # outputs must not alias each other
    i_hw, i_c = _empty(x, torch.long), _empty(x, torch.long)
    if pools:
        avg, mx, index = ops.hw_pool(x, 0 in pools, 1 in pools, need_grad)  # (B, C) each
        if need_grad and 1 in pools:
            i_hw = index
        pooled = torch.stack([avg if p == 0 else mx for p in pools])  # (P, B, C)
        a = _channel_gate(pooled, w0, b0, w1, b1)
    if order:
        scale = a if pools else x.new_ones(b, c)
        avg, mx, index = ops.channel_pool(x, scale, 0 in order, 1 in order, need_grad)  # (B, H*W) each
        if need_grad and 1 in order:
            i_c = index
        desc = torch.stack([avg if p == 0 else mx for p in order], dim=1).view(b, len(order), h, w)
        s, z, stats = _spatial_gate(desc, conv_w, conv_b, norm_w, norm_b, norm_mode, eps)
    out = ops.gate(x, a if pools else None, s.view(b, h * w) if order else None)
    return out, a, s, pooled, i_hw, desc, i_c, z, stats


def _forward_torch(x, w0, b0, w1, b1, conv_w, conv_b, norm_w, norm_b, pools, order, norm_mode, eps, need_grad):
    """PyTorch operations (any device; the CPU fallback when the C++ kernels are unavailable)."""
    b, c, h, w = x.shape
    n = h * w
    xf = x.view(b, c, n)
    a, s, pooled, desc, z, stats = (_empty(x) for _ in range(6))  # outputs must not alias each other
    i_hw, i_c = _empty(x, torch.long), _empty(x, torch.long)
    if pools:
        descs = []
        for p in pools:  # F^c_avg, F^c_max: (B, C) each
            if p == 0:
                descs.append(xf.mean(dim=2))
            elif need_grad:
                values, i_hw = xf.max(dim=2)
                descs.append(values)
            else:
                descs.append(xf.amax(dim=2))
        pooled = torch.stack(descs)  # (P, B, C)
        a = _channel_gate(pooled, w0, b0, w1, b1)  # M_c: (B, C)
        y = xf * a.unsqueeze(2)  # F' (B, C, N): the output buffer
    else:
        y = xf
    if not order:
        return y.view(b, c, h, w), a, s, pooled, i_hw, desc, i_c, z, stats
    maps = []
    for p in order:  # F^s_avg, F^s_max of F': (B, N) each
        if p == 0:
            weights = a.unsqueeze(1) if pools else x.new_ones(b, 1, c)
            maps.append(torch.bmm(weights, xf).squeeze(1) / c)  # sum_c a_c x_c / C, a contiguous pass
        elif need_grad:
            values, i_c = y.max(dim=1)
            maps.append(values)
        else:
            maps.append(y.amax(dim=1))
    desc = torch.stack(maps, dim=1).view(b, len(order), h, w)
    s, z, stats = _spatial_gate(desc, conv_w, conv_b, norm_w, norm_b, norm_mode, eps)  # M_s: (B, 1, H, W)
    out = y.mul_(s.view(b, 1, n)) if pools else xf * s.view(b, 1, n)
    return out.view(b, c, h, w), a, s, pooled, i_hw, desc, i_c, z, stats


_fused_forward = torch.library.custom_op("cbam::fused_attention", _forward_impl, mutates_args=())


@_fused_forward.register_fake
def _(x, w0, b0, w1, b1, conv_w, conv_b, norm_w, norm_b, pools, order, norm_mode, eps, need_grad):
    b, c, h, w = x.shape
    def new(present: bool, shape: tuple[int, ...], dtype: torch.dtype | None = None) -> Tensor:
        return x.new_empty(shape if present else (0,), dtype=dtype)

    a = new(bool(pools), (b, c))
    pooled = new(bool(pools), (len(pools), b, c))
    i_hw = new(need_grad and 1 in pools, (b, c), torch.long)
    s = new(bool(order), (b, 1, h, w))
    desc = new(bool(order), (b, len(order), h, w))
    i_c = new(need_grad and 1 in order, (b, h * w), torch.long)
    z = new(bool(order), (b, 1, h, w))
    stats = new(bool(order) and norm_mode == _NORM_BATCH, (2,))
    return torch.empty_like(x), a, s, pooled, i_hw, desc, i_c, z, stats


# ---- the operator: backward ------------------------------------------------------------------------


def _spatial_backward(
    ds: Tensor, s: Tensor, z: Tensor, stats: Tensor, desc: Tensor, conv_w: Tensor, conv_b: Tensor | None,
    norm_w: Tensor | None, norm_b: Tensor | None, norm_mode: int, eps: float, grads: list[Tensor],
) -> Tensor:
    """dL/d(desc) (B, P, H*W) from dL/dM_s (B, 1, H*W); writes the conv and BatchNorm gradients into ``grads``."""
    b, p, h, w = desc.shape
    sf = s.view(b, 1, h * w)
    dlogits = (ds * sf * (1 - sf)).view(b, 1, h, w)
    dz = dlogits
    if norm_mode == _NORM_AFFINE:
        grads[6], grads[7] = (dlogits * z).sum().view(1), dlogits.sum().view(1)
        dz = dlogits * norm_w
    elif norm_mode == _NORM_BATCH:
        mean, var = stats[0], stats[1]
        rstd = torch.rsqrt(var + eps)
        zhat = (z - mean) * rstd
        dzhat = dlogits
        if norm_w is not None:
            grads[6], grads[7] = (dlogits * zhat).sum().view(1), dlogits.sum().view(1)
            dzhat = dlogits * norm_w
        dz = rstd * (dzhat - dzhat.mean() - zhat * (dzhat * zhat).mean())
    # The k x k conv's backward as two forward convolutions: aten.convolution_backward takes ~4x longer
    # on these one-output-channel maps. Input: the flipped kernel; weight: the batch as channels.
    pad = conv_w.shape[-1] // 2
    ddesc = F.conv2d(dz, conv_w.flip(2, 3).transpose(0, 1), padding=pad)  # (B, P, H, W)
    grads[4] = F.conv2d(desc.transpose(0, 1), dz.transpose(0, 1), padding=pad).transpose(0, 1).contiguous()
    if conv_b is not None:
        grads[5] = dz.sum().view(1)
    return ddesc.reshape(b, p, h * w)


def _channel_backward(
    da: Tensor, a: Tensor, pooled: Tensor, w0: Tensor, b0: Tensor | None, w1: Tensor, b1: Tensor | None,
    pools: list[int], grads: list[Tensor],
) -> Tensor:
    """dL/d(pooled) (P, B, C) from dL/dM_c (B, C); writes the MLP gradients into ``grads``."""
    dlogits_c = da * a * (1 - a)  # (B, C)
    pre = F.linear(pooled, w0, b0)  # (P, B, C/r)
    hidden = F.relu(pre)
    grads[2] = dlogits_c.t() @ hidden.sum(dim=0)  # dW1: (C, C/r)
    if b1 is not None:
        grads[3] = dlogits_c.sum(dim=0) * len(pools)
    dpre = (dlogits_c @ w1).unsqueeze(0) * (pre > 0)  # (P, B, C/r)
    grads[0] = torch.einsum("pbh,pbc->hc", dpre, pooled)  # dW0: (C/r, C)
    if b0 is not None:
        grads[1] = dpre.sum(dim=(0, 1))
    return dpre @ w0  # (P, B, C)


def _backward_impl(
    grad: Tensor,
    x: Tensor,
    w0: Tensor | None,
    b0: Tensor | None,
    w1: Tensor | None,
    b1: Tensor | None,
    conv_w: Tensor | None,
    conv_b: Tensor | None,
    norm_w: Tensor | None,
    norm_b: Tensor | None,
    a: Tensor,
    s: Tensor,
    pooled: Tensor,
    i_hw: Tensor,
    desc: Tensor,
    i_c: Tensor,
    z: Tensor,
    stats: Tensor,
    pools: list[int],
    order: list[int],
    norm_mode: int,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients (dx, dw0, db0, dw1, db1, dconv_w, dconv_b, dnorm_w, dnorm_b); absent ones are empty."""
    backward = _backward_cpu if x.device.type == "cpu" and _cpu_kernel.available() else _backward_torch
    return backward(grad, x, w0, b0, w1, b1, conv_w, conv_b, norm_w, norm_b, a, s, pooled, i_hw, desc, i_c, z,
                    stats, pools, order, norm_mode, eps)


def _backward_cpu(grad, x, w0, b0, w1, b1, conv_w, conv_b, norm_w, norm_b, a, s, pooled, i_hw, desc, i_c, z, stats,
                  pools, order, norm_mode, eps):
    """The C++ kernels: sum_c and sum_hw of grad * F (1 read of each), the descriptor part of dM_c (1 read
    of F, CBAM only) and dx (1 read of grad, 1 write)."""
    ops = torch.ops.cbam_cpu
    b, c, h, w = x.shape
    n = h * w
    g = grad.contiguous()
    grads = [_empty(x) for _ in range(8)]
    spatial: tuple[Tensor | None, ...] = (None, None, None, None)
    if order:
        sf = s.view(b, n)
        ds, da = ops.backward_reduce(g, x, a if pools else x.new_ones(b, c), sf if pools else None)
        ddesc = _spatial_backward(ds.view(b, 1, n), s, z, stats, desc, conv_w, conv_b, norm_w, norm_b, norm_mode, eps,
                                  grads)
        d_avg = (ddesc[:, order.index(0)] / c).contiguous() if 0 in order else x.new_zeros(b, n)  # per channel
        d_max = ddesc[:, order.index(1)].contiguous() if 1 in order else x.new_zeros(b, n)  # to the argmax channel
        index = i_c if 1 in order else x.new_zeros((b, n), dtype=torch.long)
        if pools:  # dL/dM_c = sum_hw grad * M_s * F + sum_hw dL/d(desc) * dd(desc)/dM_c
            da = da + ops.descriptor_dot(x, d_avg, d_max, index)
        spatial = (sf, d_avg, d_max, index)
    else:
        _, da = ops.backward_reduce(g, x, None, x.new_ones(b, n))
    if pools:
        dpooled = _channel_backward(da, a, pooled, w0, b0, w1, b1, pools, grads)
        avg_c = dpooled[pools.index(0)] / n if 0 in pools else x.new_zeros(b, c)
        max_c, index_c = (dpooled[pools.index(1)], i_hw) if 1 in pools else (None, None)
        scale = a
    else:
        scale, avg_c, max_c, index_c = x.new_ones(b, c), x.new_zeros(b, c), None, None
    dx = ops.backward_input(g, scale, avg_c, max_c, index_c, *spatial)
    return (dx, *grads)


def _backward_torch(grad, x, w0, b0, w1, b1, conv_w, conv_b, norm_w, norm_b, a, s, pooled, i_hw, desc, i_c, z, stats,
                    pools, order, norm_mode, eps):
    """PyTorch operations (any device; the CPU fallback when the C++ kernels are unavailable)."""
    b, c, h, w = x.shape
    n = h * w
    xf = x.view(b, c, n)
    g = grad.contiguous().view(b, c, n)
    grads = [_empty(x) for _ in range(8)]
    t = g * xf  # grad * F: the only full-size allocation; becomes dx below
    da = None
    if order:
        sf = s.view(b, 1, n)
        weights = a.unsqueeze(1) if pools else x.new_ones(b, 1, c)
        ds = torch.bmm(weights, t)  # dL/dM_s = sum_c grad * F' : (B, 1, N)
        ddesc = _spatial_backward(ds, s, z, stats, desc, conv_w, conv_b, norm_w, norm_b, norm_mode, eps, grads)
        d_avg = ddesc[:, order.index(0)] / c if 0 in order else None  # (B, N), per channel
        d_max = ddesc[:, order.index(1)] if 1 in order else None  # (B, N), to the argmax channel
        if pools:  # dL/dM_c = sum_n dL/dF' * F
            da = torch.bmm(t, sf.transpose(1, 2)).squeeze(2)  # (B, C)
            if d_avg is not None:
                da += torch.bmm(xf, d_avg.unsqueeze(2)).squeeze(2)
            if d_max is not None:
                da.scatter_add_(1, i_c, d_max * xf.gather(1, i_c.unsqueeze(1)).squeeze(1))
        # dL/dF' = grad * M_s + d_avg + scatter(d_max), written over t
        if d_avg is not None:
            torch.addcmul(d_avg.unsqueeze(1), g, sf, out=t)
        else:
            torch.mul(g, sf, out=t)
        if d_max is not None:
            t.scatter_add_(1, i_c.unsqueeze(1), d_max.unsqueeze(1))
        dy = t
    else:
        da = t.sum(dim=2)  # (B, C)
        dy = g
    if pools:
        dpooled = _channel_backward(da, a, pooled, w0, b0, w1, b1, pools, grads)
        # dL/dF = M_c * dL/dF' + d_avg_hw / N + scatter(d_max_hw), written over t
        a3 = a.unsqueeze(2)
        if 0 in pools:
            torch.addcmul((dpooled[pools.index(0)] / n).unsqueeze(2), dy, a3, out=t)
        else:
            torch.mul(dy, a3, out=t)
        if 1 in pools:
            t.scatter_add_(2, i_hw.unsqueeze(2), dpooled[pools.index(1)].unsqueeze(2))
    return (t.view(b, c, h, w), *grads)


_fused_backward = torch.library.custom_op("cbam::fused_attention_backward", _backward_impl, mutates_args=())


@_fused_backward.register_fake
def _(grad, x, w0, b0, w1, b1, conv_w, conv_b, norm_w, norm_b, a, s, pooled, i_hw, desc, i_c, z, stats,
      pools, order, norm_mode, eps):
    def like(t: Tensor | None, present: bool) -> Tensor:
        return torch.empty_like(t) if present and t is not None else x.new_empty((0,))

    affine = bool(order) and norm_mode != _NORM_NONE and norm_w is not None
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
    return (*_input_grads(saved, _fused_backward(grad, *saved, *ctx.config)), None, None, None, None, None)


torch.library.register_autograd("cbam::fused_attention", _backward, setup_context=_setup_context)


class _FusedAttention(torch.autograd.Function):
    """Eager entry: the operator's implementation and formula without the dispatcher round trip.

    ``torch.compile`` and ``torch.export`` get the registered operator instead (see
    :func:`fused_attention`); the first call of a ``torch.library`` operator in eager mode imports
    the tracing stack (sympy, dynamo), which costs seconds.
    """

    @staticmethod
    def forward(ctx, *inputs):
        output = _forward_impl(*inputs)
        _setup_context(ctx, inputs, output)
        ctx.mark_non_differentiable(*output[1:])
        return output

    @staticmethod
    def backward(ctx, grad, *unused):
        saved = ctx.saved_tensors
        return (*_input_grads(saved, _backward_impl(grad, *saved, *ctx.config)), None, None, None, None, None)


# ---- module entry point ----------------------------------------------------------------------------


def supports(x: Tensor, channel: nn.Module | None, spatial: nn.Module | None) -> bool:
    """Whether :func:`fused_attention` computes ``spatial(channel(x))`` for this input and these modules.

    ``channel`` is a :class:`~cbam.nn.ChannelAttention` (or ``None``), ``spatial`` a
    :class:`~cbam.nn.SpatialAttention` (or ``None``); the caller has validated ``x``.
    """
    if not _ENABLED or torch.jit.is_scripting() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return False
    if x.dtype not in (torch.float32, torch.float64) or not x.is_contiguous() or x.numel() == 0:
        return False  # empty inputs: the reference path's own results or errors
    if torch.is_autocast_enabled(x.device.type):
        return False
    for m in (channel, spatial):
        if m is not None and (not getattr(m, "fast", True) or any(p.dtype != x.dtype for p in m.parameters())):
            return False
    if channel is not None and not set(channel.pools) <= set(_POOL_CODES):
        return False
    if spatial is not None:
        if spatial.descriptor != "pool":
            return False
        norm = spatial.norm
        if norm is not None and _batch_stats(norm):
            b, _, h, w = x.shape
            if b * h * w == 1 or not isinstance(norm, nn.BatchNorm2d):
                return False  # let BatchNorm raise its own error on a single value
    return channel is not None or spatial is not None


def _batch_stats(norm: nn.Module) -> bool:
    return norm.training or norm.running_mean is None


def fused_attention(x: Tensor, channel: nn.Module | None, spatial: nn.Module | None) -> Tensor:
    """``spatial(channel(x))`` through the fused operator; see :func:`supports` for what it covers.

    Args:
        x: F, contiguous (B, C, H, W), float32 or float64.
        channel: ChannelAttention giving M_c, or ``None`` (then F' = F).
        spatial: SpatialAttention giving M_s, or ``None`` (then F'' = F').

    Returns:
        F'' (B, C, H, W). BatchNorm running statistics of ``spatial.norm`` are updated as
        ``nn.BatchNorm2d`` would.
    """
    pools = [_POOL_CODES[p] for p in channel.pools] if channel is not None else []
    w0 = b0 = w1 = b1 = conv_w = conv_b = norm_w = norm_b = None
    if channel is not None:
        w0, b0, w1, b1 = channel.fc1.weight, channel.fc1.bias, channel.fc2.weight, channel.fc2.bias
    order: list[int] = []
    norm_mode, eps, norm = _NORM_NONE, 0.0, None
    if spatial is not None:
        order = [_POOL_CODES[p] for p in spatial.order]
        conv_w, conv_b = spatial.conv.weight, spatial.conv.bias
        norm = spatial.norm
        if norm is not None:
            eps = float(norm.eps)
            if _batch_stats(norm):
                norm_mode, norm_w, norm_b = _NORM_BATCH, norm.weight, norm.bias
            else:  # eval BatchNorm is an affine map: fold it into one scale and shift (autograd-visible)
                norm_mode = _NORM_AFFINE
                scale = torch.rsqrt(norm.running_var + norm.eps)
                shift = -norm.running_mean * scale
                if norm.weight is not None:
                    scale, shift = scale * norm.weight, shift * norm.weight + norm.bias
                norm_w, norm_b = scale, shift
    params = [p for p in (w0, b0, w1, b1, conv_w, conv_b, norm_w, norm_b) if p is not None]
    need_grad = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params))
    tracing = torch.compiler.is_compiling() or torch.compiler.is_exporting()
    op = _fused_forward if tracing else _FusedAttention.apply
    out, *_, stats = op(x, w0, b0, w1, b1, conv_w, conv_b, norm_w, norm_b, pools, order, norm_mode, eps, need_grad)
    if norm_mode == _NORM_BATCH and norm.training and norm.track_running_stats:
        _update_running_stats(norm, stats, x.shape[0] * x.shape[2] * x.shape[3])
    return out


def _update_running_stats(norm: nn.BatchNorm2d, stats: Tensor, count: int) -> None:
    """What ``F.batch_norm(training=True)`` does to the buffers, from the batch mean and biased variance."""
    with torch.no_grad():
        norm.num_batches_tracked.add_(1)
        momentum = norm.momentum if norm.momentum is not None else 1.0 / float(norm.num_batches_tracked)
        mean, var = stats[0].detach(), stats[1].detach() * (count / (count - 1))
        norm.running_mean.lerp_(mean.expand_as(norm.running_mean), momentum)
        norm.running_var.lerp_(var.expand_as(norm.running_var), momentum)
