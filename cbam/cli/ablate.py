"""``cbam ablate --table 1|2|3``: the paper's ablations (sec. 4.1) as real training runs."""
from __future__ import annotations

import argparse

from . import example
from .compare import add_common_arguments, run_comparison

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ablate", help="train the variants of the paper's Table 1, 2 or 3; print the table",
                       **example("cbam ablate --table 1 --config embedded"))
    p.add_argument("--table", type=int, choices=(1, 2, 3), required=True,
                   help="1: channel pooling; 2: spatial descriptor and kernel; 3: arrangement")
    add_common_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments.compare import ABLATION_TITLES, ABLATIONS

    return run_comparison(args, ABLATIONS[args.table], f"runs/ablate_table{args.table}", ABLATION_TITLES[args.table])
