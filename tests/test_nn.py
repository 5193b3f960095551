"""Attention modules against a hand-written implementation of the paper's eqs. 1-3."""
from __future__ import annotations

from functools import partial

import pytest
import torch

import cbam.nn.functional as FA
from cbam.nn import CBAM, ChannelAttention, SpatialAttention, SqueezeExcitation, create_attention, list_attention


# ---- hand-written reference (loops and elementary ops only; no conv2d, no linear) -------------
def ref_pool(x, pool):
    b, c, h, w = x.shape
    flat = x.reshape(b, c, h * w)
    if pool == "avg":
        return flat.sum(-1) / (h * w)
    if pool == "max":
        return flat.max(-1).values
    if pool == "lp":
        return (flat * flat).sum(-1) ** 0.5
    if pool == "lse":
        return (flat.exp().sum(-1)).log()


def ref_mlp(v, w0, b0, w1, b1):  # v: (B, C)
    h = v @ w0.t() + (0 if b0 is None else b0)
    h = h.clamp(min=0)
    return h @ w1.t() + (0 if b1 is None else b1)


def ref_channel_logits(x, w0, b0, w1, b1, pools=("avg", "max")):
    out = sum(ref_mlp(ref_pool(x, p), w0, b0, w1, b1) for p in pools)
    return out[:, :, None, None]


def ref_conv_same(d, weight, bias):  # d: (B, Cin, H, W), weight: (1, Cin, k, k)
    k = weight.shape[-1]
    p = k // 2
    b, cin, h, w = d.shape
    padded = torch.zeros(b, cin, h + 2 * p, w + 2 * p, dtype=d.dtype)
    padded[:, :, p:p + h, p:p + w] = d
    out = torch.zeros(b, 1, h, w, dtype=d.dtype)
    for i in range(k):
        for j in range(k):
            out += (padded[:, :, i:i + h, j:j + w] * weight[0, :, i, j][None, :, None, None]).sum(1, keepdim=True)
    return out + (0 if bias is None else bias.view(1, 1, 1, 1))


def ref_spatial_logits(x, weight, bias, order=("avg", "max")):
    maps = {"avg": x.sum(1, keepdim=True) / x.shape[1], "max": x.max(1, keepdim=True).values}
    return ref_conv_same(torch.cat([maps[o] for o in order], 1), weight, bias)


def ref_cbam(x, w0, b0, w1, b1, cw, cb):
    f1 = torch.sigmoid(ref_channel_logits(x, w0, b0, w1, b1)) * x
    return torch.sigmoid(ref_spatial_logits(f1, cw, cb)) * f1


@pytest.fixture
def weights():
    g = torch.Generator().manual_seed(0)
    c, r, k = 32, 4, 7
    return dict(
        x=torch.randn(2, c, 7, 9, generator=g, dtype=torch.float64),
        w0=torch.randn(c // r, c, generator=g, dtype=torch.float64) * 0.3,
        b0=torch.randn(c // r, generator=g, dtype=torch.float64),
        w1=torch.randn(c, c // r, generator=g, dtype=torch.float64) * 0.3,
        b1=torch.randn(c, generator=g, dtype=torch.float64),
        cw=torch.randn(1, 2, k, k, generator=g, dtype=torch.float64) * 0.2,
        cb=torch.randn(1, generator=g, dtype=torch.float64),
    )


# ---- functional API --------------------------------------------------------------------------
@pytest.mark.parametrize("pools", [("avg",), ("max",), ("avg", "max"), ("lp",), ("lse",), ("avg", "max", "lp", "lse")])
@pytest.mark.parametrize("bias", [True, False])
def test_channel_attention_map_matches_eq2(weights, pools, bias):
    w = weights
    b0, b1 = (w["b0"], w["b1"]) if bias else (None, None)
    got = FA.channel_attention_map(w["x"], w["w0"], b0, w["w1"], b1, pools=pools)
    want = torch.sigmoid(ref_channel_logits(w["x"], w["w0"], b0, w["w1"], b1, pools))
    assert got.shape == (2, 32, 1, 1)
    torch.testing.assert_close(got, want)
    assert got.min() >= 0 and got.max() <= 1


@pytest.mark.parametrize("order", [("avg", "max"), ("max", "avg")])
@pytest.mark.parametrize("k", [1, 3, 7])
def test_spatial_attention_map_matches_eq3(weights, order, k):
    w = weights
    cw = w["cw"][..., :k, :k].contiguous()
    got = FA.spatial_attention_map(w["x"], cw, w["cb"], order=order)
    want = torch.sigmoid(ref_spatial_logits(w["x"], cw, w["cb"], order))
    assert got.shape == (2, 1, 7, 9)
    torch.testing.assert_close(got, want)


def test_functional_cbam_matches_eq1(weights):
    w = weights
    got = FA.cbam(w["x"], w["w0"], w["b0"], w["w1"], w["b1"], w["cw"], w["cb"])
    torch.testing.assert_close(got, ref_cbam(w["x"], w["w0"], w["b0"], w["w1"], w["b1"], w["cw"], w["cb"]))
    assert got.shape == w["x"].shape


# ---- modules -----------------------------------------------------------------------------------
def _params(m: CBAM):
    ch, sp = m.channel, m.spatial
    return ch.fc1.weight, ch.fc1.bias, ch.fc2.weight, ch.fc2.bias, sp.conv.weight, sp.conv.bias


def test_cbam_module_is_eq1():
    torch.manual_seed(0)
    m = CBAM(64, reduction=16).double()
    x = torch.randn(3, 64, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(m(x), ref_cbam(x, *_params(m)))
    torch.testing.assert_close(m(x), FA.cbam(x, *_params(m)))


def test_spatial_first_and_parallel_arrangements():
    torch.manual_seed(0)
    x = torch.randn(2, 32, 6, 5, dtype=torch.float64)
    sf = CBAM(32, 8, arrangement="spatial_first").double()
    w0, b0, w1, b1, cw, cb = _params(sf)
    f1 = torch.sigmoid(ref_spatial_logits(x, cw, cb)) * x
    want = torch.sigmoid(ref_channel_logits(f1, w0, b0, w1, b1)) * f1
    torch.testing.assert_close(sf(x), want)

    par = CBAM(32, 8, arrangement="parallel").double()
    w0, b0, w1, b1, cw, cb = _params(par)
    logits = ref_channel_logits(x, w0, b0, w1, b1) + ref_spatial_logits(x, cw, cb)  # (B,C,1,1)+(B,1,H,W)
    torch.testing.assert_close(par(x), torch.sigmoid(logits) * x)


def test_se_is_channel_attention_with_avg_pool():
    torch.manual_seed(0)
    se = SqueezeExcitation(32, 4).double()
    x = torch.randn(2, 32, 4, 4, dtype=torch.float64)
    v = ref_pool(x, "avg")
    s = torch.sigmoid(ref_mlp(v, se.fc1.weight, se.fc1.bias, se.fc2.weight, se.fc2.bias))
    torch.testing.assert_close(se(x), x * s[:, :, None, None])
    assert se.pools == ("avg",)


def test_conv1x1_descriptor():
    torch.manual_seed(0)
    m = SpatialAttention(16, kernel_size=3, descriptor="conv1x1").double()
    x = torch.randn(2, 16, 5, 5, dtype=torch.float64)
    d = (x * m.reduce.weight.view(1, 16, 1, 1)).sum(1, keepdim=True) + m.reduce.bias.view(1, 1, 1, 1)
    want = torch.sigmoid(ref_conv_same(d, m.conv.weight, m.conv.bias)) * x
    torch.testing.assert_close(m(x), want)
    assert m.conv.weight.shape == (1, 1, 3, 3)


def test_official_layout():
    m = CBAM(64, layout="official")
    assert m.spatial.order == ("max", "avg")
    assert m.spatial.norm is not None and m.spatial.norm.momentum == 0.01
    assert m.spatial.conv.bias is None
    assert m.channel.fc1.bias is not None and m.channel.fc2.bias is not None
    paper = CBAM(64)
    assert paper.spatial.order == ("avg", "max") and paper.spatial.norm is None and paper.spatial.conv.bias is not None
    # an explicit option overrides the preset
    assert CBAM(64, layout="official", spatial_order=("avg", "max")).spatial.order == ("avg", "max")


VARIANTS = {
    "channel_avg": {}, "channel_max": {}, "channel": {}, "channel_lp": {}, "channel_lse": {},
    "se": {}, "spatial": {}, "cbam": {}, "cbam_official": {}, "cbam_pool_k3": {}, "cbam_conv1x1_k3": {},
    "cbam_conv1x1_k7": {}, "cbam_spatial_first": {}, "cbam_parallel": {},
}


@pytest.mark.parametrize("name", list_attention())
@pytest.mark.parametrize("hw", [(1, 1), (7, 9), (16, 16)])
def test_every_variant_preserves_shape_and_gates_in_unit_interval(name, hw):
    torch.manual_seed(0)
    m = create_attention(name, 32, reduction=8) if name != "spatial" else create_attention(name, 32)
    x = torch.randn(2, 32, *hw, requires_grad=True)
    y = m(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    for sub in m.modules():
        if hasattr(sub, "attention_map"):
            a = sub.attention_map(x.detach())
            assert a.min() >= 0 and a.max() <= 1


def test_all_variants_named():
    assert set(VARIANTS) <= set(list_attention())


def test_create_attention_contract():
    assert create_attention(None, 8) is None
    assert create_attention("none", 8) is None
    assert create_attention("", 8) is None
    assert isinstance(create_attention("se", 32), SqueezeExcitation)
    assert isinstance(create_attention("cbam", 32), CBAM)
    assert create_attention("cbam", 32, kernel_size=3).spatial.kernel_size == 3
    assert create_attention(partial(CBAM, arrangement="parallel"), 32).arrangement == "parallel"
    assert isinstance(create_attention(ChannelAttention, 32), ChannelAttention)
    m = create_attention("cbam", 32, dtype=torch.float64, device="cpu")
    assert all(p.dtype == torch.float64 for p in m.parameters())
    with pytest.raises(ValueError, match="valid names"):
        create_attention("cbamm", 32)


@pytest.mark.parametrize("cls", [CBAM, ChannelAttention, SqueezeExcitation, SpatialAttention])
def test_bad_inputs_name_module_and_expectation(cls):
    m = cls(16)
    name = cls.__name__
    with pytest.raises(ValueError, match=f"{name}.*4-D"):
        m(torch.randn(16, 4, 4))
    with pytest.raises(ValueError, match=f"{name}.*16 channels.*got 8"):
        m(torch.randn(1, 8, 4, 4))
    with pytest.raises(ValueError, match=f"{name}.*floating-point"):
        m(torch.ones(1, 16, 4, 4, dtype=torch.long))


def test_bad_construction():
    with pytest.raises(ValueError, match="reduction ratio r=32 is larger than channels=16"):
        CBAM(16, reduction=32)
    for k in (0, 4, -1):
        with pytest.raises(ValueError, match="kernel_size must be an odd integer"):
            CBAM(16, kernel_size=k)
    with pytest.raises(ValueError, match="unknown pools"):
        ChannelAttention(16, pools=("avg", "median"))
    with pytest.raises(ValueError, match="at least one"):
        ChannelAttention(16, pools=())
    with pytest.raises(ValueError, match="unknown arrangement"):
        CBAM(16, arrangement="diagonal")
    with pytest.raises(ValueError, match="unknown layout"):
        CBAM(16, layout="timm")
    with pytest.raises(ValueError, match="needs channels"):
        SpatialAttention(descriptor="conv1x1")


def test_hidden_width_rounds_to_nearest():
    assert ChannelAttention(716, 16).fc1.out_features == 45  # 44.75 -> 45 (MobileNet alpha=0.7, Table 5)
    assert ChannelAttention(22, 16).fc1.out_features == 1
    assert ChannelAttention(256, 16).fc1.out_features == 16


@pytest.mark.parametrize(
    "weight_shape", [(1, 2, 4, 4), (2, 2, 7, 7), (1, 3, 7, 7), (1, 2, 7, 5), (2, 7, 7)], ids=str
)
def test_functional_spatial_map_refuses_weights_that_change_its_shape(weight_shape):
    """An even kernel would return a map of another size, two output channels a 2-channel map."""
    x = torch.randn(2, 8, 9, 9)
    with pytest.raises(ValueError, match=r"spatial_attention_map: weight must have shape \(1, 2, k, k\)"):
        FA.spatial_attention_map(x, torch.randn(weight_shape))
    assert FA.spatial_attention_map(x, torch.randn(1, 2, 7, 7)).shape == (2, 1, 9, 9)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"reduction": float("nan")}, "reduction must be a positive finite number"),
     ({"reduction": float("inf")}, "reduction must be a positive finite number"),
     ({"pools": None}, "pools must be a sequence of names")],
)
def test_bad_module_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=f"ChannelAttention: {message}"):
        ChannelAttention(16, **kwargs)
