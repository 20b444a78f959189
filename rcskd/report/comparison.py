"""The comparison table of every evaluated model: teacher, pruned, baselines, TKD-CA, RC-SKD."""

from __future__ import annotations

from typing import Any

from rcskd.roles import FIRST, LAST, TEACHER, label


def comparison_rows(reports: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per model (evaluate reports by name): accuracy (95% CI), F1, size, latency.

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
            r["label"],
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
