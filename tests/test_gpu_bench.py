"""The GPU benchmark script, run on the CPU with tiny shapes (``--smoke --device cpu``), so that a lent GPU's
few minutes are never spent on a broken script. ``tests/conftest.py`` sets ``TRITON_INTERPRET=1``."""
from __future__ import annotations

import pytest

from benchmarks import gpu_bench
from cbam.nn.fused import passes_triton

pytestmark = pytest.mark.skipif(not passes_triton.interpreting(), reason="needs TRITON_INTERPRET=1 (no GPU here)")


def test_module_level_smoke(capsys):
    assert gpu_bench.main(["--smoke", "--device", "cpu", "--no-compile", "--sections", "a"]) == 0
    out = capsys.readouterr().out
    assert "## (a) module level, batch 2" in out
    assert out.count("| fp32 NCHW |") == out.count("| bf16 CL |") == 4  # 2 stages x (fwd, fwd+bwd)


@pytest.mark.slow
def test_every_section_smoke(capsys):
    assert gpu_bench.main(["--smoke", "--device", "cpu", "--no-compile"]) == 0
    out = capsys.readouterr().out
    for section in ("## (c) parity", "parity: PASS", "## (a) module", "## (b) ResNet-50", "## (d) profile"):
        assert section in out


def test_refuses_cpu_without_the_interpreter(monkeypatch, capsys):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert gpu_bench.main(["--smoke", "--device", "cpu"]) == 2
    assert "TRITON_INTERPRET=1" in capsys.readouterr().err
