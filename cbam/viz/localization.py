"""Does the Grad-CAM cover the object? Energy-in-box and pointing game over a labelled set.

Paper sec. 4.3 / Fig. 5 claims that CBAM's Grad-CAM "covers the target object regions better";
these scores measure that on images with a known object box:

- **energy in box**: share of the CAM's mass inside the box, ``sum(cam * [p in box]) / sum(cam)``
  (the "energy-based pointing game" of Score-CAM, Wang et al. 2020). A CAM spread evenly over the
  image scores the box's area share, reported as ``chance``.
- **pointing game** (Zhang et al., ECCV 2016): hit when the CAM's peak pixel lies in the box grown
  by ``tolerance`` pixels on every side. Zhang et al. use 15 px at 224 px; the default here is 0
  (the peak must be inside the box itself), as the embedded images are small.

A CAM that is zero everywhere (no positive evidence for the class) scores energy 0 and a miss.
Boxes are ``(x0, y0, x1, y1)`` in pixels of the CAM, half-open: pixel ``(x, y)`` is inside when
``x0 <= x < x1`` and ``y0 <= y < y1``.

Intervals are 95% percentile-bootstrap intervals of the mean over images (2000 resamples, fixed
seed), see :func:`mean_ci`.
"""
from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..data import build_dataset
from .gradcam import gradcam
from .loading import load_viz_model

__all__ = [
    "box_masks",
    "energy_in_box",
    "pointing_game",
    "box_area_share",
    "mean_ci",
    "localization_scores",
    "localization_row",
    "localization_table",
    "compare_extra",
    "dataset_boxes",
    "require_boxes",
    "format_markdown",
    "write_table",
]


def _check(cams: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cams = np.asarray(cams, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64)
    if cams.ndim != 3:
        raise ValueError(f"cams must be (N, H, W), got shape {cams.shape}")
    if boxes.shape != (len(cams), 4):
        raise ValueError(f"boxes must be (N, 4) = (x0, y0, x1, y1) with N={len(cams)}, got shape {boxes.shape}")
    if (cams < 0).any():
        raise ValueError("cams must be non-negative (Grad-CAM maps after ReLU)")
    return cams, boxes


def box_masks(boxes: np.ndarray, size: tuple[int, int], tolerance: float = 0) -> np.ndarray:
    """(N, 4) boxes -> (N, H, W) bool masks of the pixels inside each box grown by ``tolerance`` px."""
    h, w = size
    boxes = np.asarray(boxes, dtype=np.float64)
    ys, xs = np.arange(h)[None, :, None], np.arange(w)[None, None, :]  # (1, H, 1), (1, 1, W)
    x0, y0, x1, y1 = (boxes[:, i, None, None] for i in range(4))  # each (N, 1, 1)
    t = tolerance
    return (xs >= x0 - t) & (xs < x1 + t) & (ys >= y0 - t) & (ys < y1 + t)


def energy_in_box(cams: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Share of each CAM's mass inside its box: (N, H, W), (N, 4) -> (N,) in [0, 1]."""
    cams, boxes = _check(cams, boxes)
    inside = (cams * box_masks(boxes, cams.shape[1:])).sum((1, 2))
    total = cams.sum((1, 2))
    return np.divide(inside, total, out=np.zeros_like(total), where=total > 0)


def pointing_game(cams: np.ndarray, boxes: np.ndarray, tolerance: float = 0) -> np.ndarray:
    """Whether each CAM's peak (first maximum in row-major order) lies in its box +- ``tolerance`` px.

    Returns:
        (N,) bool; an all-zero CAM is a miss.
    """
    cams, boxes = _check(cams, boxes)
    n, h, w = cams.shape
    peak = cams.reshape(n, -1).argmax(1)
    py, px = peak // w, peak % w
    x0, y0, x1, y1 = boxes.T
    t = tolerance
    hit = (px >= x0 - t) & (px < x1 + t) & (py >= y0 - t) & (py < y1 + t)
    return hit & (cams.reshape(n, -1).max(1) > 0)


def box_area_share(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N,) share of the image each box covers: the energy-in-box of a uniform CAM."""
    return box_masks(boxes, size).mean((1, 2))


def mean_ci(values: np.ndarray, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile-bootstrap ``level`` interval: (mean, low, high)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("mean_ci needs at least one value")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(1)  # (n_boot,)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(v.mean()), float(low), float(high)


def localization_scores(
    model: nn.Module,
    dataset: Dataset,
    boxes: np.ndarray,
    stage: int = -1,
    tolerance: float = 0,
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Grad-CAM of the ground-truth class for every sample of ``dataset``, scored against its box.

    Args:
        model: a registry model.
        dataset: yields ``(image (3, H, W), label)``, as the model is evaluated.
        boxes: (N, 4) object box of each sample, in pixels of the ``H x W`` input.
        stage, tolerance, batch_size: Grad-CAM stage, pointing-game tolerance (px), images per pass.

    Returns:
        per-sample arrays ``energy`` (N,), ``hit`` (N,) bool, ``chance`` (N,) box area share,
        ``correct`` (N,) bool (top-1 == label), ``prob`` (N,) softmax score of the label.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if len(boxes) != len(dataset):
        raise ValueError(f"{len(boxes)} boxes for a dataset of {len(dataset)} samples")
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("energy", "hit", "chance", "correct", "prob")}
    start = 0
    for images, labels in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        b = boxes[start:start + len(images)]
        start += len(images)
        res = gradcam(model, images, labels, stage=stage, batch_size=batch_size)
        out["energy"].append(energy_in_box(res.cams, b))
        out["hit"].append(pointing_game(res.cams, b, tolerance))
        out["chance"].append(box_area_share(b, res.cams.shape[1:]))
        out["correct"].append(res.preds == labels.numpy())
        out["prob"].append(res.probs)
    return {k: np.concatenate(v) for k, v in out.items()}


def localization_row(name: str, scores: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Summarise :func:`localization_scores` as one table row: means with 95% bootstrap intervals.

    Returns:
        ``{model, n, energy, energy_lo, energy_hi, pointing, pointing_lo, pointing_hi, chance, top1}``
        (shares in [0, 1]; ``chance`` is the mean box area share, the score of a uniform map;
        ``top1`` the accuracy on the same images).
    """
    e, p = mean_ci(scores["energy"]), mean_ci(scores["hit"])
    return {
        "model": name, "n": len(scores["energy"]),
        "energy": e[0], "energy_lo": e[1], "energy_hi": e[2],
        "pointing": p[0], "pointing_lo": p[1], "pointing_hi": p[2],
        "chance": float(np.mean(scores["chance"])), "top1": float(np.mean(scores["correct"])),
    }


#: The smallest map side a localisation score is computed on by default: the paper's Grad-CAM layer is
#: the last stage, 7 x 7 at 224 px; at 64 px the last stage is 2 x 2, whose peak is a quadrant.
MIN_MAP_SIDE = 7


def localization_stage(feature_info: Sequence[Mapping[str, Any]], image_size: int, min_side: int = MIN_MAP_SIDE) -> int:
    """Index of the deepest stage whose map is at least ``min_side`` pixels across at ``image_size``
    (the first stage when none is)."""
    sides = [image_size // info["reduction"] for info in feature_info]
    return max((i for i, side in enumerate(sides) if side >= min_side), default=0)


def _model_scores(spec: str | Path, data: str | None, split: str, stage: int | None, tolerance: float,
                  batch_size: int) -> tuple[str, dict[str, np.ndarray]]:
    """``stage=None``: :func:`localization_stage` at the model's training input size."""
    vm = load_viz_model(spec)
    if stage is None:
        size = vm.config.get("image_size") or (vm.config.get("preprocessing") or {}).get("image_size")
        stage = localization_stage(vm.model.feature_info, size) if size and hasattr(vm.model, "feature_info") else -1
    source = data or vm.config.get("data")
    if not source:
        raise ValueError(f"model {str(spec)!r} records no training data; pass data (--data)")
    dataset = build_dataset(source, split, transform=vm.transform)
    boxes = dataset_boxes(dataset, source)
    return vm.label, localization_scores(vm.model, dataset, boxes, stage, tolerance, batch_size)


def localization_table(
    models: Sequence[str | Path],
    data: str | None = None,
    split: str = "val",
    stage: int = -1,
    tolerance: float = 0,
    batch_size: int = 64,
) -> list[dict[str, Any]]:
    """Localisation rows for trained models (run directories or weights files) on a dataset with boxes.

    Args:
        models: run directories / ``.safetensors`` / checkpoint files (see :func:`load_viz_model`).
        data: a ``--data`` value with object boxes (``embedded[:dir]``); default: each run's own data.
        split: ``"val"`` (default) or ``"train"``; every image of the split is scored.
        stage, tolerance, batch_size: see :func:`localization_scores`.

    Returns:
        one :func:`localization_row` per model, in order.
    """
    return [localization_row(*_model_scores(m, data, split, stage, tolerance, batch_size)) for m in models]


def compare_extra(runs: Mapping[str, Sequence[Path]]) -> str:
    """``cbam compare --extra localization``: the localisation table of a comparison, as Markdown.

    Args:
        runs: ``{row label: [run directories, one per seed]}``; each run is scored on the
            validation split of its own data, and the images of all seeds are pooled into one row.

    Also writes ``localization.csv`` beside the comparison's ``table.md`` (the runs' grandparent).
    """
    rows = []
    for label, dirs in runs.items():
        per_seed = [_model_scores(d, None, "val", None, 0, 64)[1] for d in dirs]
        rows.append(localization_row(label, {k: np.concatenate([s[k] for s in per_seed]) for k in per_seed[0]}))
    first = next(iter(runs.values()))[0]
    write_table(rows, Path(first).parent.parent / "localization")
    caption = (f"Grad-CAM localisation (the deepest stage whose map is at least {MIN_MAP_SIDE} x {MIN_MAP_SIDE} at "
               "the training input size, class = ground truth) over the validation images of every "
               "seed: share of CAM energy in the object box and pointing-game hits (peak in the box, 0 px "
               "tolerance); mean [95% percentile-bootstrap interval].")
    return "\n\n".join(["### Grad-CAM localisation", caption, format_markdown(rows)])


def require_boxes(dataset: Dataset, name: str = "data") -> None:
    """Raise ``ValueError`` unless ``dataset`` has object boxes (the embedded one), which localisation needs."""
    if not hasattr(dataset, "boxes"):
        raise ValueError(f"data {name!r} has no object boxes; localisation scores need the embedded dataset")


def dataset_boxes(dataset: Dataset, name: str = "data") -> np.ndarray:
    """(N, 4) object boxes of a dataset with ``boxes`` (the embedded one), in pixels of its transformed
    images (scaled from the stored ``canvas_size`` when the transform resizes).

    Raises:
        ValueError: the dataset has no object boxes.
    """
    require_boxes(dataset, name)
    boxes = np.asarray(dataset.boxes, dtype=np.float64)  # (N, 4) in stored pixels
    side = dataset[0][0].shape[-1]
    return boxes * (side / dataset.canvas_size)


def format_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows of :func:`localization_row` as a Markdown table (percentages, 95% intervals)."""
    lines = [
        "| model | images | energy in box (%) [95% CI] | pointing game (%) [95% CI] "
        "| box area = chance (%) | top-1 (%) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['n']} "
            f"| {100 * r['energy']:.1f} [{100 * r['energy_lo']:.1f}, {100 * r['energy_hi']:.1f}] "
            f"| {100 * r['pointing']:.1f} [{100 * r['pointing_lo']:.1f}, {100 * r['pointing_hi']:.1f}] "
            f"| {100 * r['chance']:.1f} | {100 * r['top1']:.1f} |"
        )
    return "\n".join(lines)


def write_table(rows: Sequence[Mapping[str, Any]], out: str | Path) -> tuple[Path, Path]:
    """Write ``out.md`` (Markdown) and ``out.csv`` (full precision); returns both paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    md, cs = out.with_suffix(".md"), out.with_suffix(".csv")
    md.write_text(format_markdown(rows) + "\n")
    with cs.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["model"])
        writer.writeheader()
        writer.writerows(rows)
    return md, cs
