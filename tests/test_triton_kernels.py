"""The Triton back end of the fused operator, run on CPU tensors by Triton's interpreter.

``tests/conftest.py`` sets ``TRITON_INTERPRET=1`` before Triton is imported when no GPU is present, so
these tests run in CI without a GPU; the kernels convert to float32 right after loading, which keeps the
interpreter's unreliable bfloat16 arithmetic out. Shapes are tiny: the interpreter is slow. The
``tiny_tiles`` cases shrink the tiles and ask for many programs, so every reduction is cut into several
ranges and combined by the finalize kernel, as on a GPU.
"""
from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _fused_cases import eval_norm, parts, run
from torch import nn

from cbam.models import create_model
from cbam.nn import CBAM, ChannelAttention, SpatialAttention, SqueezeExcitation, fast_path
from cbam.nn.fused import operator, passes_torch, passes_triton, supports

pytestmark = pytest.mark.skipif(
    not (passes_triton.available() and (passes_triton.interpreting() or torch.cuda.is_available())),
    reason="Triton is not installed, or neither a GPU nor TRITON_INTERPRET=1",
)
DEVICE = "cpu" if passes_triton.interpreting() else "cuda"


VARIANTS = {
    "cbam_paper": lambda c: CBAM(c, min(2, c)),
    "cbam_official_train": lambda c: eval_norm(CBAM(c, min(2, c), layout="official")).train(),
    "cbam_official_eval": lambda c: eval_norm(CBAM(c, min(2, c), layout="official")),
    "cbam_max_only": lambda c: CBAM(c, min(2, c), pools=("max",), spatial_order=("max",)),
    "cbam_avg_only_k3": lambda c: CBAM(c, min(2, c), kernel_size=3, pools=("avg",), spatial_order=("avg",), mlp_bias=False),
    "se": lambda c: SqueezeExcitation(c, min(2, c)),
    "channel_max": lambda c: ChannelAttention(c, min(2, c), pools=("max",)),
    "spatial": lambda c: SpatialAttention(c, 3),
    "spatial_norm_train": lambda c: SpatialAttention(None, 3, order=("max",), norm=True),
}
# (B, C, H, W): C not a power of two, H = W = 1, B = 1, N > a tiny tile, C = 1
SHAPES = [(2, 6, 3, 5), (3, 5, 1, 1), (1, 3, 4, 4), (2, 3, 9, 7), (2, 1, 3, 3)]
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


@pytest.fixture(params=["default_tiles", "tiny_tiles"])
def tiles(request, monkeypatch):
    if request.param == "tiny_tiles":
        monkeypatch.setattr(passes_triton, "TILE", 8)
        monkeypatch.setattr(passes_triton, "LANES", 4)
        monkeypatch.setattr(passes_triton, "TARGET_PROGRAMS", 1 << 12)
    return request.param


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", VARIANTS)
def test_float64_equals_reference(name, shape, layout, tiles):
    if "train" in name and shape[0] * shape[2] * shape[3] == 1:
        pytest.skip("BatchNorm in train mode needs more than one value per channel")
    torch.manual_seed(0)
    m = VARIANTS[name](shape[1]).double().to(DEVICE)
    x = torch.randn(shape, dtype=torch.float64, device=DEVICE).contiguous(memory_format=LAYOUTS[layout])
    grad = torch.randn_like(x)
    assert supports(x, *parts(m)) and operator.passes_for(x) is not passes_triton
    with fast_path("triton"):
        assert operator.passes_for(x) is passes_triton
    fast, ref = run(m, x, grad, "triton"), run(m, x, grad, False)
    assert fast.keys() == ref.keys()
    for key in ref:
        torch.testing.assert_close(fast[key], ref[key], msg=f"{name}: {key}")
    assert fast["out"].stride() == x.stride() and fast["dx"].stride() == x.stride()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", ["cbam_paper", "cbam_official_train", "se", "spatial_norm_train"])
def test_gradcheck_float64(name, layout):
    torch.manual_seed(2)
    m = VARIANTS[name](4).double().to(DEVICE)
    names = [n for n, _ in m.named_parameters()]
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, device=DEVICE).contiguous(memory_format=LAYOUTS[layout])

    def f(x, *params):
        return torch.func.functional_call(m, dict(zip(names, params)), (x,))

    with fast_path("triton"):
        assert torch.autograd.gradcheck(f, (x.requires_grad_(), *m.parameters()), fast_mode=True)


@pytest.mark.parametrize("name", ["cbam_paper", "cbam_official_train", "se", "spatial"])
def test_float32_matches_reference(name, tiles):
    torch.manual_seed(1)
    m = VARIANTS[name](12).to(DEVICE)
    x, grad = torch.randn(2, 12, 6, 5, device=DEVICE), torch.randn(2, 12, 6, 5, device=DEVICE)
    fast, ref = run(m, x, grad, "triton"), run(m, x, grad, False)
    for key in ref:
        torch.testing.assert_close(fast[key], ref[key], rtol=1e-5, atol=1e-5, msg=f"{name}: {key}")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_against_float32_reference(dtype, layout):
    """bf16/fp16 maps: loads convert to float32, small parts in float32; outputs and gradients within
    half-precision tolerance of the float32 reference, in the map's dtype and layout."""
    torch.manual_seed(3)
    m = VARIANTS["cbam_official_train"](8).to(DEVICE)
    x = torch.randn(2, 8, 5, 4, device=DEVICE).contiguous(memory_format=LAYOUTS[layout])
    grad = torch.randn_like(x)
    fast = run(m, x.to(dtype), grad.to(dtype), "triton")
    ref = run(m, x.to(dtype).float(), grad.to(dtype).float(), False)
    assert fast["out"].dtype == fast["dx"].dtype == dtype
    assert fast["out"].is_contiguous(memory_format=LAYOUTS[layout])
    for key in ref:
        torch.testing.assert_close(fast[key].to(ref[key].dtype), ref[key], rtol=2e-2, atol=2e-2, msg=key)


def test_autocast_runs_the_kernels_in_float32():
    torch.manual_seed(4)
    m, conv = CBAM(8, 2).to(DEVICE), nn.Conv2d(8, 8, 1).to(DEVICE)
    x = torch.randn(2, 8, 4, 4, device=DEVICE)
    with torch.autocast(DEVICE, dtype=torch.bfloat16), fast_path("triton"):
        h = conv(x)
        out = m(h)
    assert h.dtype == out.dtype == torch.bfloat16
    with fast_path(False):
        ref = m(h.float())
    torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=2e-2)


TIES = {
    "cbam_max": lambda: CBAM(6, 2, pools=("max",), spatial_order=("max",)),
    "channel_max": lambda: ChannelAttention(6, 2, pools=("max",)),
    "spatial_max": lambda: SpatialAttention(6, 3, order=("max", "avg")),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", TIES)
def test_max_pool_gradients_go_to_the_first_maximum(name, layout, tiles):
    """Integer-valued maps tie in every max pool: the kernels route the gradient to the first maximal
    element, exactly as the PyTorch back end (``torch.max(dim)`` on the CPU) does."""
    torch.manual_seed(9)
    m = TIES[name]().double()
    x = torch.randint(-1, 2, (3, 6, 4, 5)).double().contiguous(memory_format=LAYOUTS[layout])
    grad = torch.randn_like(x)
    kernels, torch_ops = run(m, x, grad, "triton"), run(m, x, grad, "torch")
    for key in torch_ops:
        torch.testing.assert_close(kernels[key], torch_ops[key], msg=f"{name}: {key}")


def test_pool_kernels_first_argmax_and_nan(tiles):
    x = torch.randint(0, 3, (2, 5, 7, 9)).float()
    x[0, :, 2, 3] = 2.0  # every channel ties at one position
    x[1, 4, 6, 8] = float("nan")
    xf = x.view(2, 5, 63)
    avg, mx, index = passes_triton.hw_pool(x, True, True, True)
    torch.testing.assert_close(avg, xf.mean(2), equal_nan=True)
    torch.testing.assert_close(mx, xf.amax(2), equal_nan=True)
    assert torch.equal(index[0], xf[0].argmax(1)) and int(index[1, 4]) == 62
    clean = x.nan_to_num(0.0)
    scale = torch.tensor([[1.0, 2.0, 1.0, 2.0, 0.5]]).expand(2, 5).contiguous()
    avg, mx, index = passes_triton.channel_pool(clean, scale, True, True, True, {})
    y = clean.view(2, 5, 63) * scale.unsqueeze(2)
    torch.testing.assert_close(avg, y.mean(1))
    torch.testing.assert_close(mx, y.amax(1))
    assert torch.equal(index, y.argmax(1))


def test_reruns_are_bitwise_equal(tiles):
    torch.manual_seed(5)
    m = VARIANTS["cbam_official_train"](6).to(DEVICE)
    x, grad = torch.randn(2, 6, 9, 7, device=DEVICE), torch.randn(2, 6, 9, 7, device=DEVICE)
    first, second = run(m, x, grad, "triton"), run(m, x, grad, "triton")
    for key in first:
        assert torch.equal(first[key], second[key]), key


def test_saves_only_the_input_full_size():
    m = CBAM(8, 2).to(DEVICE)
    x = torch.randn(2, 8, 4, 4, device=DEVICE, requires_grad=True)
    full = []
    with fast_path("triton"), torch.autograd.graph.saved_tensors_hooks(
        lambda t: full.append(t.shape == x.shape) or t, lambda t: t
    ):
        m(x)
    assert sum(full) == 1


def test_opcheck_with_the_kernels():
    torch.manual_seed(6)
    m = eval_norm(CBAM(4, 2, layout="official")).double().to(DEVICE)
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, device=DEVICE, requires_grad=True)
    scale = torch.tensor([1.5], dtype=torch.float64, device=DEVICE, requires_grad=True)
    shift = torch.tensor([-0.2], dtype=torch.float64, device=DEVICE, requires_grad=True)
    args = (x, m.channel.fc1.weight, m.channel.fc1.bias, m.channel.fc2.weight, m.channel.fc2.bias,
            m.spatial.conv.weight, None, scale, shift, [1, 0], [1, 0], 1, 1e-5, True)
    with fast_path("triton"):
        torch.library.opcheck(torch.ops.cbam.fused_attention.default, args)


def test_compile_fullgraph_captures_the_operator_and_runs_the_kernels():
    torch.manual_seed(7)
    model = create_model("resnet18", attention="cbam_official", num_classes=4, small_input=True, widths=(16, 16, 16, 16))
    model = model.to(DEVICE).to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 8, 8, device=DEVICE).contiguous(memory_format=torch.channels_last)
    eager, compiled = copy.deepcopy(model), torch.compile(copy.deepcopy(model), fullgraph=True, backend="aot_eager")
    with fast_path("triton"):
        ref = eager(x)
        ref.sum().backward()
        out = compiled(x)
        out.sum().backward()
    torch.testing.assert_close(out, ref)
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q.grad, p.grad, msg=name, rtol=1e-4, atol=1e-5)


def test_torch_passes_match_the_kernels_pass_by_pass():
    """The three back ends share one contract: every pass of the kernels equals the PyTorch pass."""
    torch.manual_seed(8)
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    g = torch.randn_like(x)
    a, s = torch.rand(2, 5, dtype=torch.float64), torch.rand(2, 12, dtype=torch.float64)
    d_avg, d_max = torch.randn(2, 12, dtype=torch.float64), torch.randn(2, 12, dtype=torch.float64)
    index_s, index_c = torch.randint(0, 5, (2, 12)), torch.randint(0, 12, (2, 5))
    avg_c, max_c = torch.randn(2, 5, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)
    calls = [
        ("gate", (x, a, s, {})),
        ("backward_reduce", (g, x, a, s, True, True, {})),
        ("backward_reduce", (g, x, None, None, True, True, {})),
        ("descriptor_dot", (x, d_avg, d_max, index_s)),
        ("backward_input", (g, a, avg_c, max_c, index_c, s, d_avg, d_max, index_s, {})),
        ("backward_input", (g, a, avg_c, None, None, None, None, None, None, {})),
    ]
    for name, args in calls:
        got, want = getattr(passes_triton, name)(*args), getattr(passes_torch, name)(*args)
        for t, r in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
            torch.testing.assert_close(t, r, msg=name)


def test_kernels_compile_for_a_gpu_target():
    """The interpreter runs the kernels' Python, not Triton's compiler: compile every kernel (all dtypes,
    flags on and off, both tile shapes) to a cubin for sm_90 in a process without the interpreter."""
    script = Path(__file__).with_name("_triton_compile.py")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(script.parents[1]), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, str(script), "90"], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("16 variants compiled for sm_90") == 7, out.stdout
