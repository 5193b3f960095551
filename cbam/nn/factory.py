"""``get_attention`` / ``create_attention``: any attention module of the paper by name, class or partial."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from torch import nn

from .cbam import CBAM
from .channel import ChannelAttention
from .se import SqueezeExcitation
from .spatial import SpatialAttention

__all__ = ["ATTENTION_REGISTRY", "AttentionSpec", "attention_name", "create_attention", "get_attention", "list_attention"]

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

AttentionSpec = str | type | Callable[..., nn.Module] | None


def list_attention() -> list[str]:
    """Names accepted by :func:`create_attention` (besides ``"none"``)."""
    return sorted(ATTENTION_REGISTRY)


def attention_name(spec: AttentionSpec) -> str | None:
    """The registry key of a name spec (lower case, ``-`` -> ``_``); ``None`` for ``None``, ``""``, ``"none"``.

    Classes and callables are returned unchanged.
    """
    if not isinstance(spec, str):
        return spec
    key = spec.lower().replace("-", "_")
    return None if key in ("", "none") else key


def get_attention(spec: AttentionSpec) -> Callable[..., nn.Module] | None:
    """The constructor ``spec`` names (``channels`` first), or ``None`` for no attention.

    Args:
        spec: ``None``, ``""`` or ``"none"`` (returns ``None``); a registered name (see
            :func:`list_attention`); or a class / callable / ``functools.partial`` taking ``channels`` first.

    Raises:
        ValueError: an unknown name (the message lists the valid ones) or a non-callable spec.
    """
    key = attention_name(spec)
    if key is None:
        return None
    if isinstance(key, str):
        if key not in ATTENTION_REGISTRY:
            raise ValueError(f"unknown attention {spec!r}; valid names are {['none', *list_attention()]}")
        return ATTENTION_REGISTRY[key]
    if not callable(key):
        raise ValueError(f"attention must be None, a name, a class or a callable, got {type(key).__name__}")
    return key


def create_attention(spec: AttentionSpec, channels: int, **kwargs: Any) -> nn.Module | None:
    """Build an attention module for a ``channels``-channel feature map.

    Args:
        spec: anything :func:`get_attention` accepts; no attention gives ``None``.
        channels: C of the feature map the module refines.
        **kwargs: options of the module, e.g. ``reduction=8``, ``kernel_size=3``,
            ``arrangement="parallel"``, ``device=``, ``dtype=``. They override a name's presets.

    Returns:
        A module mapping (B, C, H, W) to (B, C, H, W), or ``None``.
    """
    cls = get_attention(spec)
    return None if cls is None else cls(channels, **kwargs)
