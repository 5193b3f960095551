"""The official CBAM release (Jongchan/attention-module, ``MODELS/model_resnet.py``) -> our ResNet.

Its ImageNet checkpoint (ResNet-50 + CBAM, top-1 77.622%) is a dict with ``state_dict`` (keys
prefixed ``module.`` by DataParallel), ``epoch``, ``best_prec1`` and maybe ``optimizer``. Per block:

=====================================================  ==================================
official key (after ``module.``)                        ours
=====================================================  ==================================
``layerL.i.cbam.ChannelGate.mlp.1.{weight,bias}``       ``layerL.i.attn.channel.fc1.*``
``layerL.i.cbam.ChannelGate.mlp.3.{weight,bias}``       ``layerL.i.attn.channel.fc2.*``
``layerL.i.cbam.SpatialGate.spatial.conv.weight``       ``layerL.i.attn.spatial.conv.weight``
``layerL.i.cbam.SpatialGate.spatial.bn.*``              ``layerL.i.attn.spatial.norm.*``
``fc.*``                                                ``head.fc.*``
=====================================================  ==================================

Every other key (``conv1``, ``bn1``, ``layerL.i.conv1..3``, ``bn1..3``, ``downsample.0/1``) is the
same. The release's layout is our ``attention="cbam_official"`` preset: biased MLP, bias-free 7x7
conv + BatchNorm (momentum 0.01), pooled maps in ``[max; mean]`` order (``ChannelPool``), and the
stride on the 3x3 conv of each bottleneck. Its ``AvgPool2d(7)`` before ``fc`` equals our global
mean at 224 x 224 input.
"""
from __future__ import annotations

from torch import Tensor

from ._common import Conversion, rename

__all__ = ["RULES", "from_official"]

RULES = [
    (r"module\.(.*)", r"\1"),
]
_BLOCK_RULES = [
    (r"(layer\d+\.\d+)\.cbam\.ChannelGate\.mlp\.1\.(weight|bias)", r"\1.attn.channel.fc1.\2"),
    (r"(layer\d+\.\d+)\.cbam\.ChannelGate\.mlp\.3\.(weight|bias)", r"\1.attn.channel.fc2.\2"),
    (r"(layer\d+\.\d+)\.cbam\.SpatialGate\.spatial\.conv\.weight", r"\1.attn.spatial.conv.weight"),
    (r"(layer\d+\.\d+)\.cbam\.SpatialGate\.spatial\.bn\.(.*)", r"\1.attn.spatial.norm.\2"),
    (r"fc\.(weight|bias)", r"head.fc.\1"),
]


def from_official(state_dict: dict[str, Tensor]) -> Conversion:
    """Official-release keys (with or without ``module.``) -> our ``attention="cbam_official"`` ResNet."""
    stripped, n_prefix = rename(state_dict, RULES, "official checkpoint")
    out, _ = rename(stripped, _BLOCK_RULES, "official checkpoint")
    renamed = sum(a != b for a, b in zip(state_dict, out))  # rename keeps the order of the keys
    notes = [f"stripped the DataParallel 'module.' prefix from {n_prefix} keys"] if n_prefix else []
    return Conversion(out, "cbam_official", renamed=renamed, notes=notes)
