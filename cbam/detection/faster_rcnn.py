"""Faster R-CNN with an FPN over our ResNet (+SE / +CBAM in every block): the CBAM paper's Table 6.

The detector is torchvision's :class:`~torchvision.models.detection.FasterRCNN`; the backbone is a
registry model (``cbam.create_model(name, attention=...)``) read through its ``feature_info`` by
:class:`~cbam.detection.backbone.StagesBackbone`, followed by torchvision's
:class:`~torchvision.ops.FeaturePyramidNetwork` with a max-pool level ("0".."3", "pool"), as in
torchvision's ``fasterrcnn_resnet50_fpn``. Attention therefore sits *inside the backbone's blocks*
(Sec. 4.4: "we are interested in performance improvement by plugging CBAM to the baseline networks").
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from ..nn.factory import AttentionSpec
from .backbone import StagesBackbone, build_stages_backbone, freeze_batchnorm, freeze_stages

__all__ = ["BackboneFPN", "faster_rcnn"]


class BackboneFPN(nn.Module):
    """Stage maps -> FPN maps: (B, 3, H, W) -> {"0": (B, C, H/4, W/4), ..., "3": H/32, "pool": H/64}, C = ``out_channels``."""

    def __init__(self, body: StagesBackbone, out_channels: int = 256) -> None:
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(body.out_channels_list, out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        return self.fpn(self.body(x))


def faster_rcnn(
    num_classes: int,
    backbone: str = "resnet50",
    attention: AttentionSpec = None,
    weights: str | Path | None = None,
    frozen_bn: bool = False,
    trainable_stages: int = 5,
    fpn_channels: int = 256,
    min_size: int = 800,
    max_size: int = 1333,
    anchor_sizes: Sequence[int] = (32, 64, 128, 256, 512),
    **detector_kwargs: Any,
) -> FasterRCNN:
    """Faster R-CNN + FPN over registry model ``backbone`` with ``attention`` in its blocks.

    Args:
        num_classes: foreground classes K (the detector predicts K + 1 with background).
        backbone: a registry model with four stages (``resnet50``, ``resnet101``, ... any of them works).
        attention: ``None``, ``"se"``, ``"cbam"`` (or any :func:`cbam.nn.create_attention` spec).
        weights: classification checkpoint of ours for the backbone; the loaded / missing keys are
            stored in ``model.backbone_report``.
        frozen_bn: swap every BatchNorm for ``FrozenBatchNorm2d`` (after loading ``weights``).
        trainable_stages: train the last n of the backbone's stages; 5 = all four and the stem.
        fpn_channels: FPN width.
        min_size, max_size: torchvision's resize of each (variable-size) image.
        anchor_sizes: one anchor size per FPN level (5 levels), aspect ratios 0.5 / 1 / 2.
        **detector_kwargs: other ``FasterRCNN`` options (``rpn_pre_nms_top_n_train``, ``box_detections_per_img``, ...).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if len(anchor_sizes) != 5:
        raise ValueError(f"anchor_sizes needs one size per FPN level (5), got {list(anchor_sizes)}")
    body, report = build_stages_backbone(backbone, attention, (0, 1, 2, 3), weights)
    if frozen_bn:
        freeze_batchnorm(body)
    freeze_stages(body, trainable_stages)
    anchors = AnchorGenerator(tuple((s,) for s in anchor_sizes), ((0.5, 1.0, 2.0),) * len(anchor_sizes))
    model = FasterRCNN(
        BackboneFPN(body, fpn_channels), num_classes=num_classes + 1, min_size=min_size, max_size=max_size,
        rpn_anchor_generator=anchors, **detector_kwargs,
    )
    model.backbone_report = report
    return model
