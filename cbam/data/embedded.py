"""Cluttered Digits: an embedded dataset that needs no download.

In the spirit of Cluttered MNIST (Mnih et al. 2014 "Recurrent Models of Visual Attention";
Jaderberg et al. 2015 "Spatial Transformer Networks", both cited by the CBAM paper), built
deterministically from scikit-learn's 1,797 bundled 8 x 8 handwritten digits
(``sklearn.datasets.load_digits``, shipped inside the package, no network access).

Each sample is a square grayscale canvas (default 64 x 64) holding

- ONE digit object, upscaled bicubically to a random square size (default 16-32 px) at a random
  position at least ``margin`` px (default 4) from the border; the label is its class (10 classes);
- clutter: random crops of OTHER digit images (3-5 source pixels wide, upscaled with the object's
  range of scales, so they look like digit strokes), placed so they do not touch the object box;
- additive Gaussian noise.

Composition is the pixelwise maximum. Images are stored as 8-bit grayscale PNGs; every loader in
:mod:`cbam.data` converts them to 3-channel RGB (three identical channels), so models use
``in_chans=3`` as for CIFAR and ImageNet.

Source images are split by ``seed`` (stratified by class) into ``train`` (60 %), ``val`` (20 %) and
``test`` (20 %); a split's objects AND clutter come only from that split's sources, so nothing
leaks from train into validation. ``build_embedded`` writes the ``train`` and ``val`` splits; the
``test`` sources are kept for other tasks (see :func:`digit_sources`).

Layout written by :func:`build_embedded` (the ImageNet ImageFolder layout)::

    root/train/<class>/<class>_<index>.png     root/val/<class>/<class>_<index>.png
    root/boxes.json    {"train": {"<class>/<name>.png": [x0, y0, x1, y1]}, "val": {...}}
    root/meta.json     generator version and every parameter (equal -> building is skipped)
    root/samples.png   a grid of validation samples with their object boxes drawn

Boxes are in pixels, ``x0, y0`` inclusive and ``x1, y1`` exclusive (the box covers columns
``x0 .. x1-1``; torchvision's continuous ``xyxy`` convention), tight around the object's visible
pixels (value >= ``BOX_THRESHOLD`` before noise).

Reuse (e.g. multi-object canvases for detection): :func:`digit_sources` gives a split's source
digits, :func:`random_box` a free square box, :func:`render_digit` draws one digit into a box and
returns its tight box, :func:`add_clutter` and :func:`add_noise` add distractors::

    digits, labels = digit_sources("train", seed=0)
    rng = np.random.default_rng(0)
    canvas = np.zeros((96, 96), np.float32)
    boxes = []
    for i in rng.choice(len(digits), 3, replace=False):
        box = random_box(rng, 96, (16, 32), avoid=boxes)
        boxes.append(render_digit(canvas, digits[i], box, rng))
    add_clutter(canvas, digits, rng, n=10, avoid=boxes)
    add_noise(canvas, rng)
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .._optional import require
from ..io.files import read_json
from ._build import build_once, load_meta

__all__ = [
    "DIFFICULTIES",
    "GENERATOR_VERSION",
    "SPLIT_FRACTIONS",
    "BOX_THRESHOLD",
    "CLASSES",
    "build_embedded",
    "load_boxes",
    "load_meta",
    "source_indices",
    "digit_sources",
    "random_box",
    "render_digit",
    "add_clutter",
    "add_noise",
    "render_sample",
]

GENERATOR_VERSION = 1
#: Named difficulty settings: object size range (px at 64 x 64; scaled with the canvas), clutter
#: fragments, noise std. ``medium`` is the dataset's default; the three levels ask the paper's "what and
#: where" question with more or less to ignore around the object.
DIFFICULTIES: dict[str, dict] = {
    "easy": {"object_size": (20, 32), "n_clutter": 2, "noise_std": 0.04},
    "medium": {"object_size": (16, 32), "n_clutter": 8, "noise_std": 0.08},
    "hard": {"object_size": (12, 24), "n_clutter": 20, "noise_std": 0.12},
}
SPLIT_FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}
BOX_THRESHOLD = 0.25
CLASSES = tuple(str(c) for c in range(10))
_SPLIT_CODES = {"train": 0, "val": 1, "test": 2}

Box = tuple[int, int, int, int]


# ---- sources ---------------------------------------------------------------------------------
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    data = require("sklearn.datasets", "train", "the embedded data").load_digits()
    images = (data.images / 16.0).astype(np.float32)  # (1797, 8, 8) in [0, 1]
    return images, data.target.astype(np.int64)


def _check_split(split: str) -> None:
    if split not in SPLIT_FRACTIONS:
        raise ValueError(f"split must be one of {sorted(SPLIT_FRACTIONS)}, got {split!r}")


def source_indices(split: str, seed: int = 0) -> np.ndarray:
    """Indices into ``load_digits()`` of one split's source images (stratified by class, seeded).

    The three splits are disjoint and together cover all 1,797 images. Returns sorted int64 (N,).
    """
    train_test_split = require("sklearn.model_selection", "train", "the embedded data").train_test_split
    _check_split(split)
    _, labels = _load_digits()
    index = np.arange(len(labels))
    held_out = SPLIT_FRACTIONS["val"] + SPLIT_FRACTIONS["test"]
    train, rest = train_test_split(index, test_size=held_out, stratify=labels, random_state=seed)
    val, test = train_test_split(rest, test_size=SPLIT_FRACTIONS["test"] / held_out,
                                 stratify=labels[rest], random_state=seed)
    return np.sort({"train": train, "val": val, "test": test}[split]).astype(np.int64)


def digit_sources(split: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One split's source digits: images float32 (N, 8, 8) in [0, 1] and labels int64 (N,).

    ``split`` is ``"train"``, ``"val"`` or ``"test"``; the splits of one ``seed`` are disjoint.
    """
    images, labels = _load_digits()
    idx = source_indices(split, seed)
    return images[idx], labels[idx]


# ---- drawing ---------------------------------------------------------------------------------
def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic resize of a float image (h, w) -> (height, width), clipped to [0, 1]."""
    out = Image.fromarray(img.astype(np.float32), mode="F").resize((width, height), Image.BICUBIC)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def _overlaps(a: Box, b: Box, gap: int = 0) -> bool:
    return not (a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1])


def random_box(rng: np.random.Generator, canvas_size: int, size_range: tuple[int, int] = (16, 32), *,
               margin: int = 4, avoid: Sequence[Box] = (), tries: int = 100) -> Box:
    """A random square box ``(x0, y0, x1, y1)`` of side in ``size_range`` (inclusive) inside a
    ``canvas_size`` canvas, ``margin`` px from the border and not overlapping any box in ``avoid``.

    Raises ValueError if the box cannot fit or no free place is found in ``tries`` draws.
    """
    lo, hi = size_range
    if not 1 <= lo <= hi or hi + 2 * margin > canvas_size:
        raise ValueError(f"size_range {size_range} with margin {margin} does not fit canvas_size {canvas_size}")
    for _ in range(tries):
        size = int(rng.integers(lo, hi + 1))
        x0, y0 = (int(v) for v in rng.integers(margin, canvas_size - margin - size + 1, size=2))
        box = (x0, y0, x0 + size, y0 + size)
        if not any(_overlaps(box, other) for other in avoid):
            return box
    raise ValueError(f"no free {size_range} box in a {canvas_size} px canvas avoiding {len(avoid)} boxes")


def render_digit(canvas: np.ndarray, digit_img: np.ndarray, box: Box,
                 rng: np.random.Generator | None = None) -> Box:
    """Draw ``digit_img`` (h, w) in [0, 1], resized bicubically to ``box``, into ``canvas`` (H, W)
    in place (pixelwise maximum). With ``rng``, the stroke intensity is scaled by U(0.75, 1).

    Returns the tight box of the drawn pixels >= ``BOX_THRESHOLD`` in canvas coordinates
    (``x1``, ``y1`` exclusive), or ``box`` itself if nothing reaches the threshold.
    """
    x0, y0, x1, y1 = box
    patch = _resize(digit_img, x1 - x0, y1 - y0)
    if rng is not None:
        patch = patch * np.float32(rng.uniform(0.75, 1.0))
    canvas[y0:y1, x0:x1] = np.maximum(canvas[y0:y1, x0:x1], patch)
    rows = np.flatnonzero((patch >= BOX_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((patch >= BOX_THRESHOLD).any(axis=0))
    if rows.size == 0:
        return tuple(box)
    return (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1)


def add_clutter(canvas: np.ndarray, digits: np.ndarray, rng: np.random.Generator, n: int = 8, *,
                crop_range: tuple[int, int] = (3, 5), scale_range: tuple[float, float] = (2.0, 4.0),
                avoid: Sequence[Box] = (), exclude: Sequence[int] = (), tries: int = 20) -> int:
    """Add ``n`` fragments of ``digits`` (N, 8, 8) to ``canvas`` (H, W) in place.

    Each fragment is a random ``crop_range`` x ``crop_range`` crop of a digit (not one of the
    indices in ``exclude``), upscaled by a factor in ``scale_range``, placed anywhere not touching
    a box in ``avoid`` (up to ``tries`` draws; a fragment without a free place is dropped).
    Returns the number of fragments drawn.
    """
    height, width = canvas.shape
    keep = np.ones(len(digits), dtype=bool)
    keep[list(exclude)] = False
    allowed = np.flatnonzero(keep)
    if allowed.size == 0:
        raise ValueError(f"no clutter sources: all {len(digits)} digits are excluded")
    drawn = 0
    for _ in range(n):
        src = digits[allowed[rng.integers(allowed.size)]]
        ch, cw = (int(v) for v in rng.integers(crop_range[0], crop_range[1] + 1, size=2))
        sy = int(rng.integers(0, src.shape[0] - ch + 1))
        sx = int(rng.integers(0, src.shape[1] - cw + 1))
        scale = rng.uniform(*scale_range)
        fh, fw = max(1, round(ch * scale)), max(1, round(cw * scale))
        if fh > height or fw > width:
            continue
        for _ in range(tries):
            y0 = int(rng.integers(0, height - fh + 1))
            x0 = int(rng.integers(0, width - fw + 1))
            if not any(_overlaps((x0, y0, x0 + fw, y0 + fh), other, gap=1) for other in avoid):
                patch = _resize(src[sy:sy + ch, sx:sx + cw], fw, fh)
                canvas[y0:y0 + fh, x0:x0 + fw] = np.maximum(canvas[y0:y0 + fh, x0:x0 + fw], patch)
                drawn += 1
                break
    return drawn


def add_noise(canvas: np.ndarray, rng: np.random.Generator, std: float = 0.08) -> None:
    """Add Gaussian noise N(0, std^2) to ``canvas`` in place and clip it to [0, 1]."""
    canvas += rng.normal(0.0, std, size=canvas.shape).astype(np.float32)
    np.clip(canvas, 0.0, 1.0, out=canvas)


# ---- one sample --------------------------------------------------------------------------------
def _sample_rng(seed: int, split: str, label: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLIT_CODES[split], label, index])


def render_sample(digits: np.ndarray, source: int, rng: np.random.Generator, *, canvas_size: int = 64,
                  object_size: tuple[int, int] = (16, 32), margin: int = 4, n_clutter: int = 8,
                  noise_std: float = 0.08) -> tuple[np.ndarray, Box]:
    """One Cluttered-Digits canvas: object ``digits[source]`` plus clutter from the other ``digits``.

    Returns the canvas float32 (canvas_size, canvas_size) in [0, 1] and the object's tight box.
    """
    canvas = np.zeros((canvas_size, canvas_size), np.float32)
    place = random_box(rng, canvas_size, object_size, margin=margin)
    box = render_digit(canvas, digits[source], place, rng)
    add_clutter(canvas, digits, rng, n_clutter, avoid=[place], exclude=[source])
    add_noise(canvas, rng, noise_std)
    return canvas, box


# ---- dataset on disk ---------------------------------------------------------------------------
def _params(canvas_size: int, train_per_class: int, val_per_class: int, seed: int, difficulty: str,
            object_size: tuple[int, int], n_clutter: int, noise_std: float) -> dict:
    return {
        "generator": "cbam.data.embedded (Cluttered Digits)",
        "version": GENERATOR_VERSION,
        "difficulty": difficulty,
        "canvas_size": canvas_size,
        "train_per_class": train_per_class,
        "val_per_class": val_per_class,
        "seed": seed,
        "object_size": list(object_size),
        "margin": 4,
        "n_clutter": n_clutter,
        "noise_std": noise_std,
        "box_threshold": BOX_THRESHOLD,
        "split_fractions": SPLIT_FRACTIONS,
        "classes": list(CLASSES),
    }


def _write_split(out: Path, split: str, per_class: int, params: dict) -> dict[str, list[int]]:
    digits, labels = digit_sources(split, params["seed"])
    boxes: dict[str, list[int]] = {}
    for label in range(len(CLASSES)):
        (out / split / CLASSES[label]).mkdir(parents=True)
        members = np.flatnonzero(labels == label)
        order = np.random.default_rng([params["seed"], _SPLIT_CODES[split], label]).permutation(members)
        for i in range(per_class):
            rng = _sample_rng(params["seed"], split, label, i)
            canvas, box = render_sample(
                digits, int(order[i % len(order)]), rng, canvas_size=params["canvas_size"],
                object_size=tuple(params["object_size"]), margin=params["margin"],
                n_clutter=params["n_clutter"], noise_std=params["noise_std"])
            name = f"{CLASSES[label]}/{CLASSES[label]}_{i:05d}.png"
            Image.fromarray(np.round(canvas * 255).astype(np.uint8), mode="L").save(out / split / name)
            boxes[name] = list(box)
    return boxes


def _sample_grid(root: Path, boxes: dict[str, list[int]], rows: int = 4, zoom: int = 2) -> Image.Image:
    """Validation samples, one class per column, object boxes drawn in red."""
    with Image.open(root / "val" / next(iter(boxes))) as first:
        size = first.size[0] * zoom
    pad = 4
    grid = Image.new("RGB", (len(CLASSES) * (size + pad) + pad, rows * (size + pad) + pad), "white")
    draw = ImageDraw.Draw(grid)
    for col, cls in enumerate(CLASSES):
        names = sorted(n for n in boxes if n.startswith(f"{cls}/"))[:rows]
        for row, name in enumerate(names):
            with Image.open(root / "val" / name) as img:
                img = img.convert("RGB").resize((size, size), Image.NEAREST)
            x, y = pad + col * (size + pad), pad + row * (size + pad)
            grid.paste(img, (x, y))
            x0, y0, x1, y1 = (v * zoom for v in boxes[name])
            draw.rectangle((x + x0, y + y0, x + x1 - 1, y + y1 - 1), outline=(255, 40, 40))
    return grid


def build_embedded(root: str | os.PathLike, *, canvas_size: int = 64, train_per_class: int = 300,
                   val_per_class: int = 100, seed: int = 0, difficulty: str = "medium",
                   object_size: tuple[int, int] | None = None, n_clutter: int | None = None,
                   noise_std: float | None = None) -> Path:
    """Build Cluttered Digits at ``root`` (ImageFolder layout, see the module docstring).

    Defaults: 64 x 64 canvases, 300 training and 100 validation images per class (3,000 + 1,000),
    the ``medium`` :data:`DIFFICULTIES` (objects 16-32 px, 8 clutter fragments, noise std 0.08).
    ``object_size``, ``n_clutter`` and ``noise_std`` override the named difficulty's values; object
    sizes of a named difficulty scale with ``canvas_size`` / 64. ``meta.json`` records the difficulty's
    name (``"custom"`` when any value is given explicitly) and every value. If ``root/meta.json`` records the same
    parameters, nothing is done; if it records others, that is an error naming them, and the folder is
    not touched (see :func:`cbam.data._build.build_once`, the policy shared with the detection data).

    Returns ``root`` as a Path. Raises ValueError if ``root`` is a non-empty folder that is not an
    embedded dataset (it is never deleted then) or a parameter is out of range.
    """
    root = Path(root)
    for name, value in (("canvas_size", canvas_size), ("train_per_class", train_per_class),
                        ("val_per_class", val_per_class)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {sorted(DIFFICULTIES)}, got {difficulty!r}")
    preset = DIFFICULTIES[difficulty]
    overrides = {k: v for k, v in (("object_size", object_size), ("n_clutter", n_clutter), ("noise_std", noise_std))
                 if v is not None}
    if object_size is None:
        object_size = tuple(round(v * canvas_size / 64) for v in preset["object_size"])
    n_clutter = preset["n_clutter"] if n_clutter is None else n_clutter
    noise_std = preset["noise_std"] if noise_std is None else noise_std
    if object_size[1] + 2 * 4 > canvas_size:
        raise ValueError(f"object_size {object_size} does not fit canvas_size {canvas_size} with a 4 px margin")
    params = _params(int(canvas_size), int(train_per_class), int(val_per_class), int(seed),
                     "custom" if overrides else difficulty,
                     tuple(object_size), int(n_clutter), float(noise_std))

    def write(out: Path) -> None:
        boxes = {split: _write_split(out, split, per_class, params)
                 for split, per_class in (("train", train_per_class), ("val", val_per_class))}
        (out / "boxes.json").write_text(json.dumps(boxes, indent=0, sort_keys=True))
        _sample_grid(out, boxes["val"]).quantize(256).save(out / "samples.png", optimize=True)  # ~190 KB

    return build_once(root, params, write, what="embedded dataset")


def load_boxes(root: str | os.PathLike, split: str) -> dict[str, tuple[int, int, int, int]]:
    """Object boxes of one split: ``{"<class>/<name>.png": (x0, y0, x1, y1)}`` in pixels."""
    path = Path(root) / "boxes.json"
    if not path.is_file():
        raise FileNotFoundError(f"no boxes file {path}; build the dataset with build_embedded({str(root)!r})")
    boxes = read_json(path)
    if not isinstance(boxes, dict) or split not in boxes:
        raise ValueError(f"{path} has no split {split!r}; it has {sorted(boxes) if isinstance(boxes, dict) else boxes}")
    return {name: tuple(int(v) for v in box) for name, box in boxes[split].items()}
