"""cbam.data: the embedded Cluttered Digits dataset, ImageNet-style folders, CIFAR pickles, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cbam.data import embedded as E

TINY = dict(train_per_class=3, val_per_class=2)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_embedded(tmp_path_factory):
    return E.build_embedded(tmp_path_factory.mktemp("emb") / "embedded", **TINY)


# ---- embedded ----------------------------------------------------------------------------------
def test_embedded_layout(tiny_embedded):
    root = tiny_embedded
    for split, per_class in (("train", 3), ("val", 2)):
        assert sorted(p.name for p in (root / split).iterdir()) == list(E.CLASSES)
        for cls in E.CLASSES:
            assert len(list((root / split / cls).glob("*.png"))) == per_class
        boxes = E.load_boxes(root, split)
        assert len(boxes) == 10 * per_class
        assert all((root / split / name).is_file() for name in boxes)
    meta = json.loads((root / "meta.json").read_text())
    assert meta["version"] == E.GENERATOR_VERSION and meta["seed"] == 0 and meta["image_size"] == 64
    with Image.open(root / "samples.png") as grid:
        assert grid.mode == "RGB" and grid.size[0] > 64 * 10
    with Image.open(root / "train" / "3" / "3_00000.png") as img:
        assert img.size == (64, 64) and img.mode == "L"


def test_embedded_deterministic(tmp_path, tiny_embedded):
    again = E.build_embedded(tmp_path / "again", **TINY)
    assert _files(again) == _files(tiny_embedded)
    other = E.build_embedded(tmp_path / "other", seed=1, **TINY)
    a, b = _files(tiny_embedded), _files(other)
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a if k.endswith(".png"))


def test_embedded_skip_and_rebuild(tmp_path):
    root = E.build_embedded(tmp_path / "d", train_per_class=1, val_per_class=1)
    stamp = (root / "meta.json").stat().st_mtime_ns
    marker = root / "train" / "0" / "0_00000.png"
    assert E.build_embedded(root, train_per_class=1, val_per_class=1) == root
    assert (root / "meta.json").stat().st_mtime_ns == stamp  # same parameters: skipped
    E.build_embedded(root, train_per_class=2, val_per_class=1)  # other parameters: rebuilt
    assert json.loads((root / "meta.json").read_text())["train_per_class"] == 2
    assert len(E.load_boxes(root, "train")) == 20 and marker.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no temporary folders left


def test_embedded_refuses_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not an embedded dataset"):
        E.build_embedded(tmp_path, **TINY)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_sources_disjoint_and_stratified():
    splits = {s: E.source_indices(s, seed=0) for s in ("train", "val", "test")}
    all_idx = np.concatenate(list(splits.values()))
    assert len(all_idx) == len(set(all_idx.tolist())) == 1797
    assert not set(splits["train"]) & set(splits["val"])
    for split, idx in splits.items():
        digits, labels = E.digit_sources(split, seed=0)
        assert digits.shape == (len(idx), 8, 8) and digits.dtype == np.float32
        assert 0.0 <= digits.min() and digits.max() <= 1.0
        counts = np.bincount(labels, minlength=10)
        assert counts.min() >= 0.9 * E.SPLIT_FRACTIONS[split] * 1797 / 10 - 2  # stratified
    assert not np.array_equal(E.source_indices("val", seed=0), E.source_indices("val", seed=1))
    with pytest.raises(ValueError, match="split must be one of"):
        E.digit_sources("dev")


def test_render_digit_box_is_tight():
    digits, _ = E.digit_sources("val")
    rng = np.random.default_rng(0)
    for i in range(20):
        canvas = np.zeros((64, 64), np.float32)
        place = E.random_box(rng, 64, (16, 32))
        x0, y0, x1, y1 = E.render_digit(canvas, digits[i], place, rng)
        ys, xs = np.nonzero(canvas >= E.BOX_THRESHOLD)
        assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert place[0] <= x0 < x1 <= place[2] and place[1] <= y0 < y1 <= place[3]


def test_random_box_avoids_and_clutter_stays_outside():
    digits, _ = E.digit_sources("train")
    rng = np.random.default_rng(1)
    boxes = []
    for _ in range(4):
        boxes.append(E.random_box(rng, 96, (16, 24), avoid=boxes))
    for a in boxes:
        for b in boxes:
            assert a is b or not E._overlaps(a, b)
    canvas = np.zeros((96, 96), np.float32)
    assert E.add_clutter(canvas, digits, rng, n=12, avoid=boxes) > 0
    for x0, y0, x1, y1 in boxes:
        assert canvas[y0:y1, x0:x1].max() == 0.0
    with pytest.raises(ValueError, match="does not fit"):
        E.random_box(rng, 20, (16, 32))


def test_embedded_boxes_match_object(tmp_path):
    root = E.build_embedded(tmp_path / "clean", noise_std=0.0, **TINY)
    for split in ("train", "val"):
        for name, (x0, y0, x1, y1) in E.load_boxes(root, split).items():
            assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
            assert 4 <= x1 - x0 <= 32 and 8 <= y1 - y0 <= 32
            with Image.open(root / split / name) as img:
                inside = np.asarray(img, np.float32)[y0:y1, x0:x1] / 255
            on = inside >= E.BOX_THRESHOLD - 1 / 255
            assert on[0].any() and on[-1].any() and on[:, 0].any() and on[:, -1].any()  # tight
            assert on.mean() > 0.15  # a digit, not a speck
