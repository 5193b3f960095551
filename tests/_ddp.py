"""A ``torchrun`` entry script for the tests: runs ``cbam.cli.main`` and saves every rank's final weights."""
from __future__ import annotations

from pathlib import Path

_TEMPLATE = """
import os, sys, torch
import {module} as M
from cbam.cli import main

real_fit = M.fit
def fit(model, *args, **kwargs):  # keep each rank's final weights for the test
    records = real_fit(model, *args, **kwargs)
    torch.save(model.state_dict(), os.path.join(sys.argv[1], f"rank{{os.environ['RANK']}}.pt"))
    return records
M.fit = fit
sys.exit(main(sys.argv[2:]))
"""


def rank_saving_script(path: Path, module: str) -> Path:
    """Write the script to ``path``: ``python path OUT_DIR CLI_ARGS...`` runs the CLI with ``module.fit``
    wrapped so that each rank saves ``OUT_DIR/rank<RANK>.pt``."""
    path.write_text(_TEMPLATE.format(module=module))
    return path
