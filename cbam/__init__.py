"""cbam: the Convolutional Block Attention Module (Woo et al., ECCV 2018) and the paper's networks."""
import importlib.util

from . import models, nn
from .attach import attach
from .hub import from_pretrained, save_pretrained
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
    "attach",
    "create_attention",
    "create_model",
    "from_pretrained",
    "list_models",
    "model_info",
    "models",
    "nn",
    "save_pretrained",
    "__version__",
]
