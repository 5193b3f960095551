"""Training recipes: small YAML files in ``cbam/configs/``, overridden by command-line flags.

A recipe is plain data (``yaml.safe_load``, never executed). :func:`load_config` reads a named
recipe (``"imagenet"``, ``"cifar"``, ``"embedded"``) or a path, checks every key against
:class:`TrainConfig`, and applies overrides; ``None`` overrides keep the recipe's value, so unset
flags change nothing. The resolved config is saved as ``config.yaml`` in the run directory.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..engine.checkpoint import atomic_write

__all__ = ["TrainConfig", "build_config", "load_config", "list_configs", "read_yaml", "save_config"]


@dataclass
class TrainConfig:
    """Everything a classification run depends on.

    Attributes:
        model, attention: registry names (``cbam.list_models()``; ``None``/"none", "se", "cbam", ablation names).
        model_kwargs: architecture options for ``create_model`` (e.g. ``small_input``, ``widths``).
        data: ``embedded[:dir]``, an ImageNet-style folder, ``cifar10:<dir>`` or ``cifar100:<dir>``.
        embedded: for ``embedded[:dir]`` data, the options of ``cbam.data.build_embedded`` (e.g.
            ``train_per_class``); the folder is (re)built with them. Empty: the data module's defaults.
        skip_corrupt: image folders: skip undecodable images with a warning instead of failing.
        image_size: side of the training crops (evaluation uses the data kind's standard
            transform at this size, e.g. resize 256 + centre crop 224 for ImageNet folders).
        epochs: total epochs; batch_size: *global* batch (split over DDP processes).
        lr: absolute learning rate; when ``None``, ``lr_per_256 * batch_size / 256`` (the linear
            scaling rule: the paper's 0.1 per 256 images).
        momentum, weight_decay, nesterov: SGD options.
        schedule: ``"step"`` (x ``lr_gamma`` every ``lr_step`` epochs, the paper) or ``"cosine"``.
        label_smoothing: cross-entropy label smoothing (0 in the paper).
        seed: seeds the model's initialisation, data order and augmentation.
        workers: DataLoader worker processes per training process.
        threads: intra-op CPU threads per process (``torch.set_num_threads``); ``None`` keeps torch's default.
        amp: ``None``, ``"bf16"`` or ``"fp16"`` (CUDA); channels_last, compile: see ``cbam.engine.fit``.
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA if available).
        out: run directory.
    """

    model: str = "resnet18"
    attention: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    data: str = "embedded"
    embedded: dict[str, Any] = field(default_factory=dict)
    skip_corrupt: bool = False
    image_size: int = 224
    epochs: int = 90
    batch_size: int = 256
    lr: float | None = None
    lr_per_256: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    schedule: str = "step"
    lr_step: int = 30
    lr_gamma: float = 0.1
    label_smoothing: float = 0.0
    seed: int = 0
    workers: int = 4
    threads: int | None = None
    amp: str | None = None
    channels_last: bool = False
    compile: bool = False
    device: str | None = None
    out: str = "runs/train"

    @property
    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else self.lr_per_256 * self.batch_size / 256

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _configs_dir():
    return resources.files("cbam").joinpath("configs")


def list_configs() -> list[str]:
    """Names of the recipes shipped in ``cbam/configs/``."""
    return sorted(p.name[:-5] for p in _configs_dir().iterdir() if p.name.endswith(".yaml"))


def read_yaml(name_or_path: str | Path) -> dict[str, Any]:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise FileNotFoundError(f"config file {str(path)!r} does not exist")
        text = path.read_text()
    elif str(name_or_path) in list_configs():
        text = _configs_dir().joinpath(f"{name_or_path}.yaml").read_text()
    else:
        raise ValueError(f"config must be one of {list_configs()} or a .yaml path, got {str(name_or_path)!r}")
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config {str(name_or_path)!r} must be a mapping of keys to values")
    return data


def build_config(cls: type, values: dict[str, Any], overrides: dict[str, Any], what: str = "config") -> Any:
    """``cls(**values)`` with the non-``None`` ``overrides`` applied; unknown keys raise ``ValueError``.

    A dotted override ``"data_kwargs.train_images": 960`` sets one entry of a mapping-valued key and
    keeps its other entries.
    """
    values = dict(values)
    for key, value in overrides.items():
        if value is None:
            continue
        head, dot, entry = key.partition(".")
        if not dot:
            values[key] = value
            continue
        current = values.get(head) or {}
        if not isinstance(current, dict) or not entry:
            raise ValueError(f"{what} override {key!r}: {head!r} is not a mapping of options")
        values[head] = {**current, entry: value}
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {what} key(s) {unknown}; valid keys are {sorted(known)}")
    if values.get("attention") in ("none", ""):
        values["attention"] = None
    return cls(**values)


def load_config(name_or_path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """The recipe ``name_or_path`` (default: the dataclass defaults) with non-``None`` ``overrides``.

    Raises:
        ValueError: an unknown key (the message lists the valid ones), or a bad value.
    """
    values = read_yaml(name_or_path) if name_or_path is not None else {}
    cfg = build_config(TrainConfig, values, overrides)
    for name in ("lr_per_256", "momentum", "weight_decay", "lr_gamma", "label_smoothing") + (
            ("lr",) if cfg.lr is not None else ()):
        if isinstance(getattr(cfg, name), bool) or not isinstance(getattr(cfg, name), (int, float)):
            raise ValueError(f"{name} must be a number, got {getattr(cfg, name)!r} (write 1e-4 as 1.0e-4 in YAML)")
    for name in ("epochs", "batch_size", "image_size", "lr_step"):
        if isinstance(getattr(cfg, name), bool) or not isinstance(getattr(cfg, name), int) or getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be a positive integer, got {getattr(cfg, name)!r}")
    if isinstance(cfg.workers, bool) or not isinstance(cfg.workers, int) or cfg.workers < 0:
        raise ValueError(f"workers must be a non-negative integer, got {cfg.workers!r}")
    if cfg.schedule not in ("step", "cosine"):
        raise ValueError(f"schedule must be 'step' or 'cosine', got {cfg.schedule!r}")
    if cfg.amp not in (None, "bf16", "fp16"):
        raise ValueError(f"amp must be null, 'bf16' or 'fp16', got {cfg.amp!r}")
    return cfg


def save_config(cfg: TrainConfig, path: str | Path) -> Path:
    """Write the fully resolved config as YAML (``lr`` is the learning rate actually used)."""
    data = dataclasses.replace(cfg, lr=cfg.resolved_lr).to_dict()
    text = yaml.safe_dump(data, sort_keys=False)
    return atomic_write(path, lambda f: f.write(text.encode()))
