"""Attention modules of the CBAM paper: channel, spatial, CBAM, SE, and their factory."""
from . import functional, fused
from .cbam import ARRANGEMENTS, CBAM, LAYOUTS
from .channel import ChannelAttention
from .factory import ATTENTION_REGISTRY, create_attention, list_attention
from .fused import fast_path, fast_path_enabled, set_fast_path
from .se import SqueezeExcitation
from .spatial import SpatialAttention

__all__ = [
    "ARRANGEMENTS",
    "ATTENTION_REGISTRY",
    "CBAM",
    "LAYOUTS",
    "ChannelAttention",
    "SpatialAttention",
    "SqueezeExcitation",
    "create_attention",
    "fast_path",
    "fast_path_enabled",
    "functional",
    "fused",
    "list_attention",
    "set_fast_path",
]
