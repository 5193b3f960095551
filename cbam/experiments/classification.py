"""Image classification (paper sec. 4.1-4.2): the task for :func:`cbam.engine.fit`, ``train`` and ``evaluate``.

Errors are single-crop top-1 / top-5 error in percent, as in the paper's tables.
"""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import build_dataset, build_embedded, eval_preprocessing, eval_transform, parse_data
from ..data.embedded import load_meta
from ..engine import distributed as D
from ..engine.checkpoint import seed_everything
from ..engine.loader import build_loader
from ..engine.loop import Runtime, StepOutput, Task, fit
from ..io.files import check_output_dir
from ..io.model_folder import build_model as build_from_config
from ..io.model_folder import model_config, read_model_folder
from ..io.state_dict import load_state_dict_strict
from ..models import create_model
from .config import TrainConfig, config_text

__all__ = ["ClassificationTask", "topk_error_sums", "build_model", "folder_config", "train", "evaluate"]


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


def build_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    """The registry model a training config describes, with ``num_classes`` outputs."""
    return create_model(cfg.model, attention=cfg.attention, num_classes=num_classes, **cfg.model_kwargs)


def folder_config(cfg: TrainConfig, model: nn.Module, classes: list[str]) -> dict[str, Any]:
    """The model folder's ``config.json`` of a run: the model, its classes and its evaluation preprocessing."""
    spec = parse_data(cfg.data)
    stored = load_meta(spec.root)["canvas_size"] if spec.kind == "embedded" else None
    return model_config(model, classes=classes, data=cfg.data,
                        preprocessing=eval_preprocessing(spec.kind, cfg.image_size, stored))


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

    The run directory receives ``config.yaml`` (resolved recipe), ``metrics.jsonl``, ``tensorboard/``,
    ``checkpoint.pt`` (each epoch, for resume) and, at the end, the model folder (``config.json`` +
    ``model.safetensors``, see :mod:`cbam.io.model_folder`).

    Raises:
        ValueError: bad config or data; the global batch not divisible by the number of processes.
        cbam.engine.NonFiniteLossError: the loss became NaN/inf (the last checkpoint is kept).
    """
    check_output_dir(cfg.out, create=False)  # before the data is built
    info = D.init_distributed(cfg.device)
    try:
        if cfg.batch_size % info.world_size:
            raise ValueError(f"batch_size {cfg.batch_size} (global) must be divisible by the "
                             f"{info.world_size} processes")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)
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
        run_config = cfg.to_dict() | {"lr": cfg.resolved_lr, "num_classes": train_set.num_classes,
                                      "classes": list(train_set.classes)}
        fit(model, ClassificationTask(cfg.label_smoothing), train_loader, val_loader, optimizer, scheduler,
            run_dir=out, epochs=cfg.epochs, dist=info, amp=cfg.amp, channels_last=cfg.channels_last,
            compile=cfg.compile, resume=resume, config=run_config,
            model_config=folder_config(cfg, model, list(train_set.classes)),
            run_files={"config.yaml": config_text(cfg)}, progress=progress)
        return out
    finally:
        D.cleanup_distributed()


def evaluate(
    weights: str | Path,
    data: str | None = None,
    *,
    batch_size: int = 100,
    workers: int = 0,
    device: str | None = None,
    image_size: int | None = None,
) -> dict[str, float]:
    """Single-crop top-1 / top-5 error (%) of a model folder on a dataset's ``val`` split.

    The model and its evaluation transform come from the folder's ``config.json``. ``data`` defaults
    to the data the model was trained on; ``image_size`` replaces the stored input size.

    Returns:
        ``{"top1_err", "top5_err", "loss", "samples"}``.

    Raises:
        ValueError: not a classification model folder, or its class count differs from the dataset's.
    """
    folder = read_model_folder(weights)
    config = folder.config
    data = data or config.get("data")
    if not data:
        raise ValueError(f"{str(weights)!r} does not record the data it was trained on; pass --data")
    prep = config.get("preprocessing")
    transform = eval_transform(prep) if prep and image_size is None else None  # as the model was trained
    dataset = build_dataset(data, "val", transform, image_size=image_size, build=False)  # never other data
    trained = config.get("num_classes")
    if trained != dataset.num_classes:
        raise ValueError(f"{str(weights)!r} was trained on {trained} classes but data {data!r} has "
                         f"{dataset.num_classes}")
    model = build_from_config(config)
    load_state_dict_strict(model, folder.state_dict(), repr(str(folder.weights)))
    info = D.init_distributed(device)
    try:
        model.to(info.device)
        loader = build_loader(dataset, batch_size, train=False, workers=workers, rank=info.rank,
                              world_size=info.world_size)
        rt = Runtime(info.device, torch.contiguous_format, info, nullcontext)
        return ClassificationTask().evaluate(model, loader, rt)
    finally:
        D.cleanup_distributed()
