"""Read CBAM's attention maps M_c and M_s out of a model without changing its forward.

A forward pre-hook on every :class:`cbam.nn.CBAM` captures the module's input F; the maps are then
computed from F with the module's own ``channel.attention_map`` / ``spatial.attention_map`` in the
module's arrangement. This does not depend on how ``CBAM.forward`` is implemented (a fused path
that never calls the submodules gives the same maps).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..nn import CBAM

__all__ = ["AttentionMaps", "cbam_modules", "attention_maps"]


@dataclass
class AttentionMaps:
    """Attention of one CBAM module for a batch.

    Attributes:
        name: qualified module name, e.g. ``"layer3.1.attn"``.
        stage: index into ``model.feature_info`` of the stage holding the module, -1 for the stem.
        m_c: (B, C) channel attention M_c in [0, 1].
        m_s: (B, h, w) spatial attention M_s in [0, 1], at the module's feature resolution.

    For ``arrangement="channel_first"`` (eq. 1) M_s is computed from F' = M_c(F) * F, for
    ``"spatial_first"`` M_c from F' = M_s(F) * F. For ``"parallel"`` the module applies
    sigma(logits_c + logits_s); M_c and M_s are then each branch's own sigmoid of F.
    """

    name: str
    stage: int
    m_c: Tensor
    m_s: Tensor


def _stage_of(name: str, model: nn.Module) -> int:
    for i, info in enumerate(getattr(model, "feature_info", [])):
        if name.startswith(info["module"] + "."):
            return i
    return -1


def cbam_modules(model: nn.Module, last_per_stage: bool = False) -> list[tuple[str, CBAM]]:
    """(name, module) of every CBAM in ``model`` in forward order, or only the last one of each stage.

    Raises:
        ValueError: the model has no CBAM module (e.g. a plain or SE network).
    """
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, CBAM)]
    if not found:
        name = getattr(model, "model_name", type(model).__name__)
        raise ValueError(f"model {name!r} has no CBAM module; attention maps need a model built with attention='cbam'")
    if last_per_stage:
        last: dict[int, tuple[str, CBAM]] = {}
        for n, m in found:
            last[_stage_of(n, model)] = (n, m)
        found = [last[s] for s in sorted(last)]
    return found


@torch.no_grad()
def _maps(module: CBAM, x: Tensor) -> tuple[Tensor, Tensor]:
    """F (B, C, H, W) -> M_c (B, C), M_s (B, H, W) as ``module`` applies them."""
    if module.arrangement == "channel_first":
        m_c = module.channel.attention_map(x)  # (B, C, 1, 1)
        m_s = module.spatial.attention_map(x * m_c)  # (B, 1, H, W)
    elif module.arrangement == "spatial_first":
        m_s = module.spatial.attention_map(x)
        m_c = module.channel.attention_map(x * m_s)
    else:  # parallel: each branch's own sigmoid of F
        m_c, m_s = module.channel.attention_map(x), module.spatial.attention_map(x)
    return m_c.flatten(1), m_s[:, 0]


@torch.no_grad()
def attention_maps(model: nn.Module, images: Tensor, last_per_stage: bool = False) -> list[AttentionMaps]:
    """Run ``model`` on ``images`` (B, 3, H, W) in eval mode and return the maps of its CBAM modules.

    Args:
        model: any model containing :class:`cbam.nn.CBAM` modules.
        images: (B, 3, H, W) normalised input.
        last_per_stage: keep only the last CBAM of each stage of ``model.feature_info``.

    The model's training mode is restored afterwards and no hook is left behind.
    """
    modules = cbam_modules(model, last_per_stage)
    captured: dict[str, tuple[Tensor, Tensor]] = {}

    def hook(name: str):
        def pre_hook(module: CBAM, args: tuple[Tensor, ...]) -> None:
            captured[name] = _maps(module, args[0])

        return pre_hook

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in modules]
    was_training = model.training
    try:
        model.eval()
        model(images.to(next(model.parameters()).device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return [AttentionMaps(n, _stage_of(n, model), *(t.cpu() for t in captured[n])) for n, _ in modules]
