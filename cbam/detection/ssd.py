"""SSD300 (Liu et al., ECCV 2016) with a VGG-16 or MobileNet backbone, optional attention before every
classifier: the baseline rows of the CBAM paper's Table 7.

Everything detection-specific is torchvision's: :class:`~torchvision.models.detection.ssd.SSD`
(resize, anchor matching, hard-negative mining, losses, post-processing),
:class:`~torchvision.models.detection.ssd.SSDHead`,
:class:`~torchvision.models.detection.anchor_utils.DefaultBoxGenerator` and, for VGG-16,
:class:`~torchvision.models.detection.ssd.SSDFeatureExtractorVGG` (conv4_3 with L2 norm, dilated
fc6/fc7, conv8_2..conv11_2). Our part is the MobileNet feature extractor (our ``mobilenet_v1``'s
stride-16 and stride-32 stages, read through ``feature_info``, plus four extra blocks as in the common
MobileNet-SSD: 1x1 then 3x3 stride-2 convolutions, with BatchNorm) and the "neck" that refines the
maps before the heads (:class:`MapAttention` here, the StairNet top-down path in
:mod:`cbam.detection.stairnet`).
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

from torch import Tensor, nn
from torchvision.models import vgg16
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.ssd import SSD, SSDFeatureExtractorVGG, SSDHead, SSDScoringHead

from ..models import IMAGENET_MEAN, IMAGENET_STD, model_info
from ..nn import create_attention
from ..nn.factory import AttentionSpec
from .backbone import build_stages_backbone, freeze_batchnorm

__all__ = ["SSD_BACKBONES", "MapAttention", "MobileNetSSDFeatures", "ssd_features", "ssd_head", "build_ssd", "ssd"]

#: Backbones for SSD / StairNet: ``vgg16`` (torchvision's VGG-16, as in the SSD paper) and any
#: ``mobilenet_v1*`` of our registry.
SSD_BACKBONES = ("vgg16", "mobilenet_v1", "mobilenet_v1_x0_7")
_VGG_CHANNELS = [512, 1024, 512, 256, 256, 256]
#: SSD300's anchors per map location: 4, 6, 6, 6, 4, 4.
_ASPECT_RATIOS = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
_VGG_SCALES = [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05]


def _conv_bn_relu(cin: int, cout: int, k: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class MobileNetSSDFeatures(nn.Module):
    """Our MobileNet's last two stages plus four extra blocks: (B, 3, 300, 300) -> six maps
    19x19x512, 10x10x1024, 5x5x512, 3x3x256, 2x2x256, 1x1x128 (scaled by the width multiplier).
    """

    def __init__(self, name: str = "mobilenet_v1", attention: AttentionSpec = None, weights: str | Path | None = None,
                 **model_kwargs: Any) -> None:
        super().__init__()
        self.base, self.backbone_report = build_stages_backbone(name, attention, (3, 4), weights, **model_kwargs)
        cin = self.base.out_channels_list[-1]
        extras = []
        for mid, out in ((256, 512), (128, 256), (128, 256), (64, 128)):
            extras.append(nn.Sequential(*_conv_bn_relu(cin, mid, 1), *_conv_bn_relu(mid, out, 3, 2)))
            cin = out
        self.extra = nn.ModuleList(extras)
        self.out_channels = [*self.base.out_channels_list, 512, 256, 256, 128]
        for m in self.extra.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        maps = list(self.base(x).values())
        x = maps[-1]
        for block in self.extra:
            x = block(x)
            maps.append(x)
        return OrderedDict((str(i), m) for i, m in enumerate(maps))


class MapAttention(nn.Module):
    """Attention on every prediction map (identity for ``None``): {"i": (B, C_i, H_i, W_i)} -> same shapes."""

    def __init__(self, channels: list[int], attention: AttentionSpec = None, **attention_kwargs: Any) -> None:
        super().__init__()
        self.attn = nn.ModuleList(create_attention(attention, c, **attention_kwargs) or nn.Identity() for c in channels)
        self.out_channels = list(channels)

    def forward(self, maps: OrderedDict[str, Tensor]) -> OrderedDict[str, Tensor]:
        return OrderedDict((k, a(v)) for (k, v), a in zip(maps.items(), self.attn))


def ssd_features(backbone: str, weights: str | Path | None = None, frozen_bn: bool = False) -> tuple[nn.Module, list[int]]:
    """The six-map SSD feature extractor of ``backbone`` and its channels.

    ``vgg16`` is torchvision's VGG-16 (randomly initialised: nothing is downloaded; ``weights`` is not
    supported for it); ``mobilenet_v1*`` comes from our registry (``weights``: one of our
    classification checkpoints; ``frozen_bn``: FrozenBatchNorm2d in the backbone).
    """
    if backbone == "vgg16":
        if weights:
            raise ValueError("backbone weights are supported for our registry models (mobilenet_v1*), not vgg16")
        return SSDFeatureExtractorVGG(vgg16(weights=None).features, highres=False), list(_VGG_CHANNELS)
    if backbone.startswith("mobilenet_v1") and backbone in SSD_BACKBONES:
        features = MobileNetSSDFeatures(backbone, weights=weights)
        if frozen_bn:
            freeze_batchnorm(features.base)
        return features, features.out_channels
    raise ValueError(f"unknown SSD backbone {backbone!r}; valid names are {list(SSD_BACKBONES)}")


def ssd_head(channels: list[int], num_anchors: list[int], num_classes: int, kernel_size: int = 3) -> SSDHead:
    """torchvision's ``SSDHead`` (classification + box regression per map) with ``kernel_size`` x ``kernel_size``
    predictors: 3 as in SSD300-VGG16, 1 as in the common MobileNet-SSD (whose 5.8M parameters Table 7 matches).
    ``num_classes`` includes the background.
    """
    head = SSDHead(channels, num_anchors, num_classes)
    if kernel_size != 3:
        def predictors(width: int) -> nn.ModuleList:
            convs = nn.ModuleList(nn.Conv2d(c, a * width, kernel_size, padding=kernel_size // 2) for c, a in zip(channels, num_anchors))
            for conv in convs:
                nn.init.xavier_uniform_(conv.weight)
                nn.init.zeros_(conv.bias)
            return convs

        head.classification_head = SSDScoringHead(predictors(num_classes), num_classes)
        head.regression_head = SSDScoringHead(predictors(4), 4)
    return head


def build_ssd(features: nn.Module, neck: nn.Module, backbone: str, num_classes: int, size: int = 300,
              head_kernel: int | None = None, **detector_kwargs: Any) -> SSD:
    """torchvision ``SSD`` on ``features`` -> ``neck`` (which has ``out_channels``) with SSD300's anchors.

    ``head_kernel`` defaults to 3 for ``vgg16`` and 1 for MobileNet (see :func:`ssd_head`).
    """
    if size < 32:
        raise ValueError(f"size must be >= 32 pixels, got {size}")
    if backbone == "vgg16":
        anchors = DefaultBoxGenerator(_ASPECT_RATIOS, scales=_VGG_SCALES, steps=[8, 16, 32, 64, 100, 300])
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:  # steps from the map sizes, scales from min_ratio=0.2 to max_ratio=0.95 (MobileNet-SSD)
        anchors = DefaultBoxGenerator(_ASPECT_RATIOS, min_ratio=0.2, max_ratio=0.95)
        info = model_info(backbone)
        mean, std = info.mean, info.std
    if head_kernel is None:
        head_kernel = 3 if backbone == "vgg16" else 1
    head = ssd_head(neck.out_channels, anchors.num_anchors_per_location(), num_classes + 1, head_kernel)
    model = SSD(nn.Sequential(features, neck), anchors, (size, size), num_classes + 1,
                image_mean=list(mean), image_std=list(std), head=head, **detector_kwargs)
    model.backbone_report = getattr(features, "backbone_report", {})
    return model


def ssd(num_classes: int, backbone: str = "vgg16", attention: AttentionSpec = None, size: int = 300,
        weights: str | Path | None = None, frozen_bn: bool = False, **detector_kwargs: Any) -> SSD:
    """SSD300 (or ``size`` x ``size``) with ``attention`` (none / SE / CBAM) right before every classifier.

    Args:
        num_classes: foreground classes K (K + 1 with background).
        backbone: ``vgg16`` or ``mobilenet_v1`` / ``mobilenet_v1_x0_7``.
        attention: refines each of the six maps before its classification and box heads.
        size: input side; VGG-16 needs >= 268 (its last extra layers are unpadded 3x3 convolutions).
        weights, frozen_bn: see :func:`ssd_features`.
        **detector_kwargs: ``head_kernel`` (see :func:`build_ssd`) and torchvision ``SSD`` options (``score_thresh``, ``detections_per_img``, ...).
    """
    if backbone == "vgg16" and size < 268:
        raise ValueError(f"SSD with vgg16 needs size >= 268 (its conv10_2/conv11_2 are unpadded), got {size}")
    features, channels = ssd_features(backbone, weights, frozen_bn)
    return build_ssd(features, MapAttention(channels, attention), backbone, num_classes, size, **detector_kwargs)

