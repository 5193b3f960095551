"""``create_attention``: build any attention module of the paper by name, class or partial."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Union

from torch import nn

from .cbam import CBAM
from .channel import ChannelAttention
from .se import SqueezeExcitation
from .spatial import SpatialAttention

__all__ = ["ATTENTION_REGISTRY", "AttentionSpec", "create_attention", "list_attention"]

#: Name -> constructor taking ``channels`` first. Every ablation variant of Tables 1-3 has a name.
ATTENTION_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "se": SqueezeExcitation,
    "cbam": CBAM,
    "cbam_official": partial(CBAM, layout="official"),
    # Table 1: channel attention alone, by pooling.
    "channel_avg": partial(ChannelAttention, pools=("avg",)),
    "channel_max": partial(ChannelAttention, pools=("max",)),
    "channel": partial(ChannelAttention, pools=("avg", "max")),
    "channel_lp": partial(ChannelAttention, pools=("avg", "max", "lp")),
    "channel_lse": partial(ChannelAttention, pools=("avg", "max", "lse")),
    # Table 2: spatial descriptor and kernel, after the channel module.
    "cbam_pool_k3": partial(CBAM, kernel_size=3),
    "cbam_pool_k7": CBAM,
    "cbam_conv1x1_k3": partial(CBAM, descriptor="conv1x1", kernel_size=3),
    "cbam_conv1x1_k7": partial(CBAM, descriptor="conv1x1", kernel_size=7),
    # Table 3: arrangement.
    "cbam_channel_first": CBAM,
    "cbam_spatial_first": partial(CBAM, arrangement="spatial_first"),
    "cbam_parallel": partial(CBAM, arrangement="parallel"),
    # Spatial attention alone.
    "spatial": SpatialAttention,
}

AttentionSpec = Union[str, type, Callable[..., nn.Module], None]


def list_attention() -> list[str]:
    """Names accepted by :func:`create_attention` (besides ``"none"``)."""
    return sorted(ATTENTION_REGISTRY)


def create_attention(spec: AttentionSpec, channels: int, **kwargs: Any) -> nn.Module | None:
    """Build an attention module for a ``channels``-channel feature map.

    Args:
        spec: ``None``, ``""`` or ``"none"`` (no module: returns ``None``); a registered name
            (see :func:`list_attention`); or a class / callable / ``functools.partial`` taking
            ``channels`` first.
        channels: C of the feature map the module refines.
        **kwargs: options of the module, e.g. ``reduction=8``, ``kernel_size=3``,
            ``arrangement="parallel"``, ``device=``, ``dtype=``. They override a name's presets.

    Returns:
        A module mapping (B, C, H, W) to (B, C, H, W), or ``None``.
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        key = spec.lower().replace("-", "_")
        if key in ("", "none"):
            return None
        if key not in ATTENTION_REGISTRY:
            raise ValueError(f"unknown attention {spec!r}; valid names are {['none', *list_attention()]}")
        spec = ATTENTION_REGISTRY[key]
    if not callable(spec):
        raise ValueError(f"attention must be None, a name, a class or a callable, got {type(spec).__name__}")
    return spec(channels, **kwargs)
