"""Parameters and GFLOPs the way the paper counts them.

GFLOPs in the paper are multiply-accumulates (MACs) of convolutions and linear layers at
224 x 224, batch 1; pooling, activations, BatchNorm and the attention products are not counted.
``torch.utils.flop_counter`` counts 2 FLOPs per multiply-add, so we halve its total.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..nn import fast_path

__all__ = ["count_params", "count_gmacs"]

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
