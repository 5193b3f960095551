"""Standard transforms and normalisation statistics for each kind of dataset.

| kind | train | eval |
|---|---|---|
| ``imagefolder`` | RandomResizedCrop(size) + flip | Resize(size / CROP_PCT) + CenterCrop(size) (256 / 224) |
| ``cifar10``, ``cifar100`` | RandomCrop(size, padding=4) + flip | none |
| ``embedded`` | RandomCrop(size, padding=4) (objects lie >= 4 px inside the canvas, so it stays whole; no flip: digits are not symmetric) | none |

followed by ToTensor and Normalize with the kind's mean/std (``DATA_STATS``). ``size`` defaults
to 224 / 32 / 64 (``DEFAULT_IMAGE_SIZE``); a CIFAR or embedded size other than the stored one
resizes first. The ImageFolder recipe is the paper's section 4.1 (after ResNet's).

The evaluation transform is also plain data, :func:`eval_preprocessing`, which a model folder
stores in its ``config.json`` so that whoever loads the model rebuilds it with :func:`eval_transform`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torchvision import transforms as T

from ..models import CROP_PCT, IMAGENET_MEAN, IMAGENET_STD

__all__ = ["DATA_KINDS", "DATA_STATS", "DEFAULT_IMAGE_SIZE", "build_transforms", "eval_preprocessing", "eval_transform"]

DATA_KINDS = ("embedded", "imagefolder", "cifar10", "cifar100")

# (mean, std) per RGB channel.
DATA_STATS = {
    "imagefolder": (IMAGENET_MEAN, IMAGENET_STD),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    # Cluttered Digits train split at the default settings (grayscale, so equal channels); from
    # numpy mean/std over all pixels of build_embedded("data/embedded")/train/*/*.png.
    "embedded": ((0.168, 0.168, 0.168), (0.278, 0.278, 0.278)),
}

DEFAULT_IMAGE_SIZE = {"imagefolder": 224, "cifar10": 32, "cifar100": 32, "embedded": 64}
_STORED_SIZE = {"cifar10": 32, "cifar100": 32}


def _check(kind: str, image_size: int | None) -> int:
    if kind not in DATA_KINDS:
        raise ValueError(f"kind must be one of {DATA_KINDS}, got {kind!r}")
    size = DEFAULT_IMAGE_SIZE[kind] if image_size is None else int(image_size)
    if size < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return size


def eval_preprocessing(kind: str, image_size: int | None = None, stored_size: int | None = None) -> dict[str, Any]:
    """The evaluation transform of ``kind`` as plain data (what a model folder's ``config.json`` stores).

    Args:
        kind: one of ``DATA_KINDS``.
        image_size: side of the model's input (default ``DEFAULT_IMAGE_SIZE[kind]``).
        stored_size: side of the stored images for ``embedded`` (default ``image_size``).

    Returns:
        ``{"data_kind", "image_size", "resize", "crop", "mean", "std"}``: ``resize`` is ``None``, an
        int (shorter side) or ``[h, w]``; ``crop`` is ``None`` or the centre-crop side.
    """
    size = _check(kind, image_size)
    mean, std = DATA_STATS[kind]
    if kind == "imagefolder":
        resize, crop = round(size / CROP_PCT), size
    else:
        stored = _STORED_SIZE.get(kind, size if stored_size is None else int(stored_size))
        resize, crop = (None if stored == size else [size, size]), None
    return {"data_kind": kind, "image_size": size, "resize": resize, "crop": crop, "mean": list(mean), "std": list(std)}


def eval_transform(preprocessing: Mapping[str, Any] | None = None) -> T.Compose:
    """PIL image -> normalised float tensor (3, H, W) from :func:`eval_preprocessing`'s data.

    ``None`` gives the ImageNet evaluation transform at 224 px (the registry models' default).
    """
    p = preprocessing or eval_preprocessing("imagefolder")
    steps: list[Any] = []
    if p.get("resize") is not None:
        steps.append(T.Resize(p["resize"] if isinstance(p["resize"], int) else tuple(p["resize"])))
    if p.get("crop") is not None:
        steps.append(T.CenterCrop(p["crop"]))
    return T.Compose([*steps, T.ToTensor(), T.Normalize(tuple(p["mean"]), tuple(p["std"]))])


def build_transforms(kind: str, train: bool, image_size: int | None = None,
                     stored_size: int | None = None) -> T.Compose:
    """The standard train or eval transform of ``kind`` (see the module docstring).

    Args:
        kind: one of ``DATA_KINDS``.
        train: augmenting training transform, or the deterministic evaluation one.
        image_size: output side (default ``DEFAULT_IMAGE_SIZE[kind]``).
        stored_size: side of the stored images for ``embedded`` (default ``image_size``); when it
            differs from ``image_size`` they are resized first. CIFAR's is 32.
    Returns a transform from a PIL image to a float tensor (3, image_size, image_size).
    """
    if not train:
        return eval_transform(eval_preprocessing(kind, image_size, stored_size))
    size = _check(kind, image_size)
    mean, std = DATA_STATS[kind]
    if kind == "imagefolder":
        steps = [T.RandomResizedCrop(size), T.RandomHorizontalFlip()]
    else:
        stored = _STORED_SIZE.get(kind, size if stored_size is None else int(stored_size))
        steps = [] if stored == size else [T.Resize((size, size))]
        steps.append(T.RandomCrop(size, padding=4))
        if kind != "embedded":
            steps.append(T.RandomHorizontalFlip())
    return T.Compose([*steps, T.ToTensor(), T.Normalize(mean, std)])
