"""The attention modules' entry to the fused operator: which inputs it covers, and the call itself."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from . import switch
from .gates import NORM_AFFINE, NORM_BATCH, NORM_NONE
from .operator import FusedAttention, fused_attention_op

__all__ = ["fused_attention", "supports"]

POOL_CODES = {"avg": 0, "max": 1}
_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def supports(x: Tensor, channel: nn.Module | None, spatial: nn.Module | None) -> bool:
    """Whether :func:`fused_attention` computes ``spatial(channel(x))`` for this input and these modules.

    Covered: a CPU or CUDA float feature map (half, bfloat16, float32, float64; inside or outside
    autocast) in NCHW or channels-last layout; ``channel`` a :class:`~cbam.nn.ChannelAttention` with
    ``avg``/``max`` pools or ``None``; ``spatial`` a :class:`~cbam.nn.SpatialAttention` with the pooled
    descriptor or ``None``. Not covered (the reference path): the ``"off"`` mode, TorchScript, ONNX export,
    other devices (``meta`` included), other layouts, empty maps, ``lp``/``lse`` pools, the conv1x1
    descriptor, a module with ``fast = False``. The caller has validated ``x``.
    """
    if not switch.fast_path_enabled() or torch.jit.is_scripting() or torch.jit.is_tracing():
        return False
    if torch.onnx.is_in_onnx_export():
        return False
    if x.device.type not in ("cpu", "cuda") or x.dtype not in _FLOATS or x.numel() == 0:
        return False  # empty inputs: the reference path's own results or errors
    if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
        return False
    for m in (channel, spatial):
        if m is not None and not getattr(m, "fast", True):
            return False
        if m is not None and any(p.device != x.device or p.dtype not in _FLOATS for p in m.parameters()):
            return False
    if channel is not None and not set(channel.pools) <= set(POOL_CODES):
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
        x: F, (B, C, H, W), NCHW or channels-last, float16/bfloat16/float32/float64.
        channel: ChannelAttention giving M_c, or ``None`` (then F' = F).
        spatial: SpatialAttention giving M_s, or ``None`` (then F'' = F').

    Returns:
        F'' with the shape, dtype and layout of ``x``. BatchNorm running statistics of ``spatial.norm``
        are updated as ``nn.BatchNorm2d`` would.
    """
    pools = [POOL_CODES[p] for p in channel.pools] if channel is not None else []
    w0 = b0 = w1 = b1 = conv_w = conv_b = norm_w = norm_b = None
    if channel is not None:
        w0, b0, w1, b1 = channel.fc1.weight, channel.fc1.bias, channel.fc2.weight, channel.fc2.bias
    order: list[int] = []
    norm_mode, eps, norm = NORM_NONE, 0.0, None
    if spatial is not None:
        order = [POOL_CODES[p] for p in spatial.order]
        conv_w, conv_b = spatial.conv.weight, spatial.conv.bias
        norm = spatial.norm
        if norm is not None:
            eps = float(norm.eps)
            if _batch_stats(norm):
                norm_mode, norm_w, norm_b = NORM_BATCH, norm.weight, norm.bias
            else:  # eval BatchNorm is an affine map: fold it into one scale and shift (autograd-visible)
                norm_mode = NORM_AFFINE
                scale = torch.rsqrt(norm.running_var + norm.eps)
                shift = -norm.running_mean * scale
                if norm.weight is not None:
                    scale, shift = scale * norm.weight, shift * norm.weight + norm.bias
                norm_w, norm_b = scale, shift
    params = [p for p in (w0, b0, w1, b1, conv_w, conv_b, norm_w, norm_b) if p is not None]
    need_grad = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params))
    tracing = torch.compiler.is_compiling() or torch.compiler.is_exporting()
    op = fused_attention_op if tracing else FusedAttention.apply
    out, *_, stats = op(x, w0, b0, w1, b1, conv_w, conv_b, norm_w, norm_b, pools, order, norm_mode, eps, need_grad)
    if norm_mode == NORM_BATCH and norm.training and norm.track_running_stats:
        _update_running_stats(norm, stats, x.shape[0] * x.shape[2] * x.shape[3])
    return out


def _update_running_stats(norm: nn.BatchNorm2d, stats: Tensor, count: int) -> None:
    """What ``F.batch_norm(training=True)`` does to the buffers, from the batch mean and biased variance."""
    with torch.no_grad():
        norm.num_batches_tracked.add_(1)
        momentum = norm.momentum if norm.momentum is not None else 1.0 / float(norm.num_batches_tracked)
        dtype = norm.running_mean.dtype
        mean, var = stats[0].detach().to(dtype), (stats[1].detach() * (count / (count - 1))).to(dtype)
        norm.running_mean.lerp_(mean.expand_as(norm.running_mean), momentum)
        norm.running_var.lerp_(var.expand_as(norm.running_var), momentum)
