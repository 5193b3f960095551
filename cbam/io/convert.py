"""Convert another layout's CBAM checkpoint into our model folder, or ours into timm's layout.

``convert_checkpoint`` reads the file without unpickling code (:mod:`cbam.io.state_dict`), renames
its keys (:mod:`cbam.io.layouts`), finds the registered architecture with exactly those tensors,
loads them strictly and writes a model folder (:mod:`cbam.io.model_folder`) with ImageNet
evaluation preprocessing (every layout we read holds ImageNet models).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..models import create_model
from .files import check_output_dir, check_output_file
from .layouts import SOURCES, match_architecture, to_timm
from .model_folder import from_pretrained, save_pretrained
from .state_dict import load_state_dict_strict, read_checkpoint, save_safetensors

__all__ = ["ConversionReport", "convert_checkpoint", "export_timm_weights"]


@dataclass
class ConversionReport:
    """What :func:`convert_checkpoint` did."""

    source: str
    input_path: Path
    output: Path
    architecture: str
    model_kwargs: dict[str, Any]
    source_tensors: int
    renamed: int
    reshaped: int
    loaded_tensors: int
    filled: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Human-readable summary, one fact per line."""
        out = [
            f"read {self.source_tensors} tensors from {self.input_path} ({self.source} layout)",
            f"renamed {self.renamed} keys, reshaped {self.reshaped} tensors",
        ]
        if self.dropped:
            out.append(f"dropped {len(self.dropped)} non-weight entries: {', '.join(self.dropped)}")
        if self.filled:
            out.append(f"added {len(self.filled)} num_batches_tracked counters (absent in the source), set to 0")
        out += [f"note: {n}" for n in self.notes]
        out.append(f"architecture: {self.architecture} {self.model_kwargs}")
        out.append(f"loaded {self.loaded_tensors} tensors strictly; wrote {self.output}")
        return out


def _imagenet_preprocessing() -> dict[str, Any]:
    from ..data.transforms import eval_preprocessing

    return eval_preprocessing("imagefolder")


def convert_checkpoint(path: str | os.PathLike, source: str, out_dir: str | os.PathLike, *,
                       force: bool = False) -> ConversionReport:
    """Convert a checkpoint in ``source`` layout (``"official"``, ``"pytorchcv"``, ``"timm"``) to a model folder.

    Args:
        path: ``.pth`` / ``.pth.tar`` (read with ``torch.load(weights_only=True)``) or ``.safetensors``.
        source: a key of :data:`cbam.io.layouts.SOURCES`.
        out_dir: the model folder to write (see :func:`cbam.io.model_folder.save_pretrained`); a
            non-empty folder is replaced only with ``force``.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source layout {source!r}; valid names are {sorted(SOURCES)}")
    out_dir = check_output_dir(out_dir, create=False)  # nothing is written before the input is read
    if not force and out_dir.is_dir() and any(out_dir.iterdir()):
        raise ValueError(f"--out {str(out_dir)!r} is not empty (it may hold a model folder); pass --force to "
                         "overwrite it or choose another folder")
    ckpt = read_checkpoint(path)
    conversion = SOURCES[source](ckpt.state_dict)
    state_dict = dict(conversion.state_dict)
    name, kwargs = match_architecture(state_dict, conversion.attention, conversion.attention_kwargs, f"{source} {path}")
    model = create_model(name, **kwargs)
    filled = [k for k in model.state_dict() if k.endswith("num_batches_tracked") and k not in state_dict]
    for key in filled:
        state_dict[key] = torch.zeros((), dtype=torch.long)
    load_state_dict_strict(model, state_dict, f"{source} {path}")
    out = save_pretrained(model, out_dir, preprocessing=_imagenet_preprocessing())
    return ConversionReport(
        source=source, input_path=Path(path), output=out, architecture=name, model_kwargs=kwargs,
        source_tensors=len(ckpt.state_dict), renamed=conversion.renamed, reshaped=conversion.reshaped,
        loaded_tensors=len(state_dict), filled=filled, dropped=ckpt.dropped, notes=conversion.notes,
    )


def export_timm_weights(model_dir: str | os.PathLike, out_file: str | os.PathLike, *,
                        force: bool = False) -> tuple[str, Path]:
    """Write a model folder's weights in timm's layout (lossless cases only, see :func:`cbam.io.layouts.to_timm`);
    an existing ``out_file`` is replaced only with ``force``.

    Returns ``(architecture, path)``; load them with
    ``timm.create_model(architecture, block_args=dict(attn_layer="cbam"))`` (plus
    ``partial(CbamModule, mlp_bias=True)`` if the MLP has biases) and ``load_state_dict``.
    """
    check_output_file(out_file, force=force)
    model = from_pretrained(model_dir)
    return model.model_name, save_safetensors(to_timm(model), out_file)
