"""``cbam eval``: single-crop top-1 / top-5 error of a model folder."""
from __future__ import annotations

import argparse

from . import example, non_negative_int, positive_int

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="top-1/top-5 error of a model folder on a dataset's val split",
                       description="Evaluate a model folder (a finished run, or a converted model) with the "
                                   "preprocessing stored in its config.json.",
                       **example("cbam eval --weights runs/embedded"))
    p.add_argument("--weights", required=True, metavar="DIR", help="model folder (config.json + model.safetensors)")
    p.add_argument("--data", help="dataset (default: the one the model was trained on)")
    p.add_argument("--batch-size", type=positive_int, default=100, help="images per batch (default: 100)")
    p.add_argument("--workers", type=non_negative_int, default=0,
                   help="DataLoader worker processes (default: 0, load in the main process)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: CUDA when available")
    p.add_argument("--image-size", type=positive_int, help="input side instead of the stored preprocessing's")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments.classification import evaluate

    result = evaluate(args.weights, args.data, batch_size=args.batch_size, workers=args.workers, device=args.device,
                      image_size=args.image_size)
    print(f"weights:     {args.weights}")
    print(f"images:      {int(result['samples'])} (val split, single crop)")
    print(f"top-1 error: {result['top1_err']:.2f} %")
    print(f"top-5 error: {result['top5_err']:.2f} %")
    print(f"loss:        {result['loss']:.4f}")
    return 0
