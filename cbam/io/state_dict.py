"""Weight files that load without running pickled code: safetensors, or ``torch.load(weights_only=True)``.

A ``.pth`` / ``.pth.tar`` checkpoint is a pickle, and unpickling can execute arbitrary code. We load
such files only with ``torch.load(weights_only=True)``, which accepts tensors, containers and plain
values; a file that needs anything more (a custom class, a whole pickled model, an optimizer with
exotic state) is refused with :class:`UnsafeCheckpointError`, whose message says how to re-save the
weights in an environment the user trusts.
"""
from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from .files import atomic_write, existing_file

__all__ = ["Checkpoint", "UnsafeCheckpointError", "TORCH_SUFFIXES", "load_state_dict_strict", "read_checkpoint",
           "read_state_dict", "save_safetensors"]

#: File endings read with ``torch.load(weights_only=True)``.
TORCH_SUFFIXES = (".pth", ".pth.tar", ".pt", ".bin", ".ckpt", ".tar")
#: Keys under which training scripts nest the weights, tried in this order.
_NESTED_KEYS = ("state_dict", "model", "model_state_dict", "module")

_HOW_TO_CONVERT = (
    "Only if you trust the file, re-save its weights as safetensors in an environment where running "
    "its code is acceptable, e.g.\n"
    "  python -c \"import torch; from safetensors.torch import save_file; "
    "c = torch.load('{path}', map_location='cpu', weights_only=False); "
    "sd = c.get('state_dict', c) if isinstance(c, dict) else c.state_dict(); "
    "save_file({{k: v.contiguous() for k, v in sd.items() if isinstance(v, torch.Tensor)}}, 'weights.safetensors')\"\n"
    "and pass weights.safetensors instead."
)


class UnsafeCheckpointError(ValueError):
    """A checkpoint that cannot be read without unpickling arbitrary objects."""


@dataclass
class Checkpoint:
    """Tensors of a weight file and what was left out.

    Attributes:
        state_dict: name -> tensor, the weights as stored (prefixes untouched).
        nested_key: the entry the weights were nested under (e.g. ``"state_dict"``), or ``None``.
        dropped: top-level entries that are not weights (``epoch``, ``best_prec1``, ``optimizer``, ...).
    """

    state_dict: dict[str, Tensor]
    nested_key: str | None = None
    dropped: list[str] = field(default_factory=list)


_ESCAPES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _first_line(err: BaseException) -> str:
    """The first non-empty line of an error's message, without terminal escape codes."""
    lines = [ln.strip() for ln in _ESCAPES.sub("", str(err)).splitlines() if ln.strip()]
    return lines[0] if lines else type(err).__name__


def _torch_load(path: Path) -> object:
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # a zip archive (torch.save) or a legacy pickle
        raise ValueError(f"{path} is not a PyTorch checkpoint (neither a torch.save archive nor a pickle)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", _ESCAPES.sub("", str(err)))
        if found is None:  # not a refusal of a global: a damaged pickle
            raise ValueError(f"{path} is not a readable PyTorch checkpoint (truncated or damaged: "
                             f"{_first_line(err)})") from None
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it needs arbitrary unpickling (of {found.group(1)}), which can run code "
            "from the file.\n" + _HOW_TO_CONVERT.format(path=path)
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:  # a truncated zip archive, a cut pickle
        detail = "" if isinstance(err, (OSError, EOFError)) else f": {_first_line(err)}"  # errno text says nothing
        raise ValueError(f"{path} is not a readable PyTorch checkpoint (truncated or damaged{detail})") from None


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read the tensors of a ``.safetensors`` or torch checkpoint file, never executing pickled code.

    Args:
        path: a ``.safetensors`` file, or one of :data:`TORCH_SUFFIXES` (loaded with
            ``torch.load(weights_only=True)``). A dict nesting the weights under ``state_dict`` /
            ``model`` is unwrapped; other top-level entries are reported in ``dropped``.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the file needs arbitrary unpickling.
        ValueError: unknown file type, or no tensors in it.
    """
    path = existing_file(path, "checkpoint")
    name = path.name.lower()
    if name.endswith(".safetensors"):
        try:
            return Checkpoint(dict(load_file(str(path))))
        except Exception as err:  # noqa: BLE001 - safetensors raises its own error types for a damaged file
            raise ValueError(f"{path} is not a readable safetensors file (truncated or damaged: "
                             f"{_first_line(err)})") from None
    if not name.endswith(TORCH_SUFFIXES):
        raise ValueError(f"checkpoint {path}: expected a .safetensors file or one of {TORCH_SUFFIXES}")
    obj = _torch_load(path)
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint {path}: expected a dict of tensors, got {type(obj).__name__}")
    nested_key = next((k for k in _NESTED_KEYS if isinstance(obj.get(k), dict)), None)
    top = obj
    weights = obj[nested_key] if nested_key else obj
    state_dict = {k: v for k, v in weights.items() if isinstance(v, Tensor)}
    dropped = sorted(str(k) for k in top if k != nested_key and not (nested_key is None and k in state_dict))
    dropped += sorted(f"{nested_key}.{k}" for k in weights if nested_key and k not in state_dict)
    if not state_dict:
        raise ValueError(f"checkpoint {path}: no tensors found (top-level keys: {sorted(map(str, top))[:10]})")
    return Checkpoint(state_dict, nested_key, dropped)


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of a weight file (see :func:`read_checkpoint`) or of a model folder's ``model.safetensors``."""
    path = Path(path)
    return read_checkpoint(path / "model.safetensors" if path.is_dir() else path).state_dict


def save_safetensors(state_dict: Mapping[str, Tensor], path: str | os.PathLike) -> Path:
    """Write ``state_dict`` to ``path`` as safetensors, atomically (see :func:`cbam.io.files.atomic_write`)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, Tensor], source: str = "state dict") -> nn.Module:
    """``model.load_state_dict(state_dict, strict=True)`` with one clear error on any mismatch.

    Args:
        model: the bare model (not its DDP / ``torch.compile`` wrapper).
        state_dict: name -> tensor.
        source: where the weights come from, for the message (e.g. a file name).

    Raises:
        ValueError: the weights belong to another architecture or class count; the message names
            the missing and unexpected keys and every shape that differs, e.g.
            ``head.fc.weight: file (10, 512) vs model (1000, 512)``.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
              for k, v in own.items() if k in state_dict and state_dict[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append("shape mismatch: " + "; ".join(shapes[:5]) + (" ..." if len(shapes) > 5 else ""))
        if missing:
            parts.append(f"{len(missing)} missing key(s): {missing[:5]}" + (" ..." if len(missing) > 5 else ""))
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {unexpected[:5]}"
                         + (" ..." if len(unexpected) > 5 else ""))
        name = getattr(model, "model_name", type(model).__name__)
        raise ValueError(f"weights in {source} do not fit model {name}: " + "; ".join(parts))
    model.load_state_dict(dict(state_dict))
    return model
