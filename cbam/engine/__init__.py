"""Task-agnostic training engine: checkpoints, distributed helpers, seeded loaders and :func:`fit`.

Classification (:mod:`cbam.experiments.classification`) and detection both train through
:func:`fit` with their own :class:`Task`; see :mod:`cbam.engine.loop` for how a task plugs in.
"""
from .checkpoint import (
    export_safetensors,
    find_last_checkpoint,
    load_checkpoint,
    load_weights,
    read_safetensors_config,
    save_checkpoint,
)
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
    "export_safetensors",
    "find_last_checkpoint",
    "fit",
    "init_distributed",
    "load_checkpoint",
    "load_weights",
    "read_metrics",
    "read_safetensors_config",
    "save_checkpoint",
]
