"""CIFAR-10 / CIFAR-100 read from their Python pickle layout, without torchvision's md5 check.

Layout (Krizhevsky's "python version" archives, unpacked)::

    cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch, batches.meta
    cifar-100-python/train, test, meta

Each batch is a pickled dict with ``b"data"`` uint8 (N, 3072) (rows are R, G, B planes of 32 x 32)
and ``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100); the meta file has
``b"label_names"`` / ``b"fine_label_names"``. torchvision's ``CIFAR10`` would do the reading but
insists on the md5 sums of the official files, so user-made copies (and the tests' tiny ones)
would be rejected; this module reads them itself. Unpickling is restricted to numpy arrays and
plain containers, so a file cannot run code.
"""
from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..io.files import existing_dir

__all__ = ["CIFARDataset", "CIFAR_LAYOUTS"]

# num_classes -> (folder name, train files, val files, meta file, label key, label-name key)
CIFAR_LAYOUTS = {
    10: ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta",
         b"labels", b"label_names"),
    100: ("cifar-100-python", ["train"], ["test"], "meta", b"fine_labels", b"fine_label_names"),
}

_ALLOWED_GLOBALS = {
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _NumpyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and builtin containers only; any other global is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core."):  # pickles written by numpy < 2
            module = "numpy._core." + module[len("numpy.core."):]
        return super().find_class(module, name)


def _load_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _NumpyUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"{path} is not a CIFAR pickle file: {err}") from err
    if not isinstance(obj, dict):
        raise ValueError(f"{path} is not a CIFAR pickle file: it holds a {type(obj).__name__}, not a dict")
    return obj


def _resolve_folder(root: Path, num_classes: int) -> Path:
    folder, train, val, meta, *_ = CIFAR_LAYOUTS[num_classes]
    existing_dir(root, f"CIFAR-{num_classes} folder")
    base = root / folder if (root / folder).is_dir() else root
    missing = [name for name in [*train, *val, meta] if not (base / name).is_file()]
    if missing:
        raise FileNotFoundError(f"CIFAR-{num_classes} folder {base} lacks {', '.join(missing)} "
                                f"(expected {folder}/{', '.join([*train, *val, meta])})")
    return base


class CIFARDataset(Dataset):
    """CIFAR-10 or CIFAR-100, one split: ``(transform(PIL RGB 32 x 32), label)``.

    Args:
        root: the folder holding ``cifar-10-batches-py`` / ``cifar-100-python``, or that folder itself.
        split: ``"train"`` (the 50,000 training images) or ``"val"`` (the 10,000 test images).
        num_classes: 10 or 100.
        transform: applied to the PIL image (None: the PIL image is returned).

    Attributes: ``classes``, ``class_to_idx``, ``num_classes``, ``data`` uint8 (N, 32, 32, 3), ``targets``.
    """

    def __init__(self, root: str | os.PathLike, split: str, num_classes: int = 10,
                 transform: Callable | None = None) -> None:
        if num_classes not in CIFAR_LAYOUTS:
            raise ValueError(f"num_classes must be 10 or 100, got {num_classes!r}")
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        _, train, val, meta_name, label_key, names_key = CIFAR_LAYOUTS[num_classes]
        base = _resolve_folder(Path(root), num_classes)
        meta = _load_pickle(base / meta_name)
        if names_key not in meta:
            raise ValueError(f"{base / meta_name} has no {names_key!r} entry")
        self.classes = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[names_key]]
        if len(self.classes) != num_classes:
            raise ValueError(f"{base / meta_name} names {len(self.classes)} classes, expected {num_classes}")
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        arrays, targets = [], []
        for name in train if split == "train" else val:
            data, labels = self._read_batch(base / name, label_key, num_classes)
            arrays.append(data)
            targets.extend(labels)
        self.data = np.concatenate(arrays).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (N, 32, 32, 3)
        self.targets = targets
        self.transform = transform
        self.root = os.fspath(base)

    @staticmethod
    def _read_batch(path: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, list[int]]:
        batch = _load_pickle(path)
        if b"data" not in batch or label_key not in batch:
            raise ValueError(f"{path} lacks the {b'data'!r} or {label_key!r} entry")
        data = np.asarray(batch[b"data"])
        labels = [int(v) for v in batch[label_key]]
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
            raise ValueError(f"{path}: expected {b'data'!r} uint8 (N, 3072) and N labels, got {data.dtype} "
                             f"{data.shape} and {len(labels)} labels")
        if labels and not 0 <= min(labels) <= max(labels) < num_classes:
            raise ValueError(f"{path}: labels must lie in [0, {num_classes}), got {min(labels)}..{max(labels)}")
        return data, labels

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | Image.Image, int]:
        image = Image.fromarray(self.data[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]
