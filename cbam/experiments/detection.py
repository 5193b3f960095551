"""Detection as a task of the shared training engine (:func:`cbam.engine.fit`): ``train`` and ``evaluate``.

The engine does devices, DDP (torchrun), seeded loaders, progress bars, ``metrics.jsonl``,
TensorBoard, atomic checkpoints, resume and the final model folder; :class:`DetectionTask` adds the
detector's loss and the dataset-level metrics (COCO mAP via pycocotools and VOC07 11-point mAP@.5),
gathering every rank's detections first.
"""
from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..data import DetectionDataset, build_detection_dataset, detection_collate
from ..detection import coco_map, faster_rcnn, ssd, stairnet, voc07_map
from ..engine import distributed as D
from ..engine.checkpoint import seed_everything
from ..engine.loader import build_loader
from ..engine.loop import Runtime, StepOutput, Task, fit
from ..io.files import atomic_write, check_output_dir
from ..io.model_folder import read_model_folder
from ..io.state_dict import load_state_dict_strict
from ..models.profile import count_params
from .config import DetectConfig, config_text
from .paper_tables import detector_label

__all__ = ["DetectionTask", "build_detector", "train", "evaluate", "format_results"]


def _to_device(batch: Any, device: torch.device) -> tuple[list[Tensor], list[dict[str, Any]]]:
    images, targets = batch
    images = [im.to(device, non_blocking=True) for im in images]
    targets = [{"boxes": t["boxes"].to(device), "labels": t["labels"].to(device)} for t in targets]
    return images, targets


class DetectionTask(Task):
    """Sum of the detector's losses for training; COCO and VOC07 mAP over the whole validation set.

    Args:
        num_classes: K foreground classes.
        metric: the ``val_`` metric the checkpoint tracks (``voc07_map``, ``map``, ``map_50``, ``map_75``).
    """

    best_mode = "max"

    def __init__(self, num_classes: int, metric: str = "voc07_map") -> None:
        self.num_classes = num_classes
        self.best_metric = f"val_{metric}"

    def train_step(self, model: nn.Module, batch: Any, rt: Runtime) -> StepOutput:
        images, targets = _to_device(batch, rt.device)
        losses = model(images, targets)  # {"loss_classifier": ..., ...} or {"classification": ..., "bbox_regression": ...}
        loss = sum(losses.values())
        n = len(images)
        return StepOutput(loss, n, {"loss": loss.detach() * n, **{k: v.detach() * n for k, v in losses.items()}})

    @torch.no_grad()
    def predict(self, model: nn.Module, loader: Any, rt: Runtime) -> tuple[list[dict[str, Tensor]], list[dict[str, Any]]]:
        """Detections and targets of every image of the (sharded) loader, gathered and in dataset order."""
        model.eval()
        mine = []
        for images, targets in loader:
            with rt.autocast():
                outputs = model([im.to(rt.device) for im in images])
            for out, t in zip(outputs, targets):
                pred = {k: v.detach().float().cpu() if k != "labels" else v.cpu() for k, v in out.items()}
                mine.append((t["image_id"], pred, t))
        gathered = sorted((item for part in D.all_gather_objects(mine) for item in part), key=lambda x: x[0])
        return [p for _, p, _ in gathered], [t for _, _, t in gathered]

    def evaluate(self, model: nn.Module, loader: Any, rt: Runtime) -> dict[str, float]:
        predictions, targets = self.predict(model, loader, rt)
        metrics = coco_map(predictions, targets, self.num_classes)
        metrics["voc07_map"] = voc07_map(predictions, targets, self.num_classes)["map"]
        return metrics | {"samples": float(len(targets))}


def build_detector(cfg: DetectConfig | dict[str, Any], num_classes: int) -> nn.Module:
    """The detector a config describes, for ``num_classes`` foreground classes."""
    c = cfg if isinstance(cfg, dict) else cfg.to_dict()
    kw = dict(c.get("model_kwargs") or {})
    common = dict(attention=c.get("attention"), weights=c.get("backbone_weights"))
    if c["detector"] == "faster_rcnn":
        kw.setdefault("max_size", round(c["image_size"] * 1333 / 800))
        return faster_rcnn(num_classes, c["backbone"], min_size=c["image_size"], **common, **kw)
    build = {"ssd": ssd, "stairnet": stairnet}.get(c["detector"])
    if build is None:
        raise ValueError(f"unknown detector {c['detector']!r}; valid names are faster_rcnn, ssd, stairnet")
    return build(num_classes, c["backbone"], size=c["image_size"], **common, **kw)


def _loader(dataset: DetectionDataset, batch_size: int, train: bool, cfg: DetectConfig, info: D.DistInfo):
    loader = build_loader(dataset, batch_size, train=train, workers=cfg.workers, seed=cfg.seed, rank=info.rank,
                          world_size=info.world_size, pin_memory=info.device.type == "cuda")
    loader.collate_fn = detection_collate  # lists of variable-size images and targets
    return loader


def train(cfg: DetectConfig, *, resume: bool = False, progress: bool = True, eval_split: str = "test") -> dict[str, Any]:
    """Train the detector of ``cfg`` into ``cfg.out`` (alone or under torchrun), then evaluate it on
    ``eval_split``. The run directory gets ``config.yaml``, ``metrics.jsonl``, ``tensorboard/``,
    ``checkpoint.pt`` (for resume), the model folder (``config.json`` + ``model.safetensors``) and
    ``results_<split>.json``.

    Returns:
        the result row of :func:`evaluate` (metrics, parameters, backbone report).
    """
    check_output_dir(cfg.out, create=False)  # before the data is built
    info = D.init_distributed(cfg.device)
    try:
        if cfg.batch_size % info.world_size:
            raise ValueError(f"batch_size {cfg.batch_size} (global) must be divisible by the {info.world_size} processes")
        seed_everything(cfg.seed)
        sets = {}
        for split in ("train", "val"):  # rank 0 first: it may build the embedded data
            if info.is_main:
                sets[split] = build_detection_dataset(cfg.data, split, cfg.data_kwargs, train=split == "train",
                                                      augment=cfg.augment)
            D.barrier()
            if not info.is_main:
                sets[split] = build_detection_dataset(cfg.data, split, cfg.data_kwargs, train=split == "train",
                                                      augment=cfg.augment)
        if sets["train"].classes != sets["val"].classes:
            raise ValueError(f"data {cfg.data!r}: train and val splits have different classes")
        num_classes = len(sets["train"].classes)
        model = build_detector(cfg, num_classes)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        if cfg.schedule == "multistep":
            scheduler: Any = torch.optim.lr_scheduler.MultiStepLR(optimizer, cfg.lr_milestones, cfg.lr_gamma)
        else:
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
        per_rank = cfg.batch_size // info.world_size
        out = Path(cfg.out)
        run_files = {"config.yaml": config_text(cfg)}
        if model.backbone_report:
            run_files["backbone_weights.json"] = json.dumps(model.backbone_report, indent=2)
        run_config = cfg.to_dict() | {"task": "detection", "num_classes": num_classes,
                                      "classes": list(sets["train"].classes)}
        folder_config = {"library_name": "cbam", **run_config, "backbone_weights": None}
        fit(model, DetectionTask(num_classes, cfg.metric), _loader(sets["train"], per_rank, True, cfg, info),
            _loader(sets["val"], per_rank, False, cfg, info), optimizer, scheduler, run_dir=out, epochs=cfg.epochs,
            dist=info, amp=cfg.amp, resume=resume, config=run_config, model_config=folder_config,
            run_files=run_files, progress=progress)
        test_set = build_detection_dataset(cfg.data, eval_split, cfg.data_kwargs)
        row = _evaluate_model(model, run_config, test_set, per_rank, cfg.workers, info)
        if info.is_main:
            _write_json(out / f"results_{eval_split}.json", row)
        return row
    finally:
        D.cleanup_distributed()


def _write_json(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=2)
    atomic_write(path, lambda tmp: tmp.write_text(text))


def _evaluate_model(model: nn.Module, run: dict[str, Any], dataset: DetectionDataset, batch_size: int,
                    workers: int, info: D.DistInfo) -> dict[str, Any]:
    model.to(info.device)
    loader = build_loader(dataset, batch_size, train=False, workers=workers, rank=info.rank, world_size=info.world_size)
    loader.collate_fn = detection_collate
    rt = Runtime(info.device, torch.contiguous_format, info, nullcontext)
    metrics = DetectionTask(len(dataset.classes)).evaluate(model, loader, rt)
    return {
        "detector": run["detector"], "backbone": run["backbone"], "attention": run.get("attention"),
        "params": count_params(model), "images": len(dataset), "objects": dataset.stats["objects"],
        **{k: v for k, v in metrics.items() if k != "samples"},
    }


def evaluate(weights: str | Path, data: str | None = None, *, split: str = "test", batch_size: int = 8,
             workers: int = 0, device: str | None = None, data_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate a detection model folder (a finished ``cbam detect train`` run) on ``split`` of ``data``
    (default: the data it was trained on), rebuilding the detector from its ``config.json``.

    Returns:
        ``{"detector", "backbone", "attention", "params", "images", "objects", "map", "map_50", "map_75", "voc07_map"}``.
    """
    folder = read_model_folder(weights)
    run = folder.config
    if folder.task != "detection":
        raise ValueError(f"{str(weights)!r} is not a detection model (its config.json has no task 'detection')")
    dataset = build_detection_dataset(data or run["data"], split, run.get("data_kwargs") if data_kwargs is None else data_kwargs)
    if list(dataset.classes) != run["classes"]:
        raise ValueError(f"{str(weights)!r} was trained on classes {run['classes'][:5]}... ({len(run['classes'])}) but "
                         f"data has {list(dataset.classes)[:5]}... ({len(dataset.classes)})")
    model = build_detector({**run, "backbone_weights": None}, len(run["classes"]))
    load_state_dict_strict(model, folder.state_dict(), repr(str(folder.weights)))
    info = D.init_distributed(device)
    try:
        return _evaluate_model(model, run, dataset, batch_size, workers, info)
    finally:
        D.cleanup_distributed()


def format_results(rows: list[dict[str, Any]]) -> str:
    """Markdown table in the style of Tables 6 / 7: backbone, detector, mAP columns (%), parameters (M)."""
    lines = ["| Backbone | Detector | mAP@.5 (VOC07) | mAP@[.5:.95] | mAP@.5 | mAP@.75 | Params (M) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        backbone, detector = detector_label(r["detector"], r["backbone"], r.get("attention"))
        lines.append(f"| {backbone} | {detector} | {100 * r['voc07_map']:.1f} | {100 * r['map']:.1f} | "
                     f"{100 * r['map_50']:.1f} | {100 * r['map_75']:.1f} | {r['params'] / 1e6:.2f} |")
    return "\n".join(lines)
