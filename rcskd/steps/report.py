"""The report step: the run's outputs, read from the paths the stage is given, as one page.

Every file it reads is named by the caller (the DVC stage declares each); earlier runs for the
Pareto plot come from MLflow only when the caller passes them (`past_runs`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rcskd.data.dataset import load_meta, load_split
from rcskd.report.html import ReportInputs, build_report, pareto_points
from rcskd.roles import PRUNED, TEACHER


@dataclass(frozen=True)
class ReportSources:
    """The files a report is built from; all but `prepared` and `prepare_report` optional."""

    prepared: Path
    prepare_report: Path
    comparison: Path | None = None
    plots: Path | None = None
    search_log: Path | None = None
    ratios: Path | None = None
    curves: list[Path] = field(default_factory=list)  # CSV files, or folders of distill_*.csv


def curve_name(path: Path) -> str:
    """What the report calls a training curve file."""
    stem = path.stem
    if stem == f"{TEACHER.name}_curve":
        return TEACHER.name
    if stem == "prune_curve":
        return f"{PRUNED.name} (fine-tune)"
    return stem.removeprefix("distill_")


def _read_csv(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="") as fh:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _number(value: str) -> Any:
    try:
        return float(value)
    except ValueError:
        return value


def _curve_files(items: list[Path]) -> list[Path]:
    found: list[Path] = []
    for item in items:
        found += sorted(item.glob("distill_*.csv")) if item.is_dir() else [item]
    return [p for p in found if p.is_file()]


def load_inputs(
    sources: ReportSources, past_runs: list[dict[str, Any]] | None = None, per_class: int = 4
) -> ReportInputs:
    """Everything the page shows, read from `sources` (what exists of the optional ones)."""
    meta = load_meta(sources.prepared)
    images, labels = load_split(sources.prepared, "train")
    picked = [i for k in range(len(meta["classes"])) for i in
              (labels == k).nonzero().flatten()[:per_class].tolist()]  # fmt: skip
    comparison, selection = [], {}
    if sources.comparison and sources.comparison.is_file():
        evaluated = json.loads(sources.comparison.read_text())
        comparison, selection = evaluated["models"], evaluated.get("selection", {})
    figures = {}
    if sources.plots and sources.plots.is_dir():
        figures = {p.name: p.read_bytes() for p in sorted(sources.plots.glob("*.png"))}
    search = []
    if sources.search_log and sources.search_log.is_file():
        search = _read_csv(sources.search_log)
    ratios = {}
    if sources.ratios and sources.ratios.is_file():
        ratios = json.loads(sources.ratios.read_text())
    return ReportInputs(
        title=f"rcskd run on {meta['source']}",
        prepare=json.loads(sources.prepare_report.read_text()),
        sample_images=images[picked].float().mean(1).div(255.0).numpy(),
        sample_labels=labels[picked].tolist(),
        curves={curve_name(p): _read_csv(p) for p in _curve_files(sources.curves)},
        comparison=comparison,
        selection=selection,
        figures=figures,
        search=search,
        ratios=ratios,
        pareto=pareto_points(comparison, past_runs or []),
    )


def make_report(sources: ReportSources, past_runs: list[dict[str, Any]] | None = None) -> str:
    """The self-contained HTML page of a run."""
    return build_report(load_inputs(sources, past_runs))
