"""Seeds and intervals: mean and spread of a metric over seeds, and paired differences between two
models trained with the same seeds, with a 95 % Student-t confidence interval.

A paired difference compares model A and model B seed by seed (same seed, same data order, same
initialisation stream), d_k = A_k - B_k, so the seed-to-seed variation they share cancels; the interval
is mean(d) +- t_{0.975, n-1} * sd(d) / sqrt(n). It needs at least two seeds. A difference whose interval
contains 0 is inside the noise of this many seeds.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

Row = TypeVar("Row")

__all__ = ["Difference", "comparison_pairs", "format_mean_std", "format_paired_differences", "mean_std", "paired_difference", "t_quantile_975"]

# Two-sided 95 % quantiles of Student's t, t_{0.975, df}, df = 1..30 (standard tables).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t_quantile_975(df: int) -> float:
    """t_{0.975, df}; beyond df = 30, the normal quantile 1.96 plus the first-order correction 2.4 / df."""
    if df < 1:
        raise ValueError(f"t_quantile_975: degrees of freedom must be >= 1, got {df}")
    return _T975[df - 1] if df <= len(_T975) else 1.96 + 2.4 / df


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def format_mean_std(values: Sequence[float]) -> str:
    """``12.34 ± 0.56``, or ``12.34`` for a single seed (no spread to show)."""
    mean, std = mean_std(values)
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


@dataclass(frozen=True)
class Difference:
    """Paired difference A - B over n seeds: mean and 95 % t-interval [low, high] (None for n = 1)."""

    mean: float
    low: float | None
    high: float | None
    n: int

    @property
    def inside_noise(self) -> bool | None:
        """Whether the interval contains 0 (None without an interval)."""
        return None if self.low is None else self.low <= 0.0 <= self.high

    def __str__(self) -> str:
        if self.low is None:
            return f"{self.mean:+.2f} (1 seed, no interval)"
        verdict = "inside the noise" if self.inside_noise else "outside the noise"
        return f"{self.mean:+.2f} [{self.low:+.2f}, {self.high:+.2f}] ({verdict})"


def paired_difference(a: Sequence[float], b: Sequence[float]) -> Difference:
    """A - B seed by seed, with a 95 % Student-t interval over the n paired differences."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_difference: need the same non-zero number of seeds, got {len(a)} and {len(b)}")
    d = [x - y for x, y in zip(a, b, strict=True)]
    mean = statistics.fmean(d)
    if len(d) == 1:
        return Difference(mean, None, None, 1)
    half = t_quantile_975(len(d) - 1) * statistics.stdev(d) / math.sqrt(len(d))
    return Difference(mean, mean - half, mean + half, len(d))


def comparison_pairs(rows: Sequence[Row]) -> list[tuple[Row, Row]]:
    """The (A, B) pairs a comparison table reports: every row against the first (the baseline), and the
    last row (the full method) against the rows between."""
    if len(rows) < 2:
        return []
    first, last = rows[0], rows[-1]
    return [(r, first) for r in rows[1:]] + [(last, r) for r in rows[1:-1]]


def format_paired_differences(rows: Sequence[Row], label: Callable[[Row], str],
                              columns: Mapping[str, Callable[[Row], Sequence[float]]], *, what: str,
                              higher_is_better: bool) -> str:
    """Markdown table of the paired differences A - B (one column per metric, values per seed from
    ``columns``) for every pair of :func:`comparison_pairs`, with 95 % t-intervals; ``""`` for one row.

    Args:
        label: the row's name in the table.
        columns: column title -> the row's per-seed values of that metric (percentage points).
        what: the metric in the caption (``"top-1 error"``).
        higher_is_better: says which sign favours A in the caption.
    """
    pairs = comparison_pairs(rows)
    if not pairs:
        return ""
    n = len(next(iter(columns.values()))(rows[0]))
    lines = [f"Paired {what} differences over {n} seed{'s' if n > 1 else ''} (A - B in percentage points, "
             f"{'positive' if higher_is_better else 'negative'}: A is better; 95 % Student-t interval of the "
             "per-seed differences; an interval containing 0 is inside the noise):", "",
             "| A - B | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for a, b in pairs:
        cells = " | ".join(str(paired_difference(values(a), values(b))) for values in columns.values())
        lines.append(f"| {label(a)} - {label(b)} | {cells} |")
    return "\n".join(lines)
