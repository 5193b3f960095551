"""The shipped recipes: every one loads, and the GPU comparison recipe runs end to end (tiny, on the CPU,
with its bf16 autocast and channels-last settings)."""
from __future__ import annotations

import csv

import pytest

from cbam.cli import main
from cbam.experiments.config import list_configs, load_config


@pytest.mark.parametrize("name", list_configs())
def test_recipe_loads(name):
    cfg = load_config(name)
    assert cfg.epochs > 0 and cfg.resolved_lr > 0


def test_main_job_recipe_is_the_measured_one():
    cfg = load_config("embedded")
    assert cfg.embedded == {"train_per_class": 400, "val_per_class": 100} and cfg.epochs == 20


def test_gpu_recipe_runs_tiny_on_the_cpu(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--config", "embedded_gpu", "--device", "cpu", "--workers", "0", "--epochs", "1",
            "--batch-size", "10", "--data", f"embedded:{tmp_path / 'data'}", "--set", "embedded.train_per_class=2",
            "--set", "embedded.val_per_class=1", "--set", "model_kwargs.widths=[16, 16, 16, 16]",
            "--set", "model_kwargs.stem_width=8", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| ResNet18 + CBAM |" in printed and "1 x 3 x 128 x 128" in printed
    assert len(list(csv.DictReader((out / "table.csv").open()))) == 3
