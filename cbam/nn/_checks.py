"""Argument and input validation shared by the attention modules."""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch

__all__ = ["check_feature_map", "check_kernel_size", "check_names", "hidden_channels"]


def check_feature_map(module: str, x: torch.Tensor, channels: int | None = None) -> None:
    """Raise ``ValueError`` unless ``x`` is a floating-point (B, C, H, W) tensor with ``channels`` channels."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{module}: expected a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(
            f"{module}: expected a 4-D input of shape (B, C, H, W), got {x.dim()}-D input of shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(f"{module}: expected a floating-point input, got dtype {x.dtype}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{module}: expected an input with {channels} channels (dim 1), got {x.shape[1]} "
            f"(input shape {tuple(x.shape)})"
        )


def check_kernel_size(module: str, kernel_size: int) -> int:
    """Return ``kernel_size`` if it is an odd positive int, else raise ``ValueError``."""
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"{module}: kernel_size must be an odd integer >= 1 (padding is k//2), got {kernel_size!r}")
    return kernel_size


def check_names(module: str, arg: str, names: Iterable[str], valid: Iterable[str]) -> tuple[str, ...]:
    """Return ``names`` as a tuple, checking it is non-empty, free of duplicates and drawn from ``valid``."""
    if isinstance(names, str):
        names = (names,)
    if not isinstance(names, Iterable):
        raise ValueError(f"{module}: {arg} must be a sequence of names from {tuple(valid)}, got {names!r}")
    names = tuple(names)
    valid = tuple(valid)
    if not names:
        raise ValueError(f"{module}: {arg} must name at least one of {valid}, got an empty sequence")
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"{module}: unknown {arg} {unknown}; valid names are {valid}")
    if len(set(names)) != len(names):
        raise ValueError(f"{module}: {arg} has duplicate entries: {names}")
    return names


def hidden_channels(module: str, channels: int, reduction: float) -> int:
    """Width C/r of the attention MLP's hidden layer.

    The paper's widths are all divisible by r; where they are not (MobileNet at alpha=0.7), we round
    to the nearest integer, which is what reproduces Table 5's +SE / +CBAM parameter counts.
    """
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"{module}: channels must be a positive int, got {channels!r}")
    if isinstance(reduction, bool) or not isinstance(reduction, (int, float)) or not math.isfinite(reduction) \
            or reduction <= 0:
        raise ValueError(f"{module}: reduction must be a positive finite number, got {reduction!r}")
    if reduction > channels:
        raise ValueError(
            f"{module}: reduction ratio r={reduction} is larger than channels={channels}; "
            f"the hidden layer C/r would have no units (use r <= {channels})"
        )
    return max(1, round(channels / reduction))
