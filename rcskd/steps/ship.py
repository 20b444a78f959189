"""The ship step: the pipeline hands the user the best student it trained, chosen on validation.

Every distilled student the pipeline made (RC-SKD's two-stage student, TKD-CA alone and every
baseline that ran, `ce_only`, fine-tuning without a teacher, included) is scored on the
validation split, in fp32 as deployed; the one with the highest validation accuracy is copied
to the shipped checkpoint (ties: higher balanced accuracy, then lower validation loss, then the
candidate listed first). The test split is never read here: `evaluate` reports every student
on test afterwards, each in its own row. When `ce_only` wins, no distillation helped on this
data and the summary says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rcskd.data.dataset import TensorSplit, load_meta, load_split
from rcskd.errors import ConfigError
from rcskd.models import load_checkpoint, save_checkpoint
from rcskd.roles import label, model_name
from rcskd.train import evaluate

NO_TEACHER = "ce_only"  # the fine-tune without a teacher: what distillation must beat
RULE = (
    "highest validation accuracy (fp32, as deployed); ties: balanced accuracy, then lower "
    "validation loss, then the first listed"
)


@dataclass
class ShipResult:
    """The choice: the shipped checkpoint and a JSON-ready summary of every candidate."""

    checkpoint: Path
    summary: dict[str, Any]


def candidate_paths(items: list[Path]) -> list[Path]:
    """Checkpoints as given; a folder stands for its *.pt files, in name order."""
    paths: list[Path] = []
    for item in items:
        paths += sorted(item.glob("*.pt")) if item.is_dir() else [item]
    return paths


def ship_best(prepared: str | Path, candidates: list[Path], model_out: str | Path) -> ShipResult:
    """Score each candidate on the validation split, copy the best to `model_out`."""
    if not candidates:
        raise ConfigError("ship: no candidate students (distillation stages produced none)")
    classes = load_meta(prepared)["classes"]
    val = TensorSplit(*load_split(prepared, "val"))  # validation only: never the test split
    rows = []
    for order, path in enumerate(candidates):
        checkpoint = load_checkpoint(path)
        checkpoint.require_classes(classes)
        scores = evaluate(checkpoint.model, val, checkpoint.require_inputs().preprocess)
        rows.append({"model": model_name(path), "label": label(model_name(path)),
                     "path": str(path), "order": order,
                     **{f"val_{k}": v for k, v in scores.items()}})  # fmt: skip
    best = max(rows, key=lambda r: (r["val_acc"], r["val_balanced_acc"], -r["val_loss"],
                                    -r["order"]))  # fmt: skip
    chosen = load_checkpoint(best["path"])
    provenance = {**chosen.provenance, "shipped_from": best["model"],
                  "shipped_val_acc": best["val_acc"], "shipped_rule": RULE}  # fmt: skip
    save_checkpoint(model_out, chosen.model, chosen.spec, chosen.require_inputs(), provenance)
    plain = next((r for r in rows if r["model"] == NO_TEACHER), None)
    summary = {
        "shipped": best["model"],
        "shipped_label": best["label"],
        "rule": RULE,
        "val_acc": best["val_acc"],
        "candidates": [{k: v for k, v in r.items() if k not in ("order", "path")} for r in rows],
        "verdict": verdict(best, plain),
    }
    return ShipResult(Path(model_out), summary)


def verdict(best: dict[str, Any], plain: dict[str, Any] | None) -> str:
    """One sentence for the user: which student ships and what distillation did."""
    if plain is None:
        return (
            f"Shipped {best['label']} (validation accuracy {best['val_acc']:.4f}); no "
            f"fine-tune without a teacher (`{NO_TEACHER}`) ran to compare with."
        )
    if best["model"] == NO_TEACHER:
        return (
            f"Shipped the student fine-tuned without a teacher (validation accuracy "
            f"{best['val_acc']:.4f}): no distillation method beat it on validation."
        )
    gain = best["val_acc"] - plain["val_acc"]
    return (
        f"Shipped {best['label']} (validation accuracy {best['val_acc']:.4f}), "
        f"{100 * gain:+.2f} points over fine-tuning without a teacher on validation."
    )
