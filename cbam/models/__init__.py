"""The paper's networks, registered by name: ResNet, Wide-ResNet, ResNeXt, MobileNet v1."""
from . import mobilenet, resnet  # noqa: F401 - importing them registers their models
from ._registry import (
    CROP_PCT,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ModelInfo,
    create_model,
    list_models,
    model_info,
    model_options,
    register_model,
)
from .mobilenet import MobileNetV1
from .resnet import BasicBlock, Bottleneck, ResNet

__all__ = [
    "CROP_PCT",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BasicBlock",
    "Bottleneck",
    "MobileNetV1",
    "ModelInfo",
    "ResNet",
    "create_model",
    "list_models",
    "model_info",
    "model_options",
    "register_model",
]
