"""Cluttered Digits Detection: an embedded detection dataset written in COCO *and* VOC format.

Each canvas (default 96 x 96, grayscale PNG) holds 1-4 digit objects from scikit-learn's bundled
8 x 8 digits, drawn with the helpers of the classification dataset (:mod:`cbam.data.embedded`:
:func:`~cbam.data.embedded.digit_sources`, :func:`~cbam.data.embedded.random_box`,
:func:`~cbam.data.embedded.render_digit`, :func:`~cbam.data.embedded.add_clutter`,
:func:`~cbam.data.embedded.add_noise`): non-overlapping squares of 14-32 px, stroke-fragment clutter
from other digits, Gaussian noise. Classes are the digits ``"0"``..``"9"``; each box is tight around
the object's visible pixels. Splits ``train`` / ``val`` / ``test`` draw objects and clutter only from
that split's source digits (``digit_sources(split, seed)``), so nothing leaks across splits.

Layout (images stored once, in the VOC folder; the COCO JSONs point at it)::

    root/VOCdevkit/VOC2007/JPEGImages/<split>_<index>.png
    root/VOCdevkit/VOC2007/Annotations/<split>_<index>.xml          (difficult = 0, truncated = 0)
    root/VOCdevkit/VOC2007/ImageSets/Main/{train,val,trainval,test}.txt
    root/annotations/instances_{train,val,test}.json                 (COCO; images_dir = JPEGImages)
    root/meta.json                                                   (parameters; equal -> not rebuilt)

Box conventions: the drawn box ``(x0, y0, x1, y1)`` (x1, y1 exclusive) is COCO ``[x0, y0, x1 - x0,
y1 - y0]`` and VOC ``xmin = x0 + 1, ymin = y0 + 1, xmax = x1, ymax = y1`` (1-based, inclusive), so
both loaders of :mod:`cbam.data.detection` give back exactly ``[x0, y0, x1, y1]``.
"""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ._build import build_once
from .detection import CocoDetectionDataset, DetectionDataset, Transform, VOCDetectionDataset
from .embedded import CLASSES, add_clutter, add_noise, digit_sources, random_box, render_digit

__all__ = ["SPLITS", "build_embedded_detection", "embedded_detection_dataset"]

GENERATOR_VERSION = 1
SPLITS = ("train", "val", "test")
_SPLIT_CODES = {"train": 10, "val": 11, "test": 12}


def _render_canvas(digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator, p: dict[str, Any]):
    """One canvas float32 (S, S) in [0, 1] and its objects: list of ((x0, y0, x1, y1), label)."""
    size = p["canvas_size"]
    canvas = np.zeros((size, size), np.float32)
    places, objects, sources = [], [], []
    for _ in range(int(rng.integers(p["objects"][0], p["objects"][1] + 1))):
        try:
            place = random_box(rng, size, tuple(p["object_size"]), margin=2, avoid=places)
        except ValueError:  # no free room left on this canvas: it keeps the objects it has
            break
        src = int(rng.integers(len(digits)))
        objects.append((render_digit(canvas, digits[src], place, rng), int(labels[src])))
        places.append(place)
        sources.append(src)
    add_clutter(canvas, digits, rng, p["n_clutter"], avoid=places, exclude=sources)
    add_noise(canvas, rng, p["noise_std"])
    return canvas, objects


def _voc_xml(filename: str, size: int, objects: list[tuple[tuple[int, int, int, int], int]]) -> bytes:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOC2007"
    ET.SubElement(root, "filename").text = filename
    sz = ET.SubElement(root, "size")
    for key, value in (("width", size), ("height", size), ("depth", 1)):
        ET.SubElement(sz, key).text = str(value)
    for (x0, y0, x1, y1), label in objects:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = CLASSES[label]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        bb = ET.SubElement(obj, "bndbox")
        for key, value in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
            ET.SubElement(bb, key).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8")


def _write(out: Path, p: dict[str, Any]) -> None:
    voc = out / "VOCdevkit" / "VOC2007"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True)
    (out / "annotations").mkdir()
    categories = [{"id": i + 1, "name": name, "supercategory": "digit"} for i, name in enumerate(CLASSES)]
    ids: dict[str, list[str]] = {}
    for split in SPLITS:
        digits, labels = digit_sources(split, p["seed"])
        images, annotations, ids[split] = [], [], []
        for index in range(p["images"][split]):
            rng = np.random.default_rng([p["seed"], _SPLIT_CODES[split], index])
            canvas, objects = _render_canvas(digits, labels, rng, p)
            name = f"{split}_{index:06d}"
            Image.fromarray(np.round(canvas * 255).astype(np.uint8), mode="L").save(voc / "JPEGImages" / f"{name}.png")
            (voc / "Annotations" / f"{name}.xml").write_bytes(_voc_xml(f"{name}.png", p["canvas_size"], objects))
            images.append({"id": index + 1, "file_name": f"{name}.png", "width": p["canvas_size"], "height": p["canvas_size"]})
            for (x0, y0, x1, y1), label in objects:
                annotations.append({
                    "id": len(annotations) + 1, "image_id": index + 1, "category_id": label + 1, "iscrowd": 0,
                    "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                })
            ids[split].append(name)
        coco = {"images": images, "annotations": annotations, "categories": categories}
        (out / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))
    ids["trainval"] = ids["train"] + ids["val"]
    for name, members in ids.items():
        (voc / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(m + "\n" for m in members))


def build_embedded_detection(
    root: str | os.PathLike, *, canvas_size: int = 96, train_images: int = 600, val_images: int = 200,
    test_images: int = 200, objects: tuple[int, int] = (1, 4), object_size: tuple[int, int] = (14, 32),
    n_clutter: int = 6, noise_std: float = 0.05, seed: int = 0,
) -> Path:
    """Build the dataset at ``root`` (see the module docstring) unless ``root/meta.json`` already
    records the same parameters; a build with other parameters is never overwritten (another run may be
    reading it): that is an error (see :func:`cbam.data._build.build_once`, the policy shared with the
    classification data).

    Args:
        canvas_size: canvas side S; train_images, val_images, test_images: canvases per split.
        objects: (min, max) digits per canvas; object_size: (min, max) side of their squares.
        n_clutter: clutter fragments per canvas; noise_std: Gaussian noise; seed: everything.

    Raises:
        ValueError: a parameter out of range, or ``root`` is a non-empty folder of something else or a
            build with other parameters.
    """
    root = Path(root)
    counts = {"train": train_images, "val": val_images, "test": test_images}
    for name, value in (("canvas_size", canvas_size), *((f"{k}_images", v) for k, v in counts.items())):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not 0 <= objects[0] <= objects[1]:
        raise ValueError(f"objects must be (min, max) with 0 <= min <= max, got {objects}")
    if object_size[1] + 4 > canvas_size:
        raise ValueError(f"object_size {object_size} does not fit canvas_size {canvas_size} with a 2 px margin")
    params = {
        "generator": "cbam.detection.embedded", "version": GENERATOR_VERSION, "canvas_size": canvas_size,
        "images": counts, "objects": list(objects), "object_size": list(object_size), "n_clutter": n_clutter,
        "noise_std": noise_std, "seed": seed, "classes": list(CLASSES),
    }
    return build_once(root, params, lambda out: _write(out, params), what="embedded detection dataset")


def embedded_detection_dataset(root: str | os.PathLike, split: str, fmt: str = "coco", transforms: Transform | None = None,
                               keep_difficult: bool = True) -> DetectionDataset:
    """Split ``split`` of a built dataset at ``root`` through the real ``coco`` or ``voc`` loader."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    if fmt == "coco":
        return CocoDetectionDataset(root / "VOCdevkit" / "VOC2007" / "JPEGImages",
                                    root / "annotations" / f"instances_{split}.json", transforms, keep_difficult)
    if fmt == "voc":
        return VOCDetectionDataset(root / "VOCdevkit", ("2007",), split, CLASSES, transforms, keep_difficult)
    raise ValueError(f"fmt must be 'coco' or 'voc', got {fmt!r}")
