"""Models for the figures: a model folder (a finished run, a converted or saved model) or an untrained
registry model.

Trained models load through :func:`cbam.io.read_model_folder` (strict, with the mismatching keys and
shapes named); the evaluation transform is the one stored in the folder's ``config.json``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import eval_transform
from ..io.model_folder import build_model, read_model_folder
from ..io.state_dict import load_state_dict_strict
from ..models import create_model, list_models
from ..models.labels import row_label
from ..nn.factory import AttentionSpec

__all__ = ["VizModel", "load_viz_model"]


@dataclass
class VizModel:
    """A model ready for Grad-CAM and attention maps.

    Attributes:
        model: the network, in eval mode on the CPU.
        label: column title, e.g. ``"ResNet18 + CBAM"`` (``"... (untrained)"`` without weights).
        transform: PIL image -> normalised (3, H, W) tensor, the model's evaluation transform.
        trained: whether weights were loaded.
        classes: class names of the outputs (``None`` when unknown).
        config: the model folder's ``config.json`` ({} for untrained models).
    """

    model: nn.Module
    label: str
    transform: Callable
    trained: bool
    classes: list[str] | None = None
    config: dict[str, Any] = field(default_factory=dict)


def load_viz_model(spec: str | Path, attention: AttentionSpec = None) -> VizModel:
    """Load ``spec``: a model folder (or its ``model.safetensors``), or a registry model name.

    Args:
        spec: a model folder, or a name from :func:`cbam.list_models` (aliases ``se_``/``cbam_`` too)
            for an untrained model (initialised with seed 0, ImageNet transform at 224 px, 1000 classes).
        attention: attention of an untrained registry model.

    Raises:
        FileNotFoundError: ``spec`` is neither an existing path nor a model name.
        ValueError: the weights do not fit the architecture (keys and shapes are named).
    """
    path = Path(spec)
    if not path.exists():
        if str(spec) in list_models(include_aliases=True):
            with torch.random.fork_rng():  # the same untrained weights on every call
                torch.manual_seed(0)
                net = create_model(str(spec), attention=attention, num_classes=1000).eval()
            base, att = str(spec), attention
            for prefix in ("se_", "cbam_"):
                if base.startswith(prefix) and base[len(prefix):] in list_models():
                    base, att = base[len(prefix):], prefix[:-1]
            return VizModel(net, f"{row_label(base, att)} (untrained)", eval_transform(None), trained=False)
        raise FileNotFoundError(
            f"model {str(spec)!r} is neither a model folder nor a model name "
            f"({', '.join(list_models())}, or se_/cbam_ + a name)")
    folder = read_model_folder(path)
    config = folder.config
    net = build_model(config)
    load_state_dict_strict(net, folder.state_dict(), repr(str(folder.weights)))
    return VizModel(net.eval(), row_label(config["architecture"], config.get("attention")),
                    eval_transform(config.get("preprocessing")), trained=True, classes=config.get("classes"),
                    config=config)
