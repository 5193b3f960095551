"""Image classification (paper sec. 4.1-4.2): the task for :func:`cbam.engine.fit`, ``train`` and ``evaluate``.

Errors are single-crop top-1 / top-5 error in percent, as in the paper's tables.
"""
from __future__ import annotations

import random
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import build_dataset, build_embedded, parse_data
from ..engine import distributed as D
from ..engine.checkpoint import load_checkpoint, load_weights, read_safetensors_config
from ..engine.loader import build_loader
from ..engine.loop import Runtime, StepOutput, Task, fit
from ..models import create_model
from .config import TrainConfig, save_config

__all__ = ["ClassificationTask", "topk_error_sums", "build_model", "train", "evaluate"]


def topk_error_sums(logits: Tensor, targets: Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[str, Tensor]:
    """``{"top{k}_err": 100 * number of samples whose target is not in the top k}`` for each k.

    Args:
        logits: (B, num_classes); targets: (B,) class indices. With fewer than k classes the
            top-k error is that of all classes (0).
    """
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices  # (B, kmax)
    hit = top == targets[:, None]  # (B, kmax)
    return {f"top{k}_err": 100.0 * (~hit[:, :k].any(dim=1)).sum() for k in ks}


class ClassificationTask(Task):
    """Cross-entropy training; loss and top-1 / top-5 error (%) for training and validation."""

    best_metric = "val_top1_err"
    best_mode = "min"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    def _forward(self, model: nn.Module, batch: Any, rt: Runtime, label_smoothing: float) -> StepOutput:
        images, targets = batch
        images = images.to(rt.device, non_blocking=True, memory_format=rt.memory_format)  # (B, 3, H, W)
        targets = targets.to(rt.device, non_blocking=True)  # (B,)
        logits = model(images)  # (B, num_classes)
        loss = F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)
        n = targets.shape[0]
        return StepOutput(loss, n, {"loss": loss.detach() * n, **topk_error_sums(logits.detach(), targets)})

    def train_step(self, model: nn.Module, batch: Any, rt: Runtime) -> StepOutput:
        return self._forward(model, batch, rt, self.label_smoothing)

    def eval_step(self, model: nn.Module, batch: Any, rt: Runtime) -> StepOutput:
        return self._forward(model, batch, rt, 0.0)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(cfg: TrainConfig | dict[str, Any], num_classes: int) -> nn.Module:
    """The registry model a config describes, with ``num_classes`` outputs."""
    c = cfg if isinstance(cfg, dict) else cfg.to_dict()
    return create_model(c["model"], attention=c.get("attention"), num_classes=num_classes, **c.get("model_kwargs", {}))


def _datasets(cfg: TrainConfig, main: bool):
    # Rank 0 builds (or checks) the data first, so that processes never race to write it.
    def build():
        if cfg.embedded and parse_data(cfg.data).kind == "embedded":
            build_embedded(parse_data(cfg.data).root, **cfg.embedded)
        return tuple(build_dataset(cfg.data, split, image_size=cfg.image_size, skip_corrupt=cfg.skip_corrupt)
                     for split in ("train", "val"))

    if main:
        sets = build()
    D.barrier()
    if not main:
        sets = build()
    train_set, val_set = sets
    if list(train_set.classes) != list(val_set.classes):
        raise ValueError(f"data {cfg.data!r}: train and val splits have different classes "
                         f"({len(train_set.classes)} vs {len(val_set.classes)})")
    return train_set, val_set


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool = True) -> Path:
    """Train ``cfg.model`` on ``cfg.data`` into ``cfg.out``; works alone or under torchrun.

    The run directory receives ``config.yaml`` (resolved), ``metrics.jsonl``, ``tensorboard/``,
    ``checkpoint.pt`` (each epoch) and ``model.safetensors`` (at the end).

    Raises:
        ValueError: bad config or data; the global batch not divisible by the number of processes.
        cbam.engine.NonFiniteLossError: the loss became NaN/inf (the last checkpoint is kept).
    """
    info = D.init_distributed(cfg.device)
    try:
        if cfg.batch_size % info.world_size:
            raise ValueError(f"batch_size {cfg.batch_size} (global) must be divisible by the "
                             f"{info.world_size} processes")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        _seed_everything(cfg.seed)
        train_set, val_set = _datasets(cfg, info.is_main)
        model = build_model(cfg, train_set.num_classes)
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.resolved_lr, momentum=cfg.momentum,
                                    weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
        if cfg.schedule == "step":
            scheduler: Any = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
        else:
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
        per_rank = cfg.batch_size // info.world_size
        loader_kw = dict(workers=cfg.workers, seed=cfg.seed, rank=info.rank, world_size=info.world_size,
                         pin_memory=info.device.type == "cuda")
        train_loader = build_loader(train_set, per_rank, train=True, **loader_kw)
        val_loader = build_loader(val_set, per_rank, train=False, **loader_kw)
        out = Path(cfg.out)
        if info.is_main:
            out.mkdir(parents=True, exist_ok=True)
            save_config(cfg, out / "config.yaml")
        run_config = cfg.to_dict() | {"lr": cfg.resolved_lr, "num_classes": train_set.num_classes,
                                      "classes": list(train_set.classes)}
        fit(model, ClassificationTask(cfg.label_smoothing), train_loader, val_loader, optimizer, scheduler,
            run_dir=out, epochs=cfg.epochs, dist=info, amp=cfg.amp, channels_last=cfg.channels_last,
            compile=cfg.compile, resume=resume, config=run_config, progress=progress)
        return out
    finally:
        D.cleanup_distributed()


def _run_config(path: Path) -> tuple[dict[str, Any], dict[str, Tensor] | None]:
    if path.suffix == ".safetensors":
        return read_safetensors_config(path), None
    ckpt = load_checkpoint(path)
    return ckpt.get("config") or {}, ckpt["model"]


def evaluate(
    weights: str | Path,
    data: str | None = None,
    *,
    batch_size: int = 100,
    workers: int = 0,
    device: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Single-crop top-1 / top-5 error (%) of a checkpoint or safetensors file on a dataset's ``val`` split.

    The model, its options and the evaluation transform come from the config stored with the
    weights (``overrides`` may replace e.g. ``image_size``). ``data`` defaults to the data the run
    was trained on.

    Returns:
        ``{"top1_err", "top5_err", "loss", "samples"}``.

    Raises:
        ValueError: the file holds no config and ``overrides`` names no model, or the weights do
            not fit (other architecture: the mismatching keys and shapes are named; other class
            count than the dataset's).
    """
    path = Path(weights)
    stored, state = _run_config(path)
    run = {**stored, **(overrides or {})}
    if "model" not in run:
        raise ValueError(f"{str(path)!r} holds no training config; pass the model (--model) to evaluate it")
    cfg = TrainConfig(**{k: v for k, v in run.items() if k in TrainConfig.__dataclass_fields__})
    data = data or cfg.data
    dataset = build_dataset(data, "val", image_size=cfg.image_size, skip_corrupt=cfg.skip_corrupt)
    trained = stored.get("num_classes")
    if trained is not None and trained != dataset.num_classes:
        raise ValueError(f"{str(path)!r} was trained on {trained} classes but data {data!r} has "
                         f"{dataset.num_classes}")
    model = build_model(cfg, dataset.num_classes)
    load_weights(model, state if state is not None else path)
    info = D.init_distributed(device)
    try:
        model.to(info.device)
        loader = build_loader(dataset, batch_size, train=False, workers=workers, rank=info.rank,
                              world_size=info.world_size)
        rt = Runtime(info.device, torch.contiguous_format, info, nullcontext)
        return ClassificationTask().evaluate(model, loader, rt)
    finally:
        D.cleanup_distributed()
