"""Channel attention M_c (CBAM eq. 2, https://arxiv.org/abs/1807.06521)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from . import functional as FA
from . import fused
from ._checks import check_feature_map, check_names, hidden_channels

__all__ = ["ChannelAttention"]


class ChannelAttention(nn.Module):
    """Channel attention: F' = M_c(F) * F with M_c = sigma(sum_p MLP(pool_p(F))).

    One MLP C -> C/r -> C (ReLU between) is shared by every pooled descriptor; its outputs are
    summed, then squashed by a sigmoid (eq. 2).

    Args:
        channels: C.
        reduction: r; the hidden width is round(C / r).
        pools: non-empty subset of ``("avg", "max", "lp", "lse")``. ``("avg",)`` is SE,
            ``("avg", "max")`` is CBAM's (Table 1).
        mlp_bias: biases on both MLP layers. Eq. 2 writes the MLP without them, but the paper
            equates the avg-pool variant with SE, which has them, and so does the official code;
            ``False`` gives the bias-free MLP that timm uses.

    Attributes:
        fast: use the fused operator of :mod:`cbam.nn.fused` where it applies (default ``True``;
            see :func:`cbam.nn.set_fast_path` for the global switch).

    Shape:
        (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(
        self,
        channels: int,
        reduction: float = 16,
        pools: Sequence[str] = ("avg", "max"),
        mlp_bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        hidden = hidden_channels(name, channels, reduction)
        self.channels = channels
        self.pools = check_names(name, "pools", pools, FA.CHANNEL_POOLS)
        self.fc1 = nn.Linear(channels, hidden, bias=mlp_bias, device=device, dtype=dtype)  # W0
        self.fc2 = nn.Linear(hidden, channels, bias=mlp_bias, device=device, dtype=dtype)  # W1
        self.fast = True

    def logits(self, x: Tensor) -> Tensor:
        """Pre-sigmoid attention, (B, C, H, W) -> (B, C, 1, 1)."""
        check_feature_map(type(self).__name__, x, self.channels)
        return FA.channel_attention_logits(
            x, self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias, self.pools
        )

    def attention_map(self, x: Tensor) -> Tensor:
        """M_c(x): (B, C, H, W) -> (B, C, 1, 1) in [0, 1]."""
        return torch.sigmoid(self.logits(x))

    def forward(self, x: Tensor) -> Tensor:
        check_feature_map(type(self).__name__, x, self.channels)
        if fused.supports(x, self, None):
            return fused.fused_attention(x, self, None)
        return x * self.attention_map(x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hidden={self.fc1.out_features}, pools={self.pools}"
