"""Figures: the Grad-CAM comparison grid of the paper's Fig. 5 and a CBAM attention-map panel.

Built on ``matplotlib.figure.Figure`` (no pyplot state); overlays use pytorch-grad-cam's
``show_cam_on_image``. Figures have a fixed size, so a saved PNG is exactly
``figsize * dpi`` pixels.
"""
from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .._optional import require
from ..io.files import atomic_write, check_output_file
from .attention_maps import AttentionMaps
from .gradcam import gradcam
from .images import to_display

Figure = require("matplotlib.figure", "viz", "figures").Figure
show_cam_on_image = require("pytorch_grad_cam.utils.image", "viz", "Grad-CAM").show_cam_on_image

__all__ = [
    "UNTRAINED_TITLE",
    "CamColumn",
    "overlay",
    "gradcam_figure",
    "gradcam_comparison",
    "attention_figure",
    "save_figure",
]

UNTRAINED_TITLE = "untrained weights (random initialisation): these maps show no learned attention"

_PANEL = 2.0  # inches per image panel
_TEXT = 0.45  # inches of text above / below a panel row


@dataclass
class CamColumn:
    """One model's column of the Fig. 5 grid.

    Attributes:
        title: column header, e.g. ``"ResNet18 + CBAM"``.
        cams: (N, H, W) Grad-CAMs in [0, 1], one per row.
        captions: N strings under the overlays, e.g. ``"P = 0.93"``.
    """

    title: str
    cams: np.ndarray
    captions: Sequence[str]


def overlay(image: np.ndarray, heat: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """Blend a heat map over an image: (H, W, 3) in [0, 1], (h, w) in [0, 1] -> (H, W, 3) uint8.

    ``heat`` is resized bilinearly to the image's size when it is smaller (e.g. M_s of a stage).
    """
    h, w = image.shape[:2]
    if heat.shape != (h, w):
        heat = F.interpolate(torch.as_tensor(heat, dtype=torch.float32)[None, None], size=(h, w),
                             mode="bilinear", align_corners=False)[0, 0].numpy()
    return show_cam_on_image(image.astype(np.float32), np.clip(heat, 0, 1), use_rgb=True, image_weight=image_weight)


def _blank(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)


def gradcam_figure(
    images: np.ndarray,
    columns: Sequence[CamColumn],
    labels: Sequence[str | None] | None = None,
    title: str | None = None,
) -> Figure:
    """The layout of Fig. 5: one row per image, the input then each model's Grad-CAM overlay.

    Args:
        images: (N, H, W, 3) inputs in [0, 1] as shown (un-normalised).
        columns: one :class:`CamColumn` per model.
        labels: N ground-truth labels written above the inputs (``None`` entries: unknown).
        title: optional figure title (e.g. "untrained weights").

    Returns:
        a Figure of ``N`` rows x ``1 + len(columns)`` image axes.
    """
    n = len(images)
    labels = list(labels) if labels is not None else [None] * n
    if n == 0:
        raise ValueError("gradcam_figure needs at least one image")
    for col in columns:
        if len(col.cams) != n or len(col.captions) != n:
            raise ValueError(f"column {col.title!r} has {len(col.cams)} maps / {len(col.captions)} captions "
                             f"for {n} images")
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} images")
    ncols = 1 + len(columns)
    head = (_TEXT if title else 0) + 0.5  # title line, then two lines of column headers
    left, right, wspace = 0.1, 0.1, 0.06  # inches, inches, fraction of a panel
    width = ncols * _PANEL
    panel = (width - left - right) / (ncols + wspace * (ncols - 1))  # drawn panel side, inches
    height = head + n * (panel + 2 * _TEXT)
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(n, ncols, squeeze=False)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=_TEXT / height,
                        top=1 - (head + _TEXT) / height, wspace=wspace, hspace=2 * _TEXT / panel)
    if title:
        fig.suptitle(title, y=1 - 0.5 * _TEXT / height, va="center", fontsize=12, color="tab:red")
    for j, header in enumerate(["Input"] + [c.title for c in columns]):
        box = axes[0, j].get_position()
        fig.text((box.x0 + box.x1) / 2, 1 - (head - 0.1 * _TEXT) / height, textwrap.fill(header, 20),
                 ha="center", va="bottom", fontsize=10, fontweight="bold")
    for i in range(n):
        ax = axes[i, 0]
        ax.imshow(images[i])
        _blank(ax)
        if labels[i] is not None:
            ax.set_title(str(labels[i]), fontsize=10, pad=3)
        for j, col in enumerate(columns, start=1):
            ax = axes[i, j]
            ax.imshow(overlay(images[i], col.cams[i]))
            _blank(ax)
            ax.text(0.5, -0.03, col.captions[i], transform=ax.transAxes, ha="center", va="top", fontsize=10)
    return fig


def gradcam_comparison(
    models: Sequence,
    images: Sequence[Image.Image],
    labels: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    target: int | None = None,
    stage: int = -1,
    titles: Sequence[str] | None = None,
) -> Figure:
    """Fig. 5 for ``models`` (:class:`cbam.viz.VizModel`) on ``images`` (PIL, RGB).

    Args:
        models: each brings its network, evaluation transform and label.
        images: the inputs; each model sees them through its own evaluation transform (all
            transforms must give the same size).
        labels: ground-truth class per image: written above the input and explained by every
            model, with P = its softmax score (as in the paper). ``None``: unknown, each model
            explains ``target`` or else its own top-1 class, named in the caption.
        class_names: names of the label indices (default: the indices).
        stage: Grad-CAM stage (index into ``feature_info``; -1 = last convolutional stage).
        titles: column titles (default: each model's label).

    Returns:
        the Figure (rows = images, columns = input + one per model); titled as untrained when any
        model has no trained weights.
    """
    if not models:
        raise ValueError("gradcam_comparison needs at least one model")
    titles = list(titles) if titles else [vm.label for vm in models]
    if len(titles) != len(models):
        raise ValueError(f"{len(titles)} titles for {len(models)} models")

    def name(k: int, names: Sequence[str] | None) -> str:
        return str(names[k]) if names is not None and k < len(names) else f"#{k}"

    display, columns = None, []
    for vm, title in zip(models, titles):
        batch = torch.stack([vm.transform(img) for img in images])  # (N, 3, H, W)
        if display is None:
            display = to_display(batch, vm.transform)
        elif batch.shape[-2:] != display.shape[1:3]:
            raise ValueError(f"model {vm.label!r} sees {tuple(batch.shape[-2:])} images, the first model "
                             f"{display.shape[1:3]}; compare models trained at the same image size")
        num_classes = vm.model.get_classifier().out_features
        if labels is not None:
            bad = [k for k in labels if not 0 <= int(k) < num_classes]
            if bad:
                raise ValueError(f"labels {bad} are not classes of model {vm.label!r} ({num_classes} outputs)")
            targets = list(labels)
        elif target is not None:
            if not 0 <= target < num_classes:
                raise ValueError(f"--target {target} is not a class of model {vm.label!r} ({num_classes} outputs)")
            targets = [target] * len(images)
        else:
            targets = None
        res = gradcam(vm.model, batch, targets, stage=stage)
        if labels is not None:
            captions = [f"P = {p:.4f}" for p in res.probs]
        else:
            captions = [f"{name(int(t), vm.classes)}: P = {p:.4f}" for t, p in zip(res.targets, res.probs)]
        columns.append(CamColumn(title, res.cams, captions))
    shown = [name(int(k), class_names) for k in labels] if labels is not None else None
    title = None if all(vm.trained for vm in models) else UNTRAINED_TITLE
    return gradcam_figure(display, columns, shown, title=title)


def attention_figure(
    image: np.ndarray,
    maps: Sequence[AttentionMaps],
    title: str | None = None,
    max_cols: int = 6,
) -> Figure:
    """Spatial attention M_s of each CBAM block over the image, and M_c of each block as a heat strip.

    Args:
        image: (H, W, 3) input in [0, 1].
        maps: :func:`cbam.viz.attention_maps.attention_maps` output for a batch of one image.
        title: optional figure title.
        max_cols: panels per row in the M_s grid.

    Each M_s is upsampled to the image and min-max scaled for display; its true range is printed
    in the panel's title. M_c strips use the absolute scale [0, 1].
    """
    if not maps:
        raise ValueError("attention_figure needs at least one block's maps")
    panels = 1 + len(maps)
    ncols = min(max_cols, panels)
    nrows = -(-panels // ncols)
    strip = 0.32  # inches per M_c strip
    head = _TEXT * (2 if title else 1)
    width = ncols * _PANEL
    panel = 0.96 * width / (ncols + 0.06 * (ncols - 1))  # drawn panel side, inches
    grid_h = nrows * (panel + _TEXT)
    strips_h = len(maps) * strip + 0.9
    height = head + grid_h + strips_h
    fig = Figure(figsize=(width, height))
    if title:
        fig.suptitle(title, y=1 - 0.5 * _TEXT / height, va="center", fontsize=12)
    top = 1 - head / height
    split = 1 - (head + grid_h) / height
    gs_img = fig.add_gridspec(nrows, ncols, left=0.02, right=0.98, top=top - _TEXT / height, bottom=split,
                              wspace=0.06, hspace=_TEXT / panel)
    gs_bar = fig.add_gridspec(len(maps), 1, left=0.28, right=0.86, top=split - 0.3 / height,
                              bottom=0.45 / height, hspace=0.25)
    for k in range(nrows * ncols):
        ax = fig.add_subplot(gs_img[k // ncols, k % ncols])
        _blank(ax)
        if k == 0:
            ax.imshow(image)
            ax.set_title("Input", fontsize=9)
        elif k < panels:
            a = maps[k - 1]
            m_s = a.m_s[0].float().numpy()
            lo, hi = float(m_s.min()), float(m_s.max())
            ax.imshow(overlay(image, (m_s - lo) / max(hi - lo, 1e-8)))
            ax.set_title(f"{a.name}\nM_s in [{lo:.2f}, {hi:.2f}]", fontsize=8)
        else:
            ax.set_visible(False)
    im = None
    for k, a in enumerate(maps):
        ax = fig.add_subplot(gs_bar[k, 0])
        m_c = a.m_c[0].float().numpy()[None]  # (1, C)
        im = ax.imshow(m_c, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_yticks([])
        ax.set_ylabel(f"{a.name} (C={m_c.shape[1]})", rotation=0, ha="right", va="center", fontsize=8)
        ax.set_xticks([])
    ax.set_xlabel("channel 0 .. C-1 of each block, left to right", fontsize=8)
    cax = fig.add_axes((0.89, 0.45 / height, 0.015, split - 0.75 / height))
    fig.colorbar(im, cax=cax).set_label("M_c", fontsize=8)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Save ``fig`` atomically at exactly ``path`` (parent folders created), in the format its suffix
    names (PNG without one); the image is ``figsize * dpi`` pixels."""
    path = check_output_file(path, force=True)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=path.suffix[1:].lower() or "png"))
