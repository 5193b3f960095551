"""Grad-CAM, attention maps, localisation scores, figures and the gradcam / attention commands."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

import cbam
from cbam.cli import main
from cbam.data import eval_preprocessing
from cbam.io import save_pretrained, save_safetensors
from cbam.nn import CBAM
from cbam.viz import (
    CamColumn,
    attention_figure,
    attention_maps,
    box_area_share,
    energy_in_box,
    gradcam,
    gradcam_figure,
    load_viz_model,
    localization_row,
    localization_scores,
    localization_stage,
    localization_table,
    mean_ci,
    pointing_game,
    save_figure,
    target_layer,
)

SIZE = 64  # input side: the ImageNet stems (stride 32 overall) leave a 2 x 2 last stage

# One registry model per block type for the default suite; every model in the slow sweep.
FAMILIES = ["resnet18", "resnet50", "resnext50_32x4d", "mobilenet_v1_x0_7"]
SLOW = [pytest.param(m, marks=pytest.mark.slow) for m in cbam.list_models() if m not in FAMILIES]


pytestmark = pytest.mark.usefixtures("one_thread")


def _small(name="resnet18", attention="cbam", **kw):
    """A 10-class model whose BatchNorm running statistics are those of a random batch.

    Freshly initialised running statistics (mean 0, var 1) do not renormalise in eval mode, so a
    deep plain network with a sigmoid gate in every unit (MobileNet + CBAM) would shrink its
    activations towards 0; one forward in train mode with cumulative averaging fixes that.
    """
    torch.manual_seed(0)
    model = cbam.create_model(name, attention=attention, num_classes=10, **kw)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    with torch.no_grad():
        model.train()(torch.randn(4, 3, SIZE, SIZE))
    return model.eval()


# ---- Grad-CAM ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FAMILIES + SLOW)
def test_gradcam_every_model_one_target_per_sample(name):
    model = _small(name).train()
    x = torch.randn(3, 3, SIZE, SIZE + 16)
    res = gradcam(model, x, [1, 4, 7], batch_size=3)
    assert res.cams.shape == (3, SIZE, SIZE + 16)  # the image's size
    assert res.cams.min() >= 0 and res.cams.max() <= 1
    # Each image of the batch gets the map it gets alone. Not for the untrained MobileNets: with
    # running statistics from one random batch their features reach ~1e6 and the forward pass
    # itself differs between batch and single image by that much (reference attention path too).
    if not name.startswith("mobilenet"):
        for i, t in enumerate([1, 4, 7]):
            np.testing.assert_allclose(res.cams[i], gradcam(model, x[i:i + 1], [t]).cams[0], atol=1e-4)
    assert (res.cams.reshape(3, -1).max(1) > 0).any()
    assert res.targets.tolist() == [1, 4, 7]
    assert ((res.probs >= 0) & (res.probs <= 1)).all()
    assert model.training, "training mode restored"


def test_single_target_for_a_batch_is_the_pitfall_we_avoid():
    model = _small().eval()
    x = torch.randn(3, 3, SIZE, SIZE)
    with GradCAM(model=model, target_layers=[target_layer(model)]) as cam:
        raw = cam(input_tensor=x, targets=[ClassifierOutputTarget(1)])
    assert raw[0].max() > 0 and (raw[1:] == 0).all()  # the library zips targets with the batch
    ours = gradcam(model, x, [1, 1, 1])
    assert (ours.cams.reshape(3, -1).max(1) > 0).all()
    np.testing.assert_allclose(ours.cams[0], raw[0], atol=1e-5)
    assert not model.training, "eval mode restored as eval"


def test_gradcam_top1_and_probs_match_the_model():
    model = _small("mobilenet_v1_x0_7", "se").eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    res = gradcam(model, x)
    with torch.no_grad():
        p = model(x).softmax(1)
    assert res.targets.tolist() == p.argmax(1).tolist() == res.preds.tolist()
    np.testing.assert_allclose(res.probs, p.max(1).values.numpy(), rtol=1e-4)


def test_target_layer_comes_from_feature_info():
    model = _small("resnet50")
    assert target_layer(model) is model.layer4
    assert target_layer(model, 1) is model.layer2
    mobile = _small("mobilenet_v1")
    assert target_layer(mobile) is mobile.stages[4]
    with pytest.raises(ValueError, match="stage=4 is out of range.*4 stages"):
        target_layer(model, 4)
    with pytest.raises(ValueError, match="no feature_info"):
        target_layer(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1)))
    with pytest.raises(ValueError, match="one class per image"):
        gradcam(model, torch.randn(2, 3, SIZE, SIZE), [1])


# ---- localisation metrics ---------------------------------------------------------------------
def test_energy_and_pointing_game_known_answers():
    cams = np.zeros((4, 10, 10))
    cams[0, 2:5, 3:6] = 1.0  # all inside the box
    cams[1, 7:, 7:] = 0.5  # all outside
    cams[2, 2:5, 0:6] = 1.0  # half inside (columns 0-2 out, 3-5 in); first maximum (2, 0) is outside
    boxes = np.tile([3, 2, 6, 5], (4, 1))  # x0, y0, x1, y1 (exclusive)
    energy = energy_in_box(cams, boxes)
    np.testing.assert_allclose(energy, [1.0, 0.0, 0.5, 0.0])
    assert pointing_game(cams, boxes).tolist() == [True, False, False, False]  # all-zero map: a miss
    assert pointing_game(cams, boxes, tolerance=2).tolist() == [True, False, False, False]  # (7, 7): 7 >= 5 + 2
    assert pointing_game(cams, boxes, tolerance=3).tolist() == [True, True, True, False]
    peak = np.zeros((1, 10, 10))
    peak[0, 4, 8] = 1.0  # y = 4 inside, x = 8 right of the box
    assert not pointing_game(peak, boxes[:1], tolerance=2)[0]  # 8 >= 6 + 2: just outside
    assert pointing_game(peak, boxes[:1], tolerance=3)[0]
    np.testing.assert_allclose(box_area_share(boxes[:1], (10, 10)), [0.09])
    with pytest.raises(ValueError, match="boxes must be"):
        energy_in_box(cams, boxes[:2])


def test_mean_ci_bootstrap():
    mean, lo, hi = mean_ci(np.ones(50))
    assert mean == lo == hi == 1.0
    values = np.r_[np.zeros(50), np.ones(50)]
    mean, lo, hi = mean_ci(values)
    assert mean == 0.5 and 0.35 < lo < 0.5 < hi < 0.65  # normal approx: 0.5 +- 0.098
    assert mean_ci(values) == (mean, lo, hi)  # seeded


def test_localization_scores_on_a_batch_dataset():
    model = _small()
    x, labels = torch.randn(5, 3, SIZE, SIZE), torch.tensor([0, 1, 2, 3, 4])
    ds = torch.utils.data.TensorDataset(x, labels)
    boxes = np.tile([0, 0, SIZE // 2, SIZE], (5, 1))  # left half
    scores = localization_scores(model, ds, boxes, batch_size=2)
    cams = gradcam(model, x, labels).cams.astype(np.float64)
    total = cams.sum((1, 2))
    empty = total == 0  # no positive evidence for the class: energy 0 and a miss
    expected = cams[:, :, : SIZE // 2].sum((1, 2)) / np.where(empty, 1, total)
    np.testing.assert_allclose(scores["energy"], expected, rtol=1e-5)
    peak_x = cams.reshape(5, -1).argmax(1) % SIZE
    assert scores["hit"].tolist() == ((peak_x < SIZE // 2) & ~empty).tolist()
    np.testing.assert_allclose(scores["chance"], 0.5)
    row = localization_row("m", scores)
    assert row["n"] == 5 and row["energy_lo"] <= row["energy"] <= row["energy_hi"]
    assert row["pointing"] == scores["hit"].mean()


# ---- attention maps ---------------------------------------------------------------------------
def test_attention_maps_shapes_per_stage():
    model = _small("resnet18").train()
    maps = attention_maps(model, torch.randn(2, 3, SIZE, SIZE), last_per_stage=True)
    assert [a.name for a in maps] == ["layer1.1.attn", "layer2.1.attn", "layer3.1.attn", "layer4.1.attn"]
    assert [a.stage for a in maps] == [0, 1, 2, 3]
    assert [tuple(a.m_c.shape) for a in maps] == [(2, 64), (2, 128), (2, 256), (2, 512)]
    assert [tuple(a.m_s.shape) for a in maps] == [(2, 16, 16), (2, 8, 8), (2, 4, 4), (2, 2, 2)]
    assert all(0 <= a.m_s.min() and a.m_s.max() <= 1 and 0 <= a.m_c.min() and a.m_c.max() <= 1 for a in maps)
    assert model.training
    assert all(not m._forward_pre_hooks for m in model.modules()), "no hook left behind"
    assert len(attention_maps(model, torch.randn(1, 3, SIZE, SIZE))) == 8  # every block

    mobile = _small("mobilenet_v1_x0_7")
    maps = attention_maps(mobile, torch.randn(1, 3, SIZE, SIZE), last_per_stage=True)
    assert [a.stage for a in maps] == [-1, 0, 1, 2, 3, 4]  # the stem's CBAM, then the 5 stages
    assert [a.m_s.shape[-1] for a in maps] == [32, 32, 16, 8, 4, 2]
    with pytest.raises(ValueError, match="no CBAM module"):
        attention_maps(_small("resnet18", "se"), torch.randn(1, 3, SIZE, SIZE))


@pytest.mark.parametrize("arrangement", ["channel_first", "spatial_first"])
def test_attention_maps_reproduce_the_module_output(arrangement):
    model = _small("resnet18", attention_kwargs={"arrangement": arrangement}).eval()
    block = model.layer3[0].attn
    seen = {}
    handle = block.register_forward_hook(lambda m, args, out: seen.update(x=args[0], y=out))
    maps = {a.name: a for a in attention_maps(model, torch.randn(2, 3, SIZE, SIZE))}
    handle.remove()
    a = maps["layer3.0.attn"]
    expected = seen["x"] * a.m_c[:, :, None, None] * a.m_s[:, None]  # F'' = M_s * M_c * F either way
    torch.testing.assert_close(seen["y"], expected, rtol=1e-4, atol=1e-5)
    assert isinstance(block, CBAM)


# ---- figures ----------------------------------------------------------------------------------
def test_gradcam_figure_grid(tmp_path):
    n, h = 3, 16
    images = np.random.default_rng(0).random((n, h, h, 3)).astype(np.float32)
    cams = np.random.default_rng(1).random((n, h, h)).astype(np.float32)
    cols = [CamColumn(t, cams, [f"P = {i / 10:.2f}" for i in range(n)]) for t in ("plain", "+SE", "+CBAM")]
    fig = gradcam_figure(images, cols, ["3", "7", None], title="untrained")
    assert len(fig.axes) == n * 4
    assert [ax.get_title() for ax in fig.axes[::4]] == ["3", "7", ""]
    path = save_figure(fig, tmp_path / "g.png", dpi=50)
    width, height = Image.open(path).size
    assert width == 4 * 2 * 50  # 4 columns of 2 inches at 50 dpi
    assert abs(height - fig.get_size_inches()[1] * 50) <= 1


def test_attention_figure_panels(tmp_path):
    model = _small("resnet18")
    maps = attention_maps(model, torch.randn(1, 3, SIZE, SIZE))
    fig = attention_figure(np.zeros((SIZE, SIZE, 3), np.float32), maps, max_cols=5)
    spatial = [ax for ax in fig.axes if ax.get_visible() and ax.images and ax.images[0].get_array().ndim == 3]
    strips = [ax for ax in fig.axes if ax.images and ax.images[0].get_array().shape[0] == 1]
    assert len(spatial) == 1 + 8 and len(strips) == 8
    assert save_figure(fig, tmp_path / "a.png", dpi=40).stat().st_size > 0


# ---- commands, loading and bad input ----------------------------------------------------------
TINY = {"widths": [16, 32, 64, 128], "stem_width": 16, "small_input": True}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """A tiny Cluttered Digits set (32 px, 2 images per class and split) and two model folders' weight files."""
    from cbam.data import build_embedded

    root = build_embedded(tmp_path_factory.mktemp("emb") / "d", canvas_size=32, object_size=(8, 16),
                          train_per_class=2, val_per_class=2)
    files = {}
    for att in ("none", "cbam"):
        torch.manual_seed(0)
        model = cbam.create_model("resnet18", attention=None if att == "none" else att, num_classes=10, **TINY)
        run = save_pretrained(model, root.parent / att / "seed0", classes=[str(c) for c in range(10)],
                              data=f"embedded:{root}", preprocessing=eval_preprocessing("embedded", 32, 32))
        files[att] = run / "model.safetensors"
    return root, files


def test_load_viz_model_from_run_dir_and_file(embedded):
    root, files = embedded
    vm = load_viz_model(files["cbam"].parent)
    assert vm.trained and vm.label == "ResNet18 + CBAM" and vm.classes == [str(c) for c in range(10)]
    assert vm.transform(Image.new("RGB", (32, 32))).shape == (3, 32, 32)
    untrained = load_viz_model("se_resnet50")
    assert not untrained.trained and untrained.label == "ResNet50 + SE (untrained)"


def test_cli_gradcam_figure_and_localization_table(embedded, tmp_path, capsys):
    root, files = embedded
    out = tmp_path / "fig.png"
    assert main(["gradcam", "--weights", str(files["none"].parent), str(files["cbam"]), "--data", f"embedded:{root}",
                 "--num", "3", "--out", str(out), "--dpi", "40", "--localization", str(tmp_path / "loc")]) == 0
    assert Image.open(out).size[0] == 3 * 2 * 40  # input + 2 models, 2 inches each at 40 dpi
    text = capsys.readouterr().out
    assert "| ResNet18 | 20 |" in text and "| ResNet18 + CBAM | 20 |" in text
    lines = (tmp_path / "loc.csv").read_text().splitlines()
    assert lines[0].startswith("model,n,energy,energy_lo,energy_hi,pointing") and len(lines) == 3
    assert (tmp_path / "loc.md").read_text().count("\n| ResNet18") == 2


def test_compare_extra_localization(embedded):
    from cbam.experiments.compare import COMPARE_EXTRAS

    root, files = embedded
    md = COMPARE_EXTRAS["localization"]({"plain": [files["none"].parent], "CBAM": [files["cbam"].parent]})
    assert "### Grad-CAM localisation" in md and "| plain | 20 |" in md and "| CBAM | 20 |" in md
    assert (root.parent / "localization.csv").is_file()
    # scored at the deepest stage whose map is at least 7 x 7 (stage 2 of the small-input stem at 32 px:
    # maps 32, 16, 8, 4), not the 4 x 4 last one
    info = load_viz_model(files["none"].parent).model.feature_info
    assert [32 // i["reduction"] for i in info] == [32, 16, 8, 4] and localization_stage(info, 32) == 2
    energy = float((root.parent / "localization.csv").read_text().splitlines()[1].split(",")[2])
    at = {stage: localization_table([files["none"].parent], stage=stage)[0]["energy"] for stage in (2, -1)}
    assert energy == pytest.approx(at[2], abs=1e-4) and at[2] != pytest.approx(at[-1], abs=1e-4)


def test_localization_stage_is_the_deepest_map_of_at_least_7x7():
    info = [{"reduction": r} for r in (4, 8, 16, 32)]
    assert localization_stage(info, 64) == 1 and localization_stage(info, 224) == 3  # 8 x 8; the paper's 7 x 7
    assert localization_stage(info, 200) == 2 and localization_stage(info, 16) == 0


def test_cli_attention_and_untrained_demo(embedded, tmp_path, capsys):
    root, files = embedded
    out = tmp_path / "att.png"
    assert main(["attention", "--weights", str(files["cbam"]), "--data", f"embedded:{root}", "--index", "3",
                 "--last-per-stage", "--out", str(out), "--dpi", "30"]) == 0
    assert "4 CBAM blocks" in capsys.readouterr().out and out.is_file()
    demo = tmp_path / "demo.png"
    assert main(["gradcam", "--model", "resnet18", "--out", str(demo), "--dpi", "30"]) == 0  # scikit-learn's 2 photos
    assert Image.open(demo).size == (2 * 2 * 30, pytest.approx(Image.open(demo).size[1]))


def test_bad_input_gives_clear_errors(embedded, tmp_path, capsys):
    root, files = embedded
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    other = tmp_path / "other"  # a folder whose config.json names another architecture than its weights
    other.mkdir()
    config = json.loads((files["cbam"].parent / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "architecture": "mobilenet_v1", "model_args": {}}))
    (other / "model.safetensors").write_bytes(files["cbam"].read_bytes())
    cases = [
        (["gradcam", "--model", "resnet18", "--images", str(bad)], "corrupt image file .*broken.png"),
        (["gradcam", "--model", "resnet18", "--images", str(tmp_path / "missing.jpg")], "missing.jpg' does not exist"),
        (["gradcam", "--weights", str(files["cbam"]), "--stage", "4", "--data", f"embedded:{root}"],
         "stage=4 is out of range"),
        (["gradcam", "--weights", str(other)], "missing key"),
        (["gradcam", "--model", "resnet1000"], "neither a model folder"),
        (["attention", "--weights", str(files["none"])], "no CBAM module"),
    ]
    for argv, message in cases:
        assert main([*argv, "--out", str(tmp_path / "x.png")]) == 2, argv
        err = capsys.readouterr().err
        assert __import__("re").search(message, err), (argv, err)
    raw = tmp_path / "raw.safetensors"
    save_safetensors(cbam.create_model("resnet18", num_classes=10).state_dict(), raw)
    with pytest.raises(ValueError, match="is a weights file, not a model folder"):
        load_viz_model(raw)
