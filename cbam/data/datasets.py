"""One ``--data`` argument for every supported dataset.

| ``--data`` | dataset |
|---|---|
| ``embedded`` | Cluttered Digits in ``./data/embedded`` (built there at the defaults if missing) |
| ``embedded:<dir>`` | Cluttered Digits in ``<dir>`` (built there at the defaults if missing) |
| ``<dir>`` or ``folder:<dir>`` | an ImageNet-style folder: ``<dir>/train/<class>/*``, ``<dir>/val/<class>/*`` |
| ``cifar10:<dir>``, ``cifar100:<dir>`` | CIFAR pickles: ``<dir>`` holds ``cifar-10-batches-py`` / ``cifar-100-python`` or is it |

Splits are ``"train"`` and ``"val"`` (CIFAR's ``val`` is its test set, as in the literature).
An existing embedded folder is used as it is (whatever parameters built it, see its
``meta.json``); one written by another generator version is rebuilt with its parameters. In
distributed runs, build the data on one process first (``build_dataset`` on rank 0, then a barrier).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from .cifar import CIFARDataset
from .embedded import GENERATOR_VERSION, build_embedded, load_meta
from .folder import EmbeddedDataset, ImageFolderDataset, find_classes
from .transforms import build_transforms

__all__ = ["DEFAULT_EMBEDDED_ROOT", "DataSpec", "parse_data", "prepare_embedded", "build_dataset"]

DEFAULT_EMBEDDED_ROOT = Path("data/embedded")
_SCHEMES = {"embedded": "embedded", "folder": "imagefolder", "cifar10": "cifar10", "cifar100": "cifar100"}


@dataclass(frozen=True)
class DataSpec:
    """A parsed ``--data`` value: ``kind`` (a ``transforms.DATA_KINDS`` entry) and ``root``."""

    kind: str
    root: Path


def parse_data(data: str) -> DataSpec:
    """Parse a ``--data`` value (see the module docstring); ValueError for an unknown scheme."""
    if not isinstance(data, (str, os.PathLike)) or not os.fspath(data).strip():
        raise ValueError(f"--data must be 'embedded', 'embedded:<dir>', '<dir>', 'cifar10:<dir>' or "
                         f"'cifar100:<dir>', got {data!r}")
    data = os.fspath(data).strip()
    if data == "embedded":
        return DataSpec("embedded", DEFAULT_EMBEDDED_ROOT)
    scheme, sep, rest = data.partition(":")
    if sep and scheme in _SCHEMES:
        if not rest:
            raise ValueError(f"--data {data!r}: a folder is required after '{scheme}:'")
        return DataSpec(_SCHEMES[scheme], Path(rest).expanduser())
    if sep and scheme.isidentifier() and len(scheme) > 1 and not Path(data).exists():
        raise ValueError(f"--data {data!r}: unknown scheme {scheme!r}; expected one of "
                         f"{', '.join(f'{s}:<dir>' for s in _SCHEMES)}, 'embedded' or a folder path")
    return DataSpec("imagefolder", Path(data).expanduser())


def prepare_embedded(root: str | os.PathLike) -> Path:
    """Make sure an embedded dataset exists at ``root``: build it at the defaults if it is missing,
    rebuild it (same parameters) if an older generator version wrote it. Returns ``root``."""
    root = Path(root)
    meta = load_meta(root)
    if meta is None:
        return build_embedded(root)
    if meta.get("version") != GENERATOR_VERSION:
        keys = ("image_size", "train_per_class", "val_per_class", "seed", "object_size", "n_clutter", "noise_std")
        return build_embedded(root, **{k: tuple(meta[k]) if k == "object_size" else meta[k] for k in keys if k in meta})
    return root


def build_dataset(data: str, split: str, transform: Callable | None = None, *,
                  image_size: int | None = None, skip_corrupt: bool = False) -> Dataset:
    """The ``split`` (``"train"`` / ``"val"``) of the dataset named by ``data`` (a ``--data`` value).

    Args:
        transform: PIL image -> tensor. None: ``build_transforms(kind, train=split == "train",
            image_size)``, i.e. the standard augmentation for ``"train"``, evaluation transform
            for ``"val"``.
        image_size: output side for the default transform (default: the kind's standard size).
        skip_corrupt: image folders only; decode every file once and skip undecodable ones with a
            warning (default: a corrupt file raises CorruptImageError naming it when loaded).

    Returns a dataset of ``(tensor (3, H, W), label)`` with ``classes``, ``num_classes``, ``kind``;
    the embedded one also has ``boxes`` / ``sample_box(i)`` (object boxes) and ``image_size``.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    spec = parse_data(data)
    stored = None
    if spec.kind == "embedded":
        prepare_embedded(spec.root)
        stored = load_meta(spec.root)["image_size"]
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
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    if not any(root.iterdir()):
        raise FileNotFoundError(f"data folder {root} is empty: expected {root}/train/<class>/<image> "
                                f"and {root}/val/<class>/<image>")
    classes = find_classes(root / "train")  # the training split defines the label indices
    find_classes(root / "val")
    return ImageFolderDataset(root / split, transform, classes=classes, skip_corrupt=skip_corrupt)
