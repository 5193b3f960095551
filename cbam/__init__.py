"""cbam: the Convolutional Block Attention Module (Woo et al., ECCV 2018) and the paper's networks.

``import cbam`` imports the modules, the model zoo and the model folder only (torch and
safetensors); training, data, detection, figures and integrations are imported when used.
"""
import sys

from . import models, nn
from .io.model_folder import from_pretrained, save_pretrained
from .models import create_model, list_models, model_info
from .nn import CBAM, ChannelAttention, SpatialAttention, SqueezeExcitation, create_attention

__version__ = "0.1.0"

if sys.modules.get("timm") is not None:  # timm already imported: our models join its registry (else see cbam.integrations.timm)
    from .integrations.timm import register as _register_timm

    _register_timm()


def __getattr__(name: str):
    if name == "attach":  # imports torchvision.models, so only when asked for
        from .integrations.attach import attach

        return attach
    raise AttributeError(f"module 'cbam' has no attribute {name!r}")


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
