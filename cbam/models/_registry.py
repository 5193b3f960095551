"""Model registry: ``register_model``, ``create_model``, ``list_models`` and per-model metadata."""
from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..nn.factory import AttentionSpec

__all__ = ["CROP_PCT", "IMAGENET_MEAN", "IMAGENET_STD", "ModelInfo", "register_model", "create_model", "list_models",
           "model_info", "model_options"]

#: ImageNet per-channel (RGB) mean and standard deviation, the input normalisation of every registry model.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Evaluation crop as a share of the resized side: resize 256, centre crop 224 (ResNet's protocol).
CROP_PCT = 0.875


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one architecture.

    Attributes:
        name: registry name.
        fn: entry point ``fn(attention=..., num_classes=..., **kwargs) -> nn.Module``.
        input_size: (C, H, W) the paper evaluates at.
        mean, std: input normalisation (ImageNet).
        classifier: attribute name of the classification layer.
        num_params: exact parameter count at 1000 classes for attention ``None`` / ``"se"`` /
            ``"cbam"`` (a test checks them against the real models).
        paper: values printed in the paper: {"table": str, "label": str, "params_m": {att: float},
            "gflops": {att: float}}; empty when the paper has no row for the model.
    """

    name: str
    fn: Callable[..., nn.Module]
    input_size: tuple[int, int, int] = (3, 224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    classifier: str = "fc"
    num_params: dict[str, int] = field(default_factory=dict)
    paper: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelInfo] = {}
#: alias -> (model name, attention spec), e.g. "cbam_resnet50" -> ("resnet50", "cbam")
_ALIASES: dict[str, tuple[str, str]] = {}


def register_model(info: ModelInfo) -> ModelInfo:
    """Add ``info`` to the registry, with ``se_<name>`` and ``cbam_<name>`` aliases."""
    names = [info.name, f"se_{info.name}", f"cbam_{info.name}"]
    taken = [n for n in names if n in _REGISTRY or n in _ALIASES]
    if taken:
        raise ValueError(f"register_model: name(s) {taken} already registered")
    _REGISTRY[info.name] = info
    _ALIASES[f"se_{info.name}"] = (info.name, "se")
    _ALIASES[f"cbam_{info.name}"] = (info.name, "cbam")
    return info


def list_models(pattern: str = "*", include_aliases: bool = False) -> list[str]:
    """Registered model names matching the shell-style ``pattern`` (e.g. ``"resnet*"``), sorted."""
    names = list(_REGISTRY) + (list(_ALIASES) if include_aliases else [])
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def _resolve(name: str, attention: AttentionSpec) -> tuple[ModelInfo, AttentionSpec]:
    if name in _ALIASES:
        base, alias_attention = _ALIASES[name]
        if attention not in (None, alias_attention):
            raise ValueError(f"model {name!r} already implies attention={alias_attention!r}, got {attention!r}")
        return _REGISTRY[base], alias_attention
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid names are {list_models()} (or se_/cbam_ + a name)")
    return _REGISTRY[name], attention


def entry_signature(cls: type, fixed: tuple[str, ...]) -> inspect.Signature:
    """The signature of an entry point that builds ``cls`` with the arguments ``fixed`` set by the registry."""
    params = inspect.signature(cls).parameters.values()
    return inspect.Signature([p for p in params if p.name not in fixed])


def model_options(name: str) -> list[str] | None:
    """The architecture options ``create_model(name, **options)`` takes (besides ``attention`` and
    ``num_classes``), read from the entry point's signature; ``None`` when it takes any ``**kwargs``."""
    params = inspect.signature(model_info(name).fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return sorted(p.name for p in params if p.name not in ("attention", "num_classes"))


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of ``name`` (aliases resolve to their base model)."""
    return _resolve(name, None)[0]


def create_model(name: str, *, attention: AttentionSpec = None, num_classes: int = 1000, **kwargs: Any) -> nn.Module:
    """Build a registered model.

    Args:
        name: a name from :func:`list_models`, or an alias ``se_<name>`` / ``cbam_<name>``.
        attention: ``None``, ``"se"``, ``"cbam"``, any spec :func:`cbam.nn.create_attention`
            accepts (ablation names, classes, partials).
        num_classes: size of the classifier.
        **kwargs: architecture options (e.g. ``stride_in_1x1=True``, ``small_input=True``,
            ``attention_kwargs={"kernel_size": 3}``). Keys whose value is ``None`` are dropped, so
            unset command-line flags keep the model's defaults.
    """
    info, attention = _resolve(name, attention)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    options = model_options(info.name)
    unknown = sorted(set(kwargs) - set(options or kwargs))
    if unknown:
        raise ValueError(f"model {info.name!r} has no option(s) {unknown}; its options are {options}")
    model = info.fn(attention=attention, num_classes=num_classes, **kwargs)
    model.model_name = info.name
    model.model_args = {"attention": attention, "num_classes": num_classes, **kwargs}  # for save_pretrained
    return model
