"""Helpers shared by the fused-operator tests (test_fast_path.py, test_triton_kernels.py)."""
from __future__ import annotations

import copy

import torch
from torch import nn

from cbam.nn import CBAM, ChannelAttention, fast_path


def eval_norm(m: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, so eval mode is not the identity."""
    for norm in [mod for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)]:
        with torch.no_grad():
            norm.weight.normal_()
            norm.bias.normal_()
            norm.running_mean.fill_(0.3)
            norm.running_var.fill_(2.0)
    return m.eval()


def run(m: nn.Module, x: torch.Tensor, grad: torch.Tensor, mode: bool | str) -> dict[str, torch.Tensor]:
    """Output, input gradient, parameter gradients and buffers after one forward+backward in ``mode``."""
    m = copy.deepcopy(m)
    x = x.detach().clone().requires_grad_()
    with fast_path(mode):
        out = m(x)
        out.backward(grad)
    result = {"out": out.detach(), "dx": x.grad}
    result.update({f"grad.{n}": p.grad for n, p in m.named_parameters()})
    result.update({f"buffer.{n}": b for n, b in m.named_buffers()})
    return result


def parts(m: nn.Module) -> tuple[nn.Module | None, nn.Module | None]:
    """(channel, spatial) of a CBAM, channel attention or spatial attention module."""
    if isinstance(m, CBAM):
        return m.channel, m.spatial
    return (m, None) if isinstance(m, ChannelAttention) else (None, m)
