"""ResNet, Wide-ResNet and ResNeXt with optional SE / CBAM in every block (CBAM paper, Fig. 3, Table 4).

One :class:`ResNet` class builds all of them; the attention module comes from a factory
(:func:`cbam.nn.create_attention`) and sits on the residual branch after the block's last
BatchNorm, before the addition.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..nn.factory import AttentionSpec
from ._common import AttnLayer, ClassifierHead, attention_layer, init_official
from ._registry import ModelInfo, entry_signature, register_model

__all__ = ["BasicBlock", "Bottleneck", "ResNet"]


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    return nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions; attention on their output before the addition. (B, Cin, H, W) -> (B, C, H/s, W/s)."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        attn_layer: AttnLayer | None = None,
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and base_width=64 (use Bottleneck for ResNeXt)")
        self.conv1, self.bn1 = _conv_bn(inplanes, planes, 3, stride)
        self.conv2, self.bn2 = _conv_bn(planes, planes, 3)
        self.relu = nn.ReLU(inplace=True)
        self.attn = attn_layer(planes) if attn_layer else None
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.attn is not None:
            out = self.attn(out)
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (grouped for ResNeXt) -> 1x1 (x4); attention before the addition.

    ``stride_in_1x1=True`` puts the stride on the first 1x1 convolution (the original ResNet, "v1",
    on which the paper's GFLOPs are counted); the default puts it on the 3x3 convolution ("v1.5",
    as in torchvision and the official CBAM code).
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        attn_layer: AttnLayer | None = None,
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        width = int(planes * base_width / 64) * groups
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1, self.bn1 = _conv_bn(inplanes, width, 1, s1)
        self.conv2, self.bn2 = _conv_bn(width, width, 3, s3, groups)
        self.conv3, self.bn3 = _conv_bn(width, planes * self.expansion, 1)
        self.relu = nn.ReLU(inplace=True)
        self.attn = attn_layer(planes * self.expansion) if attn_layer else None
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.attn is not None:
            out = self.attn(out)
        return self.relu(out + shortcut)


class ResNet(nn.Module):
    """ResNet / Wide-ResNet / ResNeXt backbone with attention in every residual block.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage, e.g. (3, 4, 6, 3).
        widths: ``planes`` of the four stages (Wide-ResNet multiplies them; the stem stays 64).
        stem_width: channels of the stem convolution.
        groups, base_width: ResNeXt cardinality and width per group (32, 4 for 32x4d).
        attention: ``None``, ``"se"``, ``"cbam"`` or any :func:`cbam.nn.create_attention` spec.
        attention_kwargs: options for every attention module (e.g. ``{"reduction": 8}``).
        num_classes: classifier outputs; in_chans: input channels.
        stride_in_1x1: ResNet v1 stride placement in bottlenecks (see :class:`Bottleneck`).
        small_input: 3x3 stride-1 stem without max-pool, for 32 x 32 to 64 x 64 images.
        drop_rate: dropout before the classifier.

    Shape:
        (B, in_chans, H, W) -> (B, num_classes), any H, W >= 1.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, int, int, int],
        widths: tuple[int, int, int, int] = (64, 128, 256, 512),
        stem_width: int = 64,
        groups: int = 1,
        base_width: int = 64,
        attention: AttentionSpec = None,
        attention_kwargs: dict[str, Any] | None = None,
        num_classes: int = 1000,
        in_chans: int = 3,
        stride_in_1x1: bool = False,
        small_input: bool = False,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if len(widths) != len(layers) or not all(isinstance(w, int) and w > 0 for w in widths):
            raise ValueError(f"ResNet: widths must be {len(layers)} positive integers (one per stage), got {widths!r}")
        attn_layer = attention_layer(attention, attention_kwargs)
        if small_input:
            self.conv1, self.bn1 = _conv_bn(in_chans, stem_width, 3, 1)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1, self.bn1 = _conv_bn(in_chans, stem_width, 7, 2)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.relu = nn.ReLU(inplace=True)
        inplanes, stride_total = stem_width, (1 if small_input else 4)
        self.feature_info: list[dict[str, Any]] = []
        for i, (planes, depth) in enumerate(zip(widths, layers)):
            stride = 1 if i == 0 else 2
            stride_total *= stride
            blocks = []
            for j in range(depth):
                s = stride if j == 0 else 1
                downsample = None
                if s != 1 or inplanes != planes * block.expansion:
                    downsample = nn.Sequential(*_conv_bn(inplanes, planes * block.expansion, 1, s))
                blocks.append(block(inplanes, planes, s, downsample, groups, base_width, attn_layer, stride_in_1x1))
                inplanes = planes * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.feature_info.append({"module": f"layer{i + 1}", "num_chs": inplanes, "reduction": stride_total})
        self.num_features = inplanes
        self.head = ClassifierHead(inplanes, num_classes, drop_rate)
        init_official(self)

    @property
    def stages(self) -> list[nn.Sequential]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def forward_stages(self, x: Tensor) -> list[Tensor]:
        """Outputs of the four stages, as described by ``feature_info``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, in_chans, H, W) -> last stage map (B, num_features, H/32, W/32)."""
        return self.forward_stages(x)[-1]

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """(B, num_features, h, w) -> logits (B, num_classes), or pooled features if ``pre_logits``."""
        return self.head(x, pre_logits)

    def get_classifier(self) -> nn.Linear:
        return self.head.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one of ``num_classes`` outputs."""
        self.head.fc = nn.Linear(self.num_features, num_classes, device=self.head.fc.weight.device)
        nn.init.kaiming_normal_(self.head.fc.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _resnet(block, layers, **defaults: Any):
    def build(attention: AttentionSpec = None, num_classes: int = 1000, **kwargs: Any) -> ResNet:
        return ResNet(block, layers, attention=attention, num_classes=num_classes, **{**defaults, **kwargs})

    build.__signature__ = entry_signature(ResNet, ("block", "layers"))  # the options create_model checks
    return build


def _paper(table: str, label: str, params: tuple[float, float, float], gflops: tuple[float, float, float]):
    return {
        "table": table,
        "label": label,
        "params_m": dict(zip(("none", "se", "cbam"), params)),
        "gflops": dict(zip(("none", "se", "cbam"), gflops)),
    }


def _counts(plain: int, se: int, cbam: int) -> dict[str, int]:
    return {"none": plain, "se": se, "cbam": cbam}


register_model(ModelInfo(
    "resnet18", _resnet(BasicBlock, (2, 2, 2, 2)),
    num_params=_counts(11689512, 11778592, 11779384),
    paper=_paper("4", "ResNet18", (11.69, 11.78, 11.78), (1.814, 1.814, 1.815)),
))
register_model(ModelInfo(
    "resnet34", _resnet(BasicBlock, (3, 4, 6, 3)),
    num_params=_counts(21797672, 21958868, 21960452),
    paper=_paper("4", "ResNet34", (21.80, 21.96, 21.96), (3.664, 3.664, 3.665)),
))
register_model(ModelInfo(
    "resnet50", _resnet(Bottleneck, (3, 4, 6, 3)),
    num_params=_counts(25557032, 28088024, 28089608),
    paper=_paper("4", "ResNet50", (25.56, 28.09, 28.09), (3.858, 3.860, 3.864)),
))
register_model(ModelInfo(
    "resnet101", _resnet(Bottleneck, (3, 4, 23, 3)),
    num_params=_counts(44549160, 49326872, 49330139),
    paper=_paper("4", "ResNet101", (44.55, 49.33, 49.33), (7.570, 7.575, 7.581)),
))
register_model(ModelInfo(
    "resnet152", _resnet(Bottleneck, (3, 8, 36, 3)),
    num_params=_counts(60192808, 66821848, 66826798),
))
register_model(ModelInfo(
    "wide_resnet18_x1_5", _resnet(BasicBlock, (2, 2, 2, 2), widths=(96, 192, 384, 768)),
    num_params=_counts(25875816, 26074716, 26075508),
    paper=_paper("4", "WideResNet18 (widen=1.5)", (25.88, 26.07, 26.08), (3.866, 3.867, 3.868)),
))
register_model(ModelInfo(
    "wide_resnet18_x2", _resnet(BasicBlock, (2, 2, 2, 2), widths=(128, 256, 512, 1024)),
    num_params=_counts(45618216, 45970456, 45971248),
    paper=_paper("4", "WideResNet18 (widen=2.0)", (45.62, 45.97, 45.97), (6.696, 6.696, 6.697)),
))
register_model(ModelInfo(
    "resnext50_32x4d", _resnet(Bottleneck, (3, 4, 6, 3), groups=32, base_width=4),
    num_params=_counts(25028904, 27559896, 27561480),
    paper=_paper("4", "ResNeXt50 (32x4d)", (25.03, 27.56, 27.56), (3.768, 3.771, 3.774)),
))
register_model(ModelInfo(
    "resnext101_32x4d", _resnet(Bottleneck, (3, 4, 23, 3), groups=32, base_width=4),
    num_params=_counts(44177704, 48955416, 48958683),
    paper=_paper("4", "ResNeXt101 (32x4d)", (44.18, 48.96, 48.96), (7.508, 7.512, 7.519)),
))
