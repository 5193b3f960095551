"""Parameters and GFLOPs the way the paper counts them, and the check against Tables 4 and 5.

GFLOPs in the paper are multiply-accumulates (MACs) of convolutions and linear layers at
224 x 224, batch 1; pooling, activations, BatchNorm and the attention products are not counted.
``torch.utils.flop_counter`` counts 2 FLOPs per multiply-add, so we halve its total.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .models import create_model, model_info
from .nn import fast_path

__all__ = ["count_params", "count_gmacs", "PaperRow", "paper_rows", "format_rows"]

#: Models in the order of the paper's Tables 4 and 5.
_PAPER_ORDER = (
    "resnet18", "resnet34", "resnet50", "resnet101", "wide_resnet18_x1_5", "wide_resnet18_x2",
    "resnext50_32x4d", "resnext101_32x4d", "mobilenet_v1_x0_7", "mobilenet_v1",
)
_COUNTED_OPS = {"convolution", "mm", "addmm", "bmm", "baddbmm"}


def count_params(model: nn.Module) -> int:
    """Number of learnable parameters."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_gmacs(model: nn.Module, input_size: tuple[int, int, int] = (3, 224, 224)) -> float:
    """Giga multiply-accumulates of convolutions and linear layers for one (1, *input_size) input."""
    was_training = model.training
    model.eval()
    x = torch.zeros(1, *input_size)
    counter = FlopCounterMode(display=False)
    with counter, fast_path(False):  # count the paper's operations, not the fused kernel's (its bmm means)
        model(x)
    model.train(was_training)
    flops = sum(
        n for op, n in counter.get_flop_counts()["Global"].items() if op.__name__.split(".")[0] in _COUNTED_OPS
    )
    return flops / 2 / 1e9


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
            model = create_model(name, attention=None if att == "none" else att, **kwargs)
            label = info.paper["label"] + {"none": "", "se": " + SE", "cbam": " + CBAM"}[att]
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
