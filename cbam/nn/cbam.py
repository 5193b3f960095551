"""CBAM: Convolutional Block Attention Module (Woo et al., ECCV 2018, https://arxiv.org/abs/1807.06521)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from . import fused
from ._checks import check_feature_map
from .channel import ChannelAttention
from .spatial import SpatialAttention

__all__ = ["CBAM", "ARRANGEMENTS", "LAYOUTS"]

ARRANGEMENTS = ("channel_first", "spatial_first", "parallel")
LAYOUTS = ("paper", "official")


class CBAM(nn.Module):
    """Channel attention then spatial attention (eq. 1): F' = M_c(F) * F, F'' = M_s(F') * F'.

    Args:
        channels: C.
        reduction: r of the channel MLP (16).
        kernel_size: k of the spatial convolution (7).
        arrangement: ``"channel_first"`` (eq. 1, the paper's choice), ``"spatial_first"``
            (F' = M_s(F) * F, F'' = M_c(F') * F') or ``"parallel"``: both logits are computed from
            F, broadcast to C x H x W, added and passed through one sigmoid (sec. 4.1, Table 3).
        layout: ``"paper"`` follows eqs. 1-3 (biased MLP, biased k x k conv, [avg; max] order).
            ``"official"`` is the layout of the authors' released code and weights: biased MLP,
            bias-free conv followed by BatchNorm (momentum 0.01, weight initialised to 0 by the
            models) and [max; avg] order. Explicit keyword options override the preset.
        pools, mlp_bias: passed to :class:`ChannelAttention`.
        descriptor, spatial_order, spatial_norm, spatial_conv_bias: passed to
            :class:`SpatialAttention` as ``descriptor``, ``order``, ``norm``, ``conv_bias``.

    Attributes:
        fast: ``True`` (default): channel-first CBAM runs as one fused operator of
            :mod:`cbam.nn.fused` where it applies, spatial-first runs each half on its own fast
            path; inputs and variants it does not cover take the reference path. ``False``: the
            reference path for the whole module. :func:`cbam.nn.set_fast_path` is the global switch.

    Shape:
        (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(
        self,
        channels: int,
        reduction: float = 16,
        kernel_size: int = 7,
        arrangement: str = "channel_first",
        layout: str = "paper",
        pools: Sequence[str] = ("avg", "max"),
        mlp_bias: bool = True,
        descriptor: str = "pool",
        spatial_order: Sequence[str] | None = None,
        spatial_norm: bool | None = None,
        spatial_conv_bias: bool | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if arrangement not in ARRANGEMENTS:
            raise ValueError(f"CBAM: unknown arrangement {arrangement!r}; valid names are {ARRANGEMENTS}")
        if layout not in LAYOUTS:
            raise ValueError(f"CBAM: unknown layout {layout!r}; valid names are {LAYOUTS}")
        official = layout == "official"
        if spatial_order is None:
            spatial_order = ("max", "avg") if official else ("avg", "max")
        if spatial_norm is None:
            spatial_norm = official
        self.channels = channels
        self.arrangement = arrangement
        self.layout = layout
        self.channel = ChannelAttention(channels, reduction, pools, mlp_bias, device=device, dtype=dtype)
        self.spatial = SpatialAttention(
            channels,
            kernel_size,
            descriptor,
            spatial_order,
            norm=spatial_norm,
            conv_bias=spatial_conv_bias,
            device=device,
            dtype=dtype,
        )
        self.fast = True

    def forward(self, x: Tensor) -> Tensor:
        check_feature_map(type(self).__name__, x, self.channels)
        if self.arrangement == "parallel":
            # sigma(M_c logits (B, C, 1, 1) + M_s logits (B, 1, H, W)) broadcast to (B, C, H, W)
            return x * torch.sigmoid(self.channel.logits(x) + self.spatial.logits(x))
        first, second = (self.channel, self.spatial)
        if self.arrangement == "spatial_first":
            first, second = second, first
        if not self.fast:  # reference path for the whole module
            refined = x * first.attention_map(x)
            return refined * second.attention_map(refined)
        if self.arrangement == "channel_first" and fused.supports(x, self.channel, self.spatial):
            return fused.fused_attention(x, self.channel, self.spatial)
        return second(first(x))  # each half takes its own fast path where it applies

    def extra_repr(self) -> str:
        return f"channels={self.channels}, arrangement={self.arrangement!r}, layout={self.layout!r}"
