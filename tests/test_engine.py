"""The training engine: atomic checkpoints, RNG state, weight loading errors, seeded loaders, fit."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from cbam.engine import (
    NonFiniteLossError,
    ShardSampler,
    StepOutput,
    Task,
    build_loader,
    fit,
    load_checkpoint,
    read_metrics,
    save_checkpoint,
)
from cbam.engine.checkpoint import rng_state, set_rng_state
from cbam.io import atomic_write, load_state_dict_strict, read_model_folder, read_state_dict, save_pretrained
from cbam.models import create_model


class _Toy(Task):
    best_metric = "val_err"

    def __init__(self, nan_at_step: int | None = None) -> None:
        self.nan_at_step, self.steps = nan_at_step, 0

    def train_step(self, model, batch, rt):
        x, y = (t.to(rt.device) for t in batch)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        self.steps += 1
        if self.nan_at_step is not None and self.steps >= self.nan_at_step:
            loss = loss * float("nan")
        n = len(y)
        return StepOutput(loss, n, {"loss": loss.detach() * n, "err": 100.0 * (logits.argmax(1) != y).sum()})

    eval_step = train_step


def _toy_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.3), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 3))


_DATA = TensorDataset(torch.randn(40, 3, 8, 8, generator=torch.Generator().manual_seed(0)),
                      torch.randint(0, 3, (40,), generator=torch.Generator().manual_seed(1)))


def _fit(run_dir, epochs, resume=False, task=None, **kwargs):
    torch.manual_seed(0)
    model = _toy_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, 2, 0.1)
    records = fit(model, task or _Toy(), build_loader(_DATA, 8, train=True, seed=3),
                  build_loader(_DATA, 16, train=False), opt, sched, run_dir=run_dir, epochs=epochs,
                  resume=resume, progress=False, config={"name": "toy"}, **kwargs)
    return model, records


def test_atomic_write_never_exposes_a_partial_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def failing(tmp):
        tmp.write_bytes(b"new, half")
        assert path.read_bytes() == b"old"  # readers still see the complete old file
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, failing)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]  # no temporary file left behind
    atomic_write(path, lambda tmp: tmp.write_bytes(b"new"))
    assert path.read_bytes() == b"new"


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    save_checkpoint(tmp_path / "c.pt", {"model": {}, "rng": rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])  # loads with weights_only=True
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert expected[:2] == got[:2] and torch.equal(expected[2], got[2])


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_load_checkpoint_refuses_pickled_code_and_garbage(tmp_path):
    torch.save({"model": {}, "x": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="weights_only"):
        load_checkpoint(tmp_path / "evil.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_load_weights_names_what_differs(tmp_path):
    ten = create_model("resnet18", num_classes=10, small_input=True)
    path = save_pretrained(ten, tmp_path / "folder")
    assert read_model_folder(path).config["num_classes"] == 10
    with pytest.raises(ValueError, match=r"head\.fc\.weight: file \(10, 512\) vs model \(1000, 512\)"):
        load_state_dict_strict(create_model("resnet18", small_input=True), read_state_dict(path))
    with pytest.raises(ValueError, match=r"unexpected key\(s\): \['layer1\.0\.attn"):
        load_state_dict_strict(ten, create_model("resnet18", attention="cbam", num_classes=10).state_dict())
    other = load_state_dict_strict(create_model("resnet18", num_classes=10, small_input=True), read_state_dict(path))
    assert all(torch.equal(a, b) for a, b in zip(ten.state_dict().values(), other.state_dict().values()))


def test_shard_sampler_covers_every_index_once():
    shards = [list(ShardSampler(range(10), r, 3)) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(10))
    assert [len(s) for s in shards] == [4, 3, 3]
    with pytest.raises(ValueError, match="rank"):
        ShardSampler(range(10), 3, 3)


class _Noisy(Dataset):
    """Returns torch random numbers, as a random augmentation would."""

    def __len__(self):
        return 12

    def __getitem__(self, i):
        return torch.rand(()) + i * 10


@pytest.mark.parametrize("workers", [0, 2])
def test_epoch_data_is_a_function_of_seed_and_epoch(workers):
    def epoch_batches(loader, epoch):
        loader.set_epoch(epoch)
        return torch.cat(list(loader))

    a, b = (build_loader(_Noisy(), 4, train=True, workers=workers, seed=5) for _ in range(2))
    first = [epoch_batches(a, e) for e in range(3)]
    if workers:  # worker augmentation is seeded by (seed, epoch), not by how many epochs ran before
        assert torch.equal(epoch_batches(b, 2), first[2])
    assert not torch.equal((first[0] // 10).sort().values, first[0] // 10)  # shuffled
    assert not torch.equal(first[0] // 10, first[1] // 10)  # reshuffled per epoch


class _Broken(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        raise ValueError(f"corrupt image file img{i}.png")


def test_worker_errors_surface_as_one_line():
    loader = build_loader(_Broken(), 2, train=False, workers=1)
    with pytest.raises(ValueError) as info:
        next(iter(loader))
    assert str(info.value) == "corrupt image file img0.png"


def test_fit_resume_is_bitwise_equal_and_writes_run_files(tmp_path):
    full, records = _fit(tmp_path / "full", 3)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert {"lr", "train_loss", "train_err", "val_loss", "val_err", "images_per_s"} <= set(records[0])
    assert records[2]["lr"] == pytest.approx(0.01)  # StepLR(2, 0.1) stepped per epoch
    assert (tmp_path / "full" / "model.safetensors").is_file()
    assert any((tmp_path / "full" / "tensorboard").iterdir())

    _fit(tmp_path / "part", 2)
    resumed, records2 = _fit(tmp_path / "part", 3, resume=True)
    assert records2 == read_metrics(tmp_path / "part") and len(records2) == 3
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    assert load_checkpoint(tmp_path / "part" / "checkpoint.pt")["epoch"] == 3


def test_fit_refuses_to_overwrite_a_run_without_resume(tmp_path):
    _fit(tmp_path, 1)
    with pytest.raises(ValueError, match="resume"):
        _fit(tmp_path, 2)


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path):
    steps_per_epoch = len(_DATA) // 8
    with pytest.raises(NonFiniteLossError, match="epoch 2.*checkpoint \\(end of epoch 1\\) is intact"):
        _fit(tmp_path, 3, task=_Toy(nan_at_step=steps_per_epoch + 2))
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1]
    assert not (tmp_path / "model.safetensors").exists()


def test_bf16_autocast_and_channels_last_on_cpu(tmp_path):
    model, records = _fit(tmp_path, 1, amp="bf16", channels_last=True)
    assert np.isfinite(records[0]["train_loss"]) and np.isfinite(records[0]["val_loss"])
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="fp16.*needs CUDA"):
        _fit(tmp_path / "fp16", 1, amp="fp16")
