"""The one saved-model format: every writer's folder read by every reader, and the evaluation transform
that travels with the weights (CIFAR, ImageNet folder, embedded)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import cbam
from cbam.cli import main
from cbam.data import build_embedded, build_transforms, eval_preprocessing
from cbam.detection.backbone import load_backbone_weights
from cbam.experiments.classification import evaluate, folder_config, train
from cbam.experiments.config import load_config
from cbam.io import read_model_folder, save_pretrained, write_model_folder
from cbam.io.convert import convert_checkpoint, export_timm_weights
from cbam.io.export import export_model
from cbam.viz.loading import load_viz_model

from _layouts import official_checkpoint

TINY = {"small_input": True, "widths": [16, 16, 16, 16], "stem_width": 16}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    return build_embedded(tmp_path_factory.mktemp("emb") / "d", canvas_size=32, object_size=(8, 16),
                          train_per_class=2, val_per_class=1)


@pytest.fixture(scope="module")
def folders(embedded, tmp_path_factory):
    """One classification model folder per writer: save_pretrained, cbam train, cbam convert."""
    tmp = tmp_path_factory.mktemp("folders")
    torch.manual_seed(0)
    model = cbam.create_model("resnet18", attention="cbam", num_classes=10, **TINY)
    saved = save_pretrained(model, tmp / "saved", classes=[str(c) for c in range(10)], data=f"embedded:{embedded}",
                            preprocessing=eval_preprocessing("embedded", 32, 32))
    cfg = load_config("embedded", data=f"embedded:{embedded}", embedded={}, attention="cbam", model_kwargs=TINY,
                      image_size=32,
                      epochs=1, batch_size=10, workers=0, device="cpu", out=str(tmp / "trained"))
    trained = train(cfg, progress=False)
    torch.save(official_checkpoint(num_batches_tracked=True, num_classes=10), tmp / "official.pth.tar")
    converted = convert_checkpoint(tmp / "official.pth.tar", "official", tmp / "converted").output
    return {"save_pretrained": saved, "train": trained, "convert": converted}


@pytest.mark.parametrize("writer", ["save_pretrained", "train", "convert"])
def test_every_reader_reads_every_writer(folders, embedded, tmp_path, writer):
    folder = folders[writer]
    assert {"config.json", "model.safetensors"} <= {p.name for p in folder.iterdir()}
    config = read_model_folder(folder).config
    assert config["library_name"] == "cbam" and config["task"] == "classification"
    assert config["preprocessing"]["mean"] and config["preprocessing"]["image_size"]
    model = cbam.from_pretrained(folder)  # from_pretrained, and so `cbam export --weights`
    x = torch.randn(2, 3, 40, 40)
    vm = load_viz_model(folder)  # cbam gradcam / attention
    assert torch.equal(vm.model(x), model(x))
    assert export_model(model, tmp_path / "m.pt2", "pt2").is_file()
    report = load_backbone_weights(cbam.create_model(config["architecture"], attention=config["attention"],
                                                     **config["model_args"]), folder)  # cbam detect --backbone-weights
    assert report["loaded"] and not report["missing"]
    try:  # cbam convert --to timm: read, then written or refused for a layout timm cannot hold
        arch, path = export_timm_weights(folder, tmp_path / "timm.safetensors")
        assert arch == config["architecture"] and path.is_file()
    except ValueError as err:
        assert "not representable in timm's layout" in str(err)
    if config["data"]:  # cbam eval
        result = evaluate(folder)
        assert result["samples"] == 10 and 0 <= result["top1_err"] <= 100


def test_a_detection_folder_is_refused_by_classification_readers(tmp_path):
    folder = write_model_folder(tmp_path / "det", {"w": torch.zeros(1)}, {"library_name": "cbam", "task": "detection"})
    with pytest.raises(ValueError, match="holds a detection model"):
        cbam.from_pretrained(folder)


def test_a_resume_checkpoint_points_to_its_run(folders):
    with pytest.raises(ValueError, match="is a resume checkpoint; give the run directory"):
        read_model_folder(folders["train"] / "checkpoint.pt")


def test_old_run_directories_keep_loading(tmp_path):
    """A run written before model folders: the config in the safetensors metadata, no config.json."""
    model = cbam.create_model("resnet18", num_classes=10, **TINY)
    run = {"model": "resnet18", "attention": None, "model_kwargs": TINY, "num_classes": 10, "data": "cifar10:/c",
           "image_size": 32, "classes": [f"c{i}" for i in range(10)]}
    tmp_path.joinpath("run").mkdir()
    save_file(model.state_dict(), str(tmp_path / "run" / "model.safetensors"), metadata={"config": json.dumps(run)})
    loaded = cbam.from_pretrained(tmp_path / "run")
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(loaded(x), model.eval()(x))
    assert read_model_folder(tmp_path / "run").config["preprocessing"]["data_kind"] == "cifar10"


class Payload:
    """A class torch.load(weights_only=True) refuses to unpickle."""


def test_pickled_weights_get_the_same_refusal_in_eval_as_in_convert(tmp_path, capsys):
    path = tmp_path / "model_best.pth.tar"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "extra": Payload()}, path)
    errors = []
    for argv in (["convert", "--from", "official", str(path), "--out", str(tmp_path / "o")],
                 ["eval", "--weights", str(path)]):
        assert main(argv) == 2
        errors.append(capsys.readouterr().err)
    assert all("refusing to load" in e and "weights_only=False" in e and "\x1b" not in e for e in errors)
    assert errors[0].partition(": error: ")[2] == errors[1].partition(": error: ")[2]


# ---- the evaluation transform per data kind ----------------------------------------------------------
@pytest.mark.parametrize("data, kind, image_size, size", [
    ("cifar10:/nowhere", "cifar10", 32, 32),
    ("/some/imagenet", "imagefolder", 64, 300),
    ("embedded", "embedded", 32, 32),
])
def test_the_eval_transform_travels_with_the_weights(tmp_path, embedded, data, kind, image_size, size):
    data = f"embedded:{embedded}" if kind == "embedded" else data
    cfg = load_config(data=data, model="resnet18", model_kwargs=TINY, image_size=image_size)
    model = cbam.create_model("resnet18", num_classes=3, **TINY)
    folder = write_model_folder(tmp_path / kind, model.state_dict(), folder_config(cfg, model, ["a", "b", "c"]))
    prep = read_model_folder(folder).config["preprocessing"]
    assert prep["data_kind"] == kind and prep["image_size"] == image_size
    expected = build_transforms(kind, train=False, image_size=image_size, stored_size=32 if kind == "embedded" else None)
    wide = 8 if kind == "imagefolder" else 0  # stored CIFAR and embedded images are square
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size + wide, 3), dtype=np.uint8))
    got = load_viz_model(folder).transform(image)
    assert got.shape == (3, image_size, image_size) and torch.equal(got, expected(image))
    if kind != "imagefolder":  # no ImageNet resize + crop for CIFAR or embedded models
        assert prep["resize"] is None and prep["crop"] is None and prep["mean"] != [0.485, 0.456, 0.406]
