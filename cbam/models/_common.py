"""Pieces every backbone shares: the attention factory hook, the classifier head and official init."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from torch import Tensor, nn

from ..nn import SpatialAttention
from ..nn.factory import AttentionSpec, get_attention

__all__ = ["AttnLayer", "attention_layer", "ClassifierHead", "init_official"]

AttnLayer = Callable[[int], "nn.Module | None"]


def _none(channels: int) -> None:
    return None


def attention_layer(attention: AttentionSpec, attention_kwargs: dict[str, Any] | None = None) -> AttnLayer:
    """``channels -> module or None`` from a :func:`cbam.nn.get_attention` spec (validated once, here)."""
    cls = get_attention(attention)
    return _none if cls is None else partial(cls, **(attention_kwargs or {}))


class ClassifierHead(nn.Module):
    """Global average pool, optional dropout, linear: (B, C, H, W) -> (B, num_classes)."""

    def __init__(self, in_features: int, num_classes: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.in_features = in_features
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = x.mean(dim=(2, 3))  # (B, C)
        return x if pre_logits else self.fc(self.drop(x))


def init_official(model: nn.Module) -> None:
    """Initialise as the official CBAM code (``MODELS/model_resnet.py``) does.

    Convolutions: Kaiming normal, fan-out, gain sqrt(2); except the shortcut projections
    (``downsample.0``), which the official key-based rule misses and so keep PyTorch's default.
    BatchNorm: weight 1, bias 0, except BatchNorm inside spatial attention, whose weight is 0
    (so every spatial gate starts at sigmoid(0) = 0.5). Classifier: Kaiming normal (fan-in).
    Attention MLPs and all biases: PyTorch's defaults.
    """
    spatial_norms = {id(m.norm) for m in model.modules() if isinstance(m, SpatialAttention) and m.norm is not None}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and not name.endswith("downsample.0"):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 0.0 if id(m) in spatial_norms else 1.0)
            nn.init.zeros_(m.bias)
    classifier = getattr(model, "head", None)
    if isinstance(classifier, ClassifierHead):
        nn.init.kaiming_normal_(classifier.fc.weight)
