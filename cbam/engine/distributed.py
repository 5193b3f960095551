"""Distributed data parallel: one code path for one process and many.

Launch with ``torchrun --nproc_per_node N -m cbam train ...``; :func:`init_distributed` reads the
``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` variables torchrun sets and joins the process group
(NCCL on CUDA, gloo on CPU). Without them it is a single process of rank 0 in a world of 1 and
every collective below is a no-op, so the training loop never branches on the world size.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "DistInfo",
    "init_distributed",
    "cleanup_distributed",
    "get_rank",
    "get_world_size",
    "is_main",
    "barrier",
    "all_reduce_sum",
    "broadcast_object",
    "all_gather_objects",
    "sync_batchnorm",
    "wrap_ddp",
    "broadcast_buffers",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process runs: ``rank`` of ``world_size`` processes, on ``device``."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the torchrun process group if there is one, and pick this process's device.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when available). Under torchrun each
            process takes GPU ``LOCAL_RANK``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    kind = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but CUDA is not available")
    dev = torch.device("cuda", local_rank) if kind == "cuda" else torch.device("cpu")
    if kind == "cuda":
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if kind == "cuda" else "gloo", device_id=dev if kind == "cuda" else None)
    return DistInfo(rank, world_size, local_rank, dev)


def cleanup_distributed() -> None:
    """Leave the process group (if any)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def get_rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """True on rank 0, the only process that writes files and logs."""
    return get_rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum of ``values`` over all processes (in place; returned for chaining)."""
    if dist.is_initialized():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast_object(obj: object) -> object:
    """Rank 0's ``obj`` on every process."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_objects(obj: object) -> list[object]:
    """Every process's ``obj``, in rank order (e.g. detections for a dataset-level metric)."""
    if not dist.is_initialized():
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def sync_batchnorm(model: nn.Module, info: DistInfo) -> nn.Module:
    """BatchNorm layers as ``SyncBatchNorm`` for multi-GPU runs; ``model`` unchanged otherwise.

    SyncBatchNorm supports only CUDA, so on CPU (gloo) the statistics stay per process. The
    converted layers keep the same parameter objects, so an optimiser built earlier still applies.
    """
    if info.world_size > 1 and info.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def wrap_ddp(model: nn.Module, info: DistInfo) -> nn.Module:
    """``DistributedDataParallel(model)`` when ``world_size > 1``, else ``model``.

    DDP broadcasts rank 0's parameters and buffers when it wraps the model, so all ranks start equal.
    """
    if info.world_size == 1:
        return model
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def broadcast_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every process.

    DDP broadcasts buffers at the *start* of each forward, and each rank then updates them with
    its own batch; calling this after an epoch makes every rank evaluate and save the same model.
    """
    if dist.is_initialized():
        for buf in model.buffers():
            dist.broadcast(buf, src=0)
