"""ImageNet-style image folders (``<root>/<split>/<class>/<image>``) with clear errors.

:class:`ImageFolderDataset` is torchvision's ``ImageFolder`` with the folder scan replaced so that
every bad input names its path: a missing or empty split folder, a class folder without images,
validation classes that the training split lacks. A corrupt image raises
:class:`CorruptImageError` naming the file when it is loaded (inside a DataLoader worker too:
PyTorch re-raises it in the main process with the worker's message); ``skip_corrupt=True``
instead decodes every file once up front (reduced-size JPEG decoding, threads) and drops the
bad ones with a warning and a count.

:class:`EmbeddedDataset` adds each sample's object box for the embedded Cluttered Digits data.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS, default_loader

from .embedded import load_boxes, load_meta

__all__ = ["CorruptImageError", "ImageFolderDataset", "EmbeddedDataset", "find_classes", "load_rgb"]


class CorruptImageError(ValueError):
    """An image file that cannot be decoded; the message names the file."""


_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Read an image file as RGB, the one image decoder of every dataset and figure: ``default_loader``
    (PIL, RGB) with decoding errors turned into CorruptImageError naming the file.

    16-bit greyscale images (PIL modes ``I;16*`` and ``I``) are scaled to 8 bits (v * 255 / 65535),
    where PIL's own conversion would saturate every value above 255 to white; 32-bit float images
    are refused (no range to scale by).
    """
    try:
        with Image.open(path) as img:
            if img.mode in _SIXTEEN_BIT_MODES:
                values = np.asarray(img, dtype=np.float64).clip(0, 65535)
                return Image.fromarray(np.rint(values * (255 / 65535)).astype(np.uint8), "L").convert("RGB")
            if img.mode == "F":
                raise CorruptImageError(f"image file {path}: 32-bit float images are not supported (no value range "
                                        "to scale to 8 bits); save it as 8- or 16-bit")
        return default_loader(os.fspath(path))
    except (OSError, SyntaxError, ValueError) as err:  # PIL's UnidentifiedImageError is an OSError
        if isinstance(err, CorruptImageError):
            raise
        raise CorruptImageError(f"corrupt image file {path}: {err}") from err


def _decode_error(path: str) -> str | None:
    """Decode ``path`` once (JPEGs at reduced size); the error text, or None if it decodes."""
    try:
        with Image.open(path) as img:
            img.draft("RGB", (64, 64))
            img.load()
    except (OSError, SyntaxError, ValueError) as err:
        return f"{err}"
    return None


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def find_classes(split_dir: str | os.PathLike) -> list[str]:
    """Sorted class folder names of one split folder; FileNotFoundError naming the path if the
    folder is missing or holds no class folders."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise FileNotFoundError(f"missing folder {split_dir}: an image folder dataset needs "
                                f"{split_dir.parent}/train/<class>/<image> and {split_dir.parent}/val/<class>/<image>")
    classes = sorted(entry.name for entry in os.scandir(split_dir) if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise FileNotFoundError(f"no class folders in {split_dir}: expected {split_dir}/<class>/<image>")
    return classes


class ImageFolderDataset(ImageFolder):
    """One split of an image folder: ``split_dir/<class>/**/<image>`` -> ``(transform(image), label)``.

    Args:
        split_dir: e.g. ``<root>/train`` or ``<root>/val``.
        transform: applied to the RGB PIL image (None: the PIL image is returned).
        classes: class names defining the label indices (pass the training split's classes for
            the validation split); default: the sorted class folders of ``split_dir``. A class
            folder not in ``classes`` is an error; a class in ``classes`` without a folder is allowed.
        skip_corrupt: decode every image once now and drop undecodable ones with a warning.

    Attributes: ``classes``, ``class_to_idx``, ``num_classes``, ``samples`` [(path, label)],
    ``targets``, ``skipped`` (paths dropped by ``skip_corrupt``).
    """

    def __init__(self, split_dir: str | os.PathLike, transform: Callable | None = None, *,
                 classes: Sequence[str] | None = None, skip_corrupt: bool = False) -> None:
        found = find_classes(split_dir)
        self._given_classes = list(found if classes is None else classes)
        unknown = sorted(set(found) - set(self._given_classes))
        if unknown:
            raise ValueError(f"class folders {unknown} in {split_dir} are not among the training classes")
        super().__init__(os.fspath(split_dir), transform=transform, loader=load_rgb)
        self.skipped: list[str] = []
        if skip_corrupt:
            self._drop_corrupt()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        return self._given_classes, {name: i for i, name in enumerate(self._given_classes)}

    @staticmethod
    def make_dataset(directory: str, class_to_idx: dict[str, int], extensions=None, is_valid_file=None,
                     allow_empty: bool = False) -> list[tuple[str, int]]:
        """Every image below each existing class folder, sorted; an empty class folder is an error."""
        samples = []
        for name, label in class_to_idx.items():
            class_dir = os.path.join(directory, name)
            if not os.path.isdir(class_dir):
                continue
            files = sorted(os.path.join(dirpath, f) for dirpath, _, names in os.walk(class_dir, followlinks=True)
                           for f in names if _is_image(f))
            if not files:
                raise FileNotFoundError(f"class folder {class_dir} has no images (extensions: {', '.join(IMG_EXTENSIONS)})")
            samples.extend((f, label) for f in files)
        return samples

    def _drop_corrupt(self) -> None:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            errors = list(pool.map(_decode_error, [path for path, _ in self.samples]))
        self.skipped = [path for (path, _), err in zip(self.samples, errors) if err is not None]
        if not self.skipped:
            return
        self.samples = [s for s, err in zip(self.samples, errors) if err is None]
        self.imgs = self.samples
        self.targets = [label for _, label in self.samples]
        shown = ", ".join(self.skipped[:5]) + (" ..." if len(self.skipped) > 5 else "")
        warnings.warn(f"skipped {len(self.skipped)} corrupt image file(s) in {self.root}: {shown}", stacklevel=3)
        if not self.samples:
            raise ValueError(f"every image in {self.root} is corrupt")


class EmbeddedDataset(ImageFolderDataset):
    """One split of an embedded Cluttered Digits folder (see :mod:`cbam.data.embedded`), with boxes.

    ``boxes[i]`` / ``sample_box(i)`` is sample ``i``'s object box ``(x0, y0, x1, y1)`` in pixels of
    the stored image (``x1``, ``y1`` exclusive); it holds for the evaluation transform, which does
    not move pixels. ``canvas_size`` is the canvas side.
    """

    def __init__(self, root: str | os.PathLike, split: str, transform: Callable | None = None, *,
                 skip_corrupt: bool = False) -> None:
        root = Path(root)
        meta = load_meta(root)
        if meta is None:
            raise FileNotFoundError(f"{root} has no meta.json: not an embedded dataset (build it with build_embedded)")
        super().__init__(root / split, transform, classes=meta["classes"], skip_corrupt=skip_corrupt)
        self.canvas_size = int(meta["canvas_size"])
        boxes = load_boxes(root, split)
        split_dir = Path(self.root)
        try:
            self.boxes = [boxes[Path(path).relative_to(split_dir).as_posix()] for path, _ in self.samples]
        except KeyError as err:
            raise ValueError(f"{root / 'boxes.json'} has no box for {split}/{err.args[0]}") from err

    def sample_box(self, index: int) -> tuple[int, int, int, int]:
        """Object box ``(x0, y0, x1, y1)`` of sample ``index``."""
        return self.boxes[index]
