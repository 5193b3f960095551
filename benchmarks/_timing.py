"""Interleaved timing shared by the benchmark scripts: round-robin over variants, medians, load and threads."""
from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence

import torch

__all__ = ["machine_line", "interleaved", "print_table"]


def machine_line() -> str:
    """One line naming torch, the thread count, the 1/5/15-minute load average and allocator settings."""
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    allocator = [f"{k}={os.environ[k]}" for k in ("GLIBC_TUNABLES", "THP_MEM_ALLOC_ENABLE", "LD_PRELOAD") if k in os.environ]
    return (
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load average (1/5/15 min) {load}"
        + (f", allocator settings: {' '.join(allocator)}" if allocator else "")
    )


def interleaved(cases: dict[str, Callable[[], None]], rounds: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of every case, timed round-robin: each round runs every case once,
    starting from a different case each round, so drifting machine load hits all cases alike."""
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for i in range(len(names)):
            name = names[(r + i) % len(names)]
            start = time.perf_counter()
            cases[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print a GitHub-flavoured markdown table."""
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
