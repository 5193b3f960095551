"""The paper's comparison tables (Tables 1-4) and error curves (Fig. 4) from real training runs.

:func:`compare` trains one backbone with several attention modules and seeds through
:func:`cbam.experiments.classification.train`, one run directory per (attention, seed):
``out/<attention>/seed<k>/``. Finished runs are reused and interrupted ones resumed, so a
comparison can be stopped and restarted. It writes ``table.md`` (the table, then the paired
differences between rows with 95 % t-intervals over seeds), ``table.csv``, ``differences.csv`` and
``curves.png`` to ``out``.

More per-model tables can be appended (e.g. Grad-CAM localisation scores): pass ``extras``,
functions that receive ``{row label: [run dirs of its seeds]}`` and return a Markdown table, or
register one by name in :data:`COMPARE_EXTRAS` so ``cbam compare --extra NAME`` finds it.
"""
from __future__ import annotations

import dataclasses
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .._optional import require
from ..data import check_data
from ..engine.checkpoint import find_last_checkpoint
from ..engine.loop import read_metrics
from ..io.files import atomic_write, check_output_dir, write_csv
from ..io.model_folder import WEIGHTS_NAME, read_model_folder
from ..models.labels import row_label
from ..models.profile import count_gmacs, count_params
from ..nn.factory import attention_name
from .classification import build_model, train
from .config import TrainConfig, check_config, check_saved_config
from .stats import comparison_pairs, format_mean_std, format_paired_differences, mean_std, paired_difference

__all__ = ["ABLATIONS", "ABLATION_TITLES", "COMPARE_EXTRAS", "ModelResult", "compare", "format_differences",
           "format_table", "plot_curves"]

#: The attention variants of the paper's ablation Tables 1-3 (sec. 4.1), in the paper's row order.
ABLATIONS: dict[int, tuple[str, ...]] = {
    1: ("none", "channel_avg", "channel_max", "channel"),
    2: ("channel_avg", "channel", "cbam_conv1x1_k3", "cbam_conv1x1_k7", "cbam_pool_k3", "cbam_pool_k7"),
    3: ("channel_avg", "cbam_channel_first", "cbam_spatial_first", "cbam_parallel"),
}
ABLATION_TITLES: dict[int, str] = {
    1: "Table 1: channel attention, by pooling",
    2: "Table 2: spatial attention after the channel module, by descriptor and kernel size",
    3: "Table 3: arranging channel and spatial attention",
}
#: name -> function({row label: [run dirs]}) -> Markdown, for ``cbam compare --extra NAME``.
COMPARE_EXTRAS: dict[str, Callable[[Mapping[str, list[Path]]], str]] = {}


def _localization(runs: Mapping[str, list[Path]]) -> str:
    from ..viz.localization import compare_extra  # imported when used: it needs the viz extra

    return compare_extra(runs)


COMPARE_EXTRAS["localization"] = _localization


@dataclass
class ModelResult:
    """One row: a model with one attention variant, over all seeds (final-epoch validation errors)."""

    label: str
    attention: str
    params: int
    gmacs: float
    runs: list[Path]
    top1: list[float]
    top5: list[float]
    curves: list[list[dict]]  # per seed: the metrics.jsonl records


#: Config keys that do not change what a run computes; a finished run is reused whatever they are.
_RUNTIME_KEYS = ("workers", "threads", "out")


def _run_one(cfg: TrainConfig, progress: bool) -> Path:
    out = Path(cfg.out)
    check_saved_config(out, cfg, _RUNTIME_KEYS)
    records = read_metrics(out)
    if (out / WEIGHTS_NAME).is_file() and len(records) >= cfg.epochs:
        return out
    return train(cfg, resume=find_last_checkpoint(out) is not None, progress=progress)


def compare(
    cfg: TrainConfig,
    attentions: Sequence[str],
    seeds: Sequence[int],
    out: str | Path,
    *,
    title: str = "",
    progress: bool = True,
    extras: Sequence[Callable[[Mapping[str, list[Path]]], str]] = (),
) -> list[ModelResult]:
    """Train ``cfg`` with every attention in ``attentions`` and every seed; write the table and curves.

    Args:
        cfg: the recipe (its ``attention``, ``seed`` and ``out`` are replaced per run).
        attentions: e.g. ``("none", "se", "cbam")`` (Table 4) or ``ABLATIONS[k]``.
        seeds: one run per seed; the table reports mean +- sample standard deviation, and the paired
            differences between rows with 95 % t-intervals over seeds (:mod:`.stats`).
        out: output directory.
        title: first line of ``table.md``.
        extras: functions appending per-model Markdown tables (see the module docstring).
    """
    out = check_output_dir(out)
    for attention in attentions:  # every run's config, the data and the output, before the first step
        for seed in seeds:
            check_config(dataclasses.replace(cfg, attention=attention_name(attention), seed=seed))
    check_data(cfg.data)
    results = []
    for attention in attentions:
        runs = [_run_one(dataclasses.replace(cfg, attention=attention_name(attention), seed=seed,
                                             out=str(out / attention / f"seed{seed}")), progress)
                for seed in seeds]
        curves = [read_metrics(r) for r in runs]
        num_classes = read_model_folder(runs[0]).config["num_classes"]
        model = build_model(dataclasses.replace(cfg, attention=attention_name(attention)),
                            num_classes)
        results.append(ModelResult(
            row_label(cfg.model, attention), attention, count_params(model),
            count_gmacs(model, (3, cfg.image_size, cfg.image_size)), runs,
            [c[-1]["val_top1_err"] for c in curves], [c[-1]["val_top5_err"] for c in curves], curves))
    if os.environ.get("RANK", "0") != "0":
        return results
    caption = (f"{cfg.model} {cfg.model_kwargs or ''} on {cfg.data}, {cfg.epochs} epoch{'s' if cfg.epochs != 1 else ''}, "
               f"seeds {', '.join(map(str, seeds))}: validation error of the last epoch, single crop, "
               f"mean +- std over seeds; GFLOPs = multiply-accumulates at 1 x 3 x {cfg.image_size} x {cfg.image_size}.")
    markdown = "\n\n".join(filter(None, [f"## {title}" if title else "", caption, format_table(results),
                                         format_differences(results)]
                                 + [extra({r.label: r.runs for r in results}) for extra in extras])) + "\n"
    atomic_write(out / "table.md", lambda tmp: tmp.write_text(markdown))
    _write_csv(out / "table.csv", results)
    plot_curves(results, out / "curves.png", title=title or row_label(cfg.model, None))
    return results


def format_table(results: Sequence[ModelResult]) -> str:
    """Table-4-style Markdown: architecture, parameters, GFLOPs, top-1 and top-5 error (mean +- std)."""
    lines = ["| Architecture | Params (M) | GFLOPs | Top-1 err (%) | Top-5 err (%) |", "|---|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.label} | {r.params / 1e6:.3f} | {r.gmacs:.4f} | {format_mean_std(r.top1)} | "
                     f"{format_mean_std(r.top5)} |")
    return "\n".join(lines)


def format_differences(results: Sequence[ModelResult]) -> str:
    """Paired top-1 differences (A - B, percentage points) with 95 % Student-t intervals over seeds."""
    return format_paired_differences(results, lambda r: r.label, {"Top-1 err difference": lambda r: r.top1},
                                     what="top-1 error", higher_is_better=False)


def _write_csv(path: Path, results: Sequence[ModelResult]) -> None:
    header = ["architecture", "attention", "params", "gflops", "top1_err_mean", "top1_err_std", "top5_err_mean",
              "top5_err_std", "seeds", "top1_err_per_seed", "top5_err_per_seed"]
    rows = []
    for r in results:
        (m1, s1), (m5, s5) = mean_std(r.top1), mean_std(r.top5)
        rows.append([r.label, r.attention, r.params, f"{r.gmacs:.6f}", f"{m1:.4f}", _number(s1), f"{m5:.4f}",
                     _number(s5), len(r.runs), " ".join(f"{v:.2f}" for v in r.top1),
                     " ".join(f"{v:.2f}" for v in r.top5)])

    write_csv(path, [header, *rows])
    differences = [["a", "b", "top1_err_difference", "ci95_low", "ci95_high", "seeds"]]
    for a, b in comparison_pairs(results):
        d = paired_difference(a.top1, b.top1)
        differences.append([a.attention, b.attention, f"{d.mean:.4f}", _number(d.low), _number(d.high), d.n])
    write_csv(path.with_name("differences.csv"), differences)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def plot_curves(results: Sequence[ModelResult], path: str | Path, title: str = "") -> Path:
    """Fig. 4: top-1 error per epoch, training (dashed) and validation (solid), mean over seeds."""
    require("matplotlib", "train", "the error curves").use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, r in enumerate(results):
        color = f"C{i}"
        epochs = [rec["epoch"] for rec in r.curves[0]]
        for key, style, name in (("train_top1_err", "--", "train"), ("val_top1_err", "-", "val")):
            ys = [statistics.fmean(c[j][key] for c in r.curves) for j in range(len(epochs))]
            ax.plot(epochs, ys, style, color=color, label=f"{r.label} ({name})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("top-1 error (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120))
    plt.close(fig)
    return path
