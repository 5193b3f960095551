"""Images for the figures: files, folders, scikit-learn's sample photos, and back from normalised tensors."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision import transforms as T

from .._optional import require
from ..data.folder import load_rgb

__all__ = ["IMAGE_SUFFIXES", "image_files", "load_image", "sample_images", "to_display"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def image_files(paths: Sequence[str | Path]) -> list[Path]:
    """Expand files and folders (their image files, sorted, not recursive) into a list of files.

    Raises:
        FileNotFoundError: a path does not exist, or a folder holds no image file.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not found:
                raise FileNotFoundError(f"image folder {str(p)!r} holds no image file ({', '.join(IMAGE_SUFFIXES)})")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"image {str(p)!r} does not exist")
    return files


def load_image(path: str | Path) -> Image.Image:
    """Read an image file as RGB (:func:`cbam.data.folder.load_rgb`: 16-bit images scaled, float ones
    refused); raises ``CorruptImageError`` (a ValueError) naming the file if it cannot be decoded."""
    return load_rgb(path)


def sample_images() -> tuple[list[Image.Image], list[str]]:
    """scikit-learn's bundled photos (china.jpg, flower.jpg) and their names; no download."""
    data = require("sklearn.datasets", "train", "the sample photos").load_sample_images()
    return [Image.fromarray(a) for a in data.images], [Path(f).name for f in data.filenames]


def to_display(batch: Tensor, transform: Callable | None = None) -> np.ndarray:
    """Undo the ``Normalize`` step of ``transform`` (a torchvision ``Compose``; none: identity).

    Args:
        batch: (N, 3, H, W) normalised images.

    Returns:
        (N, H, W, 3) float32 in [0, 1], for display.
    """
    steps = getattr(transform, "transforms", [transform])
    norm = next((t for t in steps if isinstance(t, T.Normalize)), None)
    x = batch.detach().float().cpu()
    if norm is not None:
        mean = torch.as_tensor(norm.mean, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.as_tensor(norm.std, dtype=x.dtype).view(1, -1, 1, 1)
        x = x * std + mean
    return x.clamp(0, 1).permute(0, 2, 3, 1).numpy()
