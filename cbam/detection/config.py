"""Detection recipes: ``cbam/configs/detect/detect_*.yaml`` (plain YAML, never executed), overridden by flags.

Read with the same reader as the classification recipes (:mod:`cbam.experiments.config`); the keys
are those of :class:`DetectConfig`. The resolved config is saved as ``config.yaml`` in the run directory.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..engine.checkpoint import atomic_write
from ..experiments.config import read_yaml, build_config

__all__ = ["DETECTORS", "DetectConfig", "list_detect_configs", "load_detect_config", "save_detect_config"]

DETECTORS = ("faster_rcnn", "ssd", "stairnet")
_METRICS = ("voc07_map", "map", "map_50", "map_75")


@dataclass
class DetectConfig:
    """Everything a detection run depends on.

    Attributes:
        detector: ``faster_rcnn`` (Table 6), ``ssd`` or ``stairnet`` (Table 7).
        backbone: ``resnet50`` / ``resnet101`` / any registry ResNet for Faster R-CNN; ``vgg16`` or
            ``mobilenet_v1`` for SSD and StairNet.
        attention: ``None`` / ``"se"`` / ``"cbam"``: in the backbone's blocks (Faster R-CNN) or right
            before every classifier (SSD, StairNet).
        model_kwargs: detector options (``frozen_bn``, ``trainable_stages``, ``anchor_sizes``,
            ``max_size``, ``rpn_pre_nms_top_n_train``, ... for Faster R-CNN; ``channels``,
            ``kernel_size``, ``head_kernel``, ``score_thresh``, ... for SSD / StairNet).
        backbone_weights: a classification checkpoint / safetensors of ours for the backbone.
        data: ``embedded[:DIR]`` (built if missing), ``voc:VOCDEVKIT_DIR`` or ``coco:ROOT``.
        data_kwargs: format options: embedded ``format`` (``coco``/``voc``) and build options;
            voc ``train_years``, ``train_set``, ``val_years``, ``val_set``, ``test_set``, ``classes``;
            coco ``train_images``, ``train_annotations``, ``val_images``, ``val_annotations``.
        augment: training augmentation (``none``, ``hflip``, ``ssd``).
        image_size: SSD / StairNet input side (300 in the paper); Faster R-CNN's ``min_size``.
        epochs, batch_size (global), lr, momentum, weight_decay: SGD (paper VOC: momentum 0.9, wd 5e-4).
        schedule: ``multistep`` (x ``lr_gamma`` at each epoch in ``lr_milestones``) or ``cosine``.
        metric: the validation metric whose best value the checkpoint records.
        seed, workers, amp, device, out: as for classification.
    """

    detector: str = "ssd"
    backbone: str = "vgg16"
    attention: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    backbone_weights: str | None = None
    data: str = "embedded"
    data_kwargs: dict[str, Any] = field(default_factory=dict)
    augment: str = "ssd"
    image_size: int = 300
    epochs: int = 250
    batch_size: int = 32
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "multistep"
    lr_milestones: list[int] = field(default_factory=lambda: [160, 200])
    lr_gamma: float = 0.1
    metric: str = "voc07_map"
    seed: int = 0
    workers: int = 2
    amp: str | None = None
    device: str | None = None
    out: str = "runs/detect"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def list_detect_configs() -> list[str]:
    """Names of the detection recipes shipped in ``cbam/configs/detect/``."""
    folder = resources.files("cbam").joinpath("configs", "detect")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _recipe(name_or_path: str | Path) -> str:
    if str(name_or_path) in list_detect_configs():
        return str(resources.files("cbam").joinpath("configs", "detect", f"{name_or_path}.yaml"))
    if Path(name_or_path).suffix not in (".yaml", ".yml"):
        raise ValueError(f"config must be one of {list_detect_configs()} or a .yaml path, got {str(name_or_path)!r}")
    return str(name_or_path)


def _kind(data: str) -> str:
    return str(data).partition(":")[0]


def load_detect_config(name_or_path: str | Path | None = None, **overrides: Any) -> DetectConfig:
    """The recipe ``name_or_path`` (``detect_embedded``, ``detect_voc``, ``detect_coco`` or a .yaml path;
    default: the dataclass defaults) with the non-``None`` ``overrides`` applied. A ``data`` override
    of another kind than the recipe's (``voc:`` for an ``embedded`` recipe, ...) drops the recipe's
    ``data_kwargs``, which belong to its own kind, unless ``data_kwargs`` is overridden too.

    Raises:
        ValueError: an unknown key (the valid ones are listed) or a bad value.
    """
    values = read_yaml(_recipe(name_or_path)) if name_or_path is not None else {}
    data = overrides.get("data")
    if data is not None and overrides.get("data_kwargs") is None and _kind(data) != _kind(values.get("data", "embedded")):
        values.pop("data_kwargs", None)  # the recipe's data options belong to its own kind of data
    cfg = build_config(DetectConfig, values, overrides, what="detection config")
    if cfg.detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}, got {cfg.detector!r}")
    if cfg.metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {cfg.metric!r}")
    if cfg.schedule not in ("multistep", "cosine"):
        raise ValueError(f"schedule must be 'multistep' or 'cosine', got {cfg.schedule!r}")
    for name in ("lr", "momentum", "weight_decay", "lr_gamma"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{name} must be a non-negative number, got {value!r} (write 5e-4 as 5.0e-4 in YAML)")
    for name in ("epochs", "batch_size", "image_size"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(cfg.workers, bool) or not isinstance(cfg.workers, int) or cfg.workers < 0:
        raise ValueError(f"workers must be a non-negative integer, got {cfg.workers!r}")
    if cfg.amp not in (None, "bf16", "fp16"):
        raise ValueError(f"amp must be null, 'bf16' or 'fp16', got {cfg.amp!r}")
    return cfg


def save_detect_config(cfg: DetectConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML."""
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    return atomic_write(path, lambda f: f.write(text.encode()))
