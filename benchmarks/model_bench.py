"""ResNet-50: plain vs +SE vs +CBAM (ours, fused and reference path) vs timm's SE and CBAM ResNet-50s.

Batch 8 at 224 x 224, fp32, eager. For each model: a training step (forward, cross-entropy,
backward, SGD step), inference (eval, ``torch.inference_mode``) and the bytes autograd saves for
backward in one training forward (tensors packed by ``torch.autograd.graph.saved_tensors_hooks``,
de-duplicated by storage, parameters included). Timings are interleaved (round-robin over the
models, repeated) and reported as medians and as ratios to our plain ResNet-50 (timm's CBAM model
also against timm's plain ``resnet50``).

    python -m benchmarks.model_bench            # 5 interleaved rounds
    python -m benchmarks.model_bench --quick    # 2 rounds; no reference-path or PyTorch-fused rows, no timm plain

Our fused rows use the C++ CPU kernels of :mod:`cbam.nn.fused` when they build; the "py fused" row
runs the same operator on PyTorch operations (mode ``"torch"``).
"""
from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable

import timm
import torch
import torch.nn.functional as F
from torch import nn

from cbam.models import create_model
from cbam.nn import fast_path
from cbam.nn.fused import passes_cpp

from ._timing import interleaved, machine_line, print_table


def _path(mode: str) -> contextlib.AbstractContextManager:
    """``"fused"``: the fast path with the C++ kernels; ``"py"``: the fast path on PyTorch operations;
    ``"ref"``: the modules' reference path."""
    return fast_path({"fused": "auto", "py": "torch", "ref": "off"}[mode])


def saved_bytes(model: nn.Module, x: torch.Tensor, mode: str) -> int:
    """Bytes of the distinct storages autograd saves for backward during one training forward."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    model.train()
    with _path(mode), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    del out
    return sum(storages.values())


def _train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mode: str) -> Callable[[], None]:
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def run() -> None:
        model.train()
        with _path(mode):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return run


def _inference(model: nn.Module, x: torch.Tensor, mode: str) -> Callable[[], None]:
    def run() -> None:
        model.eval()
        with _path(mode), torch.inference_mode():
            model(x)

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are reported")
    parser.add_argument("--quick", action="store_true", help="2 rounds, four models")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rounds = 2 if args.quick else args.rounds
    # name -> (model, path: "fused" | "py" | "ref")
    models: dict[str, tuple[nn.Module, str]] = {
        "resnet50": (create_model("resnet50"), "fused"),
        "resnet50+SE": (create_model("resnet50", attention="se"), "fused"),
        "resnet50+SE (py fused)": (create_model("resnet50", attention="se"), "py"),
        "resnet50+CBAM (ours, fused)": (create_model("resnet50", attention="cbam"), "fused"),
        "resnet50+CBAM (ours, py fused)": (create_model("resnet50", attention="cbam"), "py"),
        "resnet50+CBAM (ours, reference)": (create_model("resnet50", attention="cbam"), "ref"),
        "timm resnet50": (timm.create_model("resnet50"), "fused"),
        "timm resnet50 se": (timm.create_model("resnet50", block_args=dict(attn_layer="se")), "fused"),
        "timm resnet50 cbam": (timm.create_model("resnet50", block_args=dict(attn_layer="cbam")), "fused"),
    }
    if args.quick:
        skip = ("resnet50+SE (py fused)", "resnet50+CBAM (ours, py fused)", "resnet50+CBAM (ours, reference)", "timm resnet50")
        models = {k: v for k, v in models.items() if k not in skip}
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 1000, (args.batch,))
    print(f"model_bench: batch {args.batch} at {args.size}x{args.size}, {rounds} interleaved rounds, fp32, eager")
    kernel = passes_cpp.available()
    print(f"C++ CPU kernel: {'loaded' if kernel else 'unavailable'} in {passes_cpp.build_seconds():.1f} s")
    print("start: " + machine_line(), flush=True)
    saved = {name: saved_bytes(m, x, mode) for name, (m, mode) in models.items()}
    train = interleaved({n: _train_step(m, x, y, f) for n, (m, f) in models.items()}, rounds)
    print("after train: " + machine_line(), flush=True)
    infer = interleaved({n: _inference(m, x, f) for n, (m, f) in models.items()}, rounds)
    print("end:   " + machine_line())
    print()
    rows = []
    for name in models:
        base = "timm resnet50" if name.startswith("timm") and "timm resnet50" in models else "resnet50"
        rows.append([
            name,
            f"{1e3 * train[name]:.0f}", f"{train[name] / train[base]:.3f}x",
            f"{1e3 * infer[name]:.0f}", f"{infer[name] / infer[base]:.3f}x",
            f"{saved[name] / 2**20:.0f}", f"{saved[name] / saved[base]:.3f}x",
            base,
        ])
    print_table(
        ["model", "train step ms", "ratio", "inference ms", "ratio", "saved for backward MiB", "ratio", "ratio to"],
        rows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
