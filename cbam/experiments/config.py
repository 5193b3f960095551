"""Training recipes: small YAML files in ``cbam/experiments/configs/``, overridden by command-line flags.

A recipe is plain data (``yaml.safe_load``, never executed). :func:`load_config` reads a named
classification recipe (``"imagenet"``, ``"cifar"``, ``"embedded"``) or a path, checks every key
against :class:`TrainConfig`, and applies overrides; ``None`` overrides keep the recipe's value, so
unset flags change nothing. :func:`load_detect_config` does the same for the detection recipes
(``configs/detect/detect_*.yaml``, :class:`DetectConfig`). The resolved config is saved as
``config.yaml`` in the run directory.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .._optional import require
from ..data import parse_data
from ..io.files import atomic_write
from ..nn.factory import attention_name

yaml = require("yaml", "train", "training recipes")

__all__ = ["DETECTORS", "DetectConfig", "TrainConfig", "build_config", "check_config", "check_saved_config", "config_text", "list_configs", "list_detect_configs",
           "load_config", "load_detect_config", "parse_yaml", "read_yaml", "save_config", "save_detect_config"]


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
        image_size: side of the model's input: the training crops, and the evaluation input
            (the data kind's standard transform at this size, e.g. resize 256 + centre crop 224
            for ImageNet folders).
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
    return resources.files("cbam.experiments").joinpath("configs")


def list_configs() -> list[str]:
    """Names of the recipes shipped in ``cbam/experiments/configs/``."""
    return sorted(p.name[:-5] for p in _configs_dir().iterdir() if p.name.endswith(".yaml"))


def parse_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load(text)``; malformed YAML raises one ``ValueError`` line naming ``where`` and the position."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"{where} is not valid YAML{at}: {problem}") from None


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
    data = parse_yaml(text, f"config {str(name_or_path)!r}") or {}
    if not isinstance(data, dict):
        raise ValueError(f"config {str(name_or_path)!r} must be a mapping of keys to values")
    return data


_PLAIN_TYPES = {"str": str, "bool": bool}  # annotation (a string, see the __future__ import) -> type


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
    for f in dataclasses.fields(cls):  # text and switches: of their type (numbers are checked with their ranges)
        value = values.get(f.name)
        if f.name in values and f.type in _PLAIN_TYPES and not isinstance(value, _PLAIN_TYPES[f.type]):
            raise ValueError(f"{f.name} must be {'text' if f.type == 'str' else 'true or false'}, got {value!r}")
        if f.type == "str | None" and value is not None and not isinstance(value, str):
            raise ValueError(f"{f.name} must be text or null, got {value!r}")
    for f in dataclasses.fields(cls):  # mapping-valued keys (model_kwargs, ...): a mapping or null
        if str(f.type).startswith("dict[") and values.get(f.name) is not None:
            if not isinstance(values[f.name], dict) or not all(isinstance(k, str) for k in values[f.name]):
                raise ValueError(f"{f.name} must be a mapping of option names to values, e.g. "
                                 f"{f.name}='{{small_input: true}}', got {values[f.name]!r}")
        if str(f.type).startswith("dict[") and f.name in values and values[f.name] is None:
            values[f.name] = {}
    if isinstance(values.get("attention"), str):
        values["attention"] = attention_name(values["attention"])
    return cls(**values)


def _options_of(model: str, kwargs: Any, recipe: str | Path | None) -> Any:
    """The recipe's ``model_kwargs`` that ``model`` (given instead of the recipe's model) takes; a
    warning names the ones dropped, which belong to the recipe's architecture."""
    from ..models import model_options

    options = model_options(model)
    if options is None or not isinstance(kwargs, dict):
        return kwargs
    dropped = sorted(k for k in kwargs if k not in options)
    if dropped:
        warnings.warn(f"recipe {str(recipe)!r} sets model_kwargs {dropped}, which model {model!r} does not take; "
                      "they are dropped (set its options with --set model_kwargs.NAME=VALUE)", stacklevel=3)
    return {k: v for k, v in kwargs.items() if k in options}


def load_config(name_or_path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """The recipe ``name_or_path`` (default: the dataclass defaults) with non-``None`` ``overrides``.

    Raises:
        ValueError: an unknown key (the message lists the valid ones), or a bad value.
    """
    values = read_yaml(name_or_path) if name_or_path is not None else {}
    model = overrides.get("model")
    if model is not None and model != values.get("model") and values.get("model_kwargs") and not any(
            k == "model_kwargs" or k.startswith("model_kwargs.") for k in overrides):
        values["model_kwargs"] = _options_of(model, values["model_kwargs"], name_or_path)
    return check_config(build_config(TrainConfig, values, overrides))


def check_config(cfg: TrainConfig) -> TrainConfig:
    """Check every value of ``cfg`` (and that its model builds) before any work; returns ``cfg``.

    This is the one place a classification config is validated: :func:`load_config` calls it, and
    ``compare`` / ``ablate`` call it for every run they will start, before the first.

    Raises:
        ValueError: the first bad value, named.
    """
    for name in ("lr_per_256", "momentum", "weight_decay", "lr_gamma", "label_smoothing") + (
            ("lr",) if cfg.lr is not None else ()):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a number, got {value!r} (write 1e-4 as 1.0e-4 in YAML)")
        if value < 0 or (value == 0 and name in ("lr", "lr_per_256")):
            raise ValueError(f"{name} must be {'positive' if name in ('lr', 'lr_per_256') else 'non-negative'}, "
                             f"got {value!r}")
    if cfg.label_smoothing >= 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {cfg.label_smoothing!r}")
    for name in ("epochs", "batch_size", "image_size", "lr_step") + (("threads",) if cfg.threads is not None else ()):
        if isinstance(getattr(cfg, name), bool) or not isinstance(getattr(cfg, name), int) or getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be a positive integer, got {getattr(cfg, name)!r}")
    if isinstance(cfg.workers, bool) or not isinstance(cfg.workers, int) or cfg.workers < 0:
        raise ValueError(f"workers must be a non-negative integer, got {cfg.workers!r}")
    if cfg.schedule not in ("step", "cosine"):
        raise ValueError(f"schedule must be 'step' or 'cosine', got {cfg.schedule!r}")
    if cfg.amp not in (None, "bf16", "fp16"):
        raise ValueError(f"amp must be null, 'bf16' or 'fp16', got {cfg.amp!r}")
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or not 0 <= cfg.seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {cfg.seed!r}")
    parse_data(cfg.data)
    _check_model(cfg.model, cfg.attention, cfg.model_kwargs)
    return cfg


def _check_model(model: str, attention: Any, kwargs: dict[str, Any]) -> None:
    """Build the model on the meta device (no memory, no compute) so that a bad option fails here, named."""
    import torch

    from ..models import create_model

    try:
        with torch.device("meta"):
            create_model(model, attention=attention, num_classes=2, **kwargs)
    except (TypeError, AttributeError) as err:
        raise ValueError(f"model {model!r} with model_kwargs {kwargs} does not build: {err}") from None


def config_text(cfg: TrainConfig | DetectConfig) -> str:
    """The fully resolved config as YAML (a classification ``lr`` is the learning rate actually used)."""
    if isinstance(cfg, TrainConfig):
        cfg = dataclasses.replace(cfg, lr=cfg.resolved_lr)
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def check_saved_config(run_dir: str | Path, cfg: TrainConfig | DetectConfig, runtime_keys: tuple[str, ...]) -> None:
    """Refuse to continue or reuse the run in ``run_dir`` when its ``config.yaml`` differs from ``cfg``
    (keys in ``runtime_keys`` aside: they do not change what a run computes). No saved config: nothing to check.

    Raises:
        ValueError: naming the keys that differ.
    """
    saved = Path(run_dir) / "config.yaml"
    if not saved.is_file():
        return
    old = parse_yaml(saved.read_text(), str(saved)) or {}
    new = yaml.safe_load(config_text(cfg))
    differ = sorted(k for k in set(old) | set(new) if k not in runtime_keys and old.get(k) != new.get(k))
    if differ:
        raise ValueError(f"{str(run_dir)!r} holds a run with another config (differs in {differ}); "
                         "choose another output directory")


def save_config(cfg: TrainConfig, path: str | Path) -> Path:
    """Write the fully resolved config as YAML (``lr`` is the learning rate actually used)."""
    text = config_text(cfg)
    return atomic_write(path, lambda tmp: tmp.write_text(text))


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
        backbone_weights: a classification model folder of ours (e.g. a ``cbam train`` run) for the backbone.
        data: ``embedded[:DIR]`` (built if missing), ``voc:VOCDEVKIT_DIR`` or ``coco:ROOT``.
        data_kwargs: format options: embedded ``format`` (``coco``/``voc``) and build options;
            voc ``train_years``, ``train_set``, ``val_years``, ``val_set``, ``test_set``, ``classes``;
            coco ``train_images``, ``train_annotations``, ``val_images``, ``val_annotations``.
        augment: training augmentation (``none``, ``hflip``, ``ssd``).
        image_size: side of the detector's input: SSD / StairNet's (300 in the paper); Faster R-CNN's
            shorter side (``min_size``).
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
    """Names of the detection recipes shipped in ``cbam/experiments/configs/detect/``."""
    folder = _configs_dir().joinpath("detect")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _recipe(name_or_path: str | Path) -> str:
    if str(name_or_path) in list_detect_configs():
        return str(_configs_dir().joinpath("detect", f"{name_or_path}.yaml"))
    if Path(name_or_path).suffix not in (".yaml", ".yml"):
        raise ValueError(f"config must be one of {list_detect_configs()} or a .yaml path, got {str(name_or_path)!r}")
    return str(name_or_path)


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
    if data is not None and overrides.get("data_kwargs") is None and (
            parse_data(data, "detection").kind != parse_data(values.get("data", "embedded"), "detection").kind):
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
    text = config_text(cfg)
    return atomic_write(path, lambda tmp: tmp.write_text(text))
