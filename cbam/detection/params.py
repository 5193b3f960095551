"""Parameter counts of the paper's detectors (Tables 6 and 7) beside the paper's numbers.

Table 7 counts VOC detectors (20 classes + background); Table 6 prints no parameter counts, so its
rows (COCO, 80 classes + background) have none to compare with.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..profile import count_params
from .faster_rcnn import faster_rcnn
from .ssd import ssd
from .stairnet import stairnet

__all__ = ["ParamRow", "detector_label", "param_rows", "format_param_rows"]

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


def detector_label(detector: str, backbone: str, attention: str | None) -> tuple[str, str]:
    """(backbone, detector) as the paper labels them: attention goes with the backbone in Table 6
    (it is inside the backbone's blocks) and with the detector in Table 7 (before its classifiers)."""
    name = _BACKBONES.get(backbone, backbone.replace("resnet", "ResNet"))
    att = {None: "", "se": " + SE", "cbam": " + CBAM"}.get(attention, f" + {attention}")
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
