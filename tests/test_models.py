"""Every registered model x attention in {None, se, cbam}: the model surface works."""
from __future__ import annotations

import pytest
import torch

import cbam
from cbam.experiments.paper_tables import detector_label
from cbam.models import model_info
from cbam.models.labels import attention_suffix
from cbam.models.profile import count_params
from cbam.nn import CBAM, SqueezeExcitation

MODELS = cbam.list_models()
ATTENTIONS = [None, "se", "cbam"]


@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("name", MODELS)
def test_forward_backward(name, attention):
    torch.manual_seed(0)
    model = cbam.create_model(name, attention=attention, num_classes=7)
    x = torch.randn(2, 3, 64, 48)
    out = model(x)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without a finite gradient: {missing[:5]}"


@pytest.mark.parametrize("name", MODELS)
def test_recorded_param_counts_are_real(name):
    info = model_info(name)
    for att, expected in info.num_params.items():
        model = cbam.create_model(name, attention=None if att == "none" else att)
        assert count_params(model) == expected, (name, att)


@pytest.mark.parametrize("name", MODELS)
def test_feature_info_matches_forward_stages(name):
    model = cbam.create_model(name, attention="cbam", num_classes=5).eval()
    x = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        stages = model.forward_stages(x)
        feats = model.forward_features(x)
    assert len(stages) == len(model.feature_info)
    for t, info in zip(stages, model.feature_info):
        assert t.shape[1] == info["num_chs"]
        assert t.shape[2] == -(-96 // info["reduction"]) and t.shape[3] == -(-64 // info["reduction"])
        assert isinstance(model.get_submodule(info["module"]), torch.nn.Module)
    torch.testing.assert_close(feats, stages[-1])
    assert model.forward_head(feats, pre_logits=True).shape == (1, model.num_features)
    model.reset_classifier(3)
    assert model(x).shape == (1, 3)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v1"])
def test_small_input_stem_and_tiny_maps(name):
    model = cbam.create_model(name, attention="cbam", num_classes=10, small_input=True).eval()
    assert model.feature_info[-1]["reduction"] in (8, 16)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
        assert model(torch.randn(1, 3, 8, 8)).shape == (1, 10)  # last stage is 1 x 1


def test_attention_placement_resnet():
    model = cbam.create_model("resnet50", attention="cbam")
    blocks = [m for m in model.modules() if isinstance(m, cbam.models.Bottleneck)]
    assert len(blocks) == 16 and all(isinstance(b.attn, CBAM) for b in blocks)
    assert blocks[0].attn.channels == 256  # after bn3 (planes * 4), before the addition
    plain = cbam.create_model("resnet50")
    assert all(b.attn is None for b in plain.modules() if isinstance(b, cbam.models.Bottleneck))


def test_attention_placement_mobilenet():
    model = cbam.create_model("mobilenet_v1", attention="se")
    assert sum(isinstance(m, SqueezeExcitation) for m in model.modules()) == 1 + 2 * 13
    pw_only = cbam.create_model("mobilenet_v1", attention="se", attention_sites=("pw",))
    assert sum(isinstance(m, SqueezeExcitation) for m in pw_only.modules()) == 13


def test_stride_in_1x1():
    v1 = cbam.create_model("resnet50", stride_in_1x1=True)
    v15 = cbam.create_model("resnet50")
    assert v1.layer2[0].conv1.stride == (2, 2) and v1.layer2[0].conv2.stride == (1, 1)
    assert v15.layer2[0].conv1.stride == (1, 1) and v15.layer2[0].conv2.stride == (2, 2)


def test_official_init():
    model = cbam.create_model("resnet18", attention="cbam_official")
    bn = model.layer1[0].attn.spatial.norm
    assert torch.all(bn.weight == 0)  # spatial gate starts at sigmoid(0) = 0.5
    assert torch.all(model.layer1[0].bn1.weight == 1)


def test_registry_api():
    assert "resnet50" in cbam.list_models("resnet*")
    assert cbam.list_models("mobilenet*") == ["mobilenet_v1", "mobilenet_v1_x0_7"]
    assert "cbam_resnet50" in cbam.list_models("cbam_*", include_aliases=True)
    m = cbam.create_model("cbam_resnet18", num_classes=4)
    assert isinstance(m.layer1[0].attn, CBAM)
    assert cbam.create_model("resnet18", stride_in_1x1=None, drop_rate=None).head.fc.out_features == 1000
    m = cbam.create_model("resnet18", attention="cbam", attention_kwargs={"kernel_size": 3, "reduction": 32})
    assert m.layer1[0].attn.spatial.kernel_size == 3 and m.layer1[0].attn.channel.fc1.out_features == 2
    with pytest.raises(ValueError, match="unknown model"):
        cbam.create_model("resnet19")
    with pytest.raises(ValueError, match="unknown attention"):
        cbam.create_model("resnet18", attention="cbma")
    with pytest.raises(ValueError, match="num_classes"):
        cbam.create_model("resnet18", num_classes=0)
    with pytest.raises(ValueError, match="already registered"):
        cbam.models.register_model(model_info("resnet18"))


@pytest.mark.parametrize("attention", sorted(cbam.nn.factory.ATTENTION_REGISTRY))
def test_every_registered_attention_has_a_readable_label(attention):
    suffix = attention_suffix(attention)
    assert suffix.startswith(" + ") and suffix != f" + {attention}", suffix  # not the raw registry name
    assert detector_label("ssd", "vgg16", attention)[1] == "SSD" + suffix
