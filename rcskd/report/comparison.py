"""The comparison table of every evaluated model: teacher, pruned, baselines, TKD-CA, RC-SKD."""

from __future__ import annotations

from typing import Any

from rcskd.roles import FIRST, LAST, PRUNED, SHIPPED, TEACHER, label


def comparison_rows(
    reports: dict[str, dict[str, Any]], shipped: str | None = None
) -> list[dict[str, Any]]:
    """One row per model (evaluate reports by name): accuracy (95% CI), F1, size, latency;
    the row of the `shipped` model (the ship stage's choice on validation) says so.

    Order: teacher and pruned model first, the baselines in the given order, RC-SKD last.
    """
    first, last = [r.name for r in FIRST], [r.name for r in LAST]
    names = [n for n in first if n in reports]
    names += [n for n in reports if n not in first and n not in last]
    names += [n for n in last if n in reports]
    teacher = reports.get(TEACHER.name)
    rows = []
    for name in names:
        m = reports[name]
        row = {
            "model": name,
            "label": label(name),
            "acc": m["acc"],
            "acc_ci95": list(m["acc_ci95"]),
            "balanced_acc": m["balanced_acc"],
            "macro_f1": m["macro_f1"],
            "params": m["params"],
            "flops": m["flops"],
            "latency_ms": dict(m["latency_ms"]),
            "shipped": name == shipped,
        }
        if teacher:
            row["params_ratio"] = m["params"] / teacher["params"]
            row["flops_ratio"] = m["flops"] / teacher["flops"]
        rows.append(row)
    return rows


def comparison_markdown(rows: list[dict[str, Any]], note: str = "") -> str:
    """The rows as a Markdown table (accuracy and macro-F1 in %, params in M, FLOPs in M)."""
    batches = sorted({b for r in rows for b in r["latency_ms"]}, key=lambda b: int(b.lstrip("b")))
    head = [
        "model",
        "accuracy % (95% CI)",
        "balanced acc %",
        "macro-F1 %",
        "params (M)",
        "FLOPs (M)",
    ]
    head += [f"latency {b} (ms)" for b in batches]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        ratio = f" ({r['params_ratio']:.2f}x)" if "params_ratio" in r else ""
        flops = f" ({r['flops_ratio']:.2f}x)" if "flops_ratio" in r else ""
        low, high = r["acc_ci95"]
        cells = [
            r["label"] + (" **(shipped)**" if r.get("shipped") else ""),
            f"{100 * r['acc']:.1f} ({100 * low:.1f}-{100 * high:.1f})",
            f"{100 * r['balanced_acc']:.1f}",
            f"{100 * r['macro_f1']:.1f}",
            f"{r['params'] / 1e6:.3f}{ratio}",
            f"{r['flops'] / 1e6:.1f}{flops}",
        ]
        cells += [f"{r['latency_ms'].get(b, float('nan')):.2f}" for b in batches]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    return (note.rstrip() + "\n\n" + text) if note else text


# The models `dvc exp show` compares (the DVC metrics file); every model is in metrics.json.
# `shipped` is the row of the student the ship stage chose (whichever method made it).
HEADLINE_ROLES = (TEACHER, PRUNED, SHIPPED)
# metric -> (row value, digits): short names keep `dvc exp show` columns narrow
HEADLINE_METRICS = {
    "acc": (lambda r: r["acc"], 4),
    "bal_acc": (lambda r: r["balanced_acc"], 4),
    "macro_f1": (lambda r: r["macro_f1"], 4),
    "params_M": (lambda r: r["params"] / 1e6, 3),
    "MFLOPs": (lambda r: r["flops"] / 1e6, 1),
    "ms_b1": (lambda r: r["latency_ms"].get("b1"), 2),
}


def headline_metrics(
    rows: list[dict[str, Any]], budget: float, shipped: str | None = None
) -> dict[str, Any]:
    """What an experiment is compared on: the prune budget, which student shipped, its
    achieved ratios (params and FLOPs of the teacher's), then each headline metric of teacher,
    pruned model and shipped student, grouped by metric so that columns read `acc.teacher`,
    `acc.shipped`. A metric a model lacks (e.g. latency at batch 1) is left out."""
    by_name = {r["model"]: r for r in rows}
    if shipped in by_name:
        by_name[SHIPPED.name] = by_name[shipped]
    out: dict[str, Any] = {"budget": budget}
    if shipped is not None:
        out["shipped"] = shipped
    student = by_name.get(SHIPPED.name)
    if student and "params_ratio" in student:
        out["achieved"] = {"params": round(student["params_ratio"], 4),
                           "flops": round(student["flops_ratio"], 4)}  # fmt: skip
    for metric, (get, digits) in HEADLINE_METRICS.items():
        values = {}
        for role in HEADLINE_ROLES:
            row = by_name.get(role.name)
            value = get(row) if row else None
            if value is not None:
                values[role.name] = round(float(value), digits)
        if values:
            out[metric] = values
    return out
