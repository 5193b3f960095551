"""``cbam convert``: another layout's CBAM checkpoint -> our model folder, or our folder -> timm weights."""
from __future__ import annotations

import argparse

from . import example

__all__ = ["add_parser", "run"]

_SOURCES = ("official", "pytorchcv", "timm")  # the keys of cbam.io.layouts.SOURCES (a test checks)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert official / pytorchcv / timm CBAM weights into a model folder (or ours into timm's layout)",
        description="Weights are read without unpickling code: .pth/.pth.tar with torch.load(weights_only=True), "
                    "or .safetensors.",
        **example("cbam convert --from official RESNET50_CBAM_new_name_wrap.pth --out models/resnet50_cbam\n"
                  "cbam convert --to timm models/resnet50_cbam --out resnet50_cbam_timm.safetensors"),
    )
    direction = p.add_mutually_exclusive_group(required=True)
    direction.add_argument("--from", dest="source", choices=_SOURCES,
                           help="layout of INPUT, a checkpoint file; writes a model folder")
    direction.add_argument("--to", dest="target", choices=["timm"],
                           help="INPUT is a model folder; writes its weights in timm's layout to a .safetensors file")
    p.add_argument("input", metavar="INPUT")
    p.add_argument("--out", required=True, help="output folder (--from) or .safetensors file (--to)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..io.convert import convert_checkpoint, export_timm_weights

    if args.source:
        report = convert_checkpoint(args.input, args.source, args.out, force=args.force)
        print("\n".join(report.lines()))
        return 0
    arch, path = export_timm_weights(args.input, args.out, force=args.force)
    print(f"wrote {path} for timm.create_model({arch!r}, block_args=dict(attn_layer='cbam'))")
    return 0
