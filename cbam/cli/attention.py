"""``cbam attention``: CBAM's spatial (M_s) and channel (M_c) attention maps for one image."""
from __future__ import annotations

import argparse

from . import example, non_negative_int, positive_int

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "attention", help="spatial and channel attention maps of every CBAM block for one image",
        description="M_s of every CBAM block over the image and M_c of each block as a heat strip, read "
                    "through forward pre-hooks. Without --image / --data: scikit-learn's china.jpg.",
        **example("cbam attention --weights runs/compare/cbam/seed0 --data embedded --index 3\n"
                  "cbam attention --model cbam_resnet50"))
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--weights", metavar="DIR", help="model folder (config.json + model.safetensors)")
    which.add_argument("--model", metavar="NAME", help="registry model name, untrained (e.g. cbam_resnet50)")
    p.add_argument("--attention", help="attention of an untrained --model")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--image", help="image file")
    src.add_argument("--data", help="dataset (a --data value, e.g. embedded); shows image --index of --split")
    p.add_argument("--split", default="val", help="split of --data (default: val)")
    p.add_argument("--index", type=non_negative_int, default=0, help="image index in --data (default: 0)")
    p.add_argument("--last-per-stage", action="store_true", help="only the last CBAM block of each stage")
    p.add_argument("--out", default="attention.png", help="figure file (default: attention.png)")
    p.add_argument("--dpi", type=positive_int, default=120, help="figure resolution (default: 120)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data import build_dataset
    from ..io.files import check_output_file
    from ..viz.attention_maps import attention_maps
    from ..viz.figures import UNTRAINED_TITLE, attention_figure, save_figure
    from ..viz.images import load_image, sample_images, to_display
    from ..viz.loading import load_viz_model

    check_output_file(args.out, force=True)  # before the work
    vm = load_viz_model(args.weights) if args.weights else load_viz_model(args.model, args.attention)
    what = ""
    if args.data:
        dataset = build_dataset(args.data, args.split, transform=vm.transform)
        if not 0 <= args.index < len(dataset):
            raise ValueError(f"--index {args.index} is out of range for {len(dataset)} images of {args.data!r}")
        x, label = dataset[args.index]
        what = f", label {dataset.classes[label]}"
    else:
        x = vm.transform(load_image(args.image) if args.image else sample_images()[0][0])
    maps = attention_maps(vm.model, x[None], last_per_stage=args.last_per_stage)
    title = f"{vm.label}{what}" + ("" if vm.trained else f"\n{UNTRAINED_TITLE}")
    fig = attention_figure(to_display(x[None], vm.transform)[0], maps, title=title)
    print(f"wrote {save_figure(fig, args.out, args.dpi)} ({len(maps)} CBAM blocks)")
    for a in maps:
        m_c, m_s = a.m_c[0], a.m_s[0]
        print(f"{a.name:24s} M_c {tuple(m_c.shape)} mean {m_c.mean():.3f} | "
              f"M_s {tuple(m_s.shape)} in [{m_s.min():.3f}, {m_s.max():.3f}]")
    return 0
