"""Seeds and intervals (cbam.experiments.stats) and the paired-difference table of ``compare``."""
from __future__ import annotations

import math

import pytest

from cbam.experiments.compare import ModelResult, format_differences, format_table
from cbam.experiments.stats import format_mean_std, mean_std, paired_difference, t_quantile_975


def test_t_quantiles_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 4, 9, 29, 30):
        assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-3)
    for df in (40, 100, 1000):  # the approximation beyond the table
        assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=2e-3)
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_quantile_975(0)


def test_paired_difference_interval_by_hand():
    a, b = [10.0, 12.0, 11.0], [11.0, 12.5, 13.0]
    d = paired_difference(a, b)  # differences -1.0, -0.5, -2.0: mean -7/6, sd 0.7638
    sd = math.sqrt(((-1 + 7 / 6) ** 2 + (-0.5 + 7 / 6) ** 2 + (-2 + 7 / 6) ** 2) / 2)
    half = 4.303 * sd / math.sqrt(3)
    assert d.mean == pytest.approx(-7 / 6) and d.low == pytest.approx(-7 / 6 - half)
    assert d.high == pytest.approx(-7 / 6 + half) and d.n == 3
    assert d.inside_noise and "inside the noise" in str(d)
    clear = paired_difference([1.0, 1.1, 0.9], [3.0, 3.2, 2.9])
    assert not clear.inside_noise and str(clear).endswith("(outside the noise)")
    one = paired_difference([1.0], [2.0])
    assert one.low is None and one.inside_noise is None and str(one) == "-1.00 (1 seed, no interval)"
    with pytest.raises(ValueError, match="same non-zero number of seeds"):
        paired_difference([1.0, 2.0], [1.0])


def test_one_seed_shows_no_spread():
    assert mean_std([3.0]) == (3.0, None)
    assert format_mean_std([3.0]) == "3.00"
    assert format_mean_std([3.0, 5.0]) == "4.00 ± 1.41"


def _result(label: str, attention: str, top1: list[float]) -> ModelResult:
    return ModelResult(label, attention, 1_000_000, 0.1, [], top1, [0.0] * len(top1), [])


def test_compare_table_pairs_every_row_with_the_baseline_and_the_last_row_with_the_rest():
    rows = [_result("ResNet18", "none", [10.0, 11.0, 12.0]), _result("ResNet18 + SE", "se", [9.0, 10.5, 11.0]),
            _result("ResNet18 + CBAM", "cbam", [8.0, 9.0, 10.5])]
    text = format_differences(rows)
    assert "over 3 seeds" in text
    assert "| ResNet18 + SE - ResNet18 | -0.83 [" in text
    assert "| ResNet18 + CBAM - ResNet18 | -1.83 [" in text
    assert "| ResNet18 + CBAM - ResNet18 + SE | -1.00 [" in text
    assert text.count("\n| ") == 4  # header + 3 pairs
    assert "| ResNet18 | 1.000 | 0.1000 | 11.00 ± 1.00 |" in format_table(rows)
    assert format_differences(rows[:1]) == ""
