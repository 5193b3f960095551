"""A lean install: the core works without any extra, a missing extra is one line naming it, and the CLI
imports the library only when a command runs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cbam.cli import _COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[1]
#: What the extras install (import names), none of which the core may need.
OPTIONAL = ("timm", "matplotlib", "sklearn", "tensorboard", "pycocotools", "pytorch_grad_cam", "yaml", "tqdm",
            "onnx", "onnxruntime", "onnxscript", "ninja", "huggingface_hub")

# Makes every optional package unimportable (and invisible to importlib.util.find_spec), as in an environment
# with the core dependencies only.
_BLOCK = f"""
import sys
sys.modules.update(dict.fromkeys({OPTIONAL!r}))
"""


def _python(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", _BLOCK + code], cwd=tmp_path, env=env, capture_output=True, text=True)


def test_core_works_without_any_extra(tmp_path):
    proc = _python("""
import torch, cbam
x = torch.randn(2, 32, 8, 8)
assert cbam.CBAM(32)(x).shape == x.shape
model = cbam.create_model("cbam_resnet18", num_classes=5).eval()
cbam.save_pretrained(model, "folder")
y = torch.randn(1, 3, 64, 64)
assert torch.equal(cbam.from_pretrained("folder")(y), model(y))
print(sorted(m for m, mod in sys.modules.items() if mod is not None and m.partition(".")[0] in {"torchvision", *OPTIONAL}))
""".replace("OPTIONAL", repr(OPTIONAL)), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]"  # `import cbam` imports nothing optional, not even torchvision


def test_a_missing_extra_is_one_line_naming_it(tmp_path):
    proc = _python("""
from cbam.cli import main
sys.exit(main(["train", "--out", "run", "--epochs", "1"]))
""", tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "pip install 'cbam[train]'" in lines[0]


def test_the_cli_parser_imports_no_library_code():
    code = ("import sys; from cbam.cli import build_parser; build_parser(); "
            "print(sorted(m for m in sys.modules if m.startswith(('cbam.data', 'cbam.experiments', 'cbam.viz', "
            "'cbam.detection', 'cbam.engine', 'torchvision', 'yaml', 'matplotlib', 'timm'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("command", _COMMANDS)
def test_every_command_has_help_with_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0 and "example:\n  cbam " in capsys.readouterr().out
