"""Our models in timm's registry: ``timm.create_model("cbam_resnet50", num_classes=10, features_only=True)``.

Call :func:`register` once (``import cbam`` calls it itself when timm was imported first). Every name of
:func:`cbam.list_models` (``include_aliases=True``: ``resnet50``, ``se_resnet50``,
``cbam_resnet50``, ...) is registered under the same name, unless timm already has a model of that
name (e.g. timm's own ``resnet50``, ``resnext50_32x4d``): those are registered with the prefix
:data:`CLASH_PREFIX` (``cbamlib_resnet50``) so that timm's models stay untouched.

Models are built with ``timm.models.build_model_with_cfg``, so timm's keyword arguments
(``num_classes``, ``in_chans``, ``drop_rate``, ``features_only``, ``out_indices``) work;
``features_only=True`` wraps the model in timm's ``FeatureListNet`` driven by our ``feature_info``
(every stage by default). Any other keyword goes to :func:`cbam.create_model` (e.g.
``attention_kwargs``, ``small_input``). There are no pretrained weights in timm's registry:
``pretrained=True`` raises; load a folder with :func:`cbam.from_pretrained` instead.
"""
from __future__ import annotations

import sys
import types
from collections.abc import Callable
from functools import cache
from typing import Any

import torch
from torch import nn

from .._optional import require
from ..models import CROP_PCT, create_model, list_models, model_info

__all__ = ["CLASH_PREFIX", "register", "timm_name"]

CLASH_PREFIX = "cbamlib_"
_MODULE_NAME = "cbam.timm_models"  # synthetic module that holds the entry points, as timm's registry expects
_REGISTERED: dict[str, str] = {}  # timm name -> our name


@cache
def _feature_cfg(name: str, small_input: bool) -> dict[str, Any]:
    """``FeatureListNet`` options: every stage; flatten the top-level ``nn.Sequential`` when stages live inside one."""
    with torch.device("meta"):  # no memory, no initialisation cost
        info = create_model(name, small_input=small_input).feature_info
    return {"out_indices": tuple(range(len(info))), "flatten_sequential": any("." in f["module"] for f in info)}


def _default_cfg(name: str) -> dict[str, Any]:
    info = model_info(name)
    return {
        "url": "", "num_classes": 1000, "input_size": info.input_size, "pool_size": (7, 7), "crop_pct": CROP_PCT,
        "interpolation": "bilinear", "mean": info.mean, "std": info.std, "classifier": "head.fc",
        "license": "mit", "origin_url": "https://arxiv.org/abs/1807.06521",
    }


def _entrypoint(name: str, registered_as: str) -> Callable[..., nn.Module]:
    from timm.models import build_model_with_cfg

    def entry(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        if pretrained:
            raise ValueError(
                f"{registered_as}: timm's registry holds no weights for cbam models; build it with pretrained=False "
                "and load a folder with cbam.from_pretrained (or convert official weights with `cbam convert`)"
            )
        feature_cfg = dict(_feature_cfg(name, bool(kwargs.get("small_input", False))))
        return build_model_with_cfg(
            lambda **kw: create_model(name, **kw), registered_as, pretrained=False, feature_cfg=feature_cfg, **kwargs
        )

    entry.__name__ = entry.__qualname__ = registered_as
    entry.__module__ = _MODULE_NAME
    entry.__doc__ = f"cbam's {name} (see cbam.create_model)."
    return entry


def timm_name(name: str) -> str:
    """The name under which our model ``name`` is (or would be) registered in timm."""
    for registered, ours in _REGISTERED.items():
        if ours == name:
            return registered
    timm = require("timm", "timm", "the timm integration")
    return CLASH_PREFIX + name if timm.is_model(name) else name


def register() -> dict[str, str]:
    """Register every cbam model in timm's registry (idempotent). Returns {timm name: our name}."""
    register_model = require("timm.models", "timm", "the timm integration").register_model

    module = sys.modules.get(_MODULE_NAME)
    if module is None:
        module = types.ModuleType(_MODULE_NAME, "timm entry points of cbam's models (see cbam.integrations.timm).")
        module.default_cfgs = {}
        sys.modules[_MODULE_NAME] = module
    for name in list_models(include_aliases=True):
        if name in _REGISTERED.values():
            continue
        registered_as = timm_name(name)
        module.default_cfgs[registered_as] = _default_cfg(name)
        entry = _entrypoint(name, registered_as)
        setattr(module, registered_as, entry)
        register_model(entry)
        _REGISTERED[registered_as] = name
    return dict(_REGISTERED)
