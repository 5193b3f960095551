"""``cbam eval``: single-crop top-1 / top-5 error of a checkpoint or safetensors file."""
from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="top-1/top-5 error of trained weights on a dataset's val split")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a checkpoint.pt written by cbam train")
    src.add_argument("--weights", help="a model.safetensors written by cbam train")
    p.add_argument("--data", help="dataset (default: the one the weights were trained on)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", choices=("cpu", "cuda"))
    p.add_argument("--image-size", type=int, help="override the run's evaluation size")
    p.add_argument("--model", help="override the stored model (needed for weights saved without a config)")
    p.add_argument("--attention", help="override the stored attention")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments.classification import evaluate

    path = args.checkpoint or args.weights
    overrides = {k: v for k, v in (("image_size", args.image_size), ("model", args.model),
                                   ("attention", args.attention)) if v is not None}
    result = evaluate(path, args.data, batch_size=args.batch_size, workers=args.workers, device=args.device,
                      overrides=overrides)
    print(f"weights:     {path}")
    print(f"images:      {int(result['samples'])} (val split, single crop)")
    print(f"top-1 error: {result['top1_err']:.2f} %")
    print(f"top-5 error: {result['top5_err']:.2f} %")
    print(f"loss:        {result['loss']:.4f}")
    return 0
