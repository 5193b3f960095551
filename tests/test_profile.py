"""The paper's Tables 4 and 5: parameters and GFLOPs of every row."""
from __future__ import annotations

import pytest

import cbam
from cbam.cli import main
from cbam.experiments.paper_tables import paper_rows
from cbam.models.profile import count_gmacs


@pytest.fixture(scope="module")
def rows():
    return paper_rows(stride_in_1x1=True)


def test_thirty_rows(rows):
    assert len(rows) == 30
    assert {r.table for r in rows} == {"4", "5"}


def test_every_parameter_row_matches(rows):
    bad = [(r.label, r.params, r.paper_params_m) for r in rows if not r.params_match]
    assert not bad


def test_every_gflops_row_matches(rows):
    bad = [(r.label, round(r.gmacs, 4), r.paper_gflops) for r in rows if not r.gflops_match]
    assert not bad


def test_cli_paper_tables_exit_code(rows, monkeypatch, capsys):
    import cbam.experiments.paper_tables as tables  # the CLI imports it when it runs

    monkeypatch.setattr(tables, "paper_rows", lambda stride_in_1x1: rows)
    assert main(["profile", "--paper-tables"]) == 0
    assert "30/30 rows match" in capsys.readouterr().out
    rows[0].paper_params_m += 1  # a mismatch must fail
    try:
        assert main(["profile", "--paper-tables"]) == 1
    finally:
        rows[0].paper_params_m -= 1


def test_v15_resnet50_counts_more_macs():
    # the paper counts ResNet "v1" (stride in 1x1); torchvision's v1.5 is known to be 4.09 GMACs
    assert round(count_gmacs(cbam.create_model("resnet50")), 2) == 4.09


def test_cli_profile(capsys):
    assert main(["profile", "--model", "resnet50", "--attention", "cbam", "--stride-in-1x1"]) == 0
    out = capsys.readouterr().out
    assert "28,089,608" in out and "3.864" in out
    assert main(["profile", "--model", "resnet50", "--attention", "nope"]) == 2
    assert "unknown attention" in capsys.readouterr().err
