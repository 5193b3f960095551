"""Training augmentation for detection, from ``torchvision.transforms.v2`` (boxes move with the image)."""
from __future__ import annotations

from typing import Any

from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2

__all__ = ["AUGMENTATIONS", "DetectionAugment"]

#: ``none``; ``hflip``; ``ssd``: the SSD paper's photometric distortion, zoom-out ("expand"),
#: IoU-constrained crop and flip (as in torchvision's SSD reference recipe).
AUGMENTATIONS = ("none", "hflip", "ssd")


class DetectionAugment:
    """``(image (3, H, W) in [0, 1], target) -> (image, target)`` with boxes, labels and difficult flags kept in step.

    Boxes pushed (almost) out of the image by a crop are removed with their labels
    (``SanitizeBoundingBoxes``); the images keep their new size, the detector resizes them.
    """

    def __init__(self, kind: str = "hflip") -> None:
        if kind not in AUGMENTATIONS:
            raise ValueError(f"augmentation must be one of {AUGMENTATIONS}, got {kind!r}")
        ops: list[Any] = {
            "none": [],
            "hflip": [v2.RandomHorizontalFlip()],
            "ssd": [
                v2.RandomPhotometricDistort(p=0.5),
                v2.RandomZoomOut(fill={tv_tensors.Image: 0.5, "others": 0}, side_range=(1.0, 2.0), p=0.5),
                v2.RandomIoUCrop(),
                v2.RandomHorizontalFlip(),
            ],
        }[kind]
        self.kind = kind
        self.pipeline = v2.Compose([*ops, v2.SanitizeBoundingBoxes(labels_getter=_labels_and_flags)])

    def __call__(self, image: Tensor, target: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        if self.kind == "none":
            return image, target
        boxes = tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=tuple(image.shape[-2:]))
        if self.kind == "ssd" and len(boxes) == 0:  # RandomIoUCrop needs boxes to constrain the crop
            return image, target
        out_image, out = self.pipeline(tv_tensors.Image(image), {**target, "boxes": boxes})
        out["boxes"] = out["boxes"].as_subclass(Tensor)
        out["size"] = tuple(out_image.shape[-2:])
        return out_image.as_subclass(Tensor), out


def _labels_and_flags(sample: tuple[Any, dict[str, Any]]) -> tuple[Tensor, Tensor]:
    target = sample[1]
    return target["labels"], target["difficult"]
