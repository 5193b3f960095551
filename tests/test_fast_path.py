"""The fused CBAM operator (cbam.nn.fused) against the modules' reference path.

The fused operator has two CPU back ends for its full-size passes: the C++ kernels
(cbam/nn/fused/csrc/fused_cpu.cpp, mode ``"cpp"``, built on first use) and PyTorch operations
(mode ``"torch"``, the fallback); the equivalence tests run both. The Triton back end is tested
under the Triton interpreter in test_triton_kernels.py.
"""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import warnings

import pytest
import torch
from _fused_cases import eval_norm, parts, run
from torch import nn

import cbam.nn.fused as fused
from cbam.models import create_model
from cbam.nn import CBAM, ChannelAttention, SpatialAttention, SqueezeExcitation, fast_path, set_fast_path
from cbam.nn.fused import operator, passes_cpp, passes_torch, switch

# Every variant the fused path covers: name -> (channels -> module).
COVERED = {
    "cbam_paper": lambda c: CBAM(c, 4),
    "cbam_official_train": lambda c: _official(c, train=True),
    "cbam_official_eval": lambda c: _official(c, train=False),
    "cbam_k3_nobias": lambda c: CBAM(c, 4, kernel_size=3, mlp_bias=False, spatial_conv_bias=False),
    "cbam_max_pool_only": lambda c: CBAM(c, 4, pools=("max",), spatial_order=("max",)),
    "cbam_avg_pool_only": lambda c: CBAM(c, 4, pools=("avg",), spatial_order=("avg",)),
    "cbam_max_avg": lambda c: CBAM(c, 4, pools=("max", "avg"), spatial_order=("max", "avg")),
    "channel_avg_max": lambda c: ChannelAttention(c, 4),
    "channel_max": lambda c: ChannelAttention(c, 4, pools=("max",), mlp_bias=False),
    "se": lambda c: SqueezeExcitation(c, 4),
    "spatial": lambda c: SpatialAttention(c, 5),
    "spatial_max_norm_train": lambda c: SpatialAttention(None, 3, order=("max",), norm=True),
    "spatial_norm_eval": lambda c: eval_norm(SpatialAttention(c, 3, norm=True)),
}
SHAPES = [(2, 16, 7, 9), (3, 8, 1, 1), (2, 4, 37, 29)]  # the last: H*W > the kernels' 1024-position blocks
BACKENDS = ["cpp", "torch"]


def _backend(name: str):
    """The fast-path mode running the fused operator on the C++ kernels (skip if they did not build)
    or on PyTorch operations."""
    if name == "cpp" and not passes_cpp.available():
        pytest.skip("the C++ CPU kernel is unavailable here")
    return fast_path(name)


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one thread avoids OpenMP waits on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _official(c: int, train: bool) -> nn.Module:
    m = eval_norm(CBAM(c, 4, layout="official"))
    return m.train(train)


def _run(
    m: nn.Module, x: torch.Tensor, grad: torch.Tensor, fast: bool, backend: str = "cpp"
) -> dict[str, torch.Tensor]:
    """Output, input gradient, parameter gradients and buffers after one forward+backward."""
    if fast:
        _backend(backend)  # skips where the C++ kernel is unavailable
    return run(m, x, grad, backend if fast else False)


def _skip_single_value_batchnorm(name: str, shape: tuple[int, ...]) -> None:
    if "train" in name and shape[0] * shape[2] * shape[3] == 1:
        pytest.skip("BatchNorm in train mode needs more than one value per channel")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", COVERED)
def test_fast_matches_reference_float64(name, shape, backend):
    _skip_single_value_batchnorm(name, shape)
    torch.manual_seed(0)
    m = COVERED[name](shape[1]).double()
    x, grad = torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64)
    assert fused.supports(x, *(parts(m)))
    fast, ref = _run(m, x, grad, True, backend), _run(m, x, grad, False)
    assert fast.keys() == ref.keys()
    for key in ref:
        torch.testing.assert_close(fast[key], ref[key], msg=f"{name}: {key}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", COVERED)
def test_fast_forward_float32_within_1e5(name, backend):
    torch.manual_seed(1)
    m = COVERED[name](32)
    x = torch.randn(4, 32, 14, 14)
    with torch.no_grad():
        with _backend(backend):
            fast = m(x)
        with fast_path(False):
            ref = m(x)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", COVERED)
def test_gradcheck_float64(name, backend):
    torch.manual_seed(2)
    m = COVERED[name](8).double()
    names = [n for n, _ in m.named_parameters()]
    x = torch.randn(2, 8, 3, 4, dtype=torch.float64, requires_grad=True)

    def f(x, *params):
        return torch.func.functional_call(m, dict(zip(names, params)), (x,))

    with _backend(backend):
        assert torch.autograd.gradcheck(f, (x, *m.parameters()), fast_mode=True)


ONE_CHANNEL = {
    "cbam": lambda: CBAM(1, 1),
    "cbam_official_train": lambda: CBAM(1, 1, layout="official"),
    "se": lambda: SqueezeExcitation(1, 1),
    "channel_max": lambda: ChannelAttention(1, 1, pools=("max",)),
    "spatial": lambda: SpatialAttention(1, 3),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ONE_CHANNEL)
def test_one_channel(name, backend):
    torch.manual_seed(8)
    m = ONE_CHANNEL[name]().double()
    x = torch.randn(2, 1, 5, 3, dtype=torch.float64)
    grad = torch.randn_like(x)
    assert fused.supports(x, *parts(m))
    fast, ref = _run(m, x, grad, True, backend), _run(m, x, grad, False)
    for key in ref:
        torch.testing.assert_close(fast[key], ref[key], msg=f"{name}: {key}")
    names = [n for n, _ in m.named_parameters()]
    xg = x.clone().requires_grad_()

    def f(x, *params):
        return torch.func.functional_call(m, dict(zip(names, params)), (x,))

    with _backend(backend):
        assert torch.autograd.gradcheck(f, (xg, *m.parameters()), fast_mode=True)


TIES = {
    "cbam_max": lambda: CBAM(6, 2, pools=("max",), spatial_order=("max",)),
    "channel_max": lambda: ChannelAttention(6, 2, pools=("max",)),
    "spatial_max": lambda: SpatialAttention(6, 3, order=("max", "avg")),
}


@pytest.mark.parametrize("name", TIES)
def test_max_pool_ties_go_to_the_first_maximum_in_both_backends(name):
    """Integer-valued inputs tie in every max pool: both backends route the gradient to the first
    maximal element (the reference's ``amax`` splits it among the ties, so only outputs are compared to it)."""
    if not passes_cpp.available():
        pytest.skip("the C++ CPU kernel is unavailable here")
    torch.manual_seed(9)
    m = TIES[name]().double()
    x = torch.randint(-1, 2, (3, 6, 4, 5)).double()
    grad = torch.randn_like(x)
    cpp, torch_path, ref = _run(m, x, grad, True, "cpp"), _run(m, x, grad, True, "torch"), _run(m, x, grad, False)
    torch.testing.assert_close(cpp["out"], ref["out"])
    for key in torch_path:
        torch.testing.assert_close(cpp[key], torch_path[key], msg=f"{name}: {key}")


def test_kernel_argmax_is_the_first_maximum():
    if not passes_cpp.available():
        pytest.skip("the C++ CPU kernel is unavailable here")
    ops = torch.ops.cbam_cpu
    x = torch.randint(0, 3, (2, 5, 7, 9)).float()
    x[0, :, 2, 3] = 2.0  # every channel ties at one position
    avg, mx, index = ops.hw_pool(x, True, True, True)
    xf = x.view(2, 5, 63)
    torch.testing.assert_close(avg, xf.mean(2))
    torch.testing.assert_close(mx, xf.amax(2))
    torch.testing.assert_close(index, xf.argmax(2))  # argmax returns the first maximal index
    scale = torch.tensor([[1.0, 2.0, 1.0, 2.0, 0.5]]).expand(2, 5).contiguous()
    avg, mx, index = ops.channel_pool(x, scale, True, True, True)
    y = xf * scale.unsqueeze(2)
    torch.testing.assert_close(avg, y.mean(1))
    torch.testing.assert_close(mx, y.amax(1))
    torch.testing.assert_close(index, y.argmax(1))
    assert int(index[0, 2 * 9 + 3]) == 1  # 2 * 2.0 wins at the tied position


@pytest.mark.parametrize("name", ["cbam_paper", "spatial", "se"])
def test_nan_propagates_like_reference(name):
    if not passes_cpp.available():
        pytest.skip("the C++ CPU kernel is unavailable here")
    m = COVERED[name](8)
    x = torch.randn(2, 8, 6, 7)
    x[1, 3, 2, 4] = float("nan")
    with torch.no_grad():
        fast = m(x)
        with fast_path(False):
            ref = m(x)
    torch.testing.assert_close(fast, ref, equal_nan=True)
    assert fast[1].isnan().any() and not fast[0].isnan().any()


def test_cpp_kernel_with_two_threads_matches_reference():
    if not passes_cpp.available():
        pytest.skip("the C++ CPU kernel is unavailable here")
    torch.manual_seed(10)
    torch.set_num_threads(2)  # the autouse fixture restores the count
    m = CBAM(16, 4, layout="official").double()
    x = torch.randn(3, 16, 40, 30, dtype=torch.float64)  # 3 x 2 position blocks, 48 rows
    grad = torch.randn_like(x)
    fast, ref = _run(m, x, grad, True, "cpp"), _run(m, x, grad, False)
    for key in ref:
        torch.testing.assert_close(fast[key], ref[key], msg=key)


def test_auto_mode_picks_the_back_end_by_device_dtype_and_layout():
    x = torch.randn(2, 8, 5, 6)
    expected = passes_cpp if passes_cpp.available() else passes_torch
    assert operator.passes_for(x) is expected
    assert operator.passes_for(x.double()) is expected
    assert operator.passes_for(x.contiguous(memory_format=torch.channels_last)) is passes_torch
    assert operator.passes_for(x.bfloat16()) is passes_torch
    with fast_path("torch"):
        assert operator.passes_for(x) is passes_torch
    with fast_path("cpp"):
        assert operator.passes_for(x) is expected


def test_cpu_kernel_builds_where_a_compiler_exists():
    """On a machine with a C++ compiler and ninja the kernel must build: a broken build fails here
    instead of silently falling back everywhere else."""
    if shutil.which(os.environ.get("CXX", "c++")) is None or shutil.which("ninja") is None:
        pytest.skip("no C++ compiler or ninja")
    assert passes_cpp.available()
    assert passes_cpp.build_seconds() is not None


def test_env_var_sets_the_starting_mode():
    code = "from cbam.nn.fused import fast_path_mode; print(fast_path_mode())"
    env = {**os.environ, switch.ENV_VAR: "torch"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "torch"
    with pytest.raises(ValueError, match=r"CBAM_FAST_PATH: expected True, False or one of"):
        switch._parse("fastest", "environment variable CBAM_FAST_PATH")
    with pytest.raises(ValueError, match="set_fast_path"):
        set_fast_path("gpu")


def test_failed_build_warns_once_and_falls_back(monkeypatch):
    from torch.utils import cpp_extension

    def no_compiler(**kwargs):
        raise RuntimeError("Error building extension 'cbam_fused_cpu': c++: not found")

    monkeypatch.setattr(passes_cpp, "_STATE", None)  # restored afterwards, like the patched loader
    monkeypatch.setattr(cpp_extension, "load", no_compiler)
    m = CBAM(8, 4)
    x = torch.randn(2, 8, 5, 6)
    with pytest.warns(RuntimeWarning, match="could not be built"):
        out = m(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        again = m(x)
        assert operator.passes_for(x) is passes_torch
    with fast_path(False):
        torch.testing.assert_close(out, m(x))
    torch.testing.assert_close(again, out)


def _is_fused(out: torch.Tensor) -> bool:
    return type(out.grad_fn).__name__ == "FusedAttentionBackward"


def test_fast_path_is_used_and_saves_only_the_input_full_size():
    m = CBAM(16, 4)
    x = torch.randn(2, 16, 6, 6, requires_grad=True)
    full = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: full.append(t.shape == x.shape) or t, lambda t: t):
        out = m(x)
    assert _is_fused(out)
    assert sum(full) == 1  # only F; M_c, M_s, descriptors and indices are small
    with fast_path(False):
        assert not _is_fused(m(x))


def test_switches_select_reference_path():
    m = CBAM(16, 4)
    x = torch.randn(2, 16, 6, 6)
    assert fused.fast_path_enabled()
    set_fast_path(False)
    try:
        assert not fused.supports(x, m.channel, m.spatial)
    finally:
        set_fast_path(True)
    assert fused.supports(x, m.channel, m.spatial)
    m.fast = False
    x.requires_grad_()
    assert not _is_fused(m(x))


@pytest.mark.parametrize(
    "module",
    [
        CBAM(16, 4, arrangement="parallel"),
        CBAM(16, 4, descriptor="conv1x1"),
        ChannelAttention(16, 4, pools=("avg", "max", "lp")),
        ChannelAttention(16, 4, pools=("avg", "lse")),
    ],
    ids=["parallel", "conv1x1", "lp", "lse"],
)
def test_uncovered_variants_take_reference_path(module):
    x = torch.randn(2, 16, 5, 5, requires_grad=True)
    out = module(x)
    assert not _is_fused(out)
    with fast_path(False):
        torch.testing.assert_close(out, module(x))


def test_spatial_first_fuses_each_half():
    m = CBAM(16, 4, arrangement="spatial_first").double()
    x = torch.randn(2, 16, 5, 6, dtype=torch.float64)
    grad = torch.randn_like(x)
    fast, ref = _run(m, x, grad, True), _run(m, x, grad, False)
    for key in ref:
        torch.testing.assert_close(fast[key], ref[key], msg=key)


@pytest.mark.parametrize("name", ["cbam_paper", "cbam_official_train", "se", "spatial"])
def test_channels_last_is_fused_and_keeps_its_layout(name):
    torch.manual_seed(3)
    m = COVERED[name](16).double()
    x = torch.randn(2, 16, 7, 9, dtype=torch.float64)
    grad = torch.randn_like(x)
    x_cl, grad_cl = x.contiguous(memory_format=torch.channels_last), grad.contiguous(memory_format=torch.channels_last)
    assert fused.supports(x_cl, *parts(m))
    ref, cl = _run(m, x, grad, False), _run(m, x_cl, grad_cl, True, "torch")
    assert cl["out"].is_contiguous(memory_format=torch.channels_last)
    assert cl["dx"].is_contiguous(memory_format=torch.channels_last)
    for key in ref:
        torch.testing.assert_close(cl[key], ref[key], msg=key)


def test_non_contiguous_gradient():
    m = CBAM(8, 4).double()
    x = torch.randn(2, 8, 5, 6, dtype=torch.float64)
    grad = torch.randn(2, 8, 6, 5, dtype=torch.float64).transpose(2, 3)  # strided upstream gradient
    fast, ref = _run(m, x, grad, True), _run(m, x, grad, False)
    for key in ref:
        torch.testing.assert_close(fast[key], ref[key], msg=key)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_and_half_precision_are_fused(dtype):
    """Half-precision maps run fused with float32 small parts: outputs and gradients match the
    float32 reference to half-precision tolerance, with the dtypes the reference path gives."""
    torch.manual_seed(11)
    m = CBAM(16, 4, layout="official")
    conv = nn.Conv2d(16, 16, 1)
    x = torch.randn(2, 16, 6, 6)
    with torch.autocast("cpu", dtype=dtype):
        h = conv(x)
        assert h.dtype == dtype and fused.supports(h, m.channel, m.spatial)
        out = m(h)
        with fast_path(False):
            ref_dtype = m(h).dtype
    assert out.dtype == ref_dtype == dtype
    with fast_path(False):
        ref = m(h.float())
    torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=2e-2)
    half = copy.deepcopy(m).to(dtype)
    xh = x.to(dtype).requires_grad_()
    assert fused.supports(xh, half.channel, half.spatial)
    out = half(xh)
    out.float().sum().backward()
    assert out.dtype == xh.grad.dtype == half.channel.fc1.weight.grad.dtype == dtype
    xf = x.clone().requires_grad_()
    with fast_path(False):
        m(xf).sum().backward()
    torch.testing.assert_close(xh.grad.float(), xf.grad, rtol=5e-2, atol=5e-2)


def test_batchnorm_train_updates_running_stats_like_reference():
    torch.manual_seed(4)
    m = CBAM(16, 4, layout="official")
    x = torch.randn(4, 16, 6, 6)
    fast_m, ref_m = copy.deepcopy(m), copy.deepcopy(m)
    for _ in range(3):
        fast_m(x)
        with fast_path(False):
            ref_m(x)
    for (name, a), (_, b) in zip(fast_m.named_buffers(), ref_m.named_buffers()):
        torch.testing.assert_close(a, b, msg=name)
    assert int(fast_m.spatial.norm.num_batches_tracked) == 3
    fast_m.eval(), ref_m.eval()
    with torch.no_grad(), fast_path(True):
        fast = fast_m(x)
    with torch.no_grad(), fast_path(False):
        ref = ref_m(x)
    torch.testing.assert_close(fast, ref)


def test_validation_errors_unchanged():
    with pytest.raises(ValueError, match="channels"):
        CBAM(16, 4)(torch.randn(1, 8, 4, 4))
    with pytest.raises(ValueError, match="4-D"):
        SqueezeExcitation(16, 4)(torch.randn(16, 4, 4))


@pytest.mark.parametrize("attention", ["cbam", "se", "cbam_official"])
def test_models_use_fast_path_by_default(attention, monkeypatch):
    calls = []
    original = fused.fused_attention

    def spy(x, channel, spatial):
        calls.append(x.shape)
        return original(x, channel, spatial)

    monkeypatch.setattr(fused, "fused_attention", spy)
    model = create_model("resnet18", attention=attention, num_classes=10, small_input=True)
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert len(calls) == 8  # one per BasicBlock
    out.sum().backward()
    n = len(calls)
    with fast_path(False):
        model(x)
    assert len(calls) == n


@pytest.mark.slow
def test_opcheck():
    torch.manual_seed(5)
    m = _official(8, train=False).double()
    x = torch.randn(2, 8, 4, 5, dtype=torch.float64, requires_grad=True)
    scale = torch.tensor([1.5], dtype=torch.float64, requires_grad=True)
    shift = torch.tensor([-0.2], dtype=torch.float64, requires_grad=True)
    args = (x, m.channel.fc1.weight, m.channel.fc1.bias, m.channel.fc2.weight, m.channel.fc2.bias,
            m.spatial.conv.weight, None, scale, shift, [1, 0], [1, 0], 1, 1e-5, True)
    torch.library.opcheck(torch.ops.cbam.fused_attention.default, args)


def test_torch_export_sees_fused_operator():
    torch.manual_seed(6)
    model = create_model("resnet18", attention="cbam", num_classes=10, small_input=True).eval()
    x = torch.randn(2, 3, 32, 32)
    program = torch.export.export(model, (x,))
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert "cbam.fused_attention.default" in targets
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x))


def test_onnx_export_uses_reference_path(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    torch.manual_seed(7)
    m = CBAM(16, 4, layout="official").eval()
    eval_norm(m)
    x = torch.randn(2, 16, 7, 9)
    path = tmp_path / "cbam.onnx"
    torch.onnx.export(m, (x,), str(path), dynamo=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), m(x), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_onnx_export_resnet18_cbam(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = create_model("resnet18", attention="cbam", num_classes=10, small_input=True).eval()
    x = torch.randn(1, 3, 32, 32)
    path = tmp_path / "resnet18_cbam.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), model(x), rtol=1e-4, atol=1e-4)


def test_empty_inputs_take_reference_path():
    m = SqueezeExcitation(8, 4)
    for shape in [(0, 8, 5, 5), (2, 8, 0, 5)]:
        x = torch.randn(shape)
        assert not fused.supports(x, m, None)
        with torch.no_grad():
            assert m(x).shape == shape


def test_meta_tensors_take_the_reference_path():
    m = CBAM(16, 4, layout="official", device="meta")
    x = torch.empty(2, 16, 5, 5, device="meta")
    assert not fused.supports(x, m.channel, m.spatial)
    out = m(x)
    assert out.device.type == "meta" and out.shape == x.shape


def test_inductor_compiles_a_channels_last_cbam_model_fullgraph():
    """``torch.compile(fullgraph=True)`` with inductor on the CPU: no graph break, and the real outputs of
    the operator and its backward have the strides of the fake ones (inductor checks them; a channels-last
    model has channels-last conv weights, whose gradients must come back channels-last)."""
    torch.manual_seed(12)
    fmt = torch.channels_last
    model = create_model("resnet18", attention="cbam_official", num_classes=4, small_input=True,
                         widths=(16, 16, 16, 16)).to(memory_format=fmt)
    x = torch.randn(2, 3, 16, 16).contiguous(memory_format=fmt)
    compiled = torch.compile(copy.deepcopy(model), fullgraph=True)
    out = compiled(x)
    out.sum().backward()
    ref = model(x)
    ref.sum().backward()
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    for (name, p), q in zip(model.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-3, atol=1e-4, msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_operator_takes_other_strides_and_keeps_them(backend):
    """A compiled graph may hand the operator strides the modules never pass (here N, H, C, W order):
    results equal the reference and come back with the input's strides."""
    torch.manual_seed(13)
    m = CBAM(8, 4, layout="official").double()
    x = torch.randn(2, 5, 8, 6, dtype=torch.float64).permute(0, 2, 1, 3)  # (2, 8, 5, 6), neither layout
    grad = torch.randn(2, 8, 5, 6, dtype=torch.float64)
    args = (m.channel.fc1.weight, m.channel.fc1.bias, m.channel.fc2.weight, m.channel.fc2.bias,
            m.spatial.conv.weight, None, m.spatial.norm.weight, m.spatial.norm.bias, [0, 1], [1, 0], 2, 1e-5)
    with _backend(backend), torch.no_grad():
        out = operator.fused_attention_op(x, *args, True)
        dx = operator._backward_impl(grad, x, *args[:8], *out[1:], *args[8:])[0]
    assert out[0].stride() == x.stride() and dx.stride() == x.stride()
    xc = x.contiguous().requires_grad_()
    with fast_path(False):
        ref = m(xc)
        ref.backward(grad)
    torch.testing.assert_close(out[0], ref)
    torch.testing.assert_close(dx, xc.grad)
