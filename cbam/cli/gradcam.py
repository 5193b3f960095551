"""``cbam gradcam``: the paper's Fig. 5 for trained (or untrained) models, and localisation scores."""
from __future__ import annotations

import argparse

from . import example, non_negative_float, positive_int

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gradcam", help="Grad-CAM comparison figure (paper Fig. 5) and Grad-CAM localisation scores",
        description="One row per image: the input, then each model's Grad-CAM of the last convolutional "
                    "stage with its softmax score P. Without --images / --data: scikit-learn's sample photos.",
        **example("cbam gradcam --weights runs/compare/none/seed0 runs/compare/cbam/seed0 --data embedded\n"
                  "cbam gradcam --model resnet50 cbam_resnet50"))
    p.add_argument("--weights", nargs="+", default=[], metavar="DIR", help="model folders (one column each)")
    p.add_argument("--model", nargs="+", default=[], metavar="NAME",
                   help="registry model names, untrained (one column each, after --weights)")
    p.add_argument("--attention", help="attention of the untrained --model columns")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--images", nargs="+", metavar="PATH", help="image files and/or folders of images")
    src.add_argument("--data", help="dataset (a --data value, e.g. embedded); the figure shows --num of its images")
    p.add_argument("--split", default="val", help="split of --data (default: val)")
    p.add_argument("--num", type=positive_int, default=6, help="images drawn from --data (default: 6)")
    p.add_argument("--seed", type=int, default=0, help="which images of --data are drawn (default: 0)")
    p.add_argument("--target", type=int, help="class to explain when the label is unknown (default: each top-1)")
    p.add_argument("--stage", type=int, default=-1, help="index into the model's feature_info (default: -1, last)")
    p.add_argument("--titles", help="comma-separated column titles (default: from each model's config)")
    p.add_argument("--out", default="gradcam.png", help="figure file (default: gradcam.png)")
    p.add_argument("--dpi", type=positive_int, default=120, help="figure resolution (default: 120; 240 x 240 px per panel)")
    p.add_argument("--localization", metavar="PREFIX",
                   help="also score every image of --data --split (energy in box, pointing game) for each "
                        "--weights folder into PREFIX.md and PREFIX.csv; needs data with object boxes (embedded)")
    p.add_argument("--tolerance", type=non_negative_float, default=0, help="pointing-game tolerance in pixels (default: 0)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per Grad-CAM pass (default: 64)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..data import build_dataset
    from ..io.files import check_output_file
    from ..viz.figures import gradcam_comparison, save_figure
    from ..viz.images import image_files, load_image, sample_images
    from ..viz.loading import load_viz_model
    from ..viz.localization import format_markdown, localization_table, require_boxes, write_table

    if not args.weights and not args.model:
        raise ValueError("give --weights DIR ... (model folders) and/or --model NAME ... (untrained)")
    if args.num < 1:
        raise ValueError(f"--num must be >= 1, got {args.num}")
    if args.localization and not args.data:
        raise ValueError("--localization needs --data (a dataset with object boxes, e.g. embedded)")
    check_output_file(args.out, force=True)  # before the work
    models = [load_viz_model(w) for w in args.weights] + [load_viz_model(m, args.attention) for m in args.model]
    titles = args.titles.split(",") if args.titles else None
    labels, class_names = None, None
    if args.data:
        dataset = build_dataset(args.data, args.split, transform=_identity)
        if args.localization:
            require_boxes(dataset, args.data)  # before the figure is rendered
        rng = np.random.default_rng(args.seed)
        picks = np.sort(rng.choice(len(dataset), size=min(args.num, len(dataset)), replace=False))
        images = [dataset[int(i)][0] for i in picks]
        labels = [int(dataset[int(i)][1]) for i in picks]
        class_names = list(dataset.classes)
        for vm in models:
            if vm.classes is not None and list(vm.classes) != class_names:
                raise ValueError(f"model {vm.label!r} was trained on other classes than data {args.data!r}")
    elif args.images:
        images = [load_image(f) for f in image_files(args.images)]
    else:
        images, _ = sample_images()
    fig = gradcam_comparison(models, images, labels, class_names, target=args.target, stage=args.stage, titles=titles)
    print(f"wrote {save_figure(fig, args.out, args.dpi)} ({len(images)} images x {len(models)} models)")
    if args.localization:
        rows = localization_table(args.weights, args.data, args.split, args.stage, args.tolerance, args.batch_size)
        if titles:
            for row, title in zip(rows, titles):
                row["model"] = title
        print(format_markdown(rows))
        md, csv = write_table(rows, args.localization)
        print(f"wrote {md} and {csv}")
    return 0


def _identity(image):
    return image
