"""Detection datasets in COCO format (image folder + instances JSON) and VOC format (VOCdevkit).

Both return what torchvision's detectors take: ``image`` a float tensor (3, H, W) in [0, 1] and
``target`` a dict with ``boxes`` (N, 4) float ``[x1, y1, x2, y2]`` in pixels (continuous
coordinates), ``labels`` (N,) int64 in ``1..K`` (0 is background), ``difficult`` (N,) bool and
``image_id`` (int, the position in the dataset).

Box conventions:
- COCO ``bbox`` is ``[x, y, w, h]`` -> ``[x, y, x + w, y + h]``.
- VOC ``<bndbox>`` holds 1-based inclusive pixel indices -> ``[xmin - 1, ymin - 1, xmax, ymax]``, so a
  box's continuous width ``xmax - xmin + 1`` equals the VOC devkit's inclusive width.

Bad annotations never crash: boxes are clipped to the image, boxes left with zero area are dropped,
and both are counted in :attr:`DetectionDataset.stats` (and reported once with ``warnings``).
Images without objects are kept (their ``boxes`` is a (0, 4) tensor). An unknown class name or
category id raises a ``ValueError`` naming the file and the valid names.
"""
from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms.functional import pil_to_tensor

from ..io.files import read_json
from .folder import load_rgb

__all__ = [
    "VOC_CLASSES",
    "ImageRecord",
    "DetectionDataset",
    "CocoDetectionDataset",
    "VOCDetectionDataset",
    "detection_collate",
]

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)

Transform = Callable[[Tensor, dict[str, Any]], tuple[Tensor, dict[str, Any]]]


@dataclass
class ImageRecord:
    """One annotated image: path, size and its objects (boxes (N, 4) xyxy, labels 1..K, difficult)."""

    path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray


class DetectionDataset(Dataset):
    """Images with boxes, built from :class:`ImageRecord` s; the two format loaders subclass it.

    Args:
        records: the images and their objects (boxes in pixels, not yet sanitised).
        classes: foreground class names; label ``i + 1`` is ``classes[i]``.
        transforms: optional ``(image, target) -> (image, target)`` (e.g. :class:`cbam.data.DetectionAugment`).
        keep_difficult: keep objects flagged difficult (evaluation); ``False`` drops them (VOC training).

    Attributes:
        stats: counts of ``images``, ``objects``, ``clipped`` and ``dropped`` boxes (zero area after
            clipping), ``difficult`` objects and ``empty_images``.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        classes: Sequence[str],
        transforms: Transform | None = None,
        keep_difficult: bool = True,
    ) -> None:
        self.classes = tuple(classes)
        self.transforms = transforms
        self.stats = {"images": len(records), "objects": 0, "clipped": 0, "dropped": 0, "difficult": 0, "empty_images": 0}
        self.records = [self._sanitise(r, keep_difficult) for r in records]
        if self.stats["clipped"] or self.stats["dropped"]:
            warnings.warn(
                f"{type(self).__name__}: clipped {self.stats['clipped']} box(es) to their image and dropped "
                f"{self.stats['dropped']} with zero area", stacklevel=3,
            )

    def _sanitise(self, r: ImageRecord, keep_difficult: bool) -> ImageRecord:
        boxes = r.boxes.reshape(-1, 4).astype(np.float32)
        clipped = boxes.copy()
        clipped[:, 0::2] = clipped[:, 0::2].clip(0, r.width)
        clipped[:, 1::2] = clipped[:, 1::2].clip(0, r.height)
        keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
        self.stats["clipped"] += int((keep & (clipped != boxes).any(axis=1)).sum())
        self.stats["dropped"] += int((~keep).sum())
        difficult = r.difficult.astype(bool)
        if not keep_difficult:
            keep &= ~difficult
        self.stats["difficult"] += int((keep & difficult).sum())
        self.stats["objects"] += int(keep.sum())
        self.stats["empty_images"] += int(not keep.any())
        return ImageRecord(r.path, r.width, r.height, clipped[keep], r.labels[keep].astype(np.int64), difficult[keep])

    def __len__(self) -> int:
        return len(self.records)

    def target(self, index: int) -> dict[str, Any]:
        """The annotation of image ``index`` without loading the image (before any transform)."""
        r = self.records[index]
        return {
            "boxes": torch.from_numpy(r.boxes.copy()).reshape(-1, 4),
            "labels": torch.from_numpy(r.labels.copy()),
            "difficult": torch.from_numpy(r.difficult.copy()),
            "image_id": index,
            "size": (r.height, r.width),
        }

    def load_image(self, index: int) -> Tensor:
        """Image ``index`` as a float tensor (3, H, W) in [0, 1]."""
        r = self.records[index]
        if not r.path.is_file():
            raise FileNotFoundError(f"{type(self).__name__}: image file {r.path} does not exist")
        image = pil_to_tensor(load_rgb(r.path)).float().div_(255)
        if image.shape[1:] != (r.height, r.width):
            raise ValueError(
                f"{r.path}: image is {image.shape[2]}x{image.shape[1]} but its annotation says {r.width}x{r.height}"
            )
        return image

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Any]]:
        image, target = self.load_image(index), self.target(index)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


class CocoDetectionDataset(DetectionDataset):
    """A COCO-format dataset: ``images_dir`` + an instances JSON (``images``, ``annotations``, ``categories``).

    Categories are sorted by id and numbered ``1..K``; ``iscrowd`` objects are kept as ``difficult``
    (both are "ignore" regions to the metrics).

    Args:
        images_dir: folder the ``file_name`` s are relative to.
        annotation_file: the instances JSON.
        transforms, keep_difficult: as for :class:`DetectionDataset`.
    """

    def __init__(
        self, images_dir: str | Path, annotation_file: str | Path, transforms: Transform | None = None,
        keep_difficult: bool = True,
    ) -> None:
        images_dir, annotation_file = Path(images_dir), Path(annotation_file)
        if not annotation_file.is_file():
            raise FileNotFoundError(f"COCO annotation file {annotation_file} does not exist")
        if not images_dir.is_dir():
            raise FileNotFoundError(f"COCO image folder {images_dir} does not exist")
        data = read_json(annotation_file)
        missing = [k for k in ("images", "annotations", "categories") if not isinstance(data, dict) or k not in data]
        if missing:
            raise ValueError(f"{annotation_file}: not a COCO instances file, missing key(s) {missing}")
        for kind, keys in (("categories", ("id", "name")), ("images", ("id", "file_name", "width", "height")),
                           ("annotations", ("image_id", "category_id", "bbox"))):
            _check_entries(annotation_file, kind, data[kind], keys)
        for kind in ("categories", "images"):
            bad = next((e["id"] for e in data[kind] if isinstance(e["id"], bool) or not isinstance(e["id"], int)), None)
            if bad is not None:
                raise ValueError(f"{annotation_file}: {kind} id {bad!r} is not an integer (COCO ids are integers)")
        categories = sorted(data["categories"], key=lambda c: c["id"])
        label_of = {c["id"]: i + 1 for i, c in enumerate(categories)}
        per_image: dict[int, list[dict[str, Any]]] = {im["id"]: [] for im in data["images"]}
        for ann in data["annotations"]:
            if ann["category_id"] not in label_of:
                raise ValueError(
                    f"{annotation_file}: annotation {ann.get('id')} has unknown category_id {ann['category_id']!r}; "
                    f"valid ids are {sorted(label_of)}" + (" (it is a string; ids are integers)"
                                                           if isinstance(ann["category_id"], str) else "")
                )
            if ann["image_id"] not in per_image:
                raise ValueError(f"{annotation_file}: annotation {ann.get('id')} refers to unknown image_id "
                                 f"{ann['image_id']!r}")
            bbox = ann["bbox"]
            if not (isinstance(bbox, list) and len(bbox) == 4
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)):
                raise ValueError(f"{annotation_file}: annotation {ann.get('id')} has bbox {bbox!r}; expected "
                                 "[x, y, width, height] numbers")
            per_image[ann["image_id"]].append(ann)
        records = []
        for im in sorted(data["images"], key=lambda im: im["id"]):
            anns = per_image[im["id"]]
            xywh = np.array([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4)
            records.append(ImageRecord(
                images_dir / im["file_name"], _positive_int(im["width"], annotation_file, f"image {im['id']!r} width"),
                _positive_int(im["height"], annotation_file, f"image {im['id']!r} height"),
                np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1),
                np.array([label_of[a["category_id"]] for a in anns], dtype=np.int64),
                np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool),
            ))
        self.category_ids = [c["id"] for c in categories]
        super().__init__(records, [c["name"] for c in categories], transforms, keep_difficult)


def _check_entries(path: Path, kind: str, entries: Any, keys: tuple[str, ...]) -> None:
    """Every entry of a COCO file's ``kind`` list is a mapping with ``keys``; else one line naming it."""
    if not isinstance(entries, list):
        raise ValueError(f"{path}: '{kind}' must be a list, got {type(entries).__name__}")
    for i, entry in enumerate(entries):
        missing = [k for k in keys if not isinstance(entry, dict) or k not in entry]
        if missing:
            name = entry.get("id", i) if isinstance(entry, dict) else i
            raise ValueError(f"{path}: {kind} entry {name!r} has no {', '.join(repr(k) for k in missing)}")


def _positive_int(value: Any, path: Path, what: str) -> int:
    """``value`` as a positive integer (a number or numeric text), else one ``ValueError`` naming ``path``."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: {what} is {value!r}, expected a positive integer") from None
    if number < 1:
        raise ValueError(f"{path}: {what} is {value!r}, expected a positive integer")
    return number


def _number(text: str | None, path: Path, what: str) -> float:
    """The number in an XML element's text, else one ``ValueError`` naming the file and the element."""
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: {what} is {text!r}, expected a number") from None


class VOCDetectionDataset(DetectionDataset):
    """A VOC-format dataset: ``VOCdevkit/VOC<year>/{Annotations,JPEGImages,ImageSets/Main}``.

    Args:
        root: the ``VOCdevkit`` folder.
        years: which ``VOC<year>`` folders to join, e.g. ``("2007", "2012")`` for "07+12".
        image_set: ``ImageSets/Main/<image_set>.txt`` (``trainval``, ``test``, ``train``, ``val``).
        classes: class names (default the 20 VOC classes); an object of another name is an error.
        transforms, keep_difficult: as for :class:`DetectionDataset`.

    The image file is ``JPEGImages/<filename>`` with ``<filename>`` from the XML (``<id>.jpg`` if absent).
    """

    def __init__(
        self,
        root: str | Path,
        years: Sequence[str] = ("2007",),
        image_set: str = "trainval",
        classes: Sequence[str] | None = None,
        transforms: Transform | None = None,
        keep_difficult: bool = True,
    ) -> None:
        root = Path(root)
        classes = tuple(classes) if classes is not None else VOC_CLASSES
        label_of = {name: i + 1 for i, name in enumerate(classes)}
        if isinstance(years, (str, int)):
            years = (str(years),)
        records = []
        for year in years:
            base = root / f"VOC{year}"
            id_file = base / "ImageSets" / "Main" / f"{image_set}.txt"
            if not id_file.is_file():
                raise FileNotFoundError(f"VOC image set {id_file} does not exist (root={root}, year={year}, image_set={image_set!r})")
            for image_id in id_file.read_text().split():
                records.append(self._parse(base, image_id, label_of))
        super().__init__(records, classes, transforms, keep_difficult)

    @staticmethod
    def _parse(base: Path, image_id: str, label_of: dict[str, int]) -> ImageRecord:
        xml_file = base / "Annotations" / f"{image_id}.xml"
        if not xml_file.is_file():
            raise FileNotFoundError(f"VOC annotation {xml_file} does not exist")
        try:
            tree = ET.parse(xml_file).getroot()
        except ET.ParseError as err:
            raise ValueError(f"{xml_file}: malformed XML ({err})") from None
        size = tree.find("size")
        if size is None:
            raise ValueError(f"{xml_file}: missing <size>")
        width = _positive_int(size.findtext("width"), xml_file, "<size><width>")
        height = _positive_int(size.findtext("height"), xml_file, "<size><height>")
        boxes, labels, difficult = [], [], []
        for i, obj in enumerate(tree.iter("object")):
            name = (obj.findtext("name") or "").strip()
            if name not in label_of:
                raise ValueError(f"{xml_file}: unknown class name {name!r}; valid names are {sorted(label_of)}")
            bb = obj.find("bndbox")
            if bb is None:
                raise ValueError(f"{xml_file}: object {i + 1} ({name}) has no <bndbox>")
            x1, y1, x2, y2 = (_number(bb.findtext(k), xml_file, f"object {i + 1} ({name}) <{k}>")
                              for k in ("xmin", "ymin", "xmax", "ymax"))
            boxes.append([x1 - 1, y1 - 1, x2, y2])
            labels.append(label_of[name])
            difficult.append((obj.findtext("difficult") or "0").strip() == "1")
        filename = tree.findtext("filename") or f"{image_id}.jpg"
        return ImageRecord(
            base / "JPEGImages" / filename, width, height,
            np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(labels, dtype=np.int64), np.array(difficult, dtype=bool),
        )


def detection_collate(batch: Sequence[tuple[Tensor, dict[str, Any]]]) -> tuple[list[Tensor], list[dict[str, Any]]]:
    """Batch of variable-size images: ``([image, ...], [target, ...])`` (the detectors resize them)."""
    images, targets = zip(*batch)
    return list(images), list(targets)
