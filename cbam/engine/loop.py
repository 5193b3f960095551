"""A task-agnostic training loop: :func:`fit`.

The loop owns everything that is the same for every task: devices and DDP, mixed precision,
``channels_last``, ``torch.compile``, seeded per-epoch data order, progress bars, ``metrics.jsonl``,
TensorBoard, atomic per-epoch checkpoints, resume, the non-finite-loss stop and the final model
folder (``config.json`` + ``model.safetensors``, :mod:`cbam.io.model_folder`). What is specific to a task lives in a :class:`Task`:

* ``train_step(model, batch, rt) -> StepOutput``: move ``batch`` to ``rt.device`` (and
  ``rt.memory_format`` for images), run the model, return the loss to minimise, the number of
  samples and *sums* over the batch of what to report (``{"loss": loss * n, "top1_err": 100 *
  wrong, ...}``). The loop adds the sums over the epoch and over all ranks and divides by the
  sample count, so ``train_<name>`` in ``metrics.jsonl`` is a per-sample mean.
* ``eval_step(model, batch, rt) -> StepOutput``: the same under ``torch.no_grad()`` in eval mode
  (``loss`` may be ``None``); the default :meth:`Task.evaluate` sums it over the validation
  loader, whose :class:`~cbam.engine.loader.ShardSampler` gives each sample to exactly one rank,
  so ``val_<name>`` is exact for any number of processes.
* ``evaluate(model, loader, rt) -> dict``: override it for dataset-level metrics that are not
  sums (e.g. detection mAP: gather predictions with
  :func:`~cbam.engine.distributed.all_gather_objects`, score on every rank, return the same dict).

A detector whose model returns a loss dict in train mode plugs in like this::

    class DetectionTask(Task):
        best_metric, best_mode = "val_map", "max"

        def train_step(self, model, batch, rt):
            images, targets = to_device(batch, rt.device)
            losses = model(images, targets)           # {"loss_classifier": ..., "loss_box_reg": ...}
            loss, n = sum(losses.values()), len(images)
            return StepOutput(loss, n, {"loss": loss.detach() * n, **{k: v.detach() * n for k, v in losses.items()}})

        def evaluate(self, model, loader, rt):
            ...                                       # run, all_gather_objects, compute mAP
            return {"map": ..., "map50": ...}

    fit(model, DetectionTask(), train_loader, val_loader, optimizer, scheduler, run_dir=..., epochs=...)

Resume is bit-exact on CPU: checkpoints are taken at epoch boundaries with every RNG state, the
data order of an epoch depends only on (seed, epoch, rank) (see :mod:`cbam.engine.loader`), and a
resumed run restarts the interrupted epoch from its starting state.
"""
from __future__ import annotations

import errno
import json
import math
import sys
import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .._optional import require
from ..io.files import atomic_write, run_lock
from ..io.model_folder import write_model_folder
from ..io.state_dict import load_state_dict_strict
from . import distributed as D
from .checkpoint import (
    CHECKPOINT_NAME,
    find_last_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    unwrap_model,
)

__all__ = ["StepOutput", "Runtime", "Task", "NonFiniteLossError", "RunInterrupted", "fit", "METRICS_NAME",
           "RUNTIME_KEYS", "read_metrics"]

METRICS_NAME = "metrics.jsonl"
_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


#: Config keys a resumed run may change: they change how a run computes, not what.
RUNTIME_KEYS = ("workers", "threads", "out", "device", "amp", "channels_last", "compile")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or inf; the run stopped and its last checkpoint is intact."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped :func:`fit`; the message says where and how to resume."""


@dataclass
class StepOutput:
    """What one step of a task returns.

    Attributes:
        loss: scalar to minimise (``None`` in evaluation).
        n: samples in the batch.
        sums: per-batch *sums* of the quantities to report (divided by the sample count later).
    """

    loss: Tensor | None
    n: int
    sums: dict[str, Tensor | float] = field(default_factory=dict)


@dataclass(frozen=True)
class Runtime:
    """Where and how a step runs: ``device``, the images' ``memory_format``, the ``dist`` info."""

    device: torch.device
    memory_format: torch.memory_format
    dist: D.DistInfo
    autocast: Any  # a zero-argument callable returning the autocast context manager


class Task:
    """The task-specific part of training (see the module docstring). Subclass and fill in the steps."""

    #: ``val_``/``train_`` metric whose best value the checkpoint records, and whether lower is better.
    best_metric: str = "val_loss"
    best_mode: str = "min"

    def train_step(self, model: nn.Module, batch: Any, rt: Runtime) -> StepOutput:
        raise NotImplementedError

    def eval_step(self, model: nn.Module, batch: Any, rt: Runtime) -> StepOutput:
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: Any, rt: Runtime) -> dict[str, float]:
        """Per-sample means of ``eval_step``'s sums over the whole (sharded) loader, exact across ranks."""
        model.eval()
        acc = _Sums()
        for batch in loader:
            with rt.autocast():
                acc.add(self.eval_step(model, batch, rt))
        return acc.means(rt.device)


class _Sums:
    """Running float64 sums of a task's per-batch sums, reduced over ranks at the end."""

    def __init__(self) -> None:
        self.n = 0
        self.sums: dict[str, Tensor] = {}

    def add(self, out: StepOutput) -> None:
        self.n += out.n
        for k, v in out.sums.items():
            v = torch.as_tensor(v).detach().double().cpu() if not isinstance(v, Tensor) else v.detach().double()
            self.sums[k] = self.sums[k] + v if k in self.sums else v

    def means(self, device: torch.device) -> dict[str, float]:
        """Sums over all ranks divided by the total sample count (plus ``"samples"``: that count)."""
        keys = sorted(self.sums)
        vec = torch.stack([self.sums[k].to(device) for k in keys]
                          + [torch.tensor(float(self.n), dtype=torch.float64, device=device)])
        vec = D.all_reduce_sum(vec).cpu()  # (len(keys) + 1,)
        total = vec[-1].item()
        means = {k: vec[i].item() / total if total else float("nan") for i, k in enumerate(keys)}
        return means | {"samples": total}


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The per-epoch records of ``run_dir/metrics.jsonl`` (empty list if none)."""
    path = Path(run_dir) / METRICS_NAME
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}, line {number}: not a JSON record ({err.msg})") from None
    return records


def _write_metrics(run_dir: Path, records: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(r) + "\n" for r in records)
    atomic_write(run_dir / METRICS_NAME, lambda tmp: tmp.write_text(text))


def _autocast_factory(amp: str | None, device: torch.device):
    if amp in (None, "none"):
        return nullcontext
    if amp not in _AMP_DTYPES:
        raise ValueError(f"amp must be one of None, 'bf16', 'fp16', got {amp!r}")
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp='fp16' needs CUDA; use amp='bf16' on CPU")
    dtype = _AMP_DTYPES[amp]
    return lambda: torch.autocast(device.type, dtype=dtype)


def _is_better(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value < best if mode == "min" else value > best)


def fit(
    model: nn.Module,
    task: Task,
    train_loader: Any,
    val_loader: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any = None,
    *,
    run_dir: str | Path,
    epochs: int,
    dist: D.DistInfo | None = None,
    amp: str | None = None,
    channels_last: bool = False,
    compile: bool = False,
    resume: bool = False,
    config: Mapping[str, Any] | None = None,
    model_config: Mapping[str, Any] | None = None,
    run_files: Mapping[str, str] | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train ``model`` for ``epochs`` epochs, validating and checkpointing after each.

    Args:
        model: the bare model (on CPU or its device); ``fit`` moves it, converts BatchNorm to
            SyncBatchNorm on multi-GPU runs, compiles it and wraps it in DDP as asked.
        task: the :class:`Task` (steps and metrics).
        train_loader, val_loader: loaders whose ``set_epoch(epoch)`` (if any) is called before each
            pass, e.g. from :func:`cbam.engine.loader.build_loader`.
        optimizer: built on ``model.parameters()``; scheduler: stepped once per epoch (or ``None``).
        run_dir: where ``checkpoint.pt``, ``metrics.jsonl``, ``tensorboard/`` and, at the end, the
            model folder's ``config.json`` + ``model.safetensors`` go (written by rank 0 only).
        epochs: total epochs, counting those of a resumed run.
        dist: from :func:`cbam.engine.distributed.init_distributed` (default: one process, CUDA if available).
        amp: ``None``, ``"bf16"`` (CPU or CUDA) or ``"fp16"`` (CUDA, with a GradScaler).
        channels_last: NHWC memory format for the model and the images.
        compile: ``torch.compile`` the model.
        resume: continue from ``run_dir/checkpoint.pt``. Without it, an existing checkpoint is an
            error (so a finished run is never overwritten by accident); with it, a missing
            checkpoint is an error (a misspelt run directory), and so is a ``config`` that differs
            from the checkpoint's in any key but :data:`RUNTIME_KEYS` (the values would not be used).
        config: plain-type dict (the run's config) saved in every checkpoint.
        model_config: the model folder's ``config.json`` (default: ``config``).
        run_files: text files written into ``run_dir`` (rank 0) once the resume checks pass, e.g.
            ``{"config.yaml": ...}``.
        progress: tqdm bars on rank 0 (epochs and steps) when stderr is a terminal.

    The run directory is locked (:func:`cbam.io.files.run_lock`) by rank 0 for the whole run.

    Returns:
        The per-epoch records of ``metrics.jsonl`` (the whole run, resumed epochs included).

    Raises:
        NonFiniteLossError: the loss became NaN/inf; ``checkpoint.pt`` still holds the last good epoch.
        RunInterrupted: Ctrl-C; the message names the epoch and how to resume.
        OSError: ``ENOSPC`` (disk full) with a message naming the intact checkpoint.
        cbam.io.files.RunDirBusyError: another process holds ``run_dir``.
    """
    info = dist or D.init_distributed()
    run_dir = Path(run_dir)
    with run_lock(run_dir) if info.is_main else nullcontext():
        return _fit(model, task, train_loader, val_loader, optimizer, scheduler, run_dir, epochs, info, amp,
                    channels_last, compile, resume, config, model_config, run_files, progress)


def _resume_check(ckpt: Mapping[str, Any], config: Mapping[str, Any] | None, run_dir: Path) -> None:
    """Refuse a resume whose config differs from the checkpoint's in a key that shapes the run.

    ``epochs`` may grow when the learning-rate schedule does not depend on the run's length (step
    and multi-step schedules, no scheduler): the run then continues its schedule exactly as a longer
    run would. A cosine schedule's length is fixed by the checkpoint.
    """
    saved = ckpt.get("config") or {}
    new = dict(config or {})
    scheduler = ckpt.get("scheduler") or {}
    free = RUNTIME_KEYS + (() if "T_max" in scheduler else ("epochs",))
    differ = sorted(k for k in saved.keys() & new.keys() if k not in free and saved[k] != new[k])
    if differ:
        pairs = ", ".join(f"{k}={saved[k]!r} (asked {new[k]!r})" for k in differ)
        why = " (a cosine schedule's length is fixed when the run starts)" if "epochs" in differ else ""
        raise ValueError(f"--resume: the run in {str(run_dir)!r} was started with {pairs}{why}; resume with "
                         "the run's values or start a new --out")


def _fit(model, task, train_loader, val_loader, optimizer, scheduler, run_dir, epochs, info, amp, channels_last,
         compile, resume, config, model_config, run_files, progress) -> list[dict[str, Any]]:
    device, main = info.device, info.is_main
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    autocast = _autocast_factory(amp, device)
    rt = Runtime(device, memory_format, info, autocast)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")

    model = D.sync_batchnorm(model.to(device, memory_format=memory_format), info)
    eval_model = torch.compile(model) if compile else model
    train_model = D.wrap_ddp(eval_model, info)

    start_epoch, step, best = 0, 0, None
    records: list[dict[str, Any]] = []
    ckpt_path = find_last_checkpoint(run_dir)
    if ckpt_path is not None and not resume:
        raise ValueError(f"{str(run_dir)!r} already holds a checkpoint; pass resume=True (--resume) to "
                         "continue it, or choose another run directory")
    if ckpt_path is None and resume:
        raise ValueError(f"--resume: {str(run_dir)!r} holds no checkpoint to resume (is --out misspelt?); "
                         "drop --resume to start a new run there")
    if ckpt_path is not None:
        ckpt = load_checkpoint(ckpt_path, map_location=device)
        _resume_check(ckpt, config, run_dir)
        load_state_dict_strict(model, ckpt["model"], repr(str(ckpt_path)))
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler") is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        start_epoch, step, best = int(ckpt["epoch"]), int(ckpt["step"]), ckpt.get("best")
        records = [r for r in read_metrics(run_dir) if r["epoch"] <= start_epoch]
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        for name, text in (run_files or {}).items():
            atomic_write(run_dir / name, lambda tmp, text=text: tmp.write_text(text))
        _write_metrics(run_dir, records)  # drops records of an epoch that ended after its checkpoint
        if start_epoch >= epochs:
            print(f"{str(run_dir)!r} already finished its {epochs} epoch{'s' * (epochs != 1)}; nothing to train",
                  file=sys.stderr)
    writer = _summary_writer(run_dir) if main else None
    show = progress and main and sys.stderr.isatty()  # no bars in log files

    tqdm = require("tqdm.auto", "train", "training").tqdm
    epoch_bar = tqdm(range(start_epoch, epochs), desc="epochs", initial=start_epoch, total=epochs,
                     disable=not show, dynamic_ncols=True)
    stopped_in = start_epoch + 1
    try:
        for epoch in epoch_bar:
            stopped_in = epoch + 1
            for loader in (train_loader, val_loader):
                if hasattr(loader, "set_epoch"):
                    loader.set_epoch(epoch)
            lr = optimizer.param_groups[0]["lr"]
            t0 = time.perf_counter()
            train, step = _train_epoch(train_model, task, train_loader, optimizer, scaler, rt, epoch, step,
                                       show, writer)
            seconds = time.perf_counter() - t0
            D.broadcast_buffers(model)
            if scheduler is not None:
                scheduler.step()
            val = task.evaluate(eval_model, val_loader, rt)
            record = {"epoch": epoch + 1, "lr": lr}
            record |= {f"train_{k}": v for k, v in train.items() if k != "samples"}
            record |= {f"val_{k}": v for k, v in val.items() if k != "samples"}
            record |= {"images_per_s": train["samples"] / seconds, "epoch_time_s": seconds, "step": step}
            if task.best_metric in record and _is_better(record[task.best_metric], best, task.best_mode):
                best = record[task.best_metric]
            record["best_" + task.best_metric] = best
            records.append(record)
            if main:
                _write_metrics(run_dir, records)
                save_checkpoint(run_dir / CHECKPOINT_NAME, {
                    "model": unwrap_model(model).state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                    "epoch": epoch + 1, "step": step, "best": best, "rng": rng_state(),
                    "config": dict(config or {}), "metrics": record,
                })
            if main:
                _log_epoch(writer, record, epoch_bar, epochs)
            D.barrier()
        if main:
            write_model_folder(run_dir, unwrap_model(model).state_dict(),
                               dict(model_config if model_config is not None else config or {}))
    except KeyboardInterrupt:
        raise RunInterrupted(f"interrupted in epoch {stopped_in} of {epochs}; {_kept(run_dir)}") from None
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        raise OSError(errno.ENOSPC, f"disk full while writing {err.filename or run_dir}; "
                                    f"{_kept(run_dir)} once space is free") from None
    finally:
        epoch_bar.close()
        if writer is not None:
            writer.close()
    return records


def _kept(run_dir: Path) -> str:
    """Where a stopped run stands: its intact checkpoint (as on disk, whenever the stop came) and how to resume."""
    path = find_last_checkpoint(run_dir)
    if path is None:
        return "no epoch finished, so there is no checkpoint: run the same command again"
    done = load_checkpoint(path)["epoch"]
    return f"{path} (epoch {done}) is intact: run the same command with --resume to continue from it"


def _train_epoch(model, task, loader, optimizer, scaler, rt, epoch, step, show, writer):
    model.train()
    acc = _Sums()
    bar = require("tqdm.auto", "train", "training").tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, disable=not show, dynamic_ncols=True)
    for batch in bar:
        with rt.autocast():
            out = task.train_step(model, batch, rt)
        _check_finite(out.loss, epoch, step)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(out.loss).backward()
        scaler.step(optimizer)
        scaler.update()
        acc.add(out)
        step += 1
        if writer is not None and step % 10 == 0:
            loss = out.loss.item()
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            writer.add_scalar("train/loss_step", loss, step)
    bar.close()
    return acc.means(rt.device), step


def _check_finite(loss: Tensor, epoch: int, step: int) -> None:
    # One flag summed over ranks, so that every process stops at the same step.
    bad = torch.logical_not(torch.isfinite(loss.detach())).to(torch.float32).reshape(1)
    if D.get_world_size() > 1:
        bad = D.all_reduce_sum(bad)
    if bad.item() > 0:
        raise NonFiniteLossError(
            f"training loss became {loss.item() if loss.numel() == 1 else 'non-finite'} at epoch {epoch + 1}, "
            f"step {step + 1}; stopped. "
            + (f"The last good checkpoint (end of epoch {epoch}) is intact; lower the learning rate or "
               "disable mixed precision and --resume" if epoch else "No epoch finished, so there is no checkpoint; "
               "lower the learning rate or disable mixed precision"))


def _summary_writer(run_dir: Path):
    SummaryWriter = require("torch.utils.tensorboard", "train", "training").SummaryWriter  # slow to import: lazily

    return SummaryWriter(str(run_dir / "tensorboard"))


def _log_epoch(writer, record: dict[str, Any], bar, epochs: int) -> None:
    epoch = record["epoch"]
    for k, v in record.items():
        if k != "epoch" and isinstance(v, (int, float)) and v is not None and math.isfinite(v):
            group, _, name = k.partition("_") if k.startswith(("train_", "val_")) else ("run", "", k)
            writer.add_scalar(f"{group}/{name}", v, epoch)
    writer.flush()
    shown = " ".join(f"{k} {v:.4g}" for k, v in record.items()
                     if k.startswith(("train_", "val_")) and isinstance(v, float))
    bar.write(f"epoch {epoch}/{epochs} lr {record['lr']:.4g} {shown} {record['images_per_s']:.1f} img/s")
