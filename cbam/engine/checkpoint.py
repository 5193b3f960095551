"""Checkpoints: atomic writes, every RNG state, pickle-free loading, safetensors export.

A training checkpoint is one ``torch.save`` dict holding only tensors and plain Python types, so
:func:`load_checkpoint` reads it with ``torch.load(weights_only=True)`` (no pickled code runs):

    {"model", "optimizer", "scheduler", "scaler": state dicts,
     "epoch": completed epochs, "step": optimiser steps, "best": best validation metric or None,
     "rng": rng_state(), "loader_generator": torch.Generator state, "config": dict, "metrics": dict}

Final weights are exported to ``model.safetensors`` with the run's config in its metadata.
"""
from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save
from torch import nn

__all__ = [
    "CHECKPOINT_NAME",
    "WEIGHTS_NAME",
    "atomic_write",
    "save_checkpoint",
    "load_checkpoint",
    "find_last_checkpoint",
    "rng_state",
    "set_rng_state",
    "unwrap_model",
    "export_safetensors",
    "read_safetensors_config",
    "load_weights",
]

CHECKPOINT_NAME = "checkpoint.pt"
WEIGHTS_NAME = "model.safetensors"


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Write ``path`` so that readers see either the old file or the complete new one.

    ``write(f)`` fills a temporary file in the same directory, which is flushed, fsync'ed and
    renamed over ``path`` with ``os.replace`` (atomic on POSIX and Windows); the directory is
    fsync'ed so the rename survives a power loss. A crash leaves at most a ``.tmp`` file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):
        dir_fd = os.open(path.parent, os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def rng_state() -> dict[str, Any]:
    """Every global RNG state (python ``random``, numpy, torch CPU, CUDA) as tensors and plain types."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the states returned by :func:`rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare model inside ``DistributedDataParallel`` and/or ``torch.compile`` wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Atomically ``torch.save`` ``state`` (see the module docstring for its keys) to ``path``."""
    return atomic_write(path, lambda f: torch.save(dict(state), f))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` without unpickling code.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a readable checkpoint (truncated, foreign pickle, ...).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not our checkpoint"
        raise ValueError(f"checkpoint {str(path)!r} cannot be read with weights_only=True: "
                         f"{type(err).__name__}: {str(err).splitlines()[0]}") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(f"checkpoint {str(path)!r} is not a cbam training checkpoint (no 'model' entry)")
    return ckpt


def find_last_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The run's checkpoint (``run_dir/checkpoint.pt``), or ``None`` when there is none yet."""
    path = Path(run_dir) / CHECKPOINT_NAME
    return path if path.is_file() else None


def export_safetensors(model: nn.Module, path: str | os.PathLike, config: Mapping[str, Any] | None = None) -> Path:
    """Atomically write the model's weights (and buffers) to a safetensors file.

    ``config`` is stored as JSON in the file's metadata under ``"config"``, so the file alone is
    enough to rebuild the model (see :func:`read_safetensors_config`).
    """
    state = {k: v.detach().contiguous().cpu() for k, v in unwrap_model(model).state_dict().items()}
    metadata = {"format": "pt", "config": json.dumps(dict(config or {}), sort_keys=True)}
    return atomic_write(path, lambda f: f.write(save(state, metadata=metadata)))


def read_safetensors_config(path: str | os.PathLike) -> dict[str, Any]:
    """The ``config`` stored in a safetensors file's metadata by :func:`export_safetensors` ({} if none)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise ValueError(f"{str(path)!r} is not a safetensors file: {err}") from None
    return json.loads(meta.get("config", "{}"))


def _state_from_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        read_safetensors_config(path)  # clear errors for missing / foreign files
        return load_file(path)
    return load_checkpoint(path)["model"]


def load_weights(model: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor]) -> nn.Module:
    """Load weights from a ``.safetensors`` file, a checkpoint or a state dict into ``model``, strictly.

    Raises:
        ValueError: the weights belong to a different architecture or class count; the message
            names the missing and unexpected keys and every shape that differs, e.g.
            ``head.fc.weight: file (10, 512) vs model (1000, 512)``.
    """
    where = "state dict" if isinstance(source, Mapping) else repr(str(source))
    state = dict(source) if isinstance(source, Mapping) else _state_from_file(Path(source))
    target = unwrap_model(model)
    own = target.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
              for k, v in own.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append("shape mismatch: " + "; ".join(shapes[:5]) + (" ..." if len(shapes) > 5 else ""))
        if missing:
            parts.append(f"{len(missing)} missing key(s): {missing[:5]}" + (" ..." if len(missing) > 5 else ""))
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {unexpected[:5]}"
                         + (" ..." if len(unexpected) > 5 else ""))
        name = getattr(target, "model_name", type(target).__name__)
        raise ValueError(f"weights in {where} do not fit model {name}: " + "; ".join(parts))
    target.load_state_dict(state)
    return model
