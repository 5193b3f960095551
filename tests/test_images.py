"""Image decoding of the folder datasets: bit depths PIL would convert wrongly."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cbam.data import CorruptImageError, ImageFolderDataset


def _folder(tmp_path, image: Image.Image, name: str = "a.png"):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    image.save(tmp_path / "train" / "cat" / name)
    return ImageFolderDataset(tmp_path / "train")


def test_16_bit_grey_is_scaled_not_saturated(tmp_path):
    grey = np.full((4, 5), 20000, dtype=np.uint16)
    grey[0, 0], grey[0, 1] = 0, 65535
    image, label = _folder(tmp_path, Image.fromarray(grey))[0]
    rgb = np.asarray(image)
    assert image.mode == "RGB" and label == 0
    assert rgb[1, 1].tolist() == [78, 78, 78]  # 20000 * 255 / 65535 = 77.8, not 255
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 1].tolist() == [255, 255, 255]


def test_float_images_are_refused_with_the_file_named(tmp_path):
    dataset = _folder(tmp_path, Image.fromarray(np.full((4, 5), 0.5, dtype=np.float32)), "a.tiff")
    with pytest.raises(CorruptImageError, match=r"a\.tiff: 32-bit float images are not supported"):
        dataset[0]
