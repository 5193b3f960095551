"""``attach``: insert CBAM (or any attention of :func:`cbam.nn.create_attention`) into an existing CNN.

Where (the paper's placement, Fig. 3): on the residual branch, after the block's last BatchNorm and
before the addition, for ResNet / ResNeXt / Wide-ResNet; after the projection (the last 1x1 conv
+ BN) of every inverted-residual block for MobileNetV2 / V3 and EfficientNet, i.e. also before
the addition.

How, so that the host's ``state_dict`` keys stay exactly as they were (pretrained weights keep
loading, nothing is renamed) and no forward method is patched globally:

- torchvision ``BasicBlock`` / ``Bottleneck``: the block instance gets an ``attn`` submodule and its
  class is switched to :class:`AttentiveBasicBlock` / :class:`AttentiveBottleneck`, subclasses whose
  only change is ``attn`` after ``bn2`` / ``bn3``. New keys: ``layerL.i.attn.*``, the same as our
  own :class:`cbam.models.ResNet`.
- timm ``BasicBlock`` / ``Bottleneck``: timm's own hook, the block's ``se`` slot (called after the
  last BatchNorm, before the addition), when it is empty. New keys: ``layerL.i.se.*``.
- torchvision ``InvertedResidual`` (MobileNetV2 / V3), ``MBConv`` / ``FusedMBConv`` (EfficientNet
  v1 / v2): the attention is appended, as ``attn``, to the block's ``nn.Sequential`` branch
  (``conv`` or ``block``), whose output is what the block adds to its input. New keys:
  ``...conv.attn.*`` / ``...block.attn.*``.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn
from torchvision.models import efficientnet, mobilenetv2, mobilenetv3, resnet

from ..nn.factory import AttentionSpec, attention_name, create_attention

__all__ = ["attach", "AttentiveBasicBlock", "AttentiveBottleneck", "SUPPORTED"]

SUPPORTED = (
    "torchvision ResNet / ResNeXt / Wide-ResNet (BasicBlock, Bottleneck), MobileNetV2 / V3 (InvertedResidual), "
    "EfficientNet / EfficientNetV2 (MBConv, FusedMBConv); timm ResNet family (BasicBlock, Bottleneck)"
)


class AttentiveBasicBlock(resnet.BasicBlock):
    """torchvision ``BasicBlock`` with ``attn`` after ``bn2``, before the addition."""

    attn: nn.Module

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.attn(self.bn2(self.conv2(out)))
        return self.relu(out + identity)


class AttentiveBottleneck(resnet.Bottleneck):
    """torchvision ``Bottleneck`` with ``attn`` after ``bn3``, before the addition."""

    attn: nn.Module

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.attn(self.bn3(self.conv3(out)))
        return self.relu(out + identity)


_TV_RESIDUAL = {resnet.BasicBlock: (AttentiveBasicBlock, "bn2"), resnet.Bottleneck: (AttentiveBottleneck, "bn3")}
_TV_INVERTED = {
    mobilenetv2.InvertedResidual: "conv",
    mobilenetv3.InvertedResidual: "block",
    efficientnet.MBConv: "block",
    efficientnet.FusedMBConv: "block",
}


def _timm_blocks() -> tuple[type, ...]:
    try:
        from timm.models import resnet as timm_resnet
    except ImportError:
        return ()
    return timm_resnet.BasicBlock, timm_resnet.Bottleneck


def _last_norm_channels(seq: nn.Module) -> int:
    norms = [m for m in seq.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms:
        raise ValueError(f"attach: no BatchNorm2d in {type(seq).__name__} to read the channel count from")
    return norms[-1].num_features


def _new_attention(attention: AttentionSpec, channels: int, like: nn.Module, options: dict[str, Any]) -> nn.Module:
    module = create_attention(attention, channels, **options)
    ref = next(like.parameters(), None)
    return module if ref is None else module.to(device=ref.device, dtype=ref.dtype)


def attach(model: nn.Module, attention: AttentionSpec = "cbam", **options: Any) -> list[str]:
    """Insert ``attention`` into every residual / inverted-residual block of ``model``, in place.

    Args:
        model: a torchvision or timm CNN (see :data:`SUPPORTED`); pretrained or not.
        attention: any :func:`cbam.nn.create_attention` spec except ``None`` (``"cbam"``, ``"se"``,
            ``"cbam_official"``, an ablation name, a class, a partial).
        **options: options of the attention module, e.g. ``reduction=8``, ``kernel_size=3``.

    Returns:
        The qualified names of the new attention modules, e.g. ``["layer1.0.attn", ...]``. The new
        modules are in training mode; the host's parameters and buffers are untouched.

    Raises:
        ValueError: ``model`` has no supported block (the message names its class), a block already
            has attention, or the attention spec is invalid.
    """
    if attention_name(attention) is None:
        raise ValueError("attach: attention must name a module (e.g. 'cbam'), got None")
    timm_blocks = _timm_blocks()
    places: list[str] = []
    for name, block in list(model.named_modules()):
        kind = type(block)
        if kind in (AttentiveBasicBlock, AttentiveBottleneck):
            raise ValueError(f"attach: {name} already has attention (attach was called before)")
        if kind in _TV_RESIDUAL:
            new_class, last_bn = _TV_RESIDUAL[kind]
            bn = getattr(block, last_bn)
            block.attn = _new_attention(attention, bn.num_features, bn, options)
            block.__class__ = new_class
            places.append(f"{name}.attn")
        elif kind in _TV_INVERTED:
            branch = getattr(block, _TV_INVERTED[kind])
            if hasattr(branch, "attn"):
                raise ValueError(f"attach: {name} already has attention (attach was called before)")
            branch.add_module("attn", _new_attention(attention, _last_norm_channels(branch), branch, options))
            places.append(f"{name}.{_TV_INVERTED[kind]}.attn")
        elif timm_blocks and isinstance(block, timm_blocks):
            if block.se is not None:
                raise ValueError(f"attach: {name} already has attention ({type(block.se).__name__} in its 'se' slot)")
            last_bn = block.bn3 if hasattr(block, "bn3") else block.bn2
            block.se = _new_attention(attention, last_bn.num_features, last_bn, options)
            places.append(f"{name}.se")
    if not places:
        raise ValueError(f"attach: {type(model).__name__} has no block attach supports; supported: {SUPPORTED}")
    return places
