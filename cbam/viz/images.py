"""Images for the figures: files, folders, scikit-learn's sample photos; resize, crop, normalise."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torchvision.transforms import functional as TF

__all__ = ["IMAGE_SUFFIXES", "image_files", "load_image", "sample_images", "prepare"]

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
    """Read an image file as RGB; raises ValueError naming the file if it cannot be decoded."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read image {str(path)!r}: {err}") from None


def sample_images() -> tuple[list[Image.Image], list[str]]:
    """scikit-learn's bundled photos (china.jpg, flower.jpg) and their names; no download."""
    from sklearn.datasets import load_sample_images

    data = load_sample_images()
    return [Image.fromarray(a) for a in data.images], [Path(f).name for f in data.filenames]


def prepare(
    images: Sequence[Image.Image],
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> tuple[np.ndarray, Tensor]:
    """Resize the shorter side to ``size``, centre-crop ``size`` x ``size``, normalise.

    Returns:
        display: (N, size, size, 3) float32 in [0, 1], what the figures show.
        batch: (N, 3, size, size) normalised with ``mean`` / ``std``, what the models see.
    """
    crops = [TF.center_crop(TF.resize(TF.to_tensor(img), size, antialias=True), size) for img in images]
    display = torch.stack(crops).clamp(0, 1)  # (N, 3, size, size)
    batch = TF.normalize(display, list(mean), list(std))
    return display.permute(0, 2, 3, 1).numpy(), batch
