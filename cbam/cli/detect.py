"""``cbam detect train | compare | eval | params``: the detection experiments (paper Tables 6 and 7)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from . import example, non_negative_int, positive_int
from .train import key_value

__all__ = ["add_parser", "run"]


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a detector, then evaluate it (one process, or many under torchrun)",
                       description="Train Faster R-CNN / SSD / StairNet from a recipe (flags override it), then "
                                   "evaluate on the test split and print a Table-6/7-style row. The run "
                                   "directory ends up a model folder (config.json + model.safetensors).",
                       **example("cbam detect train --config detect_embedded --attention cbam --out runs/det"))
    _add_recipe_arguments(p)
    p.add_argument("--attention", help="none, se or cbam")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", help="run directory (default: the recipe's)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--split", default="test", help="split evaluated after training (default: test)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(detect_func=_run_train)


def _add_recipe_arguments(p: argparse.ArgumentParser) -> None:
    """The recipe and the flags that override it, shared by ``detect train`` and ``detect compare``."""
    p.add_argument("--config", default="detect_embedded",
                   help="recipe: detect_embedded, detect_embedded_frcnn, detect_voc, detect_coco or a .yaml path "
                        "(default: detect_embedded)")
    p.add_argument("--detector", choices=("faster_rcnn", "ssd", "stairnet"))
    p.add_argument("--backbone", help="resnet50/resnet101/... (Faster R-CNN); vgg16 or mobilenet_v1 (SSD, StairNet)")
    p.add_argument("--backbone-weights", metavar="DIR",
                   help="classification model folder of ours for the backbone (e.g. a cbam train run)")
    p.add_argument("--data", help="embedded[:DIR], voc:VOCDEVKIT_DIR or coco:ROOT")
    p.add_argument("--image-size", type=int, help="side of the detector's input (Faster R-CNN: its shorter side)")
    p.add_argument("--augment", choices=("none", "hflip", "ssd"))
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="global batch size (split over torchrun processes)")
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--momentum", type=float)
    p.add_argument("--workers", type=int)
    p.add_argument("--amp", nargs="?", const="bf16", choices=("bf16", "fp16"))
    p.add_argument("--device", choices=("cpu", "cuda"))
    p.add_argument("--set", dest="overrides", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="any other config key, value in YAML, e.g. --set model_kwargs='{frozen_bn: true}' "
                        "or one entry of a mapping: --set data_kwargs.train_images=960")


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="train a detector with each attention and each seed; print mean +- std and "
                                       "paired differences",
                       description="Train the recipe's detector once per attention and seed into "
                                   "OUT/<attention>/seed<k> (finished runs are reused, killed ones resume), "
                                   "evaluate each on the test split and print a Table-6/7-style table with mean "
                                   "+- std over seeds and the paired differences against the first attention "
                                   "with 95 % Student-t intervals.",
                       **example("cbam detect compare --config detect_embedded --detector stairnet "
                                 "--attentions none se cbam --seeds 0 1 2 --out runs/table7/stairnet"))
    _add_recipe_arguments(p)
    p.add_argument("--attentions", nargs="+", default=["none", "se", "cbam"],
                   help="attention variants; the first is the baseline (default: none se cbam)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed (default: 0)")
    p.add_argument("--out", default="runs/detect_compare", help="output folder (default: runs/detect_compare)")
    p.add_argument("--split", default="test", help="split evaluated after training (default: test)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(detect_func=_run_compare)


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate detection model folders (COCO mAP and VOC07 mAP@.5)",
                       description="Evaluate detection model folders on a split of the data each was trained "
                                   "on (or --data), with the preprocessing stored in its config.json: one "
                                   "table row per folder.",
                       **example("cbam detect eval --weights runs/det"))
    p.add_argument("--weights", nargs="+", required=True, metavar="DIR",
                   help="model folders written by cbam detect train (one row each)")
    p.add_argument("--data", help="default: the data each run was trained on")
    p.add_argument("--split", default="test", help="train, val or test (default: test)")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--workers", type=non_negative_int, default=0)
    p.add_argument("--device", choices=("cpu", "cuda"))
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    p.set_defaults(detect_func=_run_eval)


def _add_params(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("params", help="parameter counts of the paper's detectors beside Table 6/7's",
                       **example("cbam detect params --table 7"))
    p.add_argument("--table", choices=("6", "7"), default="7")
    p.set_defaults(detect_func=_run_params)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="object detection: Faster R-CNN (Table 6), SSD / StairNet (Table 7)",
                       **example("cbam detect train --help"))
    p.set_defaults(func=run)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    _add_train(actions)
    _add_compare(actions)
    _add_eval(actions)
    _add_params(actions)


def _recipe_flags(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in ("detector", "backbone", "backbone_weights", "data", "image_size", "augment",
                                          "epochs", "batch_size", "lr", "weight_decay", "momentum", "workers", "amp",
                                          "device")}


def _run_train(args: argparse.Namespace) -> int:
    from ..engine.loop import NonFiniteLossError
    from ..experiments.config import load_detect_config
    from ..experiments.detection import format_results, train

    flags = _recipe_flags(args) | {k: getattr(args, k) for k in ("attention", "seed", "out")}
    flags = {k: v for k, v in flags.items() if v is not None}  # unset flags keep --set values and the recipe's
    cfg = load_detect_config(args.config, **(dict(args.overrides) | flags))
    try:
        row = train(cfg, resume=args.resume, progress=not args.no_progress, eval_split=args.split)
    except NonFiniteLossError as err:
        print(f"cbam detect: error: {err}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") == "0":
        print(f"run directory: {cfg.out}")
        print(f"{args.split} split: {row['images']} images, {row['objects']} objects")
        print(format_results([row]))
    return 0


def _run_compare(args: argparse.Namespace) -> int:
    from ..engine.loop import NonFiniteLossError
    from ..experiments.config import load_detect_config
    from ..experiments.detection_compare import compare_detectors

    flags = {k: v for k, v in _recipe_flags(args).items() if v is not None}
    cfg = load_detect_config(args.config, **(dict(args.overrides) | flags))
    try:
        compare_detectors(cfg, args.attentions, args.seeds, args.out, split=args.split, progress=not args.no_progress)
    except NonFiniteLossError as err:
        print(f"cbam detect: error: {err}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") == "0":
        print((Path(args.out) / "table.md").read_text())
        print(f"saved: {Path(args.out) / 'table.md'}, {Path(args.out) / 'table.csv'}, {Path(args.out) / 'differences.csv'}")
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from ..experiments.detection import evaluate, format_results

    rows = [evaluate(w, args.data, split=args.split, batch_size=args.batch_size, workers=args.workers,
                     device=args.device) for w in args.weights]
    print(json.dumps(rows, indent=2) if args.json else format_results(rows))
    return 0


def _run_params(args: argparse.Namespace) -> int:
    from ..experiments.paper_tables import format_param_rows, param_rows

    print(format_param_rows(param_rows(args.table)))
    return 0


def run(args: argparse.Namespace) -> int:
    return args.detect_func(args)
