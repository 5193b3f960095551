"""``cbam export``: a registry model or a model folder to ONNX or ``.pt2``, checked against PyTorch on another input size."""
from __future__ import annotations

import argparse

from . import example, non_negative_float, positive_int

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export to ONNX or torch.export .pt2 (dynamic batch, height, width) and check it",
                       **example("cbam export --weights runs/embedded --format onnx --out model.onnx\n"
                                 "cbam export --model resnet50 --attention cbam --format pt2 --out r50.pt2"))
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", help="registry model name (untrained weights), e.g. resnet50 or cbam_resnet50")
    src.add_argument("--weights", metavar="DIR", help="model folder (config.json + model.safetensors)")
    p.add_argument("--attention", default=None, help="with --model: none, se, cbam, cbam_official or an ablation name")
    p.add_argument("--num-classes", type=positive_int, default=None, help="with --model (default: 1000)")
    p.add_argument("--small-input", action="store_true", default=None, help="with --model: 3x3 stride-1 stem (32-64 px)")
    p.add_argument("--format", choices=("onnx", "pt2"), required=True)
    p.add_argument("--out", required=True, help="output file (.onnx or .pt2)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.add_argument("--example-size", type=positive_int, default=None, help="square size traced with (default: 2*min - 2)")
    p.add_argument("--atol", type=non_negative_float, default=1e-4, help="tolerance of the check against PyTorch")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..io.export import check_onnx, check_pt2, export_model, min_input_size
    from ..io.files import check_output_file
    from ..io.model_folder import from_pretrained
    from ..models import create_model

    check_output_file(args.out, force=args.force)
    if args.weights:
        if args.attention or args.num_classes or args.small_input:
            raise ValueError("--weights takes the architecture from the folder's config.json; "
                             "drop --attention / --num-classes / --small-input")
        model = from_pretrained(args.weights)
    elif not args.model:
        raise ValueError("give --model NAME or --weights DIR")
    else:
        model = create_model(args.model, attention=args.attention, num_classes=args.num_classes or 1000,
                             small_input=args.small_input)
    model.eval()
    smallest = min_input_size(model)
    size = args.example_size or 2 * smallest - 2
    path = export_model(model, args.out, args.format, (2, 3, size, size))
    print(f"wrote {path} ({args.format}; dynamic batch, height, width; valid for H, W >= {smallest})")
    # check on a different batch and a non-square size than the example
    x = torch.randn(3, 3, size + 31, size + 17)
    check = (check_onnx if args.format == "onnx" else check_pt2)(path, model, x, args.atol)
    verdict = "ok" if check.ok else "MISMATCH"
    runtime = "onnx.checker passed; onnxruntime" if args.format == "onnx" else "torch.export.load"
    print(f"{runtime} vs PyTorch on input {check.input_shape}: max |diff| = {check.max_abs_diff:.2e} "
          f"(atol {check.atol:g}) {verdict}")
    return 0 if check.ok else 1
