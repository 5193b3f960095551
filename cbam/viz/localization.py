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

import numpy as np

__all__ = ["box_masks", "energy_in_box", "pointing_game", "box_area_share", "mean_ci"]


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
