"""The GPU benchmark of the fused CBAM operator, in one run on one CUDA GPU (about 3-5 minutes).

    PYTHONPATH=. python -m benchmarks.gpu_bench              # everything below
    PYTHONPATH=. python -m benchmarks.gpu_bench --no-compile # skip the torch.compile'd timm rows
    python -m benchmarks.gpu_bench --smoke --device cpu      # tiny shapes on the CPU (Triton interpreter): checks the script

Prints, after the GPU name and the torch/Triton/timm versions:

(c) parity first: every covered variant on the Triton kernels against the reference path (float64 to
    1e-9, float32 to 1e-4, bfloat16/float16 to 3e-2, NCHW and channels-last), bitwise-equal reruns,
    and ``torch.compile(fullgraph=True)`` of a CBAM ResNet capturing the operator;
(a) module level at the four ResNet-50 stage shapes, batch 64: ours (CBAM, SE), timm's ``CbamModule``
    eager and ``torch.compile``d, and the ``x * s`` floor, in fp32 NCHW and bf16 autocast channels-last,
    forward (inference) and forward+backward;
(b) ResNet-50 at batch 128, 224 px: plain, +SE, +CBAM (ours; also on PyTorch operations and on the
    reference path) and timm's CBAM ResNet-50, eager, bf16 autocast channels-last and fp32 NCHW:
    training step, inference and peak training memory, each as a ratio to plain in the same run;
(d) a ``torch.profiler`` table of one bf16 channels-last training step of CBAM ResNet-50: the CUDA
    kernels that take the most time, to see what bounds the step.

Times are CUDA-event medians over repeated calls after warm-up; ratios are measured side by side.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from cbam.models import create_model
from cbam.nn import CBAM, ChannelAttention, SpatialAttention, SqueezeExcitation, fast_path
from cbam.nn.fused import operator, passes_triton

from .module_bench import Floor

STAGES = ((256, 56), (512, 28), (1024, 14), (2048, 7))  # ResNet-50 stages: (C, H = W)
SMOKE_STAGES = ((32, 8), (64, 4))
DEVICE = "cuda"
SETTINGS = {"fp32 NCHW": (torch.float32, torch.contiguous_format), "bf16 CL": (torch.bfloat16, torch.channels_last)}


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def _time(fn: Callable[[], None], iters: int, warmup: int = 3) -> float:
    """Median milliseconds of ``fn`` over ``iters`` calls (CUDA events on a GPU), after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    _sync()
    times = []
    for _ in range(iters):
        if DEVICE != "cuda":
            start_s = time.perf_counter()
            fn()
            times.append(1e3 * (time.perf_counter() - start_s))
            continue
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def _table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(flush=True)


# ---- (c) parity ------------------------------------------------------------------------------------


def _official(c: int, train: bool) -> nn.Module:
    m = CBAM(c, 16, layout="official")
    with torch.no_grad():
        m.spatial.norm.weight.normal_()
        m.spatial.norm.running_mean.fill_(0.3)
        m.spatial.norm.running_var.fill_(2.0)
    return m.train(train)


VARIANTS = {
    "cbam": lambda c: CBAM(c, 16),
    "cbam_official_train": lambda c: _official(c, True),
    "cbam_official_eval": lambda c: _official(c, False),
    "cbam_max_only": lambda c: CBAM(c, 16, pools=("max",), spatial_order=("max",)),
    "se": lambda c: SqueezeExcitation(c, 16),
    "channel_avg_max": lambda c: ChannelAttention(c, 16),
    "spatial": lambda c: SpatialAttention(c, 7),
}
TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4, torch.bfloat16: 3e-2, torch.float16: 3e-2}


def _fwd_bwd(m: nn.Module, x: torch.Tensor, grad: torch.Tensor, mode: bool | str) -> list[torch.Tensor]:
    m = copy.deepcopy(m)
    x = x.detach().clone().requires_grad_()
    with fast_path(mode):
        out = m(x)
        out.backward(grad)
    return [out.detach(), x.grad, *[p.grad for p in m.parameters()]]


def parity(smoke: bool) -> bool:
    print("## (c) parity: Triton kernels against the reference path\n", flush=True)
    rows, ok = [], True
    shapes = [(2, 32, 3, 5), (2, 16, 1, 1)] if smoke else [(4, 64, 14, 14), (3, 70, 9, 11), (2, 32, 1, 1), (1, 2048, 7, 7)]
    for name, make in VARIANTS.items():
        for shape in shapes:
            for dtype in TOLERANCE:
                for layout in (torch.contiguous_format, torch.channels_last):
                    torch.manual_seed(0)
                    m = make(shape[1]).to(DEVICE)
                    m = m.double() if dtype == torch.float64 else m
                    x = torch.randn(shape, device=DEVICE, dtype=dtype).contiguous(memory_format=layout)
                    grad = torch.randn_like(x)
                    with fast_path("auto" if DEVICE == "cuda" else "triton"):
                        picked = operator.passes_for(x)
                    fast = _fwd_bwd(m, x, grad, "triton")
                    again = _fwd_bwd(m, x, grad, "triton")
                    # reference in float64 (in float32 for half inputs' parameters) on the same rounded input
                    ref_m = m.double()
                    ref = _fwd_bwd(ref_m, x.double(), grad.double(), False)
                    err = max(float((a.double() - b).abs().max() / (b.abs().max() + 1e-12)) for a, b in zip(fast, ref))
                    bitwise = all(torch.equal(a, b) for a, b in zip(fast, again))
                    good = picked is passes_triton and err <= TOLERANCE[dtype] and bitwise
                    ok &= good
                    if not good or dtype in (torch.float32, torch.bfloat16):
                        rows.append([name, "x".join(map(str, shape)), str(dtype).removeprefix("torch."),
                                     "CL" if layout == torch.channels_last else "NCHW", picked.__name__.split(".")[-1],
                                     f"{err:.1e}", "yes" if bitwise else "NO", "ok" if good else "FAIL"])
    _table(["variant", "shape", "dtype", "layout", "back end", "max rel. error", "bitwise rerun", "result"], rows)
    model = create_model("resnet18", attention="cbam_official", num_classes=10).to(DEVICE)
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(2 if smoke else 8, 3, 32 if smoke else 64, 32 if smoke else 64, device=DEVICE)
    x = x.contiguous(memory_format=torch.channels_last)
    compiled = torch.compile(copy.deepcopy(model), fullgraph=True, backend="inductor" if DEVICE == "cuda" else "aot_eager")
    with fast_path("auto" if DEVICE == "cuda" else "triton"), torch.autocast(DEVICE, dtype=torch.bfloat16):
        eager_out, compiled_out = model(x), compiled(x)
        compiled_out.float().sum().backward()
    err = float((eager_out.float() - compiled_out.float()).detach().abs().max())
    print(f"torch.compile(fullgraph=True), CBAM ResNet-18, bf16 channels-last: max |eager - compiled| = {err:.2e} "
          f"({'ok' if err < 5e-2 else 'FAIL'})")
    ok &= err < 5e-2
    model.eval()
    program = torch.export.export(model, (x,))
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    with torch.no_grad(), fast_path("auto" if DEVICE == "cuda" else "triton"):
        err = float((program.module()(x) - model(x)).abs().max())
    exported = "cbam.fused_attention.default" in targets and err < 1e-3
    print(f"torch.export, CBAM ResNet-18, fp32 channels-last: operator captured: "
          f"{'cbam.fused_attention.default' in targets}, max |eager - exported| = {err:.2e} "
          f"({'ok' if exported else 'FAIL'})")
    ok &= exported
    print(f"parity: {'PASS' if ok else 'FAIL'}\n", flush=True)
    return ok


# ---- (a) module level ------------------------------------------------------------------------------


def module_level(batch: int, iters: int, compile_timm: bool, stages: tuple[tuple[int, int], ...]) -> None:
    from timm.layers.cbam import CbamModule

    print(f"## (a) module level, batch {batch}: ms and ratio to the x * s floor\n", flush=True)
    rows = []
    for setting, (dtype, layout) in SETTINGS.items():
        for channels, size in stages:
            mods = {
                "ours CBAM": CBAM(channels),
                "ours CBAM (torch passes)": CBAM(channels),
                "ours SE": SqueezeExcitation(channels),
                "timm CbamModule": CbamModule(channels),
                "floor x*s": Floor(batch, size),
            }
            mods = {k: m.to(DEVICE).to(memory_format=layout) for k, m in mods.items()}
            if compile_timm:
                mods["timm compiled"] = torch.compile(copy.deepcopy(mods["timm CbamModule"]))
            x = torch.randn(batch, channels, size, size, device=DEVICE).contiguous(memory_format=layout)
            grad = torch.randn_like(x, dtype=dtype)
            for mode in ("fwd", "fwd+bwd"):
                ms = {}
                for name, m in mods.items():
                    path = "torch" if "torch passes" in name else "auto"
                    ms[name] = _time(_module_case(m, x, grad, dtype, mode == "fwd+bwd", path), iters)
                floor = ms["floor x*s"]
                rows.append([setting, f"{channels}x{size}x{size}", mode]
                            + [f"{v:.3f} ({v / floor:.2f}x)" for v in ms.values()])
    _table(["setting", "C x H x W", "mode", *mods], rows)


def _module_case(m: nn.Module, x: torch.Tensor, grad: torch.Tensor, dtype: torch.dtype, train: bool, path: str):
    x = x.detach().requires_grad_(train)

    def run() -> None:
        with fast_path(path), torch.autocast(DEVICE, dtype=dtype, enabled=dtype != torch.float32):
            if train:
                x.grad = None
                m.zero_grad(set_to_none=True)
                m(x.to(dtype) if dtype != torch.float32 else x).backward(grad)
            else:
                with torch.no_grad():
                    m(x.to(dtype) if dtype != torch.float32 else x)

    return run


# ---- (b) ResNet-50 -----------------------------------------------------------------------------------


def _models() -> dict[str, tuple[nn.Module, str]]:
    import timm

    return {
        "plain": (create_model("resnet50"), "auto"),
        "+SE (ours)": (create_model("resnet50", attention="se"), "auto"),
        "+CBAM (ours)": (create_model("resnet50", attention="cbam"), "auto"),
        "+CBAM (ours, torch passes)": (create_model("resnet50", attention="cbam"), "torch"),
        "+CBAM (ours, reference path)": (create_model("resnet50", attention="cbam"), "off"),
        "timm CBAM ResNet-50": (timm.create_model("resnet50", block_args=dict(attn_layer="cbam")), "auto"),
    }


def model_level(batch: int, size: int, iters: int) -> None:
    print(f"## (b) ResNet-50, batch {batch} at {size} px, eager: ms (ratio to plain)\n", flush=True)
    rows = []
    for setting, (dtype, layout) in SETTINGS.items():
        results = {}
        for name, (model, path) in _models().items():
            model = model.to(DEVICE).to(memory_format=layout)
            opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
            x = torch.randn(batch, 3, size, size, device=DEVICE).contiguous(memory_format=layout)
            y = torch.randint(0, 1000, (batch,), device=DEVICE)
            autocast = dict(device_type=DEVICE, dtype=dtype, enabled=dtype != torch.float32)

            def step(model=model, opt=opt, x=x, y=y, path=path, autocast=autocast) -> None:
                with fast_path(path), torch.autocast(**autocast):
                    loss = F.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            def infer(model=model, x=x, path=path, autocast=autocast) -> None:
                with fast_path(path), torch.autocast(**autocast), torch.no_grad():
                    model(x)

            model.train()
            step()
            peak = float("nan")
            if DEVICE == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                step()
                torch.cuda.synchronize()
                peak = (torch.cuda.max_memory_allocated() - base) / 2**30
            train_ms = _time(step, iters)
            model.eval()
            infer_ms = _time(infer, iters)
            results[name] = (train_ms, infer_ms, peak)
            del model, opt
            if DEVICE == "cuda":
                torch.cuda.empty_cache()
        plain = results["plain"]
        for name, (t, i, p) in results.items():
            rows.append([setting, name, f"{t:.1f} ({t / plain[0]:.2f}x)", f"{i:.1f} ({i / plain[1]:.2f}x)",
                         f"{p:.2f} ({p / plain[2]:.2f}x)"])
    _table(["setting", "model", "training step ms", "inference ms", "peak training memory GiB"], rows)


# ---- (d) profile -------------------------------------------------------------------------------------


def profile_step(batch: int, size: int, top: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    print(f"## (d) profile: CBAM ResNet-50 (ours), one bf16 channels-last training step, batch {batch}\n", flush=True)
    for name in ("plain", "+CBAM (ours)"):
        model, _ = _models()[name]
        model = model.to(DEVICE).to(memory_format=torch.channels_last).train()
        x = torch.randn(batch, 3, size, size, device=DEVICE).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 1000, (batch,), device=DEVICE)

        def step(model=model, x=x, y=y) -> None:
            with torch.autocast(DEVICE, dtype=torch.bfloat16):
                loss = F.cross_entropy(model(x), y)
            loss.backward()

        for _ in range(3):
            step()
        _sync()
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEVICE == "cuda" else [])
        with profile(activities=activities) as prof:
            step()
            _sync()
        events = sorted(prof.key_averages(), key=lambda e: e.device_time_total, reverse=True)
        total = sum(e.self_device_time_total for e in events) / 1e3
        launches = sum(e.count for e in events if e.self_device_time_total > 0 and e.device_type.name == "CUDA")
        print(f"{name}: {total:.1f} ms of CUDA kernel time, {launches} kernel launches")
        rows = [[e.key[:70], f"{e.self_device_time_total / 1e3:.2f}", str(e.count)]
                for e in sorted(events, key=lambda e: e.self_device_time_total, reverse=True)[:top]]
        _table(["kernel / operator", "self CUDA ms", "calls"], rows)
        del model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--module-batch", type=int, default=64)
    parser.add_argument("--model-batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile'd timm module rows")
    parser.add_argument("--top", type=int, default=15, help="rows of the profile table")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                        help="cpu: check the script itself (with --smoke and TRITON_INTERPRET=1)")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, batches and iterations")
    parser.add_argument("--sections", default="cabd", help="which of (c) parity, (a) module, (b) model, (d) profile")
    args = parser.parse_args(argv)
    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("gpu_bench: no CUDA device; this benchmark needs a GPU (or --smoke --device cpu)", file=sys.stderr)
        return 2
    if DEVICE == "cpu" and not passes_triton.interpreting():
        print("gpu_bench: --device cpu needs TRITON_INTERPRET=1 in the environment", file=sys.stderr)
        return 2
    if args.smoke:
        args.module_batch, args.model_batch, args.size, args.iters = 2, 2, 32, 2
    import triton

    start = time.perf_counter()
    try:
        import timm
        timm_version = timm.__version__
    except ImportError:
        timm_version = "not installed"
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "CPU (Triton interpreter)"
    print(f"# gpu_bench on {name}: torch {torch.__version__}, Triton {triton.__version__}, "
          f"timm {timm_version}, CUDA {torch.version.cuda}\n", flush=True)
    torch.backends.cudnn.benchmark = True
    ok = parity(args.smoke) if "c" in args.sections else True
    if "a" in args.sections:
        module_level(args.module_batch, args.iters, not args.no_compile, SMOKE_STAGES if args.smoke else STAGES)
    if "b" in args.sections:
        model_level(args.model_batch, args.size, args.iters)
    if "d" in args.sections:
        profile_step(args.model_batch, args.size, args.top)
    print(f"gpu_bench: {time.perf_counter() - start:.0f} s, parity {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
