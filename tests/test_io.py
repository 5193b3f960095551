"""Converters (official release, pytorchcv, timm), refusal of unsafe pickles, hub-style folders."""
from __future__ import annotations

import json
from functools import partial

import pytest
import torch
from safetensors.torch import load_file, save_file

import cbam
from cbam.cli import main
from cbam.io import UnsafeCheckpointError, from_pretrained, read_checkpoint, save_pretrained
from cbam.io.convert import convert_checkpoint, export_timm_weights
from cbam.io.layouts import to_timm

from _layouts import official_checkpoint, official_forward, pytorchcv_forward, pytorchcv_state_dict

timm = pytest.importorskip("timm")


@pytest.fixture(autouse=True)
def _no_grad_few_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    with torch.no_grad():
        yield
    torch.set_num_threads(threads)


def _close(out, ref):
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


# --- the official release --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def official():
    """The official file's structure with num_batches_tracked (480 tensors), its logits on one input."""
    ckpt = official_checkpoint(num_batches_tracked=True)
    x = torch.randn(2, 3, 64, 80, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return ckpt, x, official_forward(ckpt["state_dict"], x)


def _without_counters(ckpt: dict) -> dict:
    return {**ckpt, "state_dict": {k: v for k, v in ckpt["state_dict"].items() if "num_batches_tracked" not in k}}


def test_official_checkpoint_has_the_release_structure(official):
    ckpt = official[0]
    assert len(ckpt["state_dict"]) == 480 and len(_without_counters(ckpt)["state_dict"]) == 411
    assert len(official_checkpoint(num_batches_tracked=False)["state_dict"]) == 411
    sd = ckpt["state_dict"]
    assert sd["module.layer1.0.cbam.ChannelGate.mlp.1.weight"].shape == (16, 256)
    assert sd["module.layer1.0.cbam.ChannelGate.mlp.3.bias"].shape == (256,)
    assert sd["module.layer1.0.cbam.SpatialGate.spatial.conv.weight"].shape == (1, 2, 7, 7)
    assert "module.layer1.0.cbam.SpatialGate.spatial.bn.running_var" in sd
    assert "module.layer1.0.cbam.SpatialGate.spatial.conv.bias" not in sd


def test_official_conversion_gives_the_official_logits(tmp_path, capsys, official):
    ckpt, x, ref = official
    src = tmp_path / "RESNET50_CBAM_new_name_wrap.pth.tar"
    torch.save(ckpt, src)
    out = tmp_path / "converted"
    assert main(["convert", "--from", "official", str(src), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "read 480 tensors" in printed and "renamed 480 keys" in printed
    assert "dropped 4 non-weight entries: arch, best_prec1, epoch, optimizer" in printed
    assert "loaded 480 tensors strictly" in printed and "added" not in printed
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "resnet50" and config["attention"] == "cbam_official"
    model = from_pretrained(out)
    assert sum(p.numel() for p in model.parameters()) == 28089624  # 28,089,608 + 16 BN (weight+bias) - 16 conv biases
    _close(model(x), ref)


def test_official_conversion_without_counters(tmp_path, official):
    ckpt, x, ref = official
    torch.save(_without_counters(ckpt), tmp_path / "official.pth.tar")
    report = convert_checkpoint(tmp_path / "official.pth.tar", "official", tmp_path / "out")
    assert report.source_tensors == 411 and report.renamed == 411 and len(report.filled) == 69
    assert report.architecture == "resnet50" and report.loaded_tensors == 480
    _close(from_pretrained(tmp_path / "out")(x), ref)


def test_wrong_layout_is_a_clear_error(tmp_path):
    torch.save(pytorchcv_state_dict(), tmp_path / "pcv.pth")
    with pytest.raises(ValueError, match="no stem"):
        convert_checkpoint(tmp_path / "pcv.pth", "official", tmp_path / "out")
    with pytest.raises(ValueError, match="unknown source layout"):
        convert_checkpoint(tmp_path / "pcv.pth", "caffe", tmp_path / "out")


# --- pytorchcv ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("depth, layers, bottleneck", [
    (18, (2, 2, 2, 2), False),
    pytest.param(50, (3, 4, 6, 3), True, marks=pytest.mark.slow),
])
def test_pytorchcv_conversion_gives_pytorchcv_logits(tmp_path, depth, layers, bottleneck):
    sd = pytorchcv_state_dict(layers, bottleneck)
    torch.save(sd, tmp_path / f"cbam_resnet{depth}.pth")
    report = convert_checkpoint(tmp_path / f"cbam_resnet{depth}.pth", "pytorchcv", tmp_path / "out")
    assert report.architecture == f"resnet{depth}" and report.loaded_tensors == len(sd)
    model = from_pretrained(tmp_path / "out")
    # pytorchcv's 28,089,624 / 11,779,392 parameters (its cbamresnet.py self-test)
    assert sum(p.numel() for p in model.parameters()) == {18: 11779392, 50: 28089624}[depth]
    x = torch.randn(1, 3, 224, 224)  # pytorchcv's AvgPool2d(7) needs 224 x 224
    _close(model(x), pytorchcv_forward(sd, x, layers, bottleneck))


# --- timm ----------------------------------------------------------------------------------------------

def _random_bn_stats(model: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.weight.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.bias.copy_(0.1 * torch.randn(m.num_features, generator=g))


def test_timm_conversion_gives_timm_logits_and_round_trips(tmp_path):
    torch.manual_seed(0)
    source = timm.create_model("resnet50", block_args=dict(attn_layer="cbam"), num_classes=10).eval()
    _random_bn_stats(source)
    save_file(source.state_dict(), tmp_path / "timm.safetensors")
    report = convert_checkpoint(tmp_path / "timm.safetensors", "timm", tmp_path / "ours")
    assert report.reshaped == 32 and report.loaded_tensors == 448
    ours = from_pretrained(tmp_path / "ours")
    x = torch.randn(2, 3, 64, 96)
    expected = source(x)
    _close(ours(x), expected)

    assert main(["convert", "--to", "timm", str(tmp_path / "ours"), "--out", str(tmp_path / "back.safetensors")]) == 0
    back = timm.create_model("resnet50", block_args=dict(attn_layer="cbam"), num_classes=10).eval()
    back.load_state_dict(load_file(tmp_path / "back.safetensors"), strict=True)
    assert torch.equal(back(x), expected)


def test_to_timm_converts_our_bias_free_cbam_and_refuses_lossy_layouts(tmp_path):
    timm_kwargs = {"mlp_bias": False, "spatial_order": ("avg", "max"), "spatial_norm": True, "spatial_conv_bias": False}
    ours = cbam.create_model("resnet18", attention="cbam", attention_kwargs=timm_kwargs).eval()
    _random_bn_stats(ours)
    target = timm.create_model("resnet18", block_args=dict(attn_layer="cbam")).eval()
    target.load_state_dict(to_timm(ours), strict=True)
    x = torch.randn(1, 3, 64, 64)
    _close(target(x), ours(x))

    biased = cbam.create_model("resnet18", attention="cbam", attention_kwargs={**timm_kwargs, "mlp_bias": True}).eval()
    target = timm.create_model("resnet18", block_args=dict(attn_layer=partial(timm.layers.cbam.CbamModule, mlp_bias=True)))
    target.load_state_dict(to_timm(biased), strict=True)
    _close(target.eval()(x), biased(x))

    for lossy in ("cbam", "cbam_official"):  # paper: biased conv, no BN; official: [max; avg]
        with pytest.raises(ValueError, match="not representable in timm's layout"):
            to_timm(cbam.create_model("resnet18", attention=lossy))
    save_pretrained(cbam.create_model("resnet18", attention="cbam", small_input=True), tmp_path / "small")
    with pytest.raises(ValueError, match="7x7"):
        export_timm_weights(tmp_path / "small", tmp_path / "x.safetensors")


# --- pickles are not trusted ---------------------------------------------------------------------------

class Payload:
    """A pickled custom class: loading it would need arbitrary unpickling."""


class Exploit:
    """Unpickling this runs code (creates a file); weights_only loading must never do it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.mark.parametrize("payload", ["class", "exploit"])
def test_unsafe_pickles_are_refused(tmp_path, capsys, payload):
    marker = tmp_path / "executed"
    obj = Payload() if payload == "class" else Exploit(marker)
    path = tmp_path / "model_best.pth.tar"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "extra": obj}, path)
    with pytest.raises(UnsafeCheckpointError, match="arbitrary unpickling") as err:
        read_checkpoint(path)
    assert "weights_only=False" in str(err.value) and "safetensors" in str(err.value)
    assert main(["convert", "--from", "official", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "refusing to load" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_read_checkpoint_reports_entries_and_rejects_unknown_files(tmp_path):
    torch.save({"model": {"a": torch.ones(2)}, "epoch": 3}, tmp_path / "c.pt")
    ckpt = read_checkpoint(tmp_path / "c.pt")
    assert list(ckpt.state_dict) == ["a"] and ckpt.nested_key == "model" and ckpt.dropped == ["epoch"]
    (tmp_path / "w.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="safetensors"):
        read_checkpoint(tmp_path / "w.npz")
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "missing.pth")


# --- hub-style folders ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, attention, kwargs", [
    ("resnet18", "cbam_official", {"small_input": True, "num_classes": 10}),
    ("resnet18", "cbam", {"attention_kwargs": {"reduction": 8, "spatial_order": ("max", "avg")}, "drop_rate": 0.1}),
    ("mobilenet_v1_x0_7", "se", {"attention_sites": ("pw",), "num_classes": 3}),
    pytest.param("resnext50_32x4d", None, {"stride_in_1x1": True}, marks=pytest.mark.slow),
])
def test_save_and_load_round_trip(tmp_path, name, attention, kwargs):
    torch.manual_seed(0)
    model = cbam.create_model(name, attention=attention, **kwargs).eval()
    _random_bn_stats(model)
    folder = save_pretrained(model, tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == name and config["attention"] == attention
    loaded = from_pretrained(folder)
    assert type(loaded) is type(model) and loaded.model_args["attention"] == attention
    own, new = model.state_dict(), loaded.state_dict()
    assert own.keys() == new.keys() and all(torch.equal(own[k], new[k]) for k in own)
    x = torch.randn(2, 3, 40, 48)
    assert torch.equal(loaded(x), model(x))


def test_hub_loading_is_strict_and_configs_are_plain(tmp_path):
    model = cbam.create_model("resnet18", attention="cbam")
    folder = save_pretrained(model, tmp_path / "m")
    weights = load_file(folder / "model.safetensors")
    weights.pop("layer1.0.attn.spatial.conv.bias")
    save_file(weights, folder / "model.safetensors")
    with pytest.raises(ValueError, match="1 missing"):
        from_pretrained(folder)
    with pytest.raises(ValueError, match="not a plain value"):
        save_pretrained(cbam.create_model("resnet18", attention=cbam.nn.CBAM), tmp_path / "cls")
    with pytest.raises(ValueError, match="not built by cbam.create_model"):
        save_pretrained(torch.nn.Conv2d(3, 3, 1), tmp_path / "conv")
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        from_pretrained("someone/cbam-resnet50-not-cached")


def test_reset_classifier_is_recorded(tmp_path):
    model = cbam.create_model("resnet18", attention="se")
    model.reset_classifier(5)
    assert from_pretrained(save_pretrained(model, tmp_path / "m")).get_classifier().out_features == 5


def test_the_convert_command_lists_every_layout():
    from cbam.cli.convert import _SOURCES
    from cbam.io.layouts import SOURCES

    assert sorted(_SOURCES) == sorted(SOURCES)  # the CLI names them without importing the library
