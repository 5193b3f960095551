"""Checkpoints in other projects' CBAM layouts, built key by key from random weights, and reference
forwards written directly from those raw state dicts (no cbam modules), for the converter tests."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

RESNET50 = (3, 4, 6, 3)
_WIDTHS = (64, 128, 256, 512)


def _conv(g: torch.Generator, cout: int, cin: int, k: int) -> Tensor:
    return torch.randn(cout, cin, k, k, generator=g) * math.sqrt(2.0 / (cin * k * k))


def _bn(g: torch.Generator, prefix: str, c: int, nbt: bool, gamma: float = 1.0) -> dict[str, Tensor]:
    out = {
        f"{prefix}.weight": gamma * (0.5 + torch.rand(c, generator=g)),
        f"{prefix}.bias": 0.1 * torch.randn(c, generator=g),
        f"{prefix}.running_mean": 0.1 * torch.randn(c, generator=g),
        f"{prefix}.running_var": 0.5 + torch.rand(c, generator=g),
    }
    if nbt:
        out[f"{prefix}.num_batches_tracked"] = torch.tensor(1000)
    return out


def _linear(g: torch.Generator, prefix: str, cout: int, cin: int, bias: bool = True) -> dict[str, Tensor]:
    out = {f"{prefix}.weight": torch.randn(cout, cin, generator=g) / math.sqrt(cin)}
    if bias:
        out[f"{prefix}.bias"] = 0.1 * torch.randn(cout, generator=g)
    return out


# --- the official release (Jongchan/attention-module, MODELS/model_resnet.py) -------------------------

def official_checkpoint(num_batches_tracked: bool, num_classes: int = 1000, seed: int = 0) -> dict:
    """The official ResNet-50 + CBAM file's structure: {'state_dict', 'epoch', 'best_prec1', 'optimizer'}."""
    g = torch.Generator().manual_seed(seed)
    nbt = num_batches_tracked
    sd: dict[str, Tensor] = {"module.conv1.weight": _conv(g, 64, 3, 7), **_bn(g, "module.bn1", 64, nbt)}
    inplanes = 64
    for layer, (planes, depth) in enumerate(zip(_WIDTHS, RESNET50), start=1):
        for i in range(depth):
            p, out = f"module.layer{layer}.{i}", planes * 4
            sd[f"{p}.conv1.weight"] = _conv(g, planes, inplanes, 1)
            sd.update(_bn(g, f"{p}.bn1", planes, nbt))
            sd[f"{p}.conv2.weight"] = _conv(g, planes, planes, 3)
            sd.update(_bn(g, f"{p}.bn2", planes, nbt))
            sd[f"{p}.conv3.weight"] = _conv(g, out, planes, 1)
            sd.update(_bn(g, f"{p}.bn3", out, nbt, gamma=0.3))
            if i == 0:
                sd[f"{p}.downsample.0.weight"] = _conv(g, out, inplanes, 1)
                sd.update(_bn(g, f"{p}.downsample.1", out, nbt))
            sd.update(_linear(g, f"{p}.cbam.ChannelGate.mlp.1", out // 16, out))
            sd.update(_linear(g, f"{p}.cbam.ChannelGate.mlp.3", out, out // 16))
            sd[f"{p}.cbam.SpatialGate.spatial.conv.weight"] = _conv(g, 1, 2, 7)
            sd.update(_bn(g, f"{p}.cbam.SpatialGate.spatial.bn", 1, nbt))
            inplanes = out
    sd.update(_linear(g, "module.fc", num_classes, 2048))
    return {"epoch": 90, "arch": "resnet", "best_prec1": 77.622, "state_dict": sd,
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.001, "momentum": 0.9, "params": [0, 1]}]}}


def _bn_eval(x: Tensor, sd: dict, p: str) -> Tensor:
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                        False, 0.0, 1e-5)


def _official_cbam(x: Tensor, sd: dict, p: str) -> Tensor:
    # ChannelGate: shared MLP (Flatten, Linear, ReLU, Linear) on avg- and max-pooled vectors, summed, sigmoid
    def mlp(v):
        h = F.relu(F.linear(v, sd[f"{p}.ChannelGate.mlp.1.weight"], sd[f"{p}.ChannelGate.mlp.1.bias"]))
        return F.linear(h, sd[f"{p}.ChannelGate.mlp.3.weight"], sd[f"{p}.ChannelGate.mlp.3.bias"])
    h, w = x.shape[2:]
    att = mlp(F.avg_pool2d(x, (h, w)).flatten(1)) + mlp(F.max_pool2d(x, (h, w)).flatten(1))
    x = x * torch.sigmoid(att)[:, :, None, None]
    # SpatialGate: ChannelPool = cat(max, mean) -> 7x7 conv (no bias) -> BN -> sigmoid
    pooled = torch.cat([x.max(1, keepdim=True)[0], x.mean(1, keepdim=True)], dim=1)
    s = F.conv2d(pooled, sd[f"{p}.SpatialGate.spatial.conv.weight"], None, 1, 3)
    return x * torch.sigmoid(_bn_eval(s, sd, f"{p}.SpatialGate.spatial.bn"))


def official_forward(sd: dict, x: Tensor) -> Tensor:
    """Eval-mode forward of the official ResNet-50 + CBAM, straight from its raw keys."""
    m = "module."
    x = F.relu(_bn_eval(F.conv2d(x, sd[m + "conv1.weight"], None, 2, 3), sd, m + "bn1"))
    x = F.max_pool2d(x, 3, 2, 1)
    for layer, depth in enumerate(RESNET50, start=1):
        for i in range(depth):
            p = f"{m}layer{layer}.{i}"
            stride = 2 if (i == 0 and layer > 1) else 1
            out = F.relu(_bn_eval(F.conv2d(x, sd[f"{p}.conv1.weight"]), sd, f"{p}.bn1"))
            out = F.relu(_bn_eval(F.conv2d(out, sd[f"{p}.conv2.weight"], None, stride, 1), sd, f"{p}.bn2"))
            out = _bn_eval(F.conv2d(out, sd[f"{p}.conv3.weight"]), sd, f"{p}.bn3")
            out = _official_cbam(out, sd, f"{p}.cbam")
            if i == 0:
                x = _bn_eval(F.conv2d(x, sd[f"{p}.downsample.0.weight"], None, stride), sd, f"{p}.downsample.1")
            x = F.relu(out + x)
    x = F.avg_pool2d(x, x.shape[2:]).flatten(1)  # AvgPool2d(7) at 224 x 224
    return F.linear(x, sd[m + "fc.weight"], sd[m + "fc.bias"])


# --- pytorchcv (osmr/imgclsmob, pytorchcv/models/cbamresnet.py) ---------------------------------------

def pytorchcv_state_dict(layers=RESNET50, bottleneck: bool = True, num_classes: int = 1000, seed: int = 1) -> dict:
    """Keys and shapes of pytorchcv's CbamResNet (ConvBlock = conv + bn), with num_batches_tracked."""
    g = torch.Generator().manual_seed(seed)
    f = "features."
    sd: dict[str, Tensor] = {f + "init_block.conv.conv.weight": _conv(g, 64, 3, 7),
                             **_bn(g, f + "init_block.conv.bn", 64, True)}
    cin = 64
    for s, (w, depth) in enumerate(zip(_WIDTHS, layers), start=1):
        cout = w * 4 if bottleneck else w
        for u in range(1, depth + 1):
            p = f"{f}stage{s}.unit{u}"
            mid = cout // 4 if bottleneck else cout
            convs = [(cin, mid, 1), (mid, mid, 3), (mid, cout, 1)] if bottleneck else [(cin, cout, 3), (cout, cout, 3)]
            for k, (a, b, ks) in enumerate(convs, start=1):
                sd[f"{p}.body.conv{k}.conv.weight"] = _conv(g, b, a, ks)
                sd.update(_bn(g, f"{p}.body.conv{k}.bn", b, True, gamma=0.3 if k == len(convs) else 1.0))
            if cin != cout or (u == 1 and s > 1):
                sd[f"{p}.identity_conv.conv.weight"] = _conv(g, cout, cin, 1)
                sd.update(_bn(g, f"{p}.identity_conv.bn", cout, True))
            sd.update(_linear(g, f"{p}.cbam.ch_gate.mlp.fc1", cout // 16, cout))
            sd.update(_linear(g, f"{p}.cbam.ch_gate.mlp.fc2", cout, cout // 16))
            sd[f"{p}.cbam.sp_gate.conv.conv.weight"] = _conv(g, 1, 2, 7)
            sd.update(_bn(g, f"{p}.cbam.sp_gate.conv.bn", 1, True))
            cin = cout
    sd.update(_linear(g, "output", num_classes, cin))
    return sd


def pytorchcv_forward(sd: dict, x: Tensor, layers=RESNET50, bottleneck: bool = True) -> Tensor:
    """Eval-mode forward of pytorchcv's CbamResNet from its raw keys (224 x 224 input: AvgPool2d(7))."""
    f = "features."

    def block(x, p, stride=1, k=1, relu=True):
        y = _bn_eval(F.conv2d(x, sd[f"{p}.conv.weight"], None, stride, k // 2), sd, f"{p}.bn")
        return F.relu(y) if relu else y

    x = F.max_pool2d(block(x, f + "init_block.conv", 2, 7), 3, 2, 1)
    for s, depth in enumerate(layers, start=1):
        for u in range(1, depth + 1):
            p = f"{f}stage{s}.unit{u}"
            stride = 2 if (u == 1 and s > 1) else 1
            identity = block(x, f"{p}.identity_conv", stride, 1, False) if f"{p}.identity_conv.conv.weight" in sd else x
            if bottleneck:
                y = block(block(block(x, f"{p}.body.conv1"), f"{p}.body.conv2", stride, 3), f"{p}.body.conv3", relu=False)
            else:
                y = block(block(x, f"{p}.body.conv1", stride, 3), f"{p}.body.conv2", 1, 3, relu=False)
            c = f"{p}.cbam"

            def mlp(v, c=c):
                h = F.relu(F.linear(v, sd[f"{c}.ch_gate.mlp.fc1.weight"], sd[f"{c}.ch_gate.mlp.fc1.bias"]))
                return F.linear(h, sd[f"{c}.ch_gate.mlp.fc2.weight"], sd[f"{c}.ch_gate.mlp.fc2.bias"])
            att = mlp(F.adaptive_avg_pool2d(y, 1).flatten(1)) + mlp(F.adaptive_max_pool2d(y, 1).flatten(1))
            y = y * torch.sigmoid(att)[:, :, None, None]
            pooled = torch.cat([y.max(dim=1)[0].unsqueeze(1), y.mean(dim=1).unsqueeze(1)], dim=1)
            y = y * torch.sigmoid(block(pooled, f"{c}.sp_gate.conv", 1, 7, relu=False))
            x = F.relu(y + identity)
    x = F.avg_pool2d(x, 7, 1).flatten(1)
    return F.linear(x, sd["output.weight"], sd["output.bias"])
