"""Squeeze-and-Excitation (Hu et al., https://arxiv.org/abs/1709.01507): the baseline of every CBAM table."""
from __future__ import annotations

import torch

from .channel import ChannelAttention

__all__ = ["SqueezeExcitation"]


class SqueezeExcitation(ChannelAttention):
    """SE: F' = sigma(W1 relu(W0 AvgPool(F) + b0) + b1) * F.

    This is :class:`ChannelAttention` with ``pools=("avg",)`` and biased MLP layers, which the CBAM
    paper (sec. 4.1, Table 1) states is the same module.

    Args:
        channels: C.
        reduction: r (16 in every table of the paper).

    Shape:
        (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(
        self,
        channels: int,
        reduction: float = 16,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(channels, reduction, pools=("avg",), mlp_bias=True, device=device, dtype=dtype)
