"""The run's story as one self-contained HTML page (every image embedded as a data URI).

Sections (each an element with a stable id, which tests and the screenshot check rely on):
data, curves, search, comparison, confusion, calibration, gradcam, pareto.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rcskd.report.plots import (
    curves_figure,
    pareto_figure,
    png_bytes,
    ratios_figure,
    samples_figure,
    search_figure,
)
from rcskd.roles import LAST, PRUNED, ROLES, STUDENT, label

SECTIONS = (
    "data",
    "curves",
    "search",
    "comparison",
    "confusion",
    "calibration",
    "gradcam",
    "pareto",
)
# models whose per-model figures the report shows, in this order (those that exist)
SHOWN = tuple(role.name for role in ROLES)

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{margin-bottom:0}.sub{color:#666;margin-top:.2em}section{margin:2em 0;border-top:1px solid #ddd}
table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:right}td:first-child,th:first-child{text-align:left}tr.rcskd{background:#eef6ee}
tr.shipped{background:#d8ecff;font-weight:600}
img{max-width:100%;margin:.3em 0}.grid{display:flex;flex-wrap:wrap;gap:1em}
.grid figure{margin:0}figcaption{font-size:13px;color:#555}.note{color:#666;font-size:13px}
"""


@dataclass
class ReportInputs:
    """Everything the page shows, already loaded."""

    title: str
    prepare: dict[str, Any]
    sample_images: np.ndarray  # N x H x W, float in [0, 1]
    sample_labels: list[int]
    curves: dict[str, list[dict[str, float]]]
    comparison: list[dict[str, Any]]
    figures: dict[str, bytes]  # evaluate-stage PNGs by file name
    search: list[dict[str, Any]] = field(default_factory=list)
    ratios: dict[str, Any] = field(default_factory=dict)
    pareto: list[dict[str, Any]] = field(default_factory=list)
    selection: dict[str, Any] = field(default_factory=dict)  # the ship stage's choice


def _img(data: bytes, alt: str) -> str:
    encoded = base64.b64encode(data).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _figure(data: bytes, caption: str) -> str:
    return f"<figure>{_img(data, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>"


def pareto_points(comparison: list[dict[str, Any]], past_runs: list[dict[str, Any]]) -> list[dict]:
    """This run's models plus the students of earlier runs / DVC experiments (from MLflow)."""
    points = [
        {"params": r["params"], "latency_ms": r.get("latency_ms", {}).get("b1"), "acc": r["acc"],
         "label": r["model"], "group": "this run"}
        for r in comparison
    ]  # fmt: skip
    seen = {(p["params"], round(p["acc"], 6)) for p in points}
    for run in past_runs:
        m = run["metrics"]
        for model in (STUDENT.name, PRUNED.name):
            if f"{model}.acc" not in m or f"{model}.params" not in m:
                continue
            key = (int(m[f"{model}.params"]), round(m[f"{model}.acc"], 6))
            if key in seen:
                continue
            seen.add(key)
            name = run["dvc_exp"] or f"commit {run['git_commit'][:7]}"
            points.append({"params": key[0], "acc": key[1], "label": f"{name}:{model}",
                           "latency_ms": m.get(f"{model}.latency_b1_ms"),
                           "group": f"earlier {model}"})  # fmt: skip
    return points


def _data_section(inp: ReportInputs) -> str:
    p = inp.prepare
    classes = p["classes"]
    rows = "".join(
        f"<tr><td>{s}</td>" + "".join(f"<td>{p['counts'][s].get(c, 0)}</td>" for c in classes)
        + f"<td>{p['counts'][s]['total']}</td></tr>"
        for s in ("train", "val", "test")
    )  # fmt: skip
    dd = p.get("duplicates", {})
    split = "patient-level" if p.get("patient_level_split") else "image-level (no patient ids)"
    fig = png_bytes(samples_figure(inp.sample_images, inp.sample_labels, classes))
    return (
        f"<p>Source <b>{html.escape(p['source'])}</b>: {p['images_read']} images read, "
        f"{p['images_kept']} kept; split {split}; leakage check {p.get('leakage_check')}. "
        f"Cross-split duplicates removed from train: {dd.get('removed_exact', 0)} exact, "
        f"{dd.get('removed_near', 0)} near ({dd.get('exact_groups_cross_split', 0)} exact and "
        f"{dd.get('near_groups_cross_split', 0)} near groups found across splits).</p>"
        "<table><tr><th>split</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in classes)
        + f"<th>total</th></tr>{rows}</table>" + _figure(fig, "training images per class")
    )  # fmt: skip


def _comparison_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p class=note>No comparison yet: run the evaluate stage.</p>"
    batches = sorted({b for r in rows for b in r["latency_ms"]}, key=lambda b: int(b[1:]))
    head = ["model", "accuracy (95% CI)", "balanced acc", "macro-F1", "params", "FLOPs"]
    head += [f"latency {b} (ms)" for b in batches]
    out = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for r in rows:
        low, high = r["acc_ci95"]
        klass = ' class="rcskd"' if r["model"] in {role.name for role in LAST} else ""
        klass = ' class="shipped"' if r.get("shipped") else klass
        name = r["label"] + (" (shipped)" if r.get("shipped") else "")
        cells = [html.escape(name), f"{r['acc']:.3f} ({low:.3f}-{high:.3f})",
                 f"{r['balanced_acc']:.3f}", f"{r['macro_f1']:.3f}",
                 f"{r['params'] / 1e6:.3f} M ({r.get('params_ratio', 1):.2f}x)",
                 f"{r['flops'] / 1e6:.1f} M ({r.get('flops_ratio', 1):.2f}x)"]  # fmt: skip
        cells += [f"{r['latency_ms'].get(b, float('nan')):.2f}" for b in batches]
        out.append(f"<tr{klass}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "".join(out) + "</table>"


def _shipped_note(selection: dict[str, Any]) -> str:
    """Which student the pipeline ships and why (chosen on validation, never on test)."""
    if not selection:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(c['label'])}</td><td>{c['val_acc']:.4f}</td></tr>"
        for c in selection.get("candidates", [])
    )
    return (
        f"<p><b>{html.escape(selection['verdict'])}</b> Rule: {html.escape(selection['rule'])}."
        "</p><details><summary>validation accuracy of every candidate</summary><table><tr>"
        f"<th>student</th><th>validation acc</th></tr>{rows}</table></details>"
    )


def _per_model(inp: ReportInputs, kind: str) -> str:
    parts = [
        _figure(inp.figures[f"{m}_{kind}.png"], label(m))
        for m in SHOWN
        if f"{m}_{kind}.png" in inp.figures
    ]
    return f"<div class=grid>{''.join(parts)}</div>" if parts else "<p class=note>none yet</p>"


def build_report(inp: ReportInputs) -> str:
    """The HTML page."""
    curves = "".join(
        _figure(png_bytes(curves_figure(rows, name)), f"{name}: loss and accuracy per epoch")
        for name, rows in inp.curves.items()
        if rows
    )
    search = ""
    if inp.search:
        search += _figure(png_bytes(search_figure(inp.search)), "search curves")
    if inp.ratios.get("chosen"):
        fig = ratios_figure(inp.ratios["chosen"], inp.ratios.get("uniform"))
        search += _figure(png_bytes(fig), "chosen ratio per block against uniform pruning")
    pareto = (
        _figure(png_bytes(pareto_figure(inp.pareto)), "test accuracy against parameters")
        + _figure(
            png_bytes(pareto_figure(inp.pareto, "latency_ms")),
            "test accuracy against CPU latency at batch 1 (PyTorch eager for checkpoints, "
            "onnxruntime for the INT8 student)",
        )
        if inp.pareto
        else "<p class=note>no evaluated models yet</p>"
    )
    body = {
        "data": ("Data", _data_section(inp)),
        "curves": ("Training curves", curves or "<p class=note>none yet</p>"),
        "search": ("LPB-RL pruning search", search or "<p class=note>no search log</p>"),
        "comparison": (
            "Comparison on the test split",
            _shipped_note(inp.selection) + _comparison_table(inp.comparison),
        ),
        "confusion": ("Confusion matrices", _per_model(inp, "confusion")),
        "calibration": ("Reliability diagrams", _per_model(inp, "reliability")),
        "gradcam": ("Grad-CAM (same test images for every model)", _per_model(inp, "gradcam")),
        "pareto": ("Accuracy against size and latency (this run and earlier runs)", pareto),
    }
    sections = "".join(
        f'<section id="{key}"><h2>{title}</h2>{content}</section>'
        for key, (title, content) in body.items()
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(inp.title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(inp.title)}</h1><p class=sub>RC-SKD: LPB-RL pruning, TKD-CA and "
        "DKD-SG distillation. Research use only; not for diagnosis.</p>"
        f"{sections}</body></html>"
    )
