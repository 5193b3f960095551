"""cbam: the Convolutional Block Attention Module (Woo et al., ECCV 2018) and the paper's networks."""
import importlib.util

from . import models, nn
from .models import create_model, list_models, model_info
from .nn import CBAM, ChannelAttention, SpatialAttention, SqueezeExcitation, create_attention

__version__ = "0.1.0"

if importlib.util.find_spec("timm") is not None:  # optional: our models in timm's registry
    from .timm_registry import register_timm_models

    register_timm_models()

__all__ = [
    "CBAM",
    "ChannelAttention",
    "SpatialAttention",
    "SqueezeExcitation",
    "create_attention",
    "create_model",
    "list_models",
    "model_info",
    "models",
    "nn",
    "__version__",
]
