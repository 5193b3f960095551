"""``cbam profile``: parameters and GFLOPs of a model, or the paper's Tables 4 and 5 beside ours."""
from __future__ import annotations

import argparse

from . import example, positive_int

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="parameters and GFLOPs (multiply-accumulates), as the paper counts them",
                       **example("cbam profile --model resnet50 --attention cbam --stride-in-1x1\n"
                                 "cbam profile --paper-tables"))
    p.add_argument("--model", help="registry model name, e.g. resnet50 (see cbam.list_models())")
    p.add_argument("--attention", default=None, help="none, se, cbam or any ablation name (default: none)")
    p.add_argument("--stride-in-1x1", action="store_true", default=None,
                   help="ResNet v1 bottlenecks (stride on the first 1x1 conv), as the paper counts GFLOPs")
    p.add_argument("--image-size", type=positive_int, default=None, help="side of the square input (default: the model's, 224)")
    p.add_argument("--num-classes", type=positive_int, default=1000)
    p.add_argument("--paper-tables", action="store_true",
                   help="print every row of Tables 4 and 5 beside the paper's values; exit 1 on a mismatch")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..models import create_model, model_info
    from ..models.profile import count_gmacs, count_params

    if args.paper_tables:
        from ..experiments.paper_tables import format_rows, paper_rows

        rows = paper_rows(stride_in_1x1=True)
        print(format_rows(rows))
        bad = [r.label for r in rows if not r.match]
        print(f"\n{len(rows) - len(bad)}/{len(rows)} rows match the paper"
              " (params to 2 decimals, GFLOPs to 3; ResNet-family rows counted with --stride-in-1x1).")
        if bad:
            print("mismatch: " + ", ".join(bad))
        return 1 if bad else 0
    if not args.model:
        raise ValueError("give --model NAME or --paper-tables")
    info = model_info(args.model)
    kwargs = {"stride_in_1x1": args.stride_in_1x1} if not info.name.startswith("mobilenet") else {}
    model = create_model(args.model, attention=args.attention, num_classes=args.num_classes, **kwargs)
    size = (3, args.image_size, args.image_size) if args.image_size else info.input_size
    print(f"model:      {args.model} (attention={args.attention or 'none'})")
    print(f"input:      1 x {size[0]} x {size[1]} x {size[2]}")
    print(f"parameters: {count_params(model):,} ({count_params(model) / 1e6:.2f} M)")
    print(f"GFLOPs:     {count_gmacs(model, size):.3f} (multiply-accumulates of conv + linear layers)")
    return 0
