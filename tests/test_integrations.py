"""Our models in timm's registry, our CBAM as timm's attn_layer, and attach() on torchvision / timm CNNs."""
from __future__ import annotations

from functools import partial

import pytest
import torch
import torchvision.models as tvm

import cbam
from cbam.integrations.attach import AttentiveBottleneck
from cbam.models.profile import count_params
from cbam.nn import CBAM

timm = pytest.importorskip("timm")
from cbam.integrations.timm import register  # noqa: E402 - after the skip

register()  # our models in timm's registry, as a user does


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


# --- timm registry -------------------------------------------------------------------------------------

def test_registry_names_and_clashes():
    from timm.models import resnet as timm_resnet

    from cbam.integrations.timm import CLASH_PREFIX, timm_name

    registered = register()  # idempotent: already done at import of this module
    assert set(registered.values()) == set(cbam.list_models(include_aliases=True))
    for name in ("cbam_resnet50", "se_resnet50", "cbam_mobilenet_v1", "mobilenet_v1", "wide_resnet18_x2"):
        assert timm.is_model(name) and timm_name(name) == name
    # timm's own resnet50 stays timm's; ours is registered with the prefix
    assert timm_name("resnet50") == CLASH_PREFIX + "resnet50" and timm.is_model(CLASH_PREFIX + "resnet50")
    assert isinstance(timm.create_model("resnet50"), timm_resnet.ResNet)
    assert "cbam_resnet50" in timm.list_models("cbam_*")


@pytest.mark.parametrize("name, ours, attention", [
    ("cbam_resnet18", "resnet18", "cbam"),
    ("se_mobilenet_v1_x0_7", "mobilenet_v1_x0_7", "se"),
    ("cbamlib_resnet18", "resnet18", None),
])
def test_timm_create_model_builds_ours(name, ours, attention):
    model = timm.create_model(name, pretrained=False, num_classes=7, drop_rate=0.1).eval()
    assert isinstance(model, type(cbam.create_model(ours)))
    assert model.pretrained_cfg["classifier"] == "head.fc"
    assert count_params(model) == count_params(cbam.create_model(ours, attention=attention, num_classes=7))
    out = model(torch.randn(2, 3, 48, 40))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="no weights"):
        timm.create_model(name, pretrained=True)


@pytest.mark.parametrize("name, kwargs", [
    ("cbam_resnet18", {}),
    ("cbam_resnet18", {"small_input": True, "out_indices": (1, 3)}),
    ("cbam_mobilenet_v1_x0_7", {"out_indices": (0, 2, 4)}),
])
def test_timm_features_only_matches_forward_stages(name, kwargs):
    torch.manual_seed(0)
    features = timm.create_model(name, features_only=True, **kwargs).eval()
    torch.manual_seed(0)  # same seed, same construction order: the same weights
    ours = cbam.create_model(name, small_input=kwargs.get("small_input")).eval()
    x = torch.randn(2, 3, 64, 64)
    expected = ours.forward_stages(x)
    indices = kwargs.get("out_indices", range(len(expected)))
    outs = features(x)
    assert len(outs) == len(indices)
    assert features.feature_info.channels() == [ours.feature_info[i]["num_chs"] for i in indices]
    assert features.feature_info.reduction() == [ours.feature_info[i]["reduction"] for i in indices]
    for out, i in zip(outs, indices):
        torch.testing.assert_close(out, expected[i])


@pytest.mark.parametrize("attn_layer", [CBAM, partial(CBAM, layout="official")])
def test_our_cbam_as_timm_attn_layer(attn_layer):
    model = timm.create_model("resnet50", block_args=dict(attn_layer=attn_layer)).eval()
    assert isinstance(model.layer1[0].se, CBAM)
    expected = 28089608 if attn_layer is CBAM else 28089624  # ours: cbam_resnet50 / cbam_official
    assert count_params(model) == expected
    out = model(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


# --- attach ----------------------------------------------------------------------------------------------

def _attach_and_check(model, expected_places, **kwargs):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    places = cbam.attach(model, **kwargs)
    after = model.state_dict()
    assert len(places) == expected_places
    assert all(torch.equal(before[k], after[k]) for k in before), "host weights changed"
    new = set(after) - set(before)
    assert new and all(any(k.startswith(p + ".") for p in places) for k in new)
    out = model.eval()(torch.randn(2, 3, 64, 64))
    assert torch.isfinite(out).all()
    return places


def test_attach_torchvision_resnet50_equals_ours():
    host = tvm.resnet50()
    places = _attach_and_check(host, 16, attention="cbam")
    assert places[0] == "layer1.0.attn" and isinstance(host.layer1[0], AttentiveBottleneck)
    ours = cbam.create_model("resnet50", attention="cbam").eval()
    assert count_params(host) == count_params(ours) == 28089608
    # same structure: our weights load into the attached torchvision model and give the same logits
    weights = {k.replace("head.fc.", "fc."): v for k, v in ours.state_dict().items()}
    host.load_state_dict(weights, strict=True)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(host(x), ours(x))


def test_attach_torchvision_resnext50_and_options():
    host = tvm.resnext50_32x4d()
    _attach_and_check(host, 16, attention="cbam")
    assert count_params(host) == count_params(cbam.create_model("resnext50_32x4d", attention="cbam")) == 27561480
    small = tvm.resnet18()
    _attach_and_check(small, 8, attention="cbam_official", reduction=8, kernel_size=3)
    assert small.layer1[0].attn.spatial.kernel_size == 3 and small.layer1[0].attn.channel.fc1.out_features == 8


def test_attach_torchvision_mobilenet_v2():
    host = tvm.mobilenet_v2()
    places = _attach_and_check(host, 17, attention="cbam")
    assert places[0] == "features.1.conv.attn"
    assert host.features[1].conv.attn.channels == 16  # the projection's output channels
    # pretrained-style host weights still load (strict=False only because the attention is new)
    missing, unexpected = host.load_state_dict(tvm.mobilenet_v2().state_dict(), strict=False)
    assert not unexpected and all(".attn." in k for k in missing)


def test_attach_timm_resnet_uses_its_se_slot():
    host = timm.create_model("resnet18")
    places = _attach_and_check(host, 8, attention="cbam")
    assert places[0] == "layer1.0.se"
    assert count_params(host) == count_params(cbam.create_model("resnet18", attention="cbam"))


def test_attach_errors():
    with pytest.raises(ValueError, match="SqueezeNet has no block attach supports; supported: torchvision ResNet"):
        cbam.attach(tvm.squeezenet1_1(), "cbam")
    host = tvm.resnet18()
    cbam.attach(host)
    with pytest.raises(ValueError, match="already has attention"):
        cbam.attach(host)
    with pytest.raises(ValueError, match="already has attention"):
        cbam.attach(timm.create_model("resnet18", block_args=dict(attn_layer="se")))
    with pytest.raises(ValueError, match="unknown attention"):
        cbam.attach(tvm.resnet18(), "cbma")
