"""Export a model to ONNX (checked with ``onnx.checker`` and run in onnxruntime) or to a ``torch.export`` ``.pt2``.

Both graphs have a dynamic batch, height and width. Minimum input size: eager PyTorch runs any
H, W >= 1 (all pooling is global), but ``torch.export`` specialises the broadcasting of attention
maps on spatial sizes that are not 1, so exported graphs are traced for H, W >= R + 1, where R is
the model's total stride (``feature_info[-1]["reduction"]``): 33 for the ImageNet stems (R = 32),
9 for ``small_input=True`` ResNets (R = 8). The ``.pt2`` program checks this at run time.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..nn import fast_path
from .files import atomic_write

__all__ = ["FORMATS", "ExportCheck", "min_input_size", "export_program", "export_model", "check_onnx", "check_pt2"]

FORMATS = ("onnx", "pt2")


@dataclass
class ExportCheck:
    """Outcome of running an exported file against the PyTorch model on one input."""

    input_shape: tuple[int, ...]
    max_abs_diff: float
    atol: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.atol


def min_input_size(model: nn.Module) -> int:
    """Smallest height / width the exported graph is valid for: total stride + 1 (see module doc)."""
    info = getattr(model, "feature_info", None)
    if not info:
        raise ValueError(f"min_input_size: {type(model).__name__} has no feature_info to read its total stride from")
    return int(info[-1]["reduction"]) + 1


def _example(model: nn.Module, example_size: Sequence[int] | None) -> Tensor:
    size = min_input_size(model)
    shape = tuple(example_size) if example_size else (2, 3, 2 * size - 2, 2 * size - 2)
    if len(shape) != 4 or min(shape[2:]) < size:
        raise ValueError(f"example_size must be (B, C, H, W) with H, W >= {size} for this model, got {shape}")
    ref = next(model.parameters())
    return torch.randn(*shape, device=ref.device, dtype=ref.dtype)


def export_program(model: nn.Module, example_size: Sequence[int] | None = None) -> torch.export.ExportedProgram:
    """``torch.export`` the eval-mode ``model`` with dynamic batch, height (>= min) and width (>= min).

    Attention is traced through its reference path (standard operators, no ``cbam::`` custom op),
    so the program converts to ONNX and loads without this package installed.
    """
    model = model.eval()
    size = min_input_size(model)
    x = _example(model, example_size)
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height", min=size),
            3: torch.export.Dim("width", min=size)}
    with torch.no_grad(), fast_path(False):
        return torch.export.export(model, (x,), dynamic_shapes={"x": dims})


def export_model(
    model: nn.Module, path: str | os.PathLike, format: str = "onnx", example_size: Sequence[int] | None = None
) -> Path:
    """Write ``model`` as ONNX (``format="onnx"``, input ``input``, output ``logits``) or a ``.pt2`` program.

    Args:
        model: any model with ``feature_info`` (every registry model); exported in eval mode.
        path: output file, written atomically.
        format: ``"onnx"`` or ``"pt2"``.
        example_size: (B, C, H, W) traced with; default (2, 3, 2*m - 2, 2*m - 2), m = :func:`min_input_size`.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; valid names are {FORMATS}")
    program = export_program(model, example_size)
    if format == "pt2":
        return atomic_write(path, lambda tmp: torch.export.save(program, str(tmp)))
    return atomic_write(path, lambda tmp: torch.onnx.export(
        program, f=str(tmp), input_names=["input"], output_names=["logits"], dynamo=True, external_data=False,
        verbose=False,  # no "[torch.onnx] ..." progress lines
    ))


def _compare(out: Tensor, ref: Tensor, shape: tuple[int, ...], atol: float) -> ExportCheck:
    return ExportCheck(shape, float((out.float() - ref.float()).abs().max()), atol)


def check_onnx(path: str | os.PathLike, model: nn.Module, x: Tensor, atol: float = 1e-4) -> ExportCheck:
    """``onnx.checker`` the file, run it in onnxruntime (CPU) on ``x`` and compare with ``model(x)``."""
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(str(path), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: x.detach().cpu().float().numpy()})[0]
    with torch.no_grad():
        ref = model.eval()(x)
    return _compare(torch.from_numpy(out), ref.cpu(), tuple(x.shape), atol)


def check_pt2(path: str | os.PathLike, model: nn.Module, x: Tensor, atol: float = 1e-4) -> ExportCheck:
    """Load the ``.pt2`` program, run it on ``x`` and compare with ``model(x)``."""
    program = torch.export.load(str(path))
    with torch.no_grad():
        out, ref = program.module()(x), model.eval()(x)
    return _compare(out, ref, tuple(x.shape), atol)
