"""pytorchcv's ``cbam_resnet18/34/50/101/152`` (osmr/imgclsmob, ``pytorchcv/models/cbamresnet.py``) -> ours.

Key names (ConvBlock = ``conv`` + ``bn``):

==============================================================  ===================================
pytorchcv                                                        ours
==============================================================  ===================================
``features.init_block.conv.{conv,bn}.*``                         ``conv1.*``, ``bn1.*``
``features.stageS.unitU.body.convK.conv.weight``                 ``layerS.(U-1).convK.weight``
``features.stageS.unitU.body.convK.bn.*``                        ``layerS.(U-1).bnK.*``
``features.stageS.unitU.identity_conv.{conv,bn}.*``              ``layerS.(U-1).downsample.{0,1}.*``
``features.stageS.unitU.cbam.ch_gate.mlp.fc{1,2}.*``             ``layerS.(U-1).attn.channel.fc{1,2}.*``
``features.stageS.unitU.cbam.sp_gate.conv.conv.weight``          ``layerS.(U-1).attn.spatial.conv.weight``
``features.stageS.unitU.cbam.sp_gate.conv.bn.*``                 ``layerS.(U-1).attn.spatial.norm.*``
``output.*``                                                     ``head.fc.*``
==============================================================  ===================================

The layout is the official one (``attention="cbam_official"``): biased MLP (hidden C // 16),
bias-free 7x7 conv + BatchNorm, ``[max; mean]`` order, stride on the 3x3 conv (``conv1_stride=False``).
Differences that leave the eval-mode forward unchanged: its spatial BatchNorm has PyTorch's
default momentum 0.1 (ours 0.01), and its ``AvgPool2d(7)`` final pool equals our global mean at
224 x 224 input (at other sizes pytorchcv's model does not run or pools a window only).
"""
from __future__ import annotations

import re

from torch import Tensor

from ._common import Conversion, rename

__all__ = ["RULES", "from_pytorchcv"]


def _unit(m: re.Match, rest: str) -> str:
    return f"layer{m['stage']}.{int(m['unit']) - 1}.{rest}"


_UNIT = r"features\.stage(?P<stage>\d+)\.unit(?P<unit>\d+)\."
RULES = [
    (r"features\.init_block\.conv\.conv\.weight", "conv1.weight"),
    (r"features\.init_block\.conv\.bn\.(?P<p>.*)", r"bn1.\g<p>"),
    (_UNIT + r"body\.conv(?P<k>\d)\.conv\.weight", lambda m: _unit(m, f"conv{m['k']}.weight")),
    (_UNIT + r"body\.conv(?P<k>\d)\.bn\.(?P<p>.*)", lambda m: _unit(m, f"bn{m['k']}.{m['p']}")),
    (_UNIT + r"identity_conv\.conv\.weight", lambda m: _unit(m, "downsample.0.weight")),
    (_UNIT + r"identity_conv\.bn\.(?P<p>.*)", lambda m: _unit(m, f"downsample.1.{m['p']}")),
    (_UNIT + r"cbam\.ch_gate\.mlp\.fc(?P<k>[12])\.(?P<p>weight|bias)", lambda m: _unit(m, f"attn.channel.fc{m['k']}.{m['p']}")),
    (_UNIT + r"cbam\.sp_gate\.conv\.conv\.weight", lambda m: _unit(m, "attn.spatial.conv.weight")),
    (_UNIT + r"cbam\.sp_gate\.conv\.bn\.(?P<p>.*)", lambda m: _unit(m, f"attn.spatial.norm.{m['p']}")),
    (r"output\.(?P<p>weight|bias)", r"head.fc.\g<p>"),
]


def from_pytorchcv(state_dict: dict[str, Tensor]) -> Conversion:
    """pytorchcv ``CbamResNet`` keys -> our ``attention="cbam_official"`` ResNet."""
    out, renamed = rename(state_dict, RULES, "pytorchcv checkpoint")
    return Conversion(out, "cbam_official", renamed=renamed, notes=[
        "pytorchcv's spatial BatchNorm momentum 0.1 becomes ours 0.01 (training-time only)",
    ])
