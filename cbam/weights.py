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
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

__all__ = ["Checkpoint", "UnsafeCheckpointError", "TORCH_SUFFIXES", "atomic_write", "read_checkpoint", "save_safetensors"]

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


def _torch_load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        reason = next((ln for ln in lines if "Unsupported global" in ln), lines[0] if lines else type(err).__name__)
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it needs arbitrary unpickling, which can run code from the file "
            f"(torch.load(weights_only=True) said: {reason}).\n" + _HOW_TO_CONVERT.format(path=path)
        ) from None


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
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    name = path.name.lower()
    if name.endswith(".safetensors"):
        return Checkpoint(dict(load_file(str(path))))
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


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then ``os.replace`` it onto ``path``.

    The temporary file keeps ``path``'s suffix (some writers choose the format from it) and is
    removed if ``write`` fails, so ``path`` is either the old file or the complete new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def save_safetensors(state_dict: dict[str, Tensor], path: str | os.PathLike) -> Path:
    """Write ``state_dict`` to ``path`` as safetensors, atomically (see :func:`atomic_write`)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
