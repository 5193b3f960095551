"""Spatial attention M_s (CBAM eq. 3, https://arxiv.org/abs/1807.06521)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import functional as FA
from . import fused
from ._checks import check_feature_map, check_kernel_size, check_names

__all__ = ["SpatialAttention"]

DESCRIPTORS = ("pool", "conv1x1")


class SpatialAttention(nn.Module):
    """Spatial attention: F' = M_s(F) * F with M_s = sigma(f^{k x k}(descriptor(F))).

    Args:
        channels: C. Required for ``descriptor="conv1x1"``; otherwise optional, and when given the
            input's channel count is checked against it.
        kernel_size: k of the convolution f (odd; padding k//2). The paper uses 7 (Table 2 compares 3).
        descriptor: ``"pool"`` concatenates channel-wise average and max maps (the paper's choice);
            ``"conv1x1"`` is the learnable 1x1 convolution C -> 1 that Table 2 compares against.
        order: order of the pooled maps for ``"pool"``; the paper's [avg; max] by default, the
            official release uses ``("max", "avg")``.
        norm: BatchNorm after the convolution (the official release does this, the paper does not).
        conv_bias: bias on the k x k convolution; default: ``not norm``.
        norm_momentum: BatchNorm momentum (the official release uses 0.01).

    Attributes:
        fast: use the fused operator of :mod:`cbam.nn.fused` where it applies (default ``True``;
            see :func:`cbam.nn.set_fast_path` for the global switch).

    Shape:
        (B, C, H, W) -> (B, C, H, W); :meth:`attention_map` gives (B, 1, H, W).
    """

    def __init__(
        self,
        channels: int | None = None,
        kernel_size: int = 7,
        descriptor: str = "pool",
        order: Sequence[str] = ("avg", "max"),
        norm: bool = False,
        conv_bias: bool | None = None,
        norm_momentum: float = 0.01,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.kernel_size = check_kernel_size(name, kernel_size)
        if descriptor not in DESCRIPTORS:
            raise ValueError(f"{name}: unknown descriptor {descriptor!r}; valid names are {DESCRIPTORS}")
        if channels is not None and (isinstance(channels, bool) or not isinstance(channels, int) or channels < 1):
            raise ValueError(f"{name}: channels must be a positive int or None, got {channels!r}")
        self.channels = channels
        self.descriptor = descriptor
        factory = {"device": device, "dtype": dtype}
        if descriptor == "conv1x1":
            if channels is None:
                raise ValueError(f"{name}: descriptor='conv1x1' needs channels (the 1x1 conv maps C -> 1)")
            self.order: tuple[str, ...] = ()
            self.reduce = nn.Conv2d(channels, 1, 1, **factory)
            in_maps = 1
        else:
            self.order = check_names(name, "order", order, FA.SPATIAL_POOLS)
            self.reduce = None
            in_maps = len(self.order)
        bias = (not norm) if conv_bias is None else conv_bias
        self.conv = nn.Conv2d(in_maps, 1, kernel_size, padding=kernel_size // 2, bias=bias, **factory)
        self.norm = nn.BatchNorm2d(1, momentum=norm_momentum, **factory) if norm else None
        self.fast = True

    def logits(self, x: Tensor) -> Tensor:
        """Pre-sigmoid attention, (B, C, H, W) -> (B, 1, H, W)."""
        check_feature_map(type(self).__name__, x, self.channels)
        desc = self.reduce(x) if self.reduce is not None else FA.spatial_descriptor(x, self.order)
        out = F.conv2d(desc, self.conv.weight, self.conv.bias, padding=self.kernel_size // 2)
        return self.norm(out) if self.norm is not None else out

    def attention_map(self, x: Tensor) -> Tensor:
        """M_s(x): (B, C, H, W) -> (B, 1, H, W) in [0, 1]."""
        return torch.sigmoid(self.logits(x))

    def forward(self, x: Tensor) -> Tensor:
        check_feature_map(type(self).__name__, x, self.channels)
        if fused.supports(x, None, self):
            return fused.fused_attention(x, None, self)
        return x * self.attention_map(x)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, descriptor={self.descriptor!r}, order={self.order}"
