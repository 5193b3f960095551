"""The paper's row labels: ``"ResNet50 + CBAM"``, ``"ResNet50 + channel (MaxPool)"``, ..."""
from __future__ import annotations

from ..nn.factory import AttentionSpec, attention_name
from ._registry import model_info

__all__ = ["attention_suffix", "row_label"]

#: attention name -> what the paper appends to the architecture (Tables 1-5).
_SUFFIX = {
    None: "", "se": " + SE", "cbam": " + CBAM", "cbam_official": " + CBAM (official layout)",
    "channel_avg": " + channel (AvgPool = SE)", "channel_max": " + channel (MaxPool)",
    "channel": " + channel (AvgPool & MaxPool)",
    "channel_lp": " + channel (AvgPool & MaxPool & LP-pool)", "channel_lse": " + channel (AvgPool & MaxPool & LSE-pool)",
    "cbam_conv1x1_k3": " + channel + spatial (1x1 conv, k=3)", "cbam_conv1x1_k7": " + channel + spatial (1x1 conv, k=7)",
    "cbam_pool_k3": " + channel + spatial (avg&max, k=3)", "cbam_pool_k7": " + channel + spatial (avg&max, k=7)",
    "cbam_channel_first": " + channel + spatial", "cbam_spatial_first": " + spatial + channel",
    "cbam_parallel": " + channel & spatial in parallel", "spatial": " + spatial only (avg&max, k=7)",
}


def attention_suffix(attention: AttentionSpec) -> str:
    """``""`` for no attention, ``" + CBAM"`` for ``"cbam"``, ``" + <name>"`` for names the paper has no label for."""
    key = attention_name(attention)
    return _SUFFIX.get(key, f" + {getattr(key, '__name__', key)}")


def row_label(name: str, attention: AttentionSpec) -> str:
    """The paper's row name of registry model ``name``, e.g. ``row_label("resnet50", "cbam") == "ResNet50 + CBAM"``."""
    info = model_info(name)
    base = info.paper.get("label", info.name) if info.paper else info.name
    return base + attention_suffix(attention)
