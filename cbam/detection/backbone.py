"""Detection backbones as thin adapters over our classification models (no copied blocks).

:class:`StagesBackbone` runs a registry model's ``forward_stages`` and returns the stages named in
its ``feature_info``; :func:`load_backbone_weights` fills it from one of our classification model
folders (or a weight file); :func:`freeze_batchnorm` and :func:`freeze_stages` are the usual fine-tuning options.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor, nn
from torchvision.ops.misc import FrozenBatchNorm2d

from ..io.model_folder import read_model_folder
from ..io.state_dict import read_checkpoint
from ..models import create_model
from ..nn.factory import AttentionSpec

__all__ = ["StagesBackbone", "build_stages_backbone", "load_backbone_weights", "freeze_batchnorm", "freeze_stages"]


class StagesBackbone(nn.Module):
    """Selected stage outputs of a registry model: (B, 3, H, W) -> OrderedDict {"0": (B, C_0, H/r_0, W/r_0), ...}.

    Args:
        model: a model with ``feature_info`` and ``forward_stages`` (every model of :mod:`cbam.models`).
            Its classifier head is removed.
        stages: indices into ``feature_info`` of the maps to return, shallow to deep.

    Attributes:
        out_channels_list: channels of the returned maps; reductions: their strides.
    """

    def __init__(self, model: nn.Module, stages: Sequence[int]) -> None:
        super().__init__()
        info = model.feature_info
        bad = [s for s in stages if not 0 <= s < len(info)]
        if bad or not stages or list(stages) != sorted(set(stages)):
            raise ValueError(f"stages must be increasing indices in [0, {len(info) - 1}], got {list(stages)}")
        model.head = nn.Identity()  # the classifier is not part of a detection backbone
        self.body = model
        self.stages = tuple(stages)
        self.out_channels_list = [info[s]["num_chs"] for s in stages]
        self.reductions = [info[s]["reduction"] for s in stages]

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        feats = self.body.forward_stages(x)
        return OrderedDict((str(i), feats[s]) for i, s in enumerate(self.stages))


def build_stages_backbone(name: str, attention: AttentionSpec, stages: Sequence[int], weights: str | Path | None = None,
                          **model_kwargs: Any) -> tuple[StagesBackbone, dict[str, Any]]:
    """Create registry model ``name`` (+ ``attention``), load ``weights`` if given, wrap it.

    Returns:
        the backbone and the weight-loading report of :func:`load_backbone_weights` (empty without weights).
    """
    model = create_model(name, attention=attention, **model_kwargs)
    report = load_backbone_weights(model, weights) if weights else {}
    return StagesBackbone(model, stages), report


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    if path.is_dir():
        return read_model_folder(path).state_dict()
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights {path} do not exist")
    return read_checkpoint(path).state_dict


def load_backbone_weights(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load a classification model folder (a finished ``cbam train`` run) or a weight file (``.safetensors``,
    or a checkpoint read without unpickling code; a DDP ``module.`` prefix is stripped) into ``model``,
    classifier excluded.

    Returns:
        ``{"loaded": [...], "missing": [...], "unexpected": [...]}``: backbone keys filled, backbone
        keys the file lacks (e.g. attention modules when it is a plain model's), and file keys unused.

    Raises:
        ValueError: shapes differ (another architecture) or no key matches.
    """
    path = Path(path)
    state = {k.removeprefix("module."): v for k, v in _read_state_dict(path).items()}
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    shape_mismatch = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                      for k, v in own.items() if k in state and state[k].shape != v.shape]
    if shape_mismatch:
        raise ValueError(
            f"backbone checkpoint {path} does not match {getattr(model, 'model_name', type(model).__name__)}: "
            f"{len(shape_mismatch)} shape mismatch(es), e.g. {shape_mismatch[:3]}"
        )
    loaded = [k for k in own if k in state]
    if not loaded:
        raise ValueError(
            f"backbone checkpoint {path} does not match {getattr(model, 'model_name', type(model).__name__)}: "
            f"none of its {len(state)} keys (e.g. {list(state)[:3]}) is a backbone key (e.g. {list(own)[:3]})"
        )
    model.load_state_dict({k: state[k] for k in loaded}, strict=False)
    return {
        "loaded": loaded,
        "missing": [k for k in own if k not in state],
        "unexpected": [k for k in state if k not in own and not k.startswith("head.")],
    }


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` in ``module`` by ``torchvision.ops.FrozenBatchNorm2d`` with its statistics."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.weight.copy_(child.weight.detach())
            frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            freeze_batchnorm(child)
    return module


def freeze_stages(backbone: StagesBackbone, trainable_stages: int) -> None:
    """Train only the last ``trainable_stages`` stages of ``feature_info`` (plus the stem if it equals
    ``len(feature_info) + 1``); 0 freezes the whole backbone. As torchvision's ``trainable_layers``.
    """
    info = backbone.body.feature_info
    if not 0 <= trainable_stages <= len(info) + 1:
        raise ValueError(f"trainable_stages must be in [0, {len(info) + 1}], got {trainable_stages}")
    train_prefixes = [f["module"] + "." for f in info[len(info) - min(trainable_stages, len(info)):]]
    for name, p in backbone.body.named_parameters():
        stage_param = any(name.startswith(f["module"] + ".") for f in info)
        trainable = any(name.startswith(pre) for pre in train_prefixes) or (
            not stage_param and trainable_stages == len(info) + 1
        )
        p.requires_grad_(trainable)
