"""The paper's Tables 4-7 rebuilt and counted beside the values the paper prints.

Tables 4 and 5 (classification): parameters and GFLOPs of every row (:func:`paper_rows`). Tables 6
and 7 (detection): parameters of every detector (:func:`param_rows`); Table 7 counts VOC detectors
(20 classes + background); Table 6 prints no parameter counts, so its rows (COCO, 80 classes +
background) have none to compare with.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..detection import faster_rcnn, ssd, stairnet
from ..models import create_model, model_info
from ..models.labels import attention_suffix
from ..models.profile import count_gmacs, count_params
from ..nn.factory import AttentionSpec, attention_name

__all__ = ["PaperRow", "paper_rows", "format_rows", "ParamRow", "detector_label", "param_rows", "format_param_rows"]

#: Models in the order of the paper's Tables 4 and 5.
_PAPER_ORDER = (
    "resnet18", "resnet34", "resnet50", "resnet101", "wide_resnet18_x1_5", "wide_resnet18_x2",
    "resnext50_32x4d", "resnext101_32x4d", "mobilenet_v1_x0_7", "mobilenet_v1",
)

_DETECTORS = {"faster_rcnn": "Faster R-CNN", "ssd": "SSD", "stairnet": "StairNet"}
_BACKBONES = {"vgg16": "VGG16", "mobilenet_v1": "MobileNet", "mobilenet_v1_x0_7": "MobileNet alpha=0.7"}

# (detector, backbone, attention) -> parameters (M) printed in Table 7.
_TABLE7 = {
    ("ssd", "vgg16", None): 26.5, ("stairnet", "vgg16", None): 32.0,
    ("stairnet", "vgg16", "se"): 32.1, ("stairnet", "vgg16", "cbam"): 32.1,
    ("ssd", "mobilenet_v1", None): 5.81, ("stairnet", "mobilenet_v1", None): 5.98,
    ("stairnet", "mobilenet_v1", "se"): 5.99, ("stairnet", "mobilenet_v1", "cbam"): 6.00,
}
_TABLE6 = [("faster_rcnn", b, a) for b in ("resnet50", "resnet101") for a in (None, "cbam")]


@dataclass
class PaperRow:
    """One row of Table 4 or 5: ours beside the paper's."""

    table: str
    model: str
    attention: str
    label: str
    params: int
    gmacs: float
    paper_params_m: float
    paper_gflops: float

    @property
    def params_match(self) -> bool:
        return round(self.params / 1e6, 2) == self.paper_params_m

    @property
    def gflops_match(self) -> bool:
        return round(self.gmacs, 3) == self.paper_gflops

    @property
    def match(self) -> bool:
        return self.params_match and self.gflops_match


def paper_rows(stride_in_1x1: bool = True) -> list[PaperRow]:
    """Every row of Tables 4 and 5 with our parameter count and GMACs.

    ResNet / WRN / ResNeXt rows are counted with the stride in the first 1x1 convolution
    (``stride_in_1x1``, the original ResNet on which the paper's GFLOPs are based).
    """
    rows = []
    for name in _PAPER_ORDER:
        info = model_info(name)
        is_resnet = not name.startswith("mobilenet")
        for att in ("none", "se", "cbam"):
            kwargs: dict[str, Any] = {"stride_in_1x1": stride_in_1x1} if is_resnet else {}
            model = create_model(name, attention=attention_name(att), **kwargs)
            label = info.paper["label"] + attention_suffix(att)
            rows.append(PaperRow(
                info.paper["table"], name, att, label, count_params(model), count_gmacs(model, info.input_size),
                info.paper["params_m"][att], info.paper["gflops"][att],
            ))
    return rows


def format_rows(rows: list[PaperRow]) -> str:
    """Markdown table of ``rows``."""
    lines = [
        "| Table | Architecture | Params (M) | Paper | GFLOPs | Paper | Match |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        verdict = "yes" if r.match else ("GFLOPs differ" if r.params_match else "NO")
        lines.append(
            f"| {r.table} | {r.label} | {r.params / 1e6:.2f} | {r.paper_params_m:.2f} | "
            f"{r.gmacs:.3f} | {r.paper_gflops:.3f} | {verdict} |"
        )
    return "\n".join(lines)


def detector_label(detector: str, backbone: str, attention: AttentionSpec) -> tuple[str, str]:
    """(backbone, detector) as the paper labels them: attention goes with the backbone in Table 6
    (it is inside the backbone's blocks) and with the detector in Table 7 (before its classifiers)."""
    name = _BACKBONES.get(backbone, backbone.replace("resnet", "ResNet"))
    att = attention_suffix(attention)
    if detector == "faster_rcnn":
        return name + att, _DETECTORS[detector]
    return name, _DETECTORS.get(detector, detector) + att


@dataclass
class ParamRow:
    """One detector: our parameter count and the paper's (``None`` where the paper prints none)."""

    table: str
    detector: str
    backbone: str
    attention: str | None
    params: int
    paper_m: float | None


def param_rows(table: str = "7") -> list[ParamRow]:
    """Build every detector of Table ``"6"`` or ``"7"`` (randomly initialised) and count its parameters."""
    if table == "7":
        rows = []
        for (det, backbone, att), paper in _TABLE7.items():
            model = (ssd if det == "ssd" else stairnet)(20, backbone, att)
            rows.append(ParamRow("7", det, backbone, att, count_params(model), paper))
        return rows
    if table == "6":
        return [ParamRow("6", d, b, a, count_params(faster_rcnn(80, b, a)), None) for d, b, a in _TABLE6]
    raise ValueError(f"table must be '6' or '7', got {table!r}")


def format_param_rows(rows: list[ParamRow]) -> str:
    """Markdown table: backbone, detector, our parameters, the paper's, the difference."""
    lines = ["| Table | Backbone | Detector | Params (M) | Paper (M) | Difference |", "|---|---|---|---:|---:|---:|"]
    for r in rows:
        backbone, detector = detector_label(r.detector, r.backbone, r.attention)
        ours = r.params / 1e6
        paper = "-" if r.paper_m is None else f"{r.paper_m:.2f}"
        diff = "-" if r.paper_m is None else f"{ours - r.paper_m:+.2f}"
        lines.append(f"| {r.table} | {backbone} | {detector} | {ours:.2f} | {paper} | {diff} |")
    return "\n".join(lines)
