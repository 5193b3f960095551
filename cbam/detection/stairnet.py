"""StairNet: SSD plus a top-down path, with SE / CBAM before every classifier (CBAM paper, Sec. 4.5, Table 7).

StairNet is S. Woo, S. Hwang, I. S. Kweon, "StairNet: Top-Down Semantic Aggregation for Accurate
One Shot Detection", WACV 2018 (https://arxiv.org/abs/1709.05788): SSD's shallow maps, which predict
small objects, lack semantics, so a feature-combining module spreads the deeper ("global") features
down the pyramid and merges them with each level's own ("local") features; the predictions are made
on the merged maps. The CBAM paper then places SE or CBAM "right before every classifier, refining
the final features which are composed of up-sampled global features and corresponding local features".

Our reading of the details (the CBAM paper gives none; StairNet's code is not public):
- Each of SSD's six maps f_i (C_i channels) gets a local convolution to ``channels`` (C).
- Top-down, starting from the deepest map: g_6 = ReLU(BN(conv(f_6))); for i = 5..1,
  g_i = ReLU(BN(conv(f_i)) + BN(conv(up(g_{i+1})))), where ``up`` resizes g_{i+1}
  bilinearly to f_i's size. StairNet up-samples with a learned deconvolution; SSD300's map sizes
  (38, 19, 10, 5, 3, 1) are not all doublings, so we resize to the exact size and let the
  convolution that follows do the learning.
- The convolutions are 3x3 for VGG-16 and 1x1 for MobileNet, whose SSD predicts with 1x1
  convolutions; C = 256 for VGG-16 and 128 for MobileNet (the widths at which SE adds Table 7's
  +0.1M and +0.01M). With these, MobileNet StairNet matches Table 7's parameter count but VGG-16
  StairNet is larger (``cbam detect params``; the counts are in ``docs/RESULTS.md``): the paper's VGG
  top-down path is lighter than 3x3 convolutions at C = 256 and we do not know how. C is a
  bottleneck before the heads (its measured effect on mAP is in ``docs/RESULTS.md``), so
  ``channels`` is an option.
- The merged map g_i goes through SE / CBAM (or nothing) and then to SSD's classification and box
  heads, which therefore all see C channels.
- No normalisation in the new path by default: its convolutions have biases, as FPN's lateral and
  output convolutions do (``norm="batch"`` adds BatchNorm after each of them instead). SSD300's
  deepest maps are 3 x 3 and 1 x 1, where BatchNorm's batch statistics are taken over a handful of
  values and spread that noise down every level of the top-down path: on the embedded detection data
  a MobileNet StairNet with BatchNorm there barely learned (``docs/RESULTS.md``), and it could not
  train with a batch of one image.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.ssd import SSD

from ..nn import create_attention
from ..nn.factory import AttentionSpec
from .ssd import build_ssd, ssd_features

__all__ = ["NORMS", "StairNetTopDown", "stairnet"]


#: Normalisation of the top-down path's convolutions: ``none`` (default, convolutions with bias) or ``batch``.
NORMS = ("none", "batch")


def _conv(cin: int, cout: int, k: int, norm: str) -> nn.Sequential:
    if norm == "batch":
        return nn.Sequential(nn.Conv2d(cin, cout, k, 1, k // 2, bias=False), nn.BatchNorm2d(cout))
    return nn.Sequential(nn.Conv2d(cin, cout, k, 1, k // 2))


class StairNetTopDown(nn.Module):
    """Top-down aggregation + attention: {"i": (B, C_i, H_i, W_i)}, shallow first -> {"i": (B, C, H_i, W_i)}.

    Args:
        in_channels: C_i of the SSD maps, shallow to deep.
        channels: C of every merged map.
        kernel_size: of the local and top-down convolutions (3; 1 keeps MobileNet-SSD's 1x1 prediction path).
        attention: ``None`` / ``"se"`` / ``"cbam"`` (any :func:`cbam.nn.create_attention` spec), applied
            to each merged map right before its heads.
        norm: ``"none"`` (convolutions with bias, the default) or ``"batch"`` (BatchNorm after each).
    """

    def __init__(self, in_channels: Sequence[int], channels: int = 256, attention: AttentionSpec = None, kernel_size: int = 3,
                 norm: str = "none", **attention_kwargs: Any) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        self.local = nn.ModuleList(_conv(c, channels, kernel_size, norm) for c in in_channels)
        self.top_down = nn.ModuleList(_conv(channels, channels, kernel_size, norm) for _ in in_channels[:-1])
        self.attn = nn.ModuleList(
            create_attention(attention, channels, **attention_kwargs) or nn.Identity() for _ in in_channels
        )
        self.out_channels = [channels] * len(in_channels)

    def forward(self, maps: OrderedDict[str, Tensor]) -> OrderedDict[str, Tensor]:
        feats = list(maps.values())
        g = F.relu(self.local[-1](feats[-1]))
        merged = [g]
        for i in range(len(feats) - 2, -1, -1):
            up = F.interpolate(g, size=feats[i].shape[-2:], mode="bilinear", align_corners=False)  # (B, C, H_i, W_i)
            g = F.relu(self.local[i](feats[i]) + self.top_down[i](up))
            merged.insert(0, g)
        return OrderedDict((k, a(m)) for k, a, m in zip(maps.keys(), self.attn, merged))


def stairnet(num_classes: int, backbone: str = "vgg16", attention: AttentionSpec = None, size: int = 300,
             channels: int | None = None, kernel_size: int | None = None, norm: str = "none",
             weights: str | Path | None = None, frozen_bn: bool = False, **detector_kwargs: Any) -> SSD:
    """StairNet detector: SSD's feature maps -> :class:`StairNetTopDown` -> torchvision SSD heads.

    Args:
        num_classes: foreground classes K.
        backbone: ``vgg16`` or ``mobilenet_v1*`` (see :func:`cbam.detection.ssd.ssd_features`).
        attention: none / SE / CBAM right before every classifier.
        size: input side (300 in the paper); VGG-16 needs >= 268.
        channels: C of the merged maps; default 256 for VGG-16, 128 for MobileNet.
        kernel_size: of the top-down path's convolutions; default 3 for VGG-16, 1 for MobileNet.
        norm: of the top-down path (see :class:`StairNetTopDown`).
        weights, frozen_bn, **detector_kwargs: as for :func:`cbam.detection.ssd.ssd`.
    """
    if backbone == "vgg16" and size < 268:
        raise ValueError(f"StairNet with vgg16 needs size >= 268 (its conv10_2/conv11_2 are unpadded), got {size}")
    features, in_channels = ssd_features(backbone, weights, frozen_bn)
    vgg = backbone == "vgg16"
    channels = channels or (256 if vgg else 128)
    kernel_size = kernel_size or (3 if vgg else 1)
    neck = StairNetTopDown(in_channels, channels, attention, kernel_size, norm)
    return build_ssd(features, neck, backbone, num_classes, size, **detector_kwargs)
