"""Models for the figures: a training run, its checkpoint or safetensors file, or an untrained registry model.

Trained weights load through the training engine (:func:`cbam.engine.load_weights`: safetensors or
``torch.load(weights_only=True)``, strict, with the mismatching keys and shapes named); the model
and its evaluation transform are rebuilt from the config stored with the weights.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import build_transforms
from ..engine import find_last_checkpoint, load_checkpoint, load_weights, read_safetensors_config
from ..engine.checkpoint import WEIGHTS_NAME
from ..experiments.classification import build_model
from ..experiments.compare import row_label
from ..models import create_model, list_models

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
        config: the training config stored with the weights ({} for untrained models).
    """

    model: nn.Module
    label: str
    transform: Callable
    trained: bool
    classes: list[str] | None = None
    config: dict[str, Any] = field(default_factory=dict)


def _weights_file(path: Path) -> Path:
    if path.is_dir():
        final = path / WEIGHTS_NAME
        ckpt = find_last_checkpoint(path)
        if final.is_file():
            return final
        if ckpt is not None:
            return ckpt
        raise FileNotFoundError(f"run directory {str(path)!r} holds neither {WEIGHTS_NAME} nor a checkpoint")
    return path


def load_viz_model(spec: str | Path, model: str | None = None, attention: str | None = None) -> VizModel:
    """Load ``spec``: a run directory, a ``.safetensors`` / checkpoint file, or a registry model name.

    Args:
        spec: run directory (its ``model.safetensors``, else its last checkpoint), weights file, or a
            name from :func:`cbam.list_models` (aliases ``se_``/``cbam_`` too) for an untrained model
            (initialised with seed 0, ImageNet transform at 224 px, 1000 classes).
        model, attention: architecture for weights stored without a config; replaces the stored
            architecture and its options.

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
            return VizModel(net, f"{row_label(base, att)} (untrained)",
                            build_transforms("imagefolder", train=False, image_size=224), trained=False)
        raise FileNotFoundError(
            f"model {str(spec)!r} is neither a run directory, a .safetensors / checkpoint file, nor a model "
            f"name ({', '.join(list_models())}, or se_/cbam_ + a name)")
    weights = _weights_file(path)
    if weights.suffix == ".safetensors":
        config, state = read_safetensors_config(weights), None
    else:
        ckpt = load_checkpoint(weights)
        config, state = dict(ckpt.get("config") or {}), ckpt["model"]
    if model is not None:  # another architecture: the stored one's options do not apply
        config = {**config, "model": model, "attention": attention, "model_kwargs": {}}
    if "model" not in config:
        raise ValueError(f"{str(weights)!r} stores no training config; give the architecture (--model, --attention)")
    net = build_model(config, int(config.get("num_classes") or 1000))
    load_weights(net, state if state is not None else weights)
    kind = "embedded" if str(config.get("data", "")).startswith("embedded") else "imagefolder"
    transform = build_transforms(config.get("transforms", kind), train=False, image_size=config.get("image_size"))
    return VizModel(net.eval(), row_label(config["model"], config.get("attention")), transform, trained=True,
                    classes=config.get("classes"), config=config)
