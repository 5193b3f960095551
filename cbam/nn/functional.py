"""Functional core of CBAM (Woo et al., ECCV 2018, https://arxiv.org/abs/1807.06521).

Eq. 1:  F'  = M_c(F) * F,   F'' = M_s(F') * F'
Eq. 2:  M_c(F) = sigma(W1 relu(W0 F^c_avg) + W1 relu(W0 F^c_max))     W0: (C/r, C), W1: (C, C/r)
Eq. 3:  M_s(F) = sigma(f^{k x k}([F^s_avg; F^s_max]))

All pooling uses ``mean`` / ``amax`` reductions over whole axes, so any H x W works (1 x 1 included)
and the graph exports without shape-dependent kernel sizes.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "CHANNEL_POOLS",
    "SPATIAL_POOLS",
    "channel_pool",
    "channel_attention_logits",
    "channel_attention_map",
    "spatial_descriptor",
    "spatial_attention_map",
    "cbam",
]

#: Global (spatial) pooling operators for the channel attention descriptor.
CHANNEL_POOLS = ("avg", "max", "lp", "lse")
#: Channel-axis pooling operators for the spatial attention descriptor.
SPATIAL_POOLS = ("avg", "max")


def channel_pool(x: Tensor, pool: str) -> Tensor:
    """Pool (B, C, H, W) over H and W into (B, C).

    ``avg`` and ``max`` are the paper's F^c_avg and F^c_max. ``lp`` and ``lse`` follow the official
    release, which offers them beyond the paper: ``lp`` is the global L2 power pool sqrt(sum x^2)
    (``F.lp_pool2d`` with p=2 over the whole map) and ``lse`` is log(sum exp(x)).
    """
    if pool == "avg":
        return x.mean(dim=(2, 3))
    if pool == "max":
        return x.amax(dim=(2, 3))
    if pool == "lp":
        return x.square().sum(dim=(2, 3)).sqrt()
    if pool == "lse":
        return torch.logsumexp(x.flatten(2), dim=2)
    raise ValueError(f"channel_pool: unknown pool {pool!r}; valid names are {CHANNEL_POOLS}")


def channel_attention_logits(
    x: Tensor,
    w0: Tensor,
    b0: Tensor | None,
    w1: Tensor,
    b1: Tensor | None,
    pools: Sequence[str] = ("avg", "max"),
) -> Tensor:
    """Pre-sigmoid channel attention sum_p W1 relu(W0 pool_p(x) + b0) + b1, shape (B, C, 1, 1)."""
    b, c = x.shape[:2]
    desc = torch.stack([channel_pool(x, p) for p in pools], dim=0)  # (P, B, C)
    hidden = F.relu(F.linear(desc, w0, b0))  # (P, B, C/r): one shared MLP for every descriptor
    out = F.linear(hidden, w1, b1).sum(dim=0)  # (B, C)
    return out.view(b, c, 1, 1)


def channel_attention_map(
    x: Tensor,
    w0: Tensor,
    b0: Tensor | None,
    w1: Tensor,
    b1: Tensor | None,
    pools: Sequence[str] = ("avg", "max"),
) -> Tensor:
    """Channel attention M_c(x) of eq. 2.

    Args:
        x: feature map F, (B, C, H, W).
        w0, b0: first MLP layer, (C/r, C) and (C/r,) or None.
        w1, b1: second MLP layer, (C, C/r) and (C,) or None.
        pools: descriptors fed to the shared MLP; ``("avg",)`` is exactly SE.

    Returns:
        (B, C, 1, 1) tensor with values in [0, 1].
    """
    return torch.sigmoid(channel_attention_logits(x, w0, b0, w1, b1, pools))


def spatial_descriptor(x: Tensor, order: Sequence[str] = ("avg", "max")) -> Tensor:
    """Channel-pooled descriptor [F^s_avg; F^s_max] of eq. 3: (B, C, H, W) -> (B, len(order), H, W)."""
    maps = []
    for pool in order:
        if pool == "avg":
            maps.append(x.mean(dim=1, keepdim=True))
        elif pool == "max":
            maps.append(x.amax(dim=1, keepdim=True))
        else:
            raise ValueError(f"spatial_descriptor: unknown pool {pool!r}; valid names are {SPATIAL_POOLS}")
    return torch.cat(maps, dim=1)


def spatial_attention_map(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    order: Sequence[str] = ("avg", "max"),
) -> Tensor:
    """Spatial attention M_s(x) of eq. 3.

    Args:
        x: feature map, (B, C, H, W).
        weight: the k x k convolution f, (1, 2, k, k), applied with padding k//2.
        bias: (1,) or None.
        order: order of the channel-pooled maps; the paper's is ``("avg", "max")``, the official
            release's ``("max", "avg")``.

    Returns:
        (B, 1, H, W) tensor with values in [0, 1].
    """
    order = tuple(order)
    expected = (1, len(order))
    if weight.dim() != 4 or tuple(weight.shape[:2]) != expected or weight.shape[2] != weight.shape[3] \
            or weight.shape[-1] % 2 == 0:
        raise ValueError(
            f"spatial_attention_map: weight must have shape (1, {len(order)}, k, k) with odd k (padding k//2 keeps "
            f"H x W), got {tuple(weight.shape)}"
        )
    k = weight.shape[-1]
    return torch.sigmoid(F.conv2d(spatial_descriptor(x, order), weight, bias, padding=k // 2))


def cbam(
    x: Tensor,
    w0: Tensor,
    b0: Tensor | None,
    w1: Tensor,
    b1: Tensor | None,
    conv_weight: Tensor,
    conv_bias: Tensor | None = None,
) -> Tensor:
    """The paper's sequential, channel-first CBAM (eq. 1): returns F'' with the shape of ``x``."""
    refined = x * channel_attention_map(x, w0, b0, w1, b1)  # F' = M_c(F) * F
    return refined * spatial_attention_map(refined, conv_weight, conv_bias)  # F'' = M_s(F') * F'
