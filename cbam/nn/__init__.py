"""Attention modules of the CBAM paper: channel, spatial, CBAM, SE, and their factory."""
from . import functional
from .cbam import ARRANGEMENTS, CBAM, LAYOUTS
from .channel import ChannelAttention
from .factory import ATTENTION_REGISTRY, create_attention, list_attention
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
    "functional",
    "list_attention",
]
