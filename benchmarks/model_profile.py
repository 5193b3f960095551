"""Where a ResNet-50 training step's extra time goes: torch.profiler self-CPU time per operator,
plain ResNet-50 vs +SE vs +CBAM (fused path), and the difference to plain.

Batch 8 at 224 x 224, fp32, eager, one warm-up step then ``--steps`` profiled steps per model
(interleaved). Operators are grouped by name; the table lists the operators whose total self time
differs most from plain ResNet-50's (milliseconds per step).

    python -m benchmarks.model_profile             # 2 steps per model
    python -m benchmarks.model_profile --steps 3 --top 20
"""
from __future__ import annotations

import argparse
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from cbam.models import create_model
from cbam.nn.fused import passes_cpp

from ._timing import machine_line, print_table


def _profile_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer) -> dict:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    times: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        times[event.key] += event.self_cpu_time_total / 1e3  # ms
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2, help="profiled steps per model; per-step means are reported")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--top", type=int, default=15, help="operators listed")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    names = {"plain": None, "SE": "se", "CBAM": "cbam"}
    models = {k: create_model("resnet50", attention=a).train() for k, a in names.items()}
    opts = {k: torch.optim.SGD(m.parameters(), lr=1e-4, momentum=0.9) for k, m in models.items()}
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 1000, (args.batch,))
    print(f"model_profile: resnet50 batch {args.batch} at {args.size}x{args.size}, {args.steps} profiled steps, "
          f"C++ CPU kernel {'loaded' if passes_cpp.available() else 'unavailable'}")
    print("start: " + machine_line(), flush=True)
    totals: dict[str, dict[str, float]] = {k: defaultdict(float) for k in models}
    for k in models:  # warm-up
        _profile_step(models[k], x, y, opts[k])
    for _ in range(args.steps):
        for k in models:
            for op, ms in _profile_step(models[k], x, y, opts[k]).items():
                totals[k][op] += ms / args.steps
    print("end:   " + machine_line())
    print()
    step = {k: sum(v.values()) for k, v in totals.items()}
    print_table(["model", "profiled self CPU ms / step", "ratio"],
                [[k, f"{step[k]:.0f}", f"{step[k] / step['plain']:.3f}x"] for k in models])
    print()
    ops = set().union(*totals.values())
    diff = sorted(ops, key=lambda op: -abs(totals["CBAM"][op] - totals["plain"][op]))[: args.top]
    rows = [
        [op, f"{totals['plain'][op]:.1f}", f"{totals['SE'][op]:.1f}", f"{totals['CBAM'][op]:.1f}",
         f"{totals['SE'][op] - totals['plain'][op]:+.1f}", f"{totals['CBAM'][op] - totals['plain'][op]:+.1f}"]
        for op in diff
    ]
    print_table(["operator", "plain ms", "SE ms", "CBAM ms", "SE - plain", "CBAM - plain"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
