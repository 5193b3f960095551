"""ONNX and .pt2 export with dynamic batch, height and width; parity with PyTorch on another input size."""
from __future__ import annotations

import logging

import pytest
import torch

import cbam
from cbam.cli import main
from cbam.io.export import check_onnx, check_pt2, export_model, min_input_size

pytest.importorskip("onnxruntime")


@pytest.fixture(autouse=True)
def _few_threads_quiet_logs():
    # under pytest's log capture torch.export logs every traced node at DEBUG level (structured
    # trace), which makes an export several times slower; silence DEBUG / INFO while exporting
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    logging.disable(logging.INFO)
    yield
    logging.disable(logging.NOTSET)
    torch.set_num_threads(threads)


def test_min_input_size_is_total_stride_plus_one():
    assert min_input_size(cbam.create_model("resnet18")) == 33
    assert min_input_size(cbam.create_model("resnet18", small_input=True)) == 9
    assert min_input_size(cbam.create_model("mobilenet_v1_x0_7")) == 33
    with pytest.raises(ValueError, match="feature_info"):
        min_input_size(torch.nn.Conv2d(3, 3, 1))


def _onnx_parity(tmp_path, name, attention, **kwargs):
    torch.manual_seed(0)
    model = cbam.create_model(name, attention=attention, num_classes=10, **kwargs).eval()
    path = export_model(model, tmp_path / "model.onnx", "onnx")  # traced at 2 x 3 x 64 x 64
    for shape in [(3, 3, 95, 81), (1, 3, min_input_size(model), 40)]:
        check = check_onnx(path, model, torch.randn(*shape))
        assert check.ok, check


def test_onnx_parity_resnet18_cbam(tmp_path):
    _onnx_parity(tmp_path, "resnet18", "cbam")


@pytest.mark.slow
@pytest.mark.parametrize("name, attention, kwargs", [
    ("mobilenet_v1_x0_7", "cbam", {}),
    ("resnet50", "cbam_official", {}),
    ("resnext50_32x4d", "se", {}),
    ("resnet18", "cbam_parallel", {"small_input": True}),
    ("wide_resnet18_x1_5", "cbam_spatial_first", {}),
])
def test_onnx_parity_more_models(tmp_path, name, attention, kwargs):
    _onnx_parity(tmp_path, name, attention, **kwargs)


def test_pt2_cli_with_weights_folder(tmp_path, capsys):
    model = cbam.create_model("resnet18", attention="cbam", small_input=True, num_classes=4)
    cbam.save_pretrained(model, tmp_path / "folder")
    out = tmp_path / "model.pt2"
    assert main(["export", "--weights", str(tmp_path / "folder"), "--format", "pt2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "valid for H, W >= 9" in printed and "ok" in printed
    check = check_pt2(out, model, torch.randn(5, 3, 9, 30))
    assert check.ok, check
    program = torch.export.load(str(out)).module()
    with pytest.raises(Exception, match=">= 9"):  # below the minimum the program's guard refuses the input
        program(torch.randn(1, 3, 8, 30))


def test_export_argument_errors(tmp_path):
    model = cbam.create_model("resnet18")
    with pytest.raises(ValueError, match="format"):
        export_model(model, tmp_path / "m.tflite", "tflite")
    with pytest.raises(ValueError, match=">= 33"):
        export_model(model, tmp_path / "m.onnx", "onnx", (1, 3, 16, 16))
    assert main(["export", "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 2
