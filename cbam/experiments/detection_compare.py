"""Detectors with and without attention over several seeds: Table 6/7 rows with mean +- std and
paired differences with 95 % t-intervals (``cbam detect compare``).

Every (attention, seed) pair is one ``cbam detect train`` run in ``<out>/<attention>/seed<k>``; a
finished run (its ``results_<split>.json`` written, the same config) is reused and a killed one
resumes, so a comparison can be stopped, restarted or extended by more seeds. The output folder gets
``table.md`` (the table, then the paired differences), ``table.csv`` and ``differences.csv``.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine.checkpoint import find_last_checkpoint
from ..io.files import atomic_write, check_output_dir, read_json, write_csv
from ..io.model_folder import WEIGHTS_NAME
from ..nn.factory import attention_name, get_attention
from .config import DetectConfig, check_saved_config
from .paper_tables import detector_label
from .stats import comparison_pairs, format_mean_std, format_paired_differences, mean_std, paired_difference

__all__ = ["DetectorResult", "METRICS", "compare_detectors", "format_detector_differences", "format_detector_table"]

#: result key -> column title, in the order of the paper's Tables 6 and 7 (values in %).
METRICS = {"voc07_map": "mAP@.5 (VOC07)", "map": "mAP@[.5:.95]", "map_50": "mAP@.5", "map_75": "mAP@.75"}
#: the metrics whose paired differences are reported: Table 7's (VOC07) and Table 6's (COCO).
DIFFERENCE_METRICS = ("voc07_map", "map")
#: Config keys that do not change what a run computes; a finished run is reused whatever they are.
_RUNTIME_KEYS = ("workers", "out")


@dataclass
class DetectorResult:
    """One row: a detector with one attention variant over all seeds (test-split results, in %)."""

    backbone: str
    detector: str
    attention: str | None
    params: int
    runs: list[Path]
    metrics: dict[str, list[float]]  # METRICS key -> one value per seed, in %

    @property
    def label(self) -> str:
        return f"{self.backbone} {self.detector}"


def _run_one(cfg: DetectConfig, split: str, progress: bool) -> dict[str, Any]:
    """The result row of the run ``cfg`` describes: read when it has finished, trained (or resumed) otherwise."""
    from .detection import train  # the detection stack (torchvision detectors, pycocotools) only when training

    out = Path(cfg.out)
    check_saved_config(out, cfg, _RUNTIME_KEYS)
    results = out / f"results_{split}.json"
    if results.is_file() and (out / WEIGHTS_NAME).is_file():
        return read_json(results)
    return train(cfg, resume=find_last_checkpoint(out) is not None, progress=progress, eval_split=split)


def compare_detectors(cfg: DetectConfig, attentions: Sequence[str | None], seeds: Sequence[int], out: str | Path, *,
                      split: str = "test", progress: bool = True) -> list[DetectorResult]:
    """Train the detector of ``cfg`` with every attention and every seed, evaluate each on ``split``, and
    write ``table.md``, ``table.csv`` and ``differences.csv`` into ``out``.

    Args:
        cfg: the recipe (its ``attention``, ``seed`` and ``out`` are replaced per run).
        attentions: e.g. ``("none", "se", "cbam")``; the first is the baseline of the differences.
        seeds: one run per seed; the same seeds for every attention (the differences are paired).
        out: output folder.
    """
    if not seeds or len(set(seeds)) != len(seeds) or any(
            isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**32 for s in seeds):
        raise ValueError(f"--seeds: need distinct integers in [0, 2**32), got {list(seeds)}")
    names = [attention_name(a) for a in attentions]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"--attentions: need distinct names, got {list(attentions)}")
    for name in names:  # every name before the first run: an unknown one names the valid ones
        get_attention(name)
    out = check_output_dir(out)
    results = []
    for attention in names:  # "none" is None, as `cbam detect train --attention none` stores it
        runs, rows = [], []
        for seed in seeds:
            run_cfg = dataclasses.replace(cfg, attention=attention, seed=seed,
                                          out=str(out / (attention or "none") / f"seed{seed}"))
            rows.append(_run_one(run_cfg, split, progress))
            runs.append(Path(run_cfg.out))
        backbone, detector = detector_label(cfg.detector, cfg.backbone, attention)
        results.append(DetectorResult(backbone, detector, attention, rows[0]["params"], runs,
                                      {k: [100 * r[k] for r in rows] for k in METRICS}))
    if os.environ.get("RANK", "0") != "0":
        return results
    caption = (f"{cfg.detector} on {cfg.data}, {cfg.epochs} epoch{'s' if cfg.epochs != 1 else ''}, seeds "
               f"{', '.join(map(str, seeds))}: {split} split, mean +- sample std over seeds, in %.")
    markdown = "\n\n".join([caption, format_detector_table(results), format_detector_differences(results)]) + "\n"
    atomic_write(out / "table.md", lambda tmp: tmp.write_text(markdown))
    _write_csvs(out, results)
    return results


def format_detector_table(results: Sequence[DetectorResult]) -> str:
    """Table-6/7-style Markdown: backbone, detector, the four mAP columns (mean +- std, %), parameters (M)."""
    lines = ["| Backbone | Detector | " + " | ".join(METRICS.values()) + " | Params (M) |",
             "|---|---|" + "---:|" * (len(METRICS) + 1)]
    for r in results:
        cells = " | ".join(format_mean_std(r.metrics[k]) for k in METRICS)
        lines.append(f"| {r.backbone} | {r.detector} | {cells} | {r.params / 1e6:.2f} |")
    return "\n".join(lines)


def format_detector_differences(results: Sequence[DetectorResult]) -> str:
    """Paired differences A - B of VOC07 mAP@.5 and mAP@[.5:.95] (points) with 95 % t-intervals over seeds."""
    columns = {METRICS[k]: (lambda r, k=k: r.metrics[k]) for k in DIFFERENCE_METRICS}
    return format_paired_differences(results, lambda r: r.label, columns, what="mAP", higher_is_better=True)


def _write_csvs(out: Path, results: Sequence[DetectorResult]) -> None:
    header = ["backbone", "detector", "attention", "params", "seeds"]
    for k in METRICS:
        header += [f"{k}_mean", f"{k}_std", f"{k}_per_seed"]
    rows = []
    for r in results:
        row: list[Any] = [r.backbone, r.detector, r.attention or "none", r.params, len(r.runs)]
        for k in METRICS:
            mean, std = mean_std(r.metrics[k])
            row += [f"{mean:.4f}", "" if std is None else f"{std:.4f}", " ".join(f"{v:.2f}" for v in r.metrics[k])]
        rows.append(row)
    write_csv(out / "table.csv", [header, *rows])
    differences = [["a", "b", "metric", "difference", "ci95_low", "ci95_high", "seeds"]]
    for a, b in comparison_pairs(results):
        for k in DIFFERENCE_METRICS:
            d = paired_difference(a.metrics[k], b.metrics[k])
            differences.append([a.attention or "none", b.attention or "none", k, f"{d.mean:.4f}",
                                "" if d.low is None else f"{d.low:.4f}", "" if d.high is None else f"{d.high:.4f}", d.n])
    write_csv(out / "differences.csv", differences)
