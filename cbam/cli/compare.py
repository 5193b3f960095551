"""``cbam compare``: plain / +SE / +CBAM of one backbone, N seeds, a Table-4-style table and Fig. 4 curves."""
from __future__ import annotations

import argparse
from pathlib import Path

from . import example
from .train import add_config_arguments, config_from_args

__all__ = ["add_parser", "add_common_arguments", "run", "run_comparison"]


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """Flags shared by ``compare`` and ``ablate``."""
    add_config_arguments(p, model_flags=False)
    p.add_argument("--model", help="registry model name (default: the recipe's)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed (default: 0)")
    p.add_argument("--out", help="output directory (default: runs/<command>)")
    p.add_argument("--extra", action="append", default=[], metavar="NAME",
                   help="append a per-model table registered in cbam.experiments.compare.COMPARE_EXTRAS")


def run_comparison(args: argparse.Namespace, attentions: tuple[str, ...], out: str, title: str) -> int:
    from ..experiments.compare import COMPARE_EXTRAS, compare

    unknown = [name for name in args.extra if name not in COMPARE_EXTRAS]
    if unknown:
        raise ValueError(f"unknown --extra {unknown}; registered: {sorted(COMPARE_EXTRAS)}")
    cfg = config_from_args(args, out=None)
    out_dir = Path(args.out or out)
    compare(cfg, attentions, args.seeds, out_dir, title=title, progress=not args.no_progress,
            extras=[COMPARE_EXTRAS[name] for name in args.extra])
    print((out_dir / "table.md").read_text())
    print(f"saved: {out_dir / 'table.md'}, {out_dir / 'table.csv'}, {out_dir / 'differences.csv'}, "
          f"{out_dir / 'curves.png'}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="train plain / +SE / +CBAM with N seeds; print a Table-4-style table",
                       **example("cbam compare --config embedded --seeds 0 1 2"))
    add_common_arguments(p)
    p.add_argument("--attentions", nargs="+", default=["none", "se", "cbam"],
                   help="attention variants to compare (default: none se cbam)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_comparison(args, tuple(args.attentions), "runs/compare", "Table 4: plain / SE / CBAM")
