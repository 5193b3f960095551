"""Data loaders whose order and augmentation are a deterministic function of (seed, epoch, rank).

Training shards with :class:`torch.utils.data.DistributedSampler` (explicit ``num_replicas`` /
``rank``, so a single process uses the same sampler with a world of 1); evaluation shards with
:class:`ShardSampler`, which never pads, so summed metrics over ranks count every sample once.

Each :class:`SeededLoader` owns a ``torch.Generator``; its ``set_epoch`` calls ``sampler.set_epoch`` and
reseeds that generator from (seed, epoch, rank). The generator draws the base seed of the
worker processes (and the random transforms run in them), so augmentation does not depend on
how many epochs ran in this process: a run resumed at an epoch boundary sees the same data as
one that never stopped. Workers are not persistent, as persistent workers keep their first seed.
With ``workers=0`` random transforms use the global torch RNG, which checkpoints save and restore.
"""
from __future__ import annotations

import random
from collections.abc import Iterator, Sized
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

__all__ = ["ShardSampler", "SeededLoader", "build_loader", "seed_worker"]


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world_size, ...`` of a dataset, in order, without padding.

    Shards differ in length by at most one; together they cover every index exactly once.
    """

    def __init__(self, dataset: Sized, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.indices = range(rank, len(dataset), world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed numpy and ``random`` from the worker's torch seed (set by the loader)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    # Distinct 63-bit seeds per (seed, epoch, rank); numpy's SeedSequence mixes the three well.
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


class SeededLoader(DataLoader):
    """A ``DataLoader`` whose passes are reproducible per epoch: call :meth:`set_epoch` before each."""

    def __init__(self, dataset: Dataset, *, seed: int, rank: int, **kwargs) -> None:
        super().__init__(dataset, generator=torch.Generator(), **kwargs)
        self.seed, self.rank = seed, rank
        self.set_epoch(0)

    def __iter__(self) -> Iterator[Any]:
        """Batches; an error raised in a worker process is re-raised as one line naming its cause."""
        try:
            yield from super().__iter__()
        except Exception as err:  # noqa: BLE001 - re-raised with the same type
            text = str(err)
            if "DataLoader worker process" not in text or "Original Traceback" not in text:
                raise
            last = [line for line in text.splitlines() if line.strip()][-1]
            name, sep, message = last.partition(": ")
            raise type(err)(message if sep and name.endswith(type(err).__name__) else last) from None

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass a function of (seed, ``epoch``, rank) only."""
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        self.generator.manual_seed(_epoch_seed(self.seed, epoch, self.rank))


def build_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    train: bool,
    workers: int = 0,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
    drop_last: bool | None = None,
) -> SeededLoader:
    """A loader over this process's shard of ``dataset``.

    Args:
        batch_size: samples per step in this process (the global batch is ``batch_size * world_size``).
        train: shuffle (seeded by ``seed`` and the epoch) and drop the last incomplete batch;
            otherwise keep order and every sample.
        workers: DataLoader worker processes (0 loads in the main process).
        drop_last: override the default (``train``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if train:
        sampler: Sampler[int] = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True,
                                                   seed=seed, drop_last=False)
    else:
        sampler = ShardSampler(dataset, rank, world_size)
    drop_last = train if drop_last is None else drop_last
    if drop_last and len(sampler) < batch_size:
        raise ValueError(f"{len(dataset)} samples give {len(sampler)} per process, fewer than the batch size "
                         f"{batch_size} per process: no complete batch to train on; lower the batch size")
    return SeededLoader(
        dataset, seed=seed, rank=rank, batch_size=batch_size, sampler=sampler, num_workers=workers,
        pin_memory=pin_memory, drop_last=drop_last,
        worker_init_fn=seed_worker if workers > 0 else None,
    )
