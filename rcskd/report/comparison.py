"""The comparison table of every evaluated model: teacher, pruned, baselines, TKD-CA, RC-SKD."""

from __future__ import annotations

from typing import Any

# Checkpoint stem -> what the table calls it; anything else (a baseline) keeps its method name.
LABELS = {
    "teacher": "teacher",
    "pruned": "pruned (LPB-RL + CE fine-tune)",
    "ce_only": "ce_only (no teacher)",
    "student_tkd": "TKD-CA",
    "student": "RC-SKD (TKD-CA -> DKD-SG)",
}
# Table order: reference models first, RC-SKD's own students last.
_FIRST = ("teacher", "pruned", "ce_only")
_LAST = ("student_tkd", "student")


def comparison_rows(metrics: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per model with accuracy (95% CI), macro-F1, size, FLOPs and latency."""
    names = [n for n in _FIRST if n in metrics]
    names += [n for n in metrics if n not in _FIRST and n not in _LAST]
    names += [n for n in _LAST if n in metrics]
    teacher = metrics.get("teacher")
    rows = []
    for name in names:
        m = metrics[name]
        row = {
            "model": name,
            "label": LABELS.get(name, name),
            "acc": m["acc"],
            "acc_ci95": [m["acc_ci95_low"], m["acc_ci95_high"]],
            "balanced_acc": m["balanced_acc"],
            "macro_f1": m["macro_f1"],
            "params": m["params"],
            "flops": m["flops"],
            "latency_ms": {
                k[len("latency_") : -3]: v for k, v in m.items() if k.startswith("latency_")
            },
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
