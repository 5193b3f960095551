"""timm's ResNet family with ``attn_layer='cbam'`` (``timm.layers.CbamModule``) <-> our ResNet.

timm's CBAM differs from the paper's in three ways, all expressible with our options:
its MLP is two bias-free 1x1 convs (``se.channel.fc1/fc2``, weights (C/r, C, 1, 1)), its spatial
gate is a bias-free 7x7 conv followed by BatchNorm (``se.spatial.conv.conv`` / ``se.spatial.conv.bn``),
and it concatenates the pooled maps as ``[mean; max]``. So the matching preset is
``attention="cbam"`` with ``mlp_bias=False, spatial_order=("avg", "max"), spatial_norm=True,
spatial_conv_bias=False`` (:data:`TIMM_CBAM_KWARGS`). The block is ``se`` in timm, ``attn`` in ours,
and the classifier is ``fc`` in timm, ``head.fc`` in ours; all other keys coincide. timm's spatial
BatchNorm keeps PyTorch's default momentum 0.1 (ours: 0.01), which matters for training only.

:func:`to_timm` goes the other way and refuses anything timm's module cannot represent exactly.
"""
from __future__ import annotations

from torch import Tensor, nn

from ...nn import CBAM
from ._common import Conversion, rename

__all__ = ["TIMM_CBAM_KWARGS", "from_timm", "to_timm"]

#: Options of our CBAM that reproduce ``timm.layers.CbamModule`` exactly (eval mode).
TIMM_CBAM_KWARGS = {"mlp_bias": False, "spatial_order": ("avg", "max"), "spatial_norm": True, "spatial_conv_bias": False}

_BLOCK = r"(?P<b>layer\d+\.\d+)\."
_FROM_TIMM = [
    (_BLOCK + r"se\.channel\.fc(?P<k>[12])\.(?P<p>weight|bias)", r"\g<b>.attn.channel.fc\g<k>.\g<p>"),
    (_BLOCK + r"se\.spatial\.conv\.conv\.weight", r"\g<b>.attn.spatial.conv.weight"),
    (_BLOCK + r"se\.spatial\.conv\.bn\.(?P<p>.*)", r"\g<b>.attn.spatial.norm.\g<p>"),
    (r"fc\.(?P<p>weight|bias)", r"head.fc.\g<p>"),
]
_TO_TIMM = [
    (_BLOCK + r"attn\.channel\.fc(?P<k>[12])\.(?P<p>weight|bias)", r"\g<b>.se.channel.fc\g<k>.\g<p>"),
    (_BLOCK + r"attn\.spatial\.conv\.weight", r"\g<b>.se.spatial.conv.conv.weight"),
    (_BLOCK + r"attn\.spatial\.norm\.(?P<p>.*)", r"\g<b>.se.spatial.conv.bn.\g<p>"),
    (r"head\.fc\.(?P<p>weight|bias)", r"fc.\g<p>"),
]


def _is_mlp_weight(key: str, marker: str) -> bool:
    return f".{marker}.channel.fc" in key and key.endswith(".weight")


def from_timm(state_dict: dict[str, Tensor]) -> Conversion:
    """timm ``resnet*`` / ``resnext*`` with ``attn_layer='cbam'`` keys -> our ResNet with the timm preset."""
    out, renamed = rename(state_dict, _FROM_TIMM, "timm checkpoint")
    reshaped = 0
    for key, value in out.items():
        if _is_mlp_weight(key, "attn") and value.dim() == 4:  # 1x1 conv (out, in, 1, 1) -> linear (out, in)
            out[key] = value.flatten(1)
            reshaped += 1
    kwargs = dict(TIMM_CBAM_KWARGS, spatial_order=list(TIMM_CBAM_KWARGS["spatial_order"]))
    if any(_is_mlp_weight(k, "attn") for k in out) and any(k.endswith("attn.channel.fc1.bias") for k in out):
        kwargs["mlp_bias"] = True  # timm's CbamModule(mlp_bias=True) via a partial
    return Conversion(out, "cbam", kwargs, renamed=renamed, reshaped=reshaped, notes=[
        "timm's spatial BatchNorm momentum 0.1 becomes ours 0.01 (training-time only)",
    ])


def _check_lossless(model: nn.Module) -> None:
    problems = []
    conv1 = getattr(model, "conv1", None)
    if not isinstance(conv1, nn.Conv2d) or conv1.kernel_size != (7, 7):
        problems.append("timm's ResNet stem is a 7x7 conv (small_input=True has a 3x3 stem)")
    for name, m in model.named_modules():
        if name.endswith(".attn") and m is not None and not isinstance(m, CBAM):
            problems.append(f"{name} is {type(m).__name__}, not CBAM")
        if isinstance(m, CBAM):
            sp, ch = m.spatial, m.channel
            if m.arrangement != "channel_first" or tuple(ch.pools) != ("avg", "max"):
                problems.append(f"{name}: timm has channel-first CBAM with avg+max pooling only")
            if sp.descriptor != "pool" or tuple(sp.order) != ("avg", "max") or sp.kernel_size != 7:
                problems.append(f"{name}: timm's spatial gate is a 7x7 conv over [mean; max]")
            if sp.norm is None or sp.conv.bias is not None:
                problems.append(f"{name}: timm's spatial gate is a bias-free conv followed by BatchNorm")
        if name.endswith(".conv1") and isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1):
            problems.append(f"{name}: stride_in_1x1=True; timm puts the stride on the 3x3 conv")
    if problems:
        raise ValueError("to_timm: not representable in timm's layout without loss: " + "; ".join(dict.fromkeys(problems)))


def to_timm(model: nn.Module) -> dict[str, Tensor]:
    """State dict of our ResNet in timm's layout, for ``timm.create_model(<same arch>, block_args=dict(attn_layer='cbam'))``.

    Lossless only: the attention must be channel-first CBAM with ``spatial_order=("avg", "max")``,
    ``spatial_norm=True``, no spatial conv bias, k=7 (e.g. a model converted by :func:`from_timm`);
    biased MLPs map to ``CbamModule(mlp_bias=True)``. Anything else raises ``ValueError``.
    """
    _check_lossless(model)
    out, _ = rename(model.state_dict(), _TO_TIMM, "to_timm")
    for key, value in out.items():
        if _is_mlp_weight(key, "se"):
            out[key] = value[:, :, None, None]  # linear (out, in) -> 1x1 conv (out, in, 1, 1)
    return out
