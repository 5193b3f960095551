"""Named difficulty settings of the embedded Cluttered Digits (object size, clutter, noise)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cbam.data import embedded as E


def _outside_box_mean(root, split="val") -> float:
    """Mean pixel value outside the object boxes: clutter plus noise."""
    values = []
    for name, (x0, y0, x1, y1) in E.load_boxes(root, split).items():
        img = np.asarray(Image.open(root / split / name), dtype=np.float64) / 255
        mask = np.ones_like(img, dtype=bool)
        mask[y0:y1, x0:x1] = False
        values.append(img[mask].mean())
    return float(np.mean(values))


def test_difficulties_are_recorded_and_differ_in_clutter(tmp_path):
    roots = {d: E.build_embedded(tmp_path / d, train_per_class=1, val_per_class=4, difficulty=d) for d in E.DIFFICULTIES}
    for name, root in roots.items():
        meta = E.load_meta(root)
        assert meta["difficulty"] == name
        assert meta["n_clutter"] == E.DIFFICULTIES[name]["n_clutter"]
        assert meta["noise_std"] == E.DIFFICULTIES[name]["noise_std"]
    assert E.load_meta(roots["medium"])["object_size"] == [16, 32]  # the default dataset's values
    clutter = {name: _outside_box_mean(root) for name, root in roots.items()}
    assert clutter["easy"] < clutter["medium"] < clutter["hard"]


def test_object_sizes_scale_with_the_canvas_and_overrides_are_custom(tmp_path):
    root = E.build_embedded(tmp_path / "big", canvas_size=128, train_per_class=1, val_per_class=1)
    assert E.load_meta(root)["object_size"] == [32, 64]
    custom = E.build_embedded(tmp_path / "custom", train_per_class=1, val_per_class=1, difficulty="hard", n_clutter=3)
    meta = E.load_meta(custom)
    assert meta["difficulty"] == "custom" and meta["n_clutter"] == 3 and meta["noise_std"] == 0.12
    with pytest.raises(ValueError, match=r"difficulty must be one of \['easy', 'hard', 'medium'\], got 'brutal'"):
        E.build_embedded(tmp_path / "x", difficulty="brutal")
