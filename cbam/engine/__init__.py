"""Task-agnostic training engine: resume checkpoints, distributed helpers, seeded loaders and :func:`fit`.

Classification (:mod:`cbam.experiments.classification`) and detection (:mod:`cbam.experiments.detection`)
both train through :func:`fit` with their own :class:`Task`; see :mod:`cbam.engine.loop` for how a task plugs in.
"""
from .checkpoint import find_last_checkpoint, load_checkpoint, save_checkpoint, seed_everything
from .distributed import DistInfo, init_distributed
from .loader import ShardSampler, build_loader
from .loop import NonFiniteLossError, Runtime, StepOutput, Task, fit, read_metrics

__all__ = [
    "DistInfo",
    "NonFiniteLossError",
    "Runtime",
    "ShardSampler",
    "StepOutput",
    "Task",
    "build_loader",
    "find_last_checkpoint",
    "fit",
    "init_distributed",
    "load_checkpoint",
    "read_metrics",
    "save_checkpoint",
    "seed_everything",
]
