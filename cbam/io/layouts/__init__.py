"""Converters between other CBAM weight layouts (official release, pytorchcv, timm) and ours."""
from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from ._common import Conversion, match_architecture
from .official import from_official
from .pytorchcv import from_pytorchcv
from .timm_layout import TIMM_CBAM_KWARGS, from_timm, to_timm

__all__ = ["SOURCES", "Conversion", "TIMM_CBAM_KWARGS", "from_official", "from_pytorchcv", "from_timm",
           "match_architecture", "to_timm"]

#: ``--from`` name -> converter of a raw state dict into our layout.
SOURCES: dict[str, Callable[[dict[str, Tensor]], Conversion]] = {
    "official": from_official,
    "pytorchcv": from_pytorchcv,
    "timm": from_timm,
}
