"""cbam.data: the embedded Cluttered Digits dataset, ImageNet-style folders, CIFAR pickles, bad input."""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Subset

from cbam.data import (
    DATA_STATS,
    DEFAULT_EMBEDDED_ROOT,
    CIFARDataset,
    CorruptImageError,
    DataSpec,
    build_dataset,
    build_transforms,
    parse_data,
)
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
    assert meta["version"] == E.GENERATOR_VERSION and meta["seed"] == 0 and meta["canvas_size"] == 64
    with Image.open(root / "samples.png") as grid:
        assert grid.mode == "P" and grid.size[0] > 64 * 10
    with Image.open(root / "train" / "3" / "3_00000.png") as img:
        assert img.size == (64, 64) and img.mode == "L"


def test_embedded_deterministic(tmp_path, tiny_embedded):
    again = E.build_embedded(tmp_path / "again", **TINY)
    assert _files(again) == _files(tiny_embedded)
    other = E.build_embedded(tmp_path / "other", seed=1, **TINY)
    a, b = _files(tiny_embedded), _files(other)
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a if k.endswith(".png"))


def test_embedded_skip_and_refuse_other_parameters(tmp_path):
    root = E.build_embedded(tmp_path / "d", train_per_class=1, val_per_class=1)
    stamp = (root / "meta.json").stat().st_mtime_ns
    assert E.build_embedded(root, train_per_class=1, val_per_class=1) == root
    assert (root / "meta.json").stat().st_mtime_ns == stamp  # same parameters: skipped
    with pytest.raises(ValueError, match=r"built with other parameters \(train_per_class: \[1\], asked for \[2\]\)"):
        E.build_embedded(root, train_per_class=2, val_per_class=1)  # other parameters: refused, never rebuilt
    assert json.loads((root / "meta.json").read_text())["train_per_class"] == 1
    assert (root / "meta.json").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == [".d.lock", "d"]  # no temporary folders left


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


# ---- helpers writing tiny copies of the real formats ----------------------------------------------
def _write_image_folder(root, classes=("cat", "dog"), per_class=3, size=20):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in classes:
            (root / split / cls).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (size, size + 4, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


def _dump(path, obj, protocol=2):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def _write_cifar(root, num_classes, n_train=6, n_val=4):
    rng = np.random.default_rng(num_classes)
    if num_classes == 10:
        base = root / "cifar-10-batches-py"
        base.mkdir(parents=True)
        for i in range(1, 6):
            _dump(base / f"data_batch_{i}", {b"batch_label": b"training batch", b"labels": [(i + j) % 10 for j in range(n_train)],
                                            b"data": rng.integers(0, 256, (n_train, 3072), dtype=np.uint8),
                                            b"filenames": [b"x.png"] * n_train})
        _dump(base / "test_batch", {b"labels": list(range(n_val)), b"data": rng.integers(0, 256, (n_val, 3072), dtype=np.uint8)})
        _dump(base / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_vis": 3072})
    else:
        base = root / "cifar-100-python"
        base.mkdir(parents=True)
        for name, n in (("train", n_train), ("test", n_val)):
            _dump(base / name, {b"fine_labels": [99 - j for j in range(n)], b"coarse_labels": [0] * n,
                                b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}, protocol=4)
        _dump(base / "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                              b"coarse_label_names": [b"c"] * 20}, protocol=5)
    return base


# ---- --data parsing and datasets -------------------------------------------------------------------
def test_parse_data(tmp_path):
    assert parse_data("embedded") == DataSpec("embedded", DEFAULT_EMBEDDED_ROOT)
    assert parse_data(f"embedded:{tmp_path}") == DataSpec("embedded", tmp_path)
    assert parse_data(f"cifar10:{tmp_path}") == DataSpec("cifar10", tmp_path)
    assert parse_data(f"cifar100:{tmp_path}") == DataSpec("cifar100", tmp_path)
    assert parse_data(str(tmp_path)) == DataSpec("imagefolder", tmp_path)
    assert parse_data(f"folder:{tmp_path}") == DataSpec("imagefolder", tmp_path)
    with pytest.raises(ValueError, match="unknown scheme 'mnist'"):
        parse_data(f"mnist:{tmp_path}")
    with pytest.raises(ValueError, match="folder is required"):
        parse_data("cifar10:")
    with pytest.raises(ValueError, match="--data"):
        parse_data("")


def test_build_dataset_embedded(tiny_embedded):
    train = build_dataset(f"embedded:{tiny_embedded}", "train")
    val = build_dataset(f"embedded:{tiny_embedded}", "val")
    assert (len(train), len(val)) == (30, 20)
    assert train.classes == val.classes == list(E.CLASSES) and val.num_classes == 10 and val.kind == "embedded"
    x, y = val[7]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and y == 3
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])  # grayscale as RGB
    boxes = E.load_boxes(tiny_embedded, "val")
    assert val.sample_box(7) == val.boxes[7] == boxes["3/3_00001.png"]
    assert val.samples[7][0].endswith("3_00001.png")
    # the eval transform is deterministic, the training one augments
    assert torch.equal(val[7][0], val[7][0])
    torch.manual_seed(0)
    assert not all(torch.equal(train[0][0], train[0][0]) for _ in range(3))


def test_build_dataset_builds_missing_embedded(tmp_path, monkeypatch):
    calls = []
    real = E.build_embedded

    def tiny_build(root, **kw):
        calls.append(kw)
        return real(root, **TINY)

    monkeypatch.setattr("cbam.data.datasets.build_embedded", tiny_build)
    ds = build_dataset(f"embedded:{tmp_path / 'new'}", "val")
    assert len(ds) == 20 and calls == [{}]
    build_dataset(f"embedded:{tmp_path / 'new'}", "train")
    assert len(calls) == 1  # built once, then reused


def test_build_dataset_image_folder(tmp_path):
    root = _write_image_folder(tmp_path / "imnet")
    (root / "val" / "dog").rename(root / "val" / "zz_removed")  # val may lack a class, not add one
    with pytest.raises(ValueError, match="zz_removed"):
        build_dataset(str(root), "val")
    (root / "val" / "zz_removed").rename(root / "val" / "dog")
    train = build_dataset(str(root), "train")
    val = build_dataset(f"folder:{root}", "val")
    assert train.classes == ["cat", "dog"] and train.num_classes == 2 and train.kind == "imagefolder"
    assert len(train) == len(val) == 6
    x, y = val[4]
    assert x.shape == (3, 224, 224) and y == 1
    x, _ = build_dataset(str(root), "train", image_size=32)[0]
    assert x.shape == (3, 32, 32)
    shutil.rmtree(root / "val" / "cat")
    val = build_dataset(str(root), "val")
    assert val.classes == ["cat", "dog"] and set(val.targets) == {1}  # labels follow the training split


@pytest.mark.parametrize("num_classes", [10, 100])
@pytest.mark.parametrize("pass_inner", [False, True])
def test_build_dataset_cifar(tmp_path, num_classes, pass_inner):
    base = _write_cifar(tmp_path, num_classes)
    root = base if pass_inner else tmp_path
    train = build_dataset(f"cifar{num_classes}:{root}", "train")
    val = build_dataset(f"cifar{num_classes}:{root}", "val")
    assert train.num_classes == len(train.classes) == num_classes and train.kind == f"cifar{num_classes}"
    assert len(train) == (30 if num_classes == 10 else 6) and len(val) == 4
    assert train.classes[3] == ("c3" if num_classes == 10 else "f3")
    x, y = val[2]
    assert x.shape == (3, 32, 32) and y == (2 if num_classes == 10 else 97)
    raw = CIFARDataset(root, "val", num_classes)
    name = "test_batch" if num_classes == 10 else "test"
    with open(base / name, "rb") as f:
        flat = pickle.load(f, encoding="bytes")[b"data"][2]
    assert np.array_equal(np.asarray(raw[2][0]), flat.reshape(3, 32, 32).transpose(1, 2, 0))  # R, G, B planes


def test_transforms():
    img = Image.fromarray(np.full((64, 64), 128, np.uint8)).convert("RGB")
    x = build_transforms("embedded", train=False)(img)
    mean, std = DATA_STATS["embedded"]
    assert x.shape == (3, 64, 64) and torch.allclose(x, torch.full_like(x, (128 / 255 - mean[0]) / std[0]))
    assert build_transforms("embedded", train=True)(img).shape == (3, 64, 64)
    assert build_transforms("embedded", train=False, image_size=32, stored_size=64)(img).shape == (3, 32, 32)
    big = Image.fromarray(np.zeros((300, 400, 3), np.uint8))
    assert build_transforms("imagefolder", train=True)(big).shape == (3, 224, 224)
    assert build_transforms("imagefolder", train=False)(big).shape == (3, 224, 224)
    small = Image.fromarray(np.zeros((32, 32, 3), np.uint8))
    assert build_transforms("cifar100", train=True)(small).shape == (3, 32, 32)
    with pytest.raises(ValueError, match="kind must be one of"):
        build_transforms("mnist", train=True)


# ---- bad input ------------------------------------------------------------------------------------
def test_bad_image_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"data folder '{tmp_path / 'nope'}' does not exist"):
        build_dataset(str(tmp_path / "nope"), "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'empty'} is empty"):
        build_dataset(str(tmp_path / "empty"), "train")
    root = _write_image_folder(tmp_path / "d")
    shutil.rmtree(root / "val")
    with pytest.raises(FileNotFoundError, match=f"missing folder {root / 'val'}"):
        build_dataset(str(root), "train")
    shutil.rmtree(root / "train")
    (root / "val").mkdir()
    with pytest.raises(FileNotFoundError, match=f"missing folder {root / 'train'}"):
        build_dataset(str(root), "val")
    root = _write_image_folder(tmp_path / "e")
    for f in (root / "train" / "dog").iterdir():
        f.unlink()
    (root / "train" / "dog" / "notes.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match=f"class folder {root / 'train' / 'dog'} has no images"):
        build_dataset(str(root), "train")
    root = tmp_path / "f"
    (root / "train").mkdir(parents=True)
    (root / "val").mkdir()
    with pytest.raises(FileNotFoundError, match=f"no class folders in {root / 'train'}"):
        build_dataset(str(root), "val")


def _corrupt(root):
    bad = root / "train" / "dog" / "1.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated PNG
    junk = root / "train" / "cat" / "9.jpg"
    junk.write_bytes(b"not an image at all")
    return bad, junk


def test_corrupt_image_named(tmp_path):
    root = _write_image_folder(tmp_path / "d")
    bad, junk = _corrupt(root)
    ds = build_dataset(str(root), "train")
    assert len(ds) == 7
    index = [p for p, _ in ds.samples].index(str(bad))
    with pytest.raises(CorruptImageError, match=re.escape(str(bad))):
        ds[index]
    # in a DataLoader worker: re-raised in the main process with the file's name
    loader = DataLoader(Subset(ds, [index]), batch_size=1, num_workers=1)
    with pytest.raises(CorruptImageError, match=re.escape(str(bad))):
        next(iter(loader))


def test_skip_corrupt(tmp_path):
    root = _write_image_folder(tmp_path / "d")
    bad, junk = _corrupt(root)
    with pytest.warns(UserWarning, match="skipped 2 corrupt image file"):
        ds = build_dataset(str(root), "train", skip_corrupt=True)
    assert len(ds) == 5 and sorted(ds.skipped) == sorted([str(bad), str(junk)])
    assert len(ds.targets) == 5 and all(ds[i][0].shape == (3, 224, 224) for i in range(len(ds)))


def test_embedded_corrupt_and_missing_box(tmp_path):
    root = E.build_embedded(tmp_path / "emb", train_per_class=2, val_per_class=1)
    (root / "val" / "4" / "4_00000.png").write_bytes(b"\x89PNG broken")
    with pytest.warns(UserWarning, match="skipped 1 corrupt"):
        ds = build_dataset(f"embedded:{root}", "val", skip_corrupt=True)
    assert len(ds) == len(ds.boxes) == 9 and ds.sample_box(4) == E.load_boxes(root, "val")["5/5_00000.png"]
    extra = root / "val" / "4" / "4_00009.png"
    shutil.copy(root / "val" / "5" / "5_00000.png", extra)
    with pytest.raises(ValueError, match="no box for val/4/4_00009.png"):
        build_dataset(f"embedded:{root}", "val")


def test_bad_cifar(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_dataset(f"cifar10:{tmp_path / 'nope'}", "train")
    base = _write_cifar(tmp_path, 10)
    (base / "data_batch_3").unlink()
    (base / "batches.meta").unlink()
    with pytest.raises(FileNotFoundError, match=f"{base} lacks data_batch_3, batches.meta"):
        build_dataset(f"cifar10:{tmp_path}", "train")
    base = _write_cifar(tmp_path / "c100", 100)
    _dump(base / "test", {b"fine_labels": [1], b"data": np.zeros((1, 100), np.uint8)})
    with pytest.raises(ValueError, match=r"test: expected b'data' uint8 \(N, 3072\)"):
        build_dataset(f"cifar100:{base}", "val")
    (base / "test").write_bytes(pickle.dumps({b"fine_labels": [1], b"data": _Evil()}))
    with pytest.raises(ValueError, match="refusing to load"):
        build_dataset(f"cifar100:{base}", "val")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_bad_split_and_scheme(tmp_path):
    with pytest.raises(ValueError, match="split must be 'train' or 'val'"):
        build_dataset("embedded", "test")
    with pytest.raises(ValueError, match="unknown scheme 'imagenet'"):
        build_dataset("imagenet:/data/imagenet", "train")
