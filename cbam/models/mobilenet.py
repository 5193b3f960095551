"""MobileNet v1 (Howard et al., https://arxiv.org/abs/1704.04861) with optional SE / CBAM (CBAM paper, Table 5).

Placement: the paper gives none for MobileNet. Table 5's parameter counts (+0.84M at alpha=1.0,
+0.41M at alpha=0.7, r=16) are reached only when attention refines the output of *both* the
depthwise and the pointwise convolution of every depthwise-separable block, and its +CBAM GFLOPs
(0.576 vs 0.570 for +SE) only when the stem convolution's output is refined too. So by default
attention follows the stem and each depthwise and pointwise unit (conv, BN, ReLU); choose fewer
sites with ``attention_sites``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from ..nn.factory import AttentionSpec
from ._common import AttnLayer, ClassifierHead, attention_layer, init_official
from ._registry import ModelInfo, entry_signature, register_model

__all__ = ["MobileNetV1", "DepthwiseSeparable"]

# (output channels, stride) of the 13 depthwise-separable blocks, grouped into stages by stride.
_STAGES: tuple[tuple[tuple[int, int], ...], ...] = (
    ((64, 1),),
    ((128, 2), (128, 1)),
    ((256, 2), (256, 1)),
    ((512, 2),) + ((512, 1),) * 5,
    ((1024, 2), (1024, 1)),
)
SITES = ("stem", "dw", "pw")


class ConvBNReLU(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> ReLU -> optional attention: (B, Cin, H, W) -> (B, Cout, H/s, W/s)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, groups: int, attn: nn.Module | None) -> None:
        layers = [
            nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]
        super().__init__(*layers)
        if attn is not None:
            self.add_module("attn", attn)


class DepthwiseSeparable(nn.Sequential):
    """3x3 depthwise unit then 1x1 pointwise unit, each optionally refined by attention."""

    def __init__(self, cin: int, cout: int, stride: int, attn_dw: AttnLayer | None, attn_pw: AttnLayer | None):
        super().__init__()
        self.dw = ConvBNReLU(cin, cin, 3, stride, cin, attn_dw(cin) if attn_dw else None)
        self.pw = ConvBNReLU(cin, cout, 1, 1, 1, attn_pw(cout) if attn_pw else None)


class MobileNetV1(nn.Module):
    """MobileNet v1 with width multiplier alpha and optional attention.

    Args:
        width_mult: alpha; every width is ``int(c * alpha)`` (alpha=0.7 reproduces Table 5).
        attention, attention_kwargs: as for :class:`cbam.models.resnet.ResNet`.
        attention_sites: where attention goes, a subset of ``("stem", "dw", "pw")``.
        num_classes, in_chans, drop_rate: classifier outputs, input channels, dropout before it.
        small_input: stride-1 stem for 32 x 32 to 64 x 64 images.

    Shape:
        (B, in_chans, H, W) -> (B, num_classes).
    """

    def __init__(
        self,
        width_mult: float = 1.0,
        attention: AttentionSpec = None,
        attention_kwargs: dict[str, Any] | None = None,
        attention_sites: Sequence[str] = SITES,
        num_classes: int = 1000,
        in_chans: int = 3,
        small_input: bool = False,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"MobileNetV1: width_mult must be > 0, got {width_mult}")
        bad = [s for s in attention_sites if s not in SITES]
        if bad:
            raise ValueError(f"MobileNetV1: unknown attention_sites {bad}; valid names are {SITES}")
        attn = attention_layer(attention, attention_kwargs)
        site = {s: (attn if s in attention_sites else None) for s in SITES}
        width = int(32 * width_mult)
        self.stem = ConvBNReLU(in_chans, width, 3, 1 if small_input else 2, 1, site["stem"](width) if site["stem"] else None)
        stride_total = 1 if small_input else 2
        self.feature_info: list[dict[str, Any]] = []
        stages = []
        for i, stage_cfg in enumerate(_STAGES):
            blocks = []
            for c, s in stage_cfg:
                out = int(c * width_mult)
                blocks.append(DepthwiseSeparable(width, out, s, site["dw"], site["pw"]))
                width, stride_total = out, stride_total * s
            stages.append(nn.Sequential(*blocks))
            self.feature_info.append({"module": f"stages.{i}", "num_chs": width, "reduction": stride_total})
        self.stages = nn.Sequential(*stages)
        self.num_features = width
        self.head = ClassifierHead(width, num_classes, drop_rate)
        init_official(self)

    def forward_stages(self, x: Tensor) -> list[Tensor]:
        """Outputs of the five stages, as described by ``feature_info``."""
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, in_chans, H, W) -> (B, num_features, H/32, W/32)."""
        return self.stages(self.stem(x))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return self.head(x, pre_logits)

    def get_classifier(self) -> nn.Linear:
        return self.head.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.head.fc = nn.Linear(self.num_features, num_classes, device=self.head.fc.weight.device)
        nn.init.kaiming_normal_(self.head.fc.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _mobilenet(width_mult: float):
    def build(attention: AttentionSpec = None, num_classes: int = 1000, **kwargs: Any) -> MobileNetV1:
        return MobileNetV1(width_mult, attention=attention, num_classes=num_classes, **kwargs)

    build.__signature__ = entry_signature(MobileNetV1, ("width_mult",))  # the options create_model checks
    return build


register_model(ModelInfo(
    "mobilenet_v1", _mobilenet(1.0),
    num_params={"none": 4231976, "se": 5072276, "cbam": 5074949},
    paper={"table": "5", "label": "MobileNet", "params_m": {"none": 4.23, "se": 5.07, "cbam": 5.07},
           "gflops": {"none": 0.569, "se": 0.570, "cbam": 0.576}},
))
register_model(ModelInfo(
    "mobilenet_v1_x0_7", _mobilenet(0.7),
    num_params={"none": 2298747, "se": 2709854, "cbam": 2712527},
    paper={"table": "5", "label": "MobileNet alpha=0.7", "params_m": {"none": 2.30, "se": 2.71, "cbam": 2.71},
           "gflops": {"none": 0.283, "se": 0.283, "cbam": 0.289}},
))
