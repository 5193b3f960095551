"""``cbam train / eval / compare / ablate`` end to end on tiny generated data.

Includes a run killed with SIGKILL mid-epoch and resumed (bitwise equal to an uninterrupted run)
and a 2-process DDP run on CPU (identical weights on both ranks, exact validation metrics).
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from cbam.cli import main
from cbam.engine import load_checkpoint, read_metrics

from _ddp import rank_saving_script

ROOT = Path(__file__).resolve().parents[1]
# A tiny ResNet-18 (small-input stem, 16 channels everywhere: SE/CBAM need C >= r = 16) at 16 x 16.
TINY = ["--model", "resnet18", "--set", "model_kwargs={small_input: true, widths: [16, 16, 16, 16], stem_width: 16}",
        "--image-size", "16", "--batch-size", "8", "--lr", "0.05", "--threads", "1", "--no-progress"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))


def make_folder(root: Path, per_class: tuple[int, int] = (12, 4), classes: int = 3, seed: int = 0) -> Path:
    """An ImageNet-style folder of 16 x 16 PNGs; the class is the dominant colour."""
    rng = np.random.default_rng(seed)
    for split, n in zip(("train", "val"), per_class):
        for c in range(classes):
            (root / split / f"class{c}").mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 80, (16, 16, 3), dtype=np.uint8)
                img[..., c % 3] += 150
                Image.fromarray(img).save(root / split / f"class{c}" / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("data") / "tiny")


@pytest.fixture(scope="module")
def trained(folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "plain"
    assert main(["train", "--data", str(folder), "--attention", "none", "--epochs", "2", "--workers", "0",
                 "--out", str(out), *TINY]) == 0
    return out


def cbam(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "cbam", *args], cwd=ROOT, env=ENV, capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_train_writes_a_complete_run(trained):
    names = {p.name for p in trained.iterdir()}
    assert {"config.yaml", "metrics.jsonl", "checkpoint.pt", "config.json", "model.safetensors", "tensorboard"} <= names
    records = read_metrics(trained)
    assert [r["epoch"] for r in records] == [1, 2]
    for key in ("lr", "train_loss", "train_top1_err", "train_top5_err", "val_top1_err", "val_top5_err", "images_per_s"):
        assert np.isfinite(records[-1][key]), key
    cfg = yaml.safe_load((trained / "config.yaml").read_text())
    assert cfg["lr"] == 0.05 and cfg["image_size"] == 16 and cfg["model_kwargs"]["widths"] == [16, 16, 16, 16]
    assert load_checkpoint(trained / "checkpoint.pt")["config"]["num_classes"] == 3


def test_eval_reproduces_the_last_validation_metrics(trained, capsys):
    last = read_metrics(trained)[-1]
    for path in (trained, trained / "model.safetensors"):  # the folder, or its weights file
        assert main(["eval", "--weights", str(path)]) == 0
        out = capsys.readouterr().out
        assert f"top-1 error: {last['val_top1_err']:.2f} %" in out
        assert f"top-5 error: {last['val_top5_err']:.2f} %" in out


def test_eval_names_what_differs(trained, folder, tmp_path, capsys):
    other = tmp_path / "other"  # a folder whose config.json names another architecture than its weights
    other.mkdir()
    config = json.loads((trained / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "attention": "cbam"}))
    (other / "model.safetensors").write_bytes((trained / "model.safetensors").read_bytes())
    assert main(["eval", "--weights", str(other)]) == 2
    err = capsys.readouterr().err
    assert "do not fit model resnet18" in err and "missing key(s): ['layer1.0.attn" in err
    four = make_folder(tmp_path / "four", (2, 2), classes=4)
    assert main(["eval", "--weights", str(trained), "--data", str(four)]) == 2
    assert "trained on 3 classes but data" in capsys.readouterr().err


def test_resume_of_a_finished_run_and_refusal_to_overwrite(trained, folder, capsys):
    args = ["train", "--data", str(folder), "--attention", "none", "--epochs", "2", "--workers", "0",
            "--out", str(trained), *TINY]
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0  # nothing left to do: the finished run is kept
    assert len(read_metrics(trained)) == 2


@pytest.mark.timeout(1800)  # three training processes; generous for a machine shared with other jobs
def test_sigkill_mid_epoch_then_resume_is_bitwise_equal(tmp_path):
    folder = make_folder(tmp_path / "data", (24, 4))  # 9 steps per epoch
    epochs = 6
    args = ["train", "--data", str(folder), "--epochs", str(epochs), "--workers", "1", "--seed", "7", *TINY]
    assert main([*args, "--out", str(tmp_path / "full")]) == 0  # same code and threads as the subprocesses

    killed = tmp_path / "killed"
    # Niced, so that on a busy machine this poller runs as soon as the first checkpoint appears.
    proc = subprocess.Popen([sys.executable, "-m", "cbam", *args, "--out", str(killed)], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=lambda: os.nice(10))
    deadline = time.monotonic() + 1500
    while not (killed / "checkpoint.pt").exists():  # the end of epoch 1
        assert proc.poll() is None, "training ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint after 1500 s"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    done = load_checkpoint(killed / "checkpoint.pt")["epoch"]
    assert done < epochs and not (killed / "model.safetensors").exists(), "the kill came after the run ended"
    assert len(read_metrics(killed)) == done

    cbam(*args, "--out", str(killed), "--resume")
    full, resumed = load_file(tmp_path / "full" / "model.safetensors"), load_file(killed / "model.safetensors")
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    assert read_metrics(killed)[-1]["val_top1_err"] == read_metrics(tmp_path / "full")[-1]["val_top1_err"]




@pytest.mark.timeout(1800)
def test_ddp_two_processes_on_cpu(folder, tmp_path, capsys):
    script = rank_saving_script(tmp_path / "ddp.py", "cbam.experiments.classification")
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(tmp_path), "train", "--data", str(folder), "--epochs", "2", "--workers", "0", "--out", str(out), *TINY]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    saved = load_file(out / "model.safetensors")
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
        assert torch.equal(rank0[key], saved[key]), key
    # Validation over two shards equals one process evaluating the saved model.
    last = read_metrics(out)[-1]
    assert main(["eval", "--weights", str(out)]) == 0
    result = capsys.readouterr().out
    assert f"top-1 error: {last['val_top1_err']:.2f} %" in result
    assert f"top-5 error: {last['val_top5_err']:.2f} %" in result
    assert f"images:      {3 * 4} " in result


def test_compare_writes_table_csv_and_curves(folder, tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--data", str(folder), "--epochs", "1", "--seeds", "0", "1", "--workers", "0",
            "--out", str(out), *TINY]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for label in ("| ResNet18 |", "| ResNet18 + SE |", "| ResNet18 + CBAM |"):
        assert label in printed
    assert "1 x 3 x 16 x 16" in printed
    assert "Paired top-1 error differences over 2 seeds" in printed and "| ResNet18 + CBAM - ResNet18 + SE | " in printed
    pairs = list(csv.DictReader((out / "differences.csv").open()))
    assert [(r["a"], r["b"]) for r in pairs] == [("se", "none"), ("cbam", "none"), ("cbam", "se")]
    assert all(float(r["ci95_low"]) <= float(r["top1_err_difference"]) <= float(r["ci95_high"]) for r in pairs)
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert [r["attention"] for r in rows] == ["none", "se", "cbam"] and all(r["seeds"] == "2" for r in rows)
    assert int(rows[0]["params"]) < int(rows[1]["params"]) <= int(rows[2]["params"])
    assert (out / "curves.png").stat().st_size > 1000
    assert (out / "cbam" / "seed1" / "model.safetensors").is_file()
    mtime = (out / "cbam" / "seed1" / "model.safetensors").stat().st_mtime
    assert main(argv) == 0  # finished runs are reused, not retrained
    assert (out / "cbam" / "seed1" / "model.safetensors").stat().st_mtime == mtime
    capsys.readouterr()
    assert main([*argv, "--weight-decay", "0.001"]) == 2  # a changed recipe never mixes with old runs
    assert "differs in ['weight_decay']" in capsys.readouterr().err


@pytest.mark.parametrize("table, attentions", [(1, ["none", "channel_avg", "channel_max", "channel"])])
def test_ablate_table(folder, tmp_path, capsys, table, attentions):
    out = tmp_path / "abl"
    assert main(["ablate", "--table", str(table), "--data", str(folder), "--epochs", "1", "--workers", "0",
                 "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "Table 1: channel attention" in printed and "+ channel (AvgPool & MaxPool)" in printed
    assert [r["attention"] for r in csv.DictReader((out / "table.csv").open())] == attentions


@pytest.mark.parametrize("case", ["missing", "empty", "no_images", "corrupt"])
def test_bad_data_gives_one_clear_line(case, tmp_path, capsys):
    root = tmp_path / "d"
    if case != "missing":
        root.mkdir()
    if case in ("no_images", "corrupt"):
        make_folder(root / "x", (4, 2))
        root = root / "x"
    if case == "no_images":
        (root / "train" / "class3").mkdir()
        (root / "val" / "class3").mkdir()
    if case == "corrupt":  # in val, which is read in full
        (root / "val" / "class1" / "bad.png").write_bytes(b"not a png")
    code = main(["train", "--data", str(root), "--epochs", "1", "--workers", "1", "--out", str(tmp_path / "r"), *TINY])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    expected = {"missing": "does not exist", "empty": "is empty", "no_images": "class3 has no images",
                "corrupt": "bad.png"}[case]
    assert expected in err


def test_skip_corrupt_trains_with_a_warning(tmp_path):
    root = make_folder(tmp_path / "d", (4, 2))
    (root / "train" / "class1" / "bad.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning, match="skipped 1 corrupt"):
        assert main(["train", "--data", str(root), "--epochs", "1", "--workers", "0", "--set", "skip_corrupt=true",
                     "--out", str(tmp_path / "r"), *TINY]) == 0


def test_bad_config_values(tmp_path, capsys):
    assert main(["train", "--set", "lr_steps=3", "--out", str(tmp_path)]) == 2
    assert "unknown config key(s) ['lr_steps']" in capsys.readouterr().err
    assert main(["train", "--config", "nope", "--out", str(tmp_path)]) == 2
    assert "config must be one of ['cifar', 'embedded', 'embedded_gpu', 'imagenet']" in capsys.readouterr().err
    assert main(["train", "--set", "weight_decay=1e-4", "--out", str(tmp_path)]) == 2
    assert "weight_decay must be a number" in capsys.readouterr().err
    assert json.loads(json.dumps({"ok": True}))  # the CLI wrote nothing for rejected configs
    assert not any(tmp_path.iterdir())
