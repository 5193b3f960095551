"""``cbam train``: train a registry model on a dataset from a recipe, flags overriding it."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from . import example

__all__ = ["add_parser", "add_config_arguments", "config_from_args", "run"]


def key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of ``--set``: the key (``-`` -> ``_``) and the value read as YAML."""
    from ..experiments.config import parse_yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = parse_yaml(value, f"the value of {key}")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if parsed is None:  # an unset value keeps the recipe's: refuse rather than ignore it
        raise argparse.ArgumentTypeError(f"{key}={value}: a null value would keep the recipe's {key}; give a "
                                         "value, or a recipe file (--config FILE.yaml) that sets it to null")
    return key.replace("-", "_"), parsed


def add_config_arguments(p: argparse.ArgumentParser, *, model_flags: bool = True) -> None:
    """Flags shared by ``train``, ``compare`` and ``ablate``; each one left unset keeps the recipe's value."""
    p.add_argument("--config", default="embedded",
                   help="recipe name (imagenet, cifar, embedded) or a .yaml path (default: embedded)")
    if model_flags:
        p.add_argument("--model", help="registry model name, e.g. resnet18, resnet50, mobilenet_v1")
        p.add_argument("--attention", help="none, se, cbam or an ablation name (e.g. cbam_parallel)")
    p.add_argument("--data", help="embedded[:DIR], an ImageNet-style folder, cifar10:DIR or cifar100:DIR")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="global batch size (split over torchrun processes)")
    p.add_argument("--lr", type=float, help="learning rate (default: lr_per_256 x batch / 256)")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--image-size", type=int, help="side of the model's input (training crops and evaluation)")
    p.add_argument("--seed", type=int)
    p.add_argument("--workers", type=int, help="DataLoader worker processes per training process")
    p.add_argument("--threads", type=int, help="CPU threads per process (default: torch's)")
    p.add_argument("--amp", nargs="?", const="bf16", choices=("bf16", "fp16"),
                   help="mixed precision: bf16 (CPU or CUDA, the default of a bare --amp) or fp16 (CUDA)")
    p.add_argument("--channels-last", action="store_true", default=None, help="NHWC memory format")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: CUDA when available")
    p.add_argument("--set", dest="overrides", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="any other config key, value in YAML, e.g. --set model_kwargs='{small_input: true}' "
                        "or one entry of a mapping: --set model_kwargs.small_input=true")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def config_from_args(args: argparse.Namespace, **fixed: Any):
    """The :class:`~cbam.experiments.config.TrainConfig` of the recipe with the flags applied."""
    from ..experiments.config import load_config

    flags = {k: getattr(args, k, None) for k in (
        "model", "attention", "data", "epochs", "batch_size", "lr", "weight_decay", "image_size", "seed",
        "workers", "threads", "amp", "channels_last", "compile", "device", "out")}
    flags = {k: v for k, v in flags.items() if v is not None}  # unset flags keep --set values and the recipe's
    return load_config(args.config, **(dict(args.overrides) | flags | fixed))


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (one process, or many under torchrun)",
                       description="Train a model from a recipe; flags override the recipe. Under "
                                   "`torchrun --nproc_per_node N -m cbam train ...` it runs data parallel. The "
                                   "run directory ends up a model folder (config.json + model.safetensors).",
                       **example("cbam train --config embedded --attention cbam --out runs/embedded"))
    add_config_arguments(p)
    p.add_argument("--out", help="run directory (default: the recipe's)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.loop import NonFiniteLossError
    from ..experiments.classification import train

    cfg = config_from_args(args)
    try:
        out = train(cfg, resume=args.resume, progress=not args.no_progress)
    except NonFiniteLossError as err:
        print(f"cbam train: error: {err}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") == "0":
        print(f"run directory: {out}")
    return 0
