"""Resume checkpoints: every RNG state, seeding, atomic saving and pickle-free loading.

A training checkpoint is one ``torch.save`` dict holding only tensors and plain Python types, so
:func:`load_checkpoint` reads it with ``torch.load(weights_only=True)`` (no pickled code runs):

    {"model", "optimizer", "scheduler", "scaler": state dicts,
     "epoch": completed epochs, "step": optimiser steps, "best": best validation metric or None,
     "rng": rng_state(), "loader_generator": torch.Generator state, "config": dict, "metrics": dict}

It exists to resume a run; the finished model is a model folder (:mod:`cbam.io.model_folder`).
"""
from __future__ import annotations

import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..io.files import atomic_write, existing_file

__all__ = [
    "CHECKPOINT_NAME",
    "save_checkpoint",
    "load_checkpoint",
    "find_last_checkpoint",
    "rng_state",
    "seed_everything",
    "set_rng_state",
    "unwrap_model",
]

CHECKPOINT_NAME = "checkpoint.pt"


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


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy and torch (CPU and every CUDA device) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
    return atomic_write(path, lambda tmp: torch.save(dict(state), tmp))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` without unpickling code.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a readable checkpoint (truncated, foreign pickle, ...).
    """
    path = existing_file(path, "checkpoint")
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
