"""One ``--data`` argument for every supported dataset, classification and detection.

| ``--data`` | task | dataset |
|---|---|---|
| ``embedded[:<dir>]`` | classification | Cluttered Digits in ``<dir>`` (default ``./data/embedded``; built there at the defaults if missing) |
| ``<dir>`` or ``folder:<dir>`` | classification | an ImageNet-style folder: ``<dir>/train/<class>/*``, ``<dir>/val/<class>/*`` |
| ``cifar10:<dir>``, ``cifar100:<dir>`` | classification | CIFAR pickles: ``<dir>`` holds ``cifar-10-batches-py`` / ``cifar-100-python`` or is it |
| ``embedded[:<dir>]`` | detection | Cluttered Digits Detection in ``<dir>`` (default ``./data/embedded_detection``; built if missing) |
| ``voc:<dir>`` | detection | a ``VOCdevkit`` folder (VOC2007 / VOC2012) |
| ``coco:<dir>`` | detection | COCO 2017: ``<dir>/{train,val}2017``, ``<dir>/annotations`` |

:func:`parse_data` reads every form; :func:`build_dataset` (classification: splits ``"train"`` and
``"val"``, CIFAR's ``val`` being its test set as in the literature) and
:func:`build_detection_dataset` (splits ``"train"``, ``"val"``, ``"test"``) build the datasets.
An existing embedded folder is used as it is (whatever parameters built it, see its
``meta.json``); one written by another generator version is rebuilt with its parameters. In
distributed runs, build the data on one process first (``build_dataset`` on rank 0, then a barrier).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from ..io.files import existing_dir
from .cifar import CIFARDataset
from .detection import CocoDetectionDataset, DetectionDataset, VOCDetectionDataset
from .detection_transforms import DetectionAugment
from .embedded import GENERATOR_VERSION, build_embedded, load_meta
from .embedded_detection import build_embedded_detection, embedded_detection_dataset
from .folder import EmbeddedDataset, ImageFolderDataset, find_classes
from .transforms import build_transforms

__all__ = ["DEFAULT_EMBEDDED_ROOT", "DEFAULT_EMBEDDED_DETECTION_ROOT", "TASKS", "DataSpec", "check_data", "parse_data",
           "prepare_embedded", "build_dataset", "build_detection_dataset"]

DEFAULT_EMBEDDED_ROOT = Path("data/embedded")
DEFAULT_EMBEDDED_DETECTION_ROOT = Path("data/embedded_detection")
TASKS = ("classification", "detection")
#: task -> {scheme: kind}; "embedded" (alone or with ":<dir>") is valid for both tasks.
_SCHEMES = {
    "classification": {"embedded": "embedded", "folder": "imagefolder", "cifar10": "cifar10", "cifar100": "cifar100"},
    "detection": {"embedded": "embedded", "voc": "voc", "coco": "coco"},
}
_FORMS = {
    "classification": "'embedded', 'embedded:<dir>', '<dir>', 'folder:<dir>', 'cifar10:<dir>' or 'cifar100:<dir>'",
    "detection": "embedded[:<dir>], voc:<VOCdevkit dir> or coco:<root>",
}


@dataclass(frozen=True)
class DataSpec:
    """A parsed ``--data`` value: ``kind`` (``embedded``, ``imagefolder``, ``cifar10``, ``cifar100``,
    ``voc`` or ``coco``) and ``root``."""

    kind: str
    root: Path


def parse_data(data: str | os.PathLike, task: str = "classification") -> DataSpec:
    """Parse a ``--data`` value for ``task`` (see the module docstring); ValueError for an unknown scheme."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if not isinstance(data, (str, os.PathLike)) or not os.fspath(data).strip():
        raise ValueError(f"--data must be {_FORMS[task]}, got {data!r}")
    data = os.fspath(data).strip()
    schemes = _SCHEMES[task]
    if data == "embedded":
        return DataSpec("embedded", DEFAULT_EMBEDDED_ROOT if task == "classification" else DEFAULT_EMBEDDED_DETECTION_ROOT)
    scheme, sep, rest = data.partition(":")
    if sep and scheme in schemes:
        if not rest:
            raise ValueError(f"--data {data!r}: a folder is required after '{scheme}:'")
        return DataSpec(schemes[scheme], Path(rest).expanduser())
    if task == "detection":
        raise ValueError(f"--data {data!r}: expected {_FORMS[task]}")
    if sep and scheme.isidentifier() and len(scheme) > 1 and not Path(data).exists():
        raise ValueError(f"--data {data!r}: unknown scheme {scheme!r}; expected one of "
                         f"{', '.join(f'{s}:<dir>' for s in schemes)}, 'embedded' or a folder path")
    return DataSpec("imagefolder", Path(data).expanduser())


def check_data(data: str | os.PathLike, task: str = "classification") -> DataSpec:
    """Parse ``data`` and check, without reading any image, that it is there; returns the spec.

    Embedded data passes (it is built when missing); an image folder needs ``train/`` and ``val/``
    with class folders, CIFAR and VOC / COCO their root folder.

    Raises:
        FileNotFoundError, ValueError: one line naming the missing or wrong path.
    """
    spec = parse_data(data, task)
    if spec.kind == "embedded":
        return spec
    existing_dir(spec.root, "data folder")
    if spec.kind == "imagefolder":
        find_classes(spec.root / "train")
        find_classes(spec.root / "val")
    return spec


def prepare_embedded(root: str | os.PathLike) -> Path:
    """Make sure an embedded dataset exists at ``root``: build it at the defaults if it is missing,
    rebuild it (same parameters) if an older generator version wrote it. Returns ``root``."""
    root = Path(root)
    meta = load_meta(root)
    if meta is None:
        return build_embedded(root)
    if meta.get("version") != GENERATOR_VERSION:
        keys = ("canvas_size", "train_per_class", "val_per_class", "seed", "object_size", "n_clutter", "noise_std")
        return build_embedded(root, **{k: tuple(meta[k]) if k == "object_size" else meta[k] for k in keys if k in meta})
    return root


def build_dataset(data: str, split: str, transform: Callable | None = None, *,
                  image_size: int | None = None, skip_corrupt: bool = False, build: bool = True) -> Dataset:
    """The ``split`` (``"train"`` / ``"val"``) of the dataset named by ``data`` (a ``--data`` value).

    Args:
        transform: PIL image -> tensor. None: ``build_transforms(kind, train=split == "train",
            image_size)``, i.e. the standard augmentation for ``"train"``, evaluation transform
            for ``"val"``.
        image_size: output side for the default transform (default: the kind's standard size).
        skip_corrupt: image folders only; decode every file once and skip undecodable ones with a
            warning (default: a corrupt file raises CorruptImageError naming it when loaded).
        build: build missing embedded data (at the defaults); ``False`` (evaluation): a missing
            folder is an error, since data built now may differ from the data a model was trained on.

    Returns a dataset of ``(tensor (3, H, W), label)`` with ``classes``, ``num_classes``, ``kind``;
    the embedded one also has ``boxes`` / ``sample_box(i)`` (object boxes) and ``canvas_size``.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    spec = parse_data(data)
    stored = None
    if spec.kind == "embedded":
        if build:
            prepare_embedded(spec.root)
        elif load_meta(existing_dir(spec.root, "embedded data folder")) is None:
            raise FileNotFoundError(f"{spec.root} has no meta.json: not an embedded dataset")
        stored = load_meta(spec.root)["canvas_size"]
    if transform is None:
        transform = build_transforms(spec.kind, split == "train", image_size, stored_size=stored)
    if spec.kind == "embedded":
        dataset = EmbeddedDataset(spec.root, split, transform, skip_corrupt=skip_corrupt)
    elif spec.kind in ("cifar10", "cifar100"):
        dataset = CIFARDataset(spec.root, split, 10 if spec.kind == "cifar10" else 100, transform)
    else:
        dataset = _image_folder(spec.root, split, transform, skip_corrupt)
    dataset.kind = spec.kind
    return dataset


def _image_folder(root: Path, split: str, transform: Callable, skip_corrupt: bool) -> ImageFolderDataset:
    existing_dir(root, "data folder")
    if not any(root.iterdir()):
        raise FileNotFoundError(f"data folder {root} is empty: expected {root}/train/<class>/<image> "
                                f"and {root}/val/<class>/<image>")
    classes = find_classes(root / "train")  # the training split defines the label indices
    find_classes(root / "val")
    return ImageFolderDataset(root / split, transform, classes=classes, skip_corrupt=skip_corrupt)


def build_detection_dataset(data: str, split: str, data_kwargs: dict[str, Any] | None = None, *,
                            train: bool = False, augment: str = "none") -> DetectionDataset:
    """Split ``train`` / ``val`` / ``test`` of detection ``data`` (``embedded[:DIR]``, ``voc:DIR``, ``coco:ROOT``).

    Args:
        data_kwargs: embedded: ``format`` (``coco`` / ``voc``) and the build options of
            :func:`~cbam.data.embedded_detection.build_embedded_detection` (built if missing); voc:
            ``<split>_years``, ``<split>_set``, ``classes``; coco: ``<train|val>_images``, ``<train|val>_annotations``.
        train: a training split drops difficult objects and gets ``augment`` (``none``, ``hflip``,
            ``ssd``); evaluation splits keep them flagged.
    """
    spec = parse_data(data, task="detection")
    kw = dict(data_kwargs or {})
    transforms = DetectionAugment(augment) if train and augment != "none" else None
    keep_difficult = not train
    if spec.kind == "embedded":
        fmt = kw.pop("format", "coco")
        root = build_embedded_detection(spec.root, **kw)
        return embedded_detection_dataset(root, split, fmt, transforms, keep_difficult)
    if spec.kind == "voc":
        years = kw.get(f"{split}_years", ["2007", "2012"] if split == "train" else ["2007"])
        image_set = kw.get(f"{split}_set", {"train": "trainval", "val": "test", "test": "test"}[split])
        return VOCDetectionDataset(spec.root, [str(y) for y in years], image_set, kw.get("classes"), transforms,
                                   keep_difficult)
    part = "train" if split == "train" else "val"
    images = kw.get(f"{part}_images", str(spec.root / f"{part}2017"))
    annotations = kw.get(f"{part}_annotations", str(spec.root / "annotations" / f"instances_{part}2017.json"))
    return CocoDetectionDataset(images, annotations, transforms, keep_difficult)
