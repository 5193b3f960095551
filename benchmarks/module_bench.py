"""Module-level CBAM benchmark at the four ResNet-50 stage shapes (batch 16).

Variants: our CBAM on the fused path with its C++ CPU kernels (``fast``), the same fused operator on
PyTorch operations (``py``, mode ``"torch"``), our CBAM on the reference path (``ref``), timm's
``CbamModule`` (``timm``), our SE (``se``; ``se_py`` on PyTorch operations) and the floor: one ``x * s`` with its backward, ``s`` a
(B, 1, H, W) gate (``floor``). Modes: forward in inference (eval, no grad) and a training
forward+backward (train mode, gradient of a fixed random tensor). Layouts: NCHW and channels-last
(channels-last inputs run the fused operator on PyTorch operations: the C++ kernels take NCHW only).

    python -m benchmarks.module_bench            # 5 interleaved rounds
    python -m benchmarks.module_bench --quick    # 3 rounds, NCHW only
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from timm.layers.cbam import CbamModule
from torch import nn

from cbam.nn import CBAM, SqueezeExcitation, fast_path
from cbam.nn.fused import passes_cpp

from ._timing import interleaved, machine_line, print_table

STAGES = ((256, 56), (512, 28), (1024, 14), (2048, 7))  # (C, H = W) of ResNet-50's stages 1-4
VARIANTS = ("fast", "py", "ref", "timm", "se", "se_py", "floor")


class Floor(nn.Module):
    """x * s with a (B, 1, H, W) gate: the least any gating module must do."""

    def __init__(self, batch: int, size: int) -> None:
        super().__init__()
        self.s = nn.Parameter(torch.rand(batch, 1, size, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.s


def _case(
    module: nn.Module, x: torch.Tensor, grad: torch.Tensor | None, fast: bool, kernel: bool = True
) -> Callable[[], None]:
    def run() -> None:
        with fast_path(("auto" if kernel else "torch") if fast else "off"):
            if grad is None:
                with torch.no_grad():
                    module(x)
            else:
                x.grad = None
                module.zero_grad(set_to_none=True)
                module(x).backward(grad)

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are reported")
    parser.add_argument("--quick", action="store_true", help="3 rounds, NCHW only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rounds = 3 if args.quick else args.rounds
    layouts = ("nchw",) if args.quick else ("nchw", "channels_last")
    print(f"module_bench: batch {args.batch}, {rounds} interleaved rounds, fp32, eager")
    kernel = passes_cpp.available()
    print(f"C++ CPU kernel: {'loaded' if kernel else 'unavailable'} in {passes_cpp.build_seconds():.1f} s")
    print("start: " + machine_line())
    header = ["shape", "layout", "mode", *[f"{v} ms" for v in VARIANTS], "timm/fast", "py/fast", "ref/fast", "fast/floor"]
    rows = []
    for channels, size in STAGES:
        shape = (args.batch, channels, size, size)
        modules = {
            "fast": CBAM(channels),
            "py": CBAM(channels),
            "ref": CBAM(channels),
            "timm": CbamModule(channels),
            "se": SqueezeExcitation(channels),
            "se_py": SqueezeExcitation(channels),
            "floor": Floor(args.batch, size),
        }
        for layout in layouts:
            fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            x = torch.randn(shape).contiguous(memory_format=fmt).requires_grad_()
            grad = torch.randn(shape).contiguous(memory_format=fmt)
            for mode in ("fwd", "fwd+bwd"):
                training = mode == "fwd+bwd"
                cases = {}
                for name, module in modules.items():
                    module.train(training)
                    cases[name] = _case(module, x, grad if training else None, fast=name != "ref", kernel=name not in ("py", "se_py"))
                ms = {k: 1e3 * v for k, v in interleaved(cases, rounds).items()}
                rows.append(
                    ["x".join(map(str, shape)), layout, mode, *[f"{ms[v]:.1f}" for v in VARIANTS],
                     f"{ms['timm'] / ms['fast']:.2f}x", f"{ms['py'] / ms['fast']:.2f}x", f"{ms['ref'] / ms['fast']:.2f}x",
                     f"{ms['fast'] / ms['floor']:.2f}x"]
                )
                print("  " + " | ".join(rows[-1]), flush=True)
    print("end:   " + machine_line())
    print()
    print_table(header, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
