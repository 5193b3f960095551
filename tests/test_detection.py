"""Detection: metrics against hand-computed cases, both dataset formats, bad input, detectors and the engine."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from cbam.cli import main
from cbam.data import (
    CocoDetectionDataset,
    DetectionAugment,
    VOCDetectionDataset,
    build_detection_dataset,
    build_embedded_detection,
    embedded_detection_dataset,
)
from cbam.detection.backbone import load_backbone_weights
from cbam.detection.faster_rcnn import faster_rcnn
from cbam.detection.metrics import coco_map, voc07_map
from cbam.detection.ssd import ssd
from cbam.detection.stairnet import stairnet
from cbam.experiments.config import load_detect_config
from cbam.experiments.detection import evaluate, train
from cbam.models import create_model
from cbam.models.profile import count_params

from _ddp import rank_saving_script

pytestmark = pytest.mark.usefixtures("one_thread")


def _t(boxes, labels, difficult=None, size=(100, 100)):
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    difficult = torch.zeros(len(boxes), dtype=torch.bool) if difficult is None else torch.as_tensor(difficult)
    return {"boxes": boxes, "labels": torch.as_tensor(labels, dtype=torch.int64), "difficult": difficult, "size": size}


def _p(boxes, scores, labels):
    return {"boxes": torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "scores": torch.as_tensor(scores, dtype=torch.float32), "labels": torch.as_tensor(labels, dtype=torch.int64)}


# ---- metrics -------------------------------------------------------------------------------------
G1, G2, G3 = [10, 10, 50, 50], [60, 60, 90, 90], [20, 20, 60, 70]


def _voc_case(g2_difficult: bool):
    targets = [_t([G1, G2], [1, 1], [False, g2_difficult]), _t([G3], [1])]
    preds = [
        _p([G1, G2, [0, 70, 20, 95], [11, 11, 50, 50]], [0.9, 0.8, 0.7, 0.6], [1, 1, 1, 1]),  # TP, G2, FP, duplicate
        _p([[21, 20, 60, 70]], [0.5], [1]),  # TP
    ]
    return preds, targets


def test_voc07_ap_hand_computed_with_difficult():
    # G2 difficult: ranked TP, (ignored), FP, FP, TP with 2 positives -> recall .5 .5 .5 1, precision 1 .5 .33 .5;
    # 11-point AP = (6 x 1.0 + 5 x 0.5) / 11.
    preds, targets = _voc_case(g2_difficult=True)
    assert voc07_map(preds, targets, 1)["map"] == pytest.approx(8.5 / 11)
    # G2 an ordinary object: TP TP FP FP TP, 3 positives -> recall 1/3 2/3 2/3 2/3 1, precision 1 1 .67 .5 .6;
    # AP = (7 x 1.0 + 4 x 0.6) / 11.
    preds, targets = _voc_case(g2_difficult=False)
    assert voc07_map(preds, targets, 1)["map"] == pytest.approx(9.4 / 11)


def test_voc07_iou_must_exceed_half_and_classes_average():
    # [0, 0, 10, 10] vs [0, 0, 20, 10]: IoU exactly 0.5 -> false positive (the devkit tests ovmax > 0.5).
    targets = [_t([[0, 0, 20, 10], [50, 50, 80, 80]], [1, 2])]
    preds = [_p([[0, 0, 10, 10], [50, 50, 80, 80]], [0.9, 0.9], [1, 2])]
    out = voc07_map(preds, targets, 3)
    assert out["ap"][0] == 0.0 and out["ap"][1] == pytest.approx(1.0) and math.isnan(out["ap"][2])
    assert out["map"] == pytest.approx(0.5)


@pytest.mark.parametrize("metric", ["voc07", "coco"])
def test_perfect_and_empty_predictions(metric):
    targets = [_t([G1, G2], [1, 2]), _t([G3, [5, 5, 30, 30]], [2, 1], [False, True]), _t([], [])]
    perfect = [_p(t["boxes"][~t["difficult"]], [1.0] * int((~t["difficult"]).sum()), t["labels"][~t["difficult"]])
               for t in targets]
    empty = [_p([], [], []) for _ in targets]
    if metric == "voc07":
        assert voc07_map(perfect, targets, 2)["map"] == pytest.approx(1.0)
        assert voc07_map(empty, targets, 2)["map"] == 0.0
    else:
        assert coco_map(perfect, targets, 2) == pytest.approx({"map": 1.0, "map_50": 1.0, "map_75": 1.0})
        assert coco_map(empty, targets, 2) == {"map": 0.0, "map_50": 0.0, "map_75": 0.0}


def test_coco_map_half_recall():
    # One of two objects found exactly: precision 1 up to recall 0.5, so the 101-point AP is 51 / 101.
    targets = [_t([G1, G2], [1, 1])]
    out = coco_map([_p([G1], [0.9], [1])], targets, 1)
    assert out["map"] == pytest.approx(51 / 101) and out["map_50"] == pytest.approx(51 / 101)


# ---- datasets ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def embedded_root(tmp_path_factory):
    return build_embedded_detection(tmp_path_factory.mktemp("det") / "emb", canvas_size=64, train_images=8,
                                    val_images=4, test_images=4, object_size=(12, 24), n_clutter=3)


def test_embedded_coco_and_voc_load_identically(embedded_root):
    for split in ("train", "val", "test"):
        coco = embedded_detection_dataset(embedded_root, split, "coco")
        voc = embedded_detection_dataset(embedded_root, split, "voc")
        assert len(coco) == len(voc) > 0 and coco.classes == voc.classes == tuple("0123456789")
        assert coco.stats == voc.stats and coco.stats["objects"] >= len(coco)
        for i in range(len(coco)):
            (ic, tc), (iv, tv) = coco[i], voc[i]
            assert ic.shape == (3, 64, 64) and torch.equal(ic, iv)
            for key in ("boxes", "labels", "difficult"):
                assert torch.equal(tc[key], tv[key]), key
    assert build_embedded_detection(embedded_root, canvas_size=64, train_images=8, val_images=4, test_images=4,
                                    object_size=(12, 24), n_clutter=3) == embedded_root  # same meta: not rebuilt
    with pytest.raises(ValueError, match=r"built with other parameters \(images: .*it is not touched"):
        build_embedded_detection(embedded_root, canvas_size=64, train_images=9, val_images=4, test_images=4,
                                 object_size=(12, 24), n_clutter=3)


def test_embedded_splits_use_disjoint_sources(embedded_root):
    meta = json.loads((embedded_root / "meta.json").read_text())
    assert meta["images"] == {"train": 8, "val": 4, "test": 4}
    ids = (embedded_root / "VOCdevkit/VOC2007/ImageSets/Main/trainval.txt").read_text().split()
    assert ids[:8] == [f"train_{i:06d}" for i in range(8)] and len(ids) == 12


def _write_voc(root, objects, *, width=50, height=40, year="2007", image_id="000001"):
    from PIL import Image

    base = root / "VOCdevkit" / f"VOC{year}"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height)).save(base / "JPEGImages" / f"{image_id}.jpg")
    objs = "".join(
        f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for n, b, d in objects)
    (base / "Annotations" / f"{image_id}.xml").write_text(
        f"<annotation><size><width>{width}</width><height>{height}</height></size>{objs}</annotation>")
    with open(base / "ImageSets/Main/trainval.txt", "a") as f:
        f.write(image_id + "\n")
    return root / "VOCdevkit"


def test_voc_loader_keeps_difficult_clips_and_drops(tmp_path):
    root = _write_voc(tmp_path, [
        ("dog", (1, 1, 10, 10), 0), ("cat", (5, 5, 20, 30), 1),
        ("dog", (40, 30, 70, 60), 0),  # partly outside the 50 x 40 image: clipped
        ("cat", (60, 10, 80, 20), 0),  # wholly outside: zero area after clipping, dropped
        ("cat", (7, 7, 6, 9), 0),  # xmax < xmin - 1: negative width, dropped
    ])
    _write_voc(tmp_path, [], image_id="000002")  # an image without objects
    with pytest.warns(UserWarning, match="clipped 1 box.*dropped 2"):
        ds = VOCDetectionDataset(root, ["2007"], "trainval")
    assert ds.stats == {"images": 2, "objects": 3, "clipped": 1, "dropped": 2, "difficult": 1, "empty_images": 1}
    _, t = ds[0]
    assert t["boxes"].tolist() == [[0, 0, 10, 10], [4, 4, 20, 30], [39, 29, 50, 40]]
    assert t["labels"].tolist() == [12, 8, 12] and t["difficult"].tolist() == [False, True, False]
    image, t = ds[1]
    assert image.shape == (3, 40, 50) and t["boxes"].shape == (0, 4)
    with pytest.warns(UserWarning):
        train_ds = VOCDetectionDataset(root, ["2007"], "trainval", keep_difficult=False)
    assert train_ds.stats["objects"] == 2 and train_ds.stats["difficult"] == 0


def test_unknown_class_names_and_ids(tmp_path):
    root = _write_voc(tmp_path, [("unicorn", (1, 1, 10, 10), 0)])
    with pytest.raises(ValueError, match="unknown class name 'unicorn'.*valid names"):
        VOCDetectionDataset(root, ["2007"], "trainval")
    ann = {"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [0, 0, 5, 5]}],
           "categories": [{"id": 1, "name": "dog"}]}
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    with pytest.raises(ValueError, match="unknown category_id 7; valid ids are \\[1\\]"):
        CocoDetectionDataset(tmp_path, tmp_path / "ann.json")
    with pytest.raises(FileNotFoundError, match="image set"):
        VOCDetectionDataset(root, ["2012"], "trainval")


def test_augment_keeps_boxes_labels_and_flags_aligned():
    torch.manual_seed(0)
    target = _t([[10, 10, 40, 50], [60, 20, 110, 90]], [1, 2], [False, True], size=(100, 120))
    target["image_id"] = 0
    for _ in range(10):
        image, out = DetectionAugment("ssd")(torch.rand(3, 100, 120), target)
        assert len(out["boxes"]) == len(out["labels"]) == len(out["difficult"])
        assert out["size"] == tuple(image.shape[-2:])
        for label, flag in zip(out["labels"].tolist(), out["difficult"].tolist()):
            assert flag == (label == 2)


# ---- backbones and parameter counts --------------------------------------------------------------
def test_backbone_weights_report_and_mismatch(tmp_path):
    plain = create_model("resnet18")
    save_file(plain.state_dict(), str(tmp_path / "r18.safetensors"))
    model = create_model("resnet18", attention="cbam")
    report = load_backbone_weights(model, tmp_path / "r18.safetensors")
    assert report["missing"] and all(".attn." in k for k in report["missing"])
    assert len(report["loaded"]) == len([k for k in plain.state_dict() if not k.startswith("head.")])
    assert torch.equal(model.conv1.weight, plain.conv1.weight) and not report["unexpected"]
    with pytest.raises(ValueError, match="does not match resnet50: .*shape mismatch"):
        load_backbone_weights(create_model("resnet50"), tmp_path / "r18.safetensors")
    save_file({"foo.weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="none of its 1 keys"):
        load_backbone_weights(create_model("resnet18"), tmp_path / "other.safetensors")
    with pytest.raises(FileNotFoundError):
        load_backbone_weights(create_model("resnet18"), tmp_path / "missing.safetensors")


def test_frozen_bn_and_trainable_stages():
    model = faster_rcnn(3, "resnet18", "cbam", frozen_bn=True, trainable_stages=2, min_size=64, max_size=64)
    body = model.backbone.body.body
    assert not any(isinstance(m, nn.BatchNorm2d) for m in body.modules())
    assert not body.conv1.weight.requires_grad and not body.layer2[0].conv1.weight.requires_grad
    assert body.layer3[0].conv1.weight.requires_grad and body.layer4[0].attn.channel.fc1.weight.requires_grad
    with pytest.raises(ValueError, match="trainable_stages must be in \\[0, 5\\]"):
        faster_rcnn(3, "resnet18", trainable_stages=6)


def _attention_params(model):
    return sum(p.numel() for n, p in model.named_parameters() if ".attn." in n or n.startswith("attn."))


def test_detector_parameter_counts_with_and_without_attention():
    # MobileNet SSD / StairNet at 20 VOC classes (paper Table 7: 5.81 / 5.98 / 5.99 / 6.00 M).
    counts = {(det, att): count_params(f(20, "mobilenet_v1", att)) for det, f in (("ssd", ssd), ("stairnet", stairnet))
              for att in (None, "se", "cbam")}
    assert counts[("ssd", None)] == 5789614 and counts[("stairnet", None)] == 5954606
    # SE on six 128-channel maps: 6 x (2 x 128 x 8 + 8 + 128); CBAM adds a 7x7x2 conv + bias per map.
    assert counts[("stairnet", "se")] - counts[("stairnet", None)] == 6 * (2 * 128 * 8 + 8 + 128)
    assert counts[("stairnet", "cbam")] - counts[("stairnet", "se")] == 6 * (2 * 49 + 1)
    m = stairnet(20, "mobilenet_v1", "cbam")
    assert count_params(m) - _attention_params(m.backbone[1]) == counts[("stairnet", None)]
    # Faster R-CNN: attention lives in the backbone, so it adds exactly ResNet-18 + CBAM's extra parameters.
    frcnn = {att: count_params(faster_rcnn(80, "resnet18", att)) for att in (None, "cbam")}
    assert frcnn["cbam"] - frcnn[None] == 11779384 - 11689512


def test_vgg_ssd_parameter_count_and_size_check():
    assert count_params(ssd(20, "vgg16")) == 26285486  # paper Table 7: 26.5 M
    with pytest.raises(ValueError, match="vgg16 needs size >= 268"):
        stairnet(20, "vgg16", size=128)
    with pytest.raises(ValueError, match="unknown SSD backbone 'resnet50'"):
        ssd(20, "resnet50")


# ---- training steps and evaluation ---------------------------------------------------------------
DETECTORS = {
    "faster_rcnn_r50_cbam": lambda: faster_rcnn(
        10, "resnet50", "cbam", min_size=64, max_size=64, anchor_sizes=(8, 16, 32, 64, 128),
        rpn_pre_nms_top_n_train=100, rpn_post_nms_top_n_train=50, rpn_pre_nms_top_n_test=50,
        rpn_post_nms_top_n_test=20, box_batch_size_per_image=32),
    "ssd_mobilenet_cbam": lambda: ssd(10, "mobilenet_v1", "cbam", size=64),
    "stairnet_mobilenet_cbam": lambda: stairnet(10, "mobilenet_v1", "cbam", size=64),
}


@pytest.mark.parametrize("name", list(DETECTORS))
def test_training_steps_and_evaluation(name, embedded_root):
    torch.manual_seed(0)
    model = DETECTORS[name]()
    data = embedded_detection_dataset(embedded_root, "train", "voc")
    images, targets = zip(*(data[i] for i in range(2)))
    targets = [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)
    model.train()
    for _ in range(2):
        losses = model(list(images), targets)
        loss = sum(losses.values())
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, params))
    model.eval()
    with torch.no_grad():
        preds = model([data[i][0] for i in range(2)])
    assert all(p["boxes"].shape[1] == 4 and len(p["boxes"]) == len(p["scores"]) for p in preds)
    truth = [data.target(i) for i in range(2)]
    assert 0.0 <= coco_map(preds, truth, 10)["map"] <= 1.0 and 0.0 <= voc07_map(preds, truth, 10)["map"] <= 1.0


def test_engine_train_resume_and_eval(embedded_root, tmp_path, capsys):
    cfg = load_detect_config("detect_embedded", data=f"embedded:{embedded_root}", detector="ssd",
                             image_size=64, epochs=1, batch_size=4, workers=0, out=str(tmp_path / "run"),
                             schedule="multistep",  # its length does not depend on epochs: a resume may extend it
                             data_kwargs={"format": "coco", "canvas_size": 64, "train_images": 8, "val_images": 4,
                                          "test_images": 4, "object_size": [12, 24], "n_clutter": 3})
    row = train(cfg, progress=False)
    run = tmp_path / "run"
    for name in ("config.yaml", "checkpoint.pt", "metrics.jsonl", "config.json", "model.safetensors", "results_test.json"):
        assert (run / name).is_file(), name
    assert row["detector"] == "ssd" and row["images"] == 4 and 0.0 <= row["voc07_map"] <= 1.0
    cfg.epochs = 2
    train(cfg, resume=True, progress=False)
    assert [r["epoch"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())] == [1, 2]
    again = evaluate(run, split="test")
    assert again["map"] == pytest.approx(json.loads((run / "results_test.json").read_text())["map"])
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        train(cfg, progress=False)
    capsys.readouterr()
    assert main(["detect", "eval", "--weights", str(run), "--split", "test"]) == 0
    table = capsys.readouterr().out
    assert "| MobileNet | SSD + CBAM |" in table and "mAP@.5 (VOC07)" in table
    assert main(["detect", "eval", "--weights", str(tmp_path / "missing")]) == 2
    assert "no model folder" in capsys.readouterr().err


def test_config_errors():
    with pytest.raises(ValueError, match="unknown detection config key"):
        load_detect_config("detect_embedded", bogus=1)
    cfg = load_detect_config("detect_embedded", **{"data_kwargs.train_images": 16, "model_kwargs.norm": "batch"})
    assert cfg.data_kwargs["train_images"] == 16 and cfg.data_kwargs["format"] == "voc"  # other entries kept
    assert cfg.model_kwargs == {"norm": "batch"}
    with pytest.raises(ValueError, match="'epochs' is not a mapping"):
        load_detect_config("detect_embedded", **{"epochs.x": 1})
    # another kind of data than the recipe's: its data_kwargs (embedded build options) are dropped
    assert load_detect_config("detect_embedded", data="voc:/d", **{"data_kwargs.classes": ["a"]}).data_kwargs == {"classes": ["a"]}
    with pytest.raises(ValueError, match="detector must be one of"):
        load_detect_config(detector="yolo")
    with pytest.raises(ValueError, match="expected embedded"):
        build_detection_dataset("voc", "train")
    assert load_detect_config("detect_voc").weight_decay == 5e-4 and load_detect_config("detect_voc").momentum == 0.9


@pytest.mark.slow
@pytest.mark.parametrize("detector", ["ssd", "stairnet"])
def test_vgg16_at_300_trains(detector, embedded_root):
    model = (ssd if detector == "ssd" else stairnet)(10, "vgg16", "cbam")
    data = embedded_detection_dataset(embedded_root, "train", "coco")
    samples = [data[0]]  # one image: StairNet's top-down path has no BatchNorm on its 1 x 1 map
    losses = model([im for im, _ in samples], [{"boxes": t["boxes"], "labels": t["labels"]} for _, t in samples])
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert np.isfinite(count_params(model))


# ---- the CLI on real-layout folders and under torchrun --------------------------------------------
def _coco2017_layout(embedded_root, out):
    """A COCO-2017-layout folder (train2017/, val2017/, annotations/instances_*2017.json) of the embedded data."""
    images = embedded_root / "VOCdevkit" / "VOC2007" / "JPEGImages"
    (out / "annotations").mkdir(parents=True)
    for split, part in (("train", "train"), ("val", "val")):
        (out / f"{part}2017").mkdir()
        coco = json.loads((embedded_root / "annotations" / f"instances_{split}.json").read_text())
        for im in coco["images"]:
            shutil.copy(images / im["file_name"], out / f"{part}2017" / im["file_name"])
        (out / "annotations" / f"instances_{part}2017.json").write_text(json.dumps(coco))
    return out


def _voc0712_layout(embedded_root, out):
    """A VOCdevkit with VOC2007 (trainval = embedded train, test = embedded val) and VOC2012 (trainval = test)."""
    src = embedded_root / "VOCdevkit" / "VOC2007"
    for year, sets in (("2007", {"trainval": "train", "test": "val"}), ("2012", {"trainval": "test"})):
        dst = out / "VOCdevkit" / f"VOC{year}"
        shutil.copytree(src / "JPEGImages", dst / "JPEGImages")
        shutil.copytree(src / "Annotations", dst / "Annotations")
        (dst / "ImageSets" / "Main").mkdir(parents=True)
        for name, split in sets.items():
            shutil.copy(src / "ImageSets" / "Main" / f"{split}.txt", dst / "ImageSets" / "Main" / f"{name}.txt")
    return out / "VOCdevkit"


TINY_DETECT = ["--image-size", "64", "--epochs", "1", "--batch-size", "4", "--workers", "0", "--no-progress"]


def test_cli_trains_on_coco_and_voc_layout_folders(embedded_root, tmp_path, capsys):
    voc = _voc0712_layout(embedded_root, tmp_path / "voc")
    out = tmp_path / "stairnet_voc"
    args = ["detect", "train", "--data", f"voc:{voc}", "--detector", "stairnet", "--backbone", "mobilenet_v1",
            "--attention", "cbam", "--out", str(out), *TINY_DETECT]
    assert main(args) == 2  # the 20 VOC classes by default: the digits are unknown names
    assert "unknown class name '0'" in capsys.readouterr().err
    assert main([*args, "--set", "data_kwargs={classes: [zero, one]}"]) == 2
    assert "unknown class name '0'; valid names are ['one', 'zero']" in capsys.readouterr().err
    assert main([*args, "--set", "data_kwargs.classes=['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']"]) == 0
    printed = capsys.readouterr().out
    assert "test split: 4 images" in printed and "| MobileNet | StairNet + CBAM |" in printed
    assert (out / "results_test.json").is_file()
    # VOC07+12 trainval for training: 8 + 4 images, one epoch of batch 4 -> 3 steps.
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[0])["step"] == 3

    coco = _coco2017_layout(embedded_root, tmp_path / "coco")
    out = tmp_path / "frcnn_coco"
    assert main(["detect", "train", "--data", f"coco:{coco}", "--config", "detect_embedded_frcnn", "--attention", "cbam",
                 "--out", str(out), *TINY_DETECT]) == 0
    printed = capsys.readouterr().out
    assert "test split: 4 images" in printed and "| ResNet18 + CBAM | Faster R-CNN |" in printed
    assert main(["detect", "eval", "--weights", str(out), "--data", f"coco:{coco}", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["map"] == pytest.approx(json.loads((out / "results_test.json").read_text())["map"])




@pytest.mark.timeout(1200)
def test_torchrun_two_processes(embedded_root, tmp_path):
    script = rank_saving_script(tmp_path / "ddp_detect.py", "cbam.experiments.detection")
    out = tmp_path / "ddp"
    root = Path(__file__).resolve().parents[1]
    data_kwargs = "{format: coco, canvas_size: 64, train_images: 8, val_images: 4, test_images: 4, object_size: [12, 24], n_clutter: 3}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(tmp_path), "detect", "train", "--data", f"embedded:{embedded_root}", "--set", f"data_kwargs={data_kwargs}",
           "--detector", "ssd", "--backbone", "mobilenet_v1", "--attention", "cbam", "--device", "cpu",
           "--out", str(out), *TINY_DETECT]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(root))
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("| MobileNet | SSD + CBAM |") == 1  # rank 0 prints the table
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    saved = load_file(out / "model.safetensors")
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
        assert torch.equal(rank0[key], saved[key]), key
    # Evaluation gathered from two shards equals one process evaluating the saved model.
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[0])["step"] == 2  # 8 images, global batch 4
    alone = evaluate(out, split="test")
    assert alone["map"] == pytest.approx(json.loads((out / "results_test.json").read_text())["map"])
    assert alone["images"] == 4


def test_concurrent_builds_of_the_embedded_data_build_it_once(tmp_path):
    from concurrent.futures import ProcessPoolExecutor

    kw = dict(canvas_size=64, train_images=6, val_images=2, test_images=2, object_size=(12, 24), n_clutter=3)
    root = tmp_path / "emb"
    with ProcessPoolExecutor(2) as pool:
        roots = list(pool.map(_build, [(root, kw)] * 2))
    assert roots == [root, root]
    assert len(embedded_detection_dataset(root, "train", "voc")) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == [".emb.lock", "emb"]  # no temporary folder left


def _build(args):
    root, kw = args
    return build_embedded_detection(root, **kw)


def test_detect_compare_seeds_table_differences_and_reuse(embedded_root, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["detect", "compare", "--config", "detect_embedded", "--data", f"embedded:{embedded_root}",
            "--detector", "ssd", "--image-size", "64", "--epochs", "1", "--batch-size", "4", "--workers", "0",
            "--set", "data_kwargs={format: voc, canvas_size: 64, train_images: 8, val_images: 4, test_images: 4, "
                     "object_size: [12, 24], n_clutter: 3}",
            "--attentions", "none", "cbam", "--seeds", "0", "1", "--out", str(out), "--no-progress"]
    # a run made by `detect train` where the comparison keeps it is reused, not retrained
    recipe = args[2:args.index("--attentions")]
    assert main(["detect", "train", *recipe, "--attention", "none", "--seed", "0", "--out", str(out / "none" / "seed0"),
                 "--no-progress"]) == 0
    first = (out / "none" / "seed0" / "model.safetensors").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "none" / "seed0" / "model.safetensors").stat().st_mtime_ns == first
    printed = capsys.readouterr().out
    assert "| MobileNet | SSD | " in printed and "| MobileNet | SSD + CBAM | " in printed and " ± " in printed
    assert "| MobileNet SSD + CBAM - MobileNet SSD | " in printed and "Paired mAP differences over 2 seeds" in printed
    runs = [out / a / f"seed{s}" for a in ("none", "cbam") for s in (0, 1)]
    results = [json.loads((r / "results_test.json").read_text()) for r in runs]
    table = (out / "table.csv").read_text().splitlines()
    assert table[0].startswith("backbone,detector,attention,params,seeds,voc07_map_mean") and len(table) == 3
    none_row = table[1].split(",")
    assert none_row[2] == "none" and float(none_row[5]) == pytest.approx(
        100 * (results[0]["voc07_map"] + results[1]["voc07_map"]) / 2, abs=1e-4)
    diff = (out / "differences.csv").read_text().splitlines()
    assert diff[0] == "a,b,metric,difference,ci95_low,ci95_high,seeds" and len(diff) == 3
    d = [(results[2]["voc07_map"] - results[0]["voc07_map"]) * 100, (results[3]["voc07_map"] - results[1]["voc07_map"]) * 100]
    assert float(diff[1].split(",")[3]) == pytest.approx(sum(d) / 2, abs=1e-4)
    # a rerun reuses every finished run; a third seed trains only the new runs
    stamps = {r: (r / "model.safetensors").stat().st_mtime_ns for r in runs}
    assert main([*args[:-5], "0", "1", "2", "--out", str(out), "--no-progress"]) == 0
    assert all((r / "model.safetensors").stat().st_mtime_ns == t for r, t in stamps.items())
    assert (out / "cbam" / "seed2" / "results_test.json").is_file()
    capsys.readouterr()
    # another recipe into the same folder is refused with the differing key, nothing is retrained
    assert main([*args[:args.index("--epochs") + 1], "2", *args[args.index("--epochs") + 2:]]) == 2
    assert "differs in ['epochs']" in capsys.readouterr().err
    for bad, message in ((["--seeds", "0", "0"], "--seeds: need distinct integers"), (["--seeds", "-1"], "--seeds:"),
                         (["--attentions", "none", "bogus"], "unknown"), (["--attentions", "none", "None"], "distinct")):
        assert main([*args, *bad]) == 2
        assert message in capsys.readouterr().err
    assert all((r / "model.safetensors").stat().st_mtime_ns == t for r, t in stamps.items())
