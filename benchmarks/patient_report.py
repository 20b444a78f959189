"""Reading of the patient benchmark's runs (benchmarks/patient_brain4.py): the summary per
(method, budget, epochs, start), paired intervals at the longest length, the length worth its
time (validation only), the issue's goals, and the Markdown page."""

from __future__ import annotations

from typing import Any

import numpy as np
from bench_common import mean_std, paired_interval

# a 4x longer schedule is worth its time when it cuts the best method's validation
# cross-entropy by at least a tenth. Cross-entropy, not accuracy: validation accuracy saturates
# near 0.99 on Brain-4 (~7 of ~700 images wrong), where one image is 0.14 points
WORTH_CUT = 0.10


def longest_complete(rows: list[dict[str, Any]]) -> int:
    """The longest length every method of `rows` (one budget and start) has reached, so that a
    comparison is never made while a length is half done."""
    methods = {r["method"] for r in rows}
    return max(e for e in {r["epochs"] for r in rows}
               if {r["method"] for r in rows if r["epochs"] == e} == methods)  # fmt: skip


def _correct(rows: list[dict[str, Any]], method: str, seeds: list[int]) -> np.ndarray:
    """Per-image correctness of `method`, averaged over `seeds`."""
    mine = [r for r in rows if r["method"] == method and r["seed"] in seeds]
    return np.mean([[int(c) for c in r["test_correct"]] for r in mine], 0)


def summarise(results: dict[str, Any]) -> None:
    """The `summary` list (one entry per method, budget, epochs, start) and paired intervals
    at each budget's longest length (per-image correctness averaged over the seeds both sides
    of a pair have)."""
    runs = results["runs"]
    keys = sorted({(r["budget"], r["method"], r["epochs"], r["start"]) for r in runs})
    summary = []
    for budget, method, epochs, kind in keys:
        mine = [r for r in runs if (r["budget"], r["method"], r["epochs"], r["start"]) ==
                (budget, method, epochs, kind)]  # fmt: skip
        mean, std = mean_std([r["test_acc"] for r in mine])
        summary.append({"method": method, "budget": budget, "params_M": mine[0]["params_M"],
                        "epochs": epochs, "n_seeds": len(mine), "test_acc_mean": mean,
                        "test_acc_std": std, "start": kind,
                        "val_acc_mean": mean_std([r["val_acc"] for r in mine])[0]})  # fmt: skip
        if all("val_loss" in r for r in mine):
            summary[-1]["val_loss_mean"] = mean_std([r["val_loss"] for r in mine])[0]
    results["summary"] = summary
    paired: dict[str, dict[str, Any]] = {}
    for budget in sorted({r["budget"] for r in runs}):
        mine = [r for r in runs if r["budget"] == budget and r["start"] == "ddpg"]
        longest = longest_complete(mine)
        at = [r for r in mine if r["epochs"] == longest]
        for ref in ("ce_only", "kd"):
            for method in sorted({r["method"] for r in at} - {ref, "ce_only"}):
                # each pair on the seeds both sides have, so a method whose third seed has
                # landed is compared over three while another pair still waits for it
                seeds = sorted({r["seed"] for r in at if r["method"] == method}
                               & {r["seed"] for r in at if r["method"] == ref})  # fmt: skip
                if not seeds:
                    continue
                diff, ci = paired_interval(_correct(at, method, seeds), _correct(at, ref, seeds))
                paired.setdefault(str(budget), {})[f"{method}-{ref}"] = {
                    "mean_diff": diff, "ci95": ci, "epochs": longest, "seeds": seeds,
                }  # fmt: skip
    results["paired"] = paired


def worth_length(results: dict[str, Any]) -> dict[str, Any] | None:
    """The distillation length worth its time, chosen on validation only: at the smallest
    budget, among the lengths every method has finished (DDPG start), the longest reached by
    steps that each cut the best method's mean validation cross-entropy (fp32, the saved
    model) by >= WORTH_CUT of its value."""
    rows = [r for r in results.get("summary", []) if r["start"] == "ddpg"]
    if not rows:
        return None
    budget = min(r["budget"] for r in rows)
    methods = {r["method"] for r in rows if r["budget"] == budget}
    best = {}
    for epochs in sorted({r["epochs"] for r in rows if r["budget"] == budget}):
        at = [r for r in rows if (r["budget"], r["epochs"]) == (budget, epochs)]
        if {r["method"] for r in at if "val_loss_mean" in r} == methods:
            best[epochs] = min(r["val_loss_mean"] for r in at)
    if not best:
        return None
    lengths = sorted(best)
    chosen = lengths[0]
    for epochs in lengths[1:]:
        if best[chosen] - best[epochs] < WORTH_CUT * best[chosen]:
            break
        chosen = epochs
    # when the rule never stopped, the longest length measured was itself worth its time, so an
    # even longer run may pay too: say so rather than call the length final
    still_falling = chosen == lengths[-1] and len(lengths) > 1
    return {
        "epochs": chosen,
        "budget": budget,
        "best_val_loss": best,
        "min_cut": WORTH_CUT,
        "still_falling": still_falling,
    }


def curve_lines(results: dict[str, Any]) -> list[str]:
    """Test (validation) accuracy after selected epochs of each method's run at its budget's
    longest length: the lowest seed whose curve is whole (a run resumed before curves were
    kept has none). Measured in the training dtype at each epoch's end, observed, never used to
    choose; the tables above score the saved (validation-best) model in fp32."""
    runs = [r for r in results.get("runs", []) if r["start"] == "ddpg"]
    lines: list[str] = []
    for budget in sorted({r["budget"] for r in runs}):
        longest = max(r["epochs"] for r in runs if r["budget"] == budget)
        whole = sorted((r for r in runs if (r["budget"], r["epochs"]) == (budget, longest)
                        and len(r.get("curve", [])) == longest),
                       key=lambda r: (r["method"], r["seed"]))  # fmt: skip
        chosen = {r["method"]: r for r in reversed(whole)}  # the lowest seed wins
        if not chosen:
            continue
        marks = [e for e in (1, 2, 4, 8, 16, 32, 48, 64, 128, 256) if e <= longest]
        lines += ["", f"Per-epoch curves at budget {budget}, one {longest}-epoch run per method: "
                  "test accuracy (validation accuracy) at the end of the epoch:", "",
                  "| method | seed | " + " | ".join(f"epoch {e}" for e in marks) + " |",
                  "|---|---|" + "---|" * len(marks)]  # fmt: skip
        for method, run in sorted(chosen.items()):
            at = {row["epoch"]: row for row in run["curve"]}
            cells = [f"{at[e]['test_acc']:.4f} ({at[e]['val_acc']:.4f})" for e in marks]
            lines.append(f"| {method} | {run['seed']} | " + " | ".join(cells) + " |")
    return lines


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Patient distillation (brain4-64): test accuracy against epochs",
        "",
        f"Teacher (chosen recipe `{results.get('teacher_recipe')}`): test accuracy "
        f"{results.get('teacher_test_acc', float('nan')):.4f}. "
        f"Split: {results['provenance']['split']}; test = 1,311 images.",
        "Same start per budget, optimizer, epochs and seeds for every method; mean +- std over "
        "seeds (n). `benchmarks/patient_brain4.py`.",
        "",
    ]
    rows = results["summary"]
    lengths = sorted({r["epochs"] for r in rows})
    head = " | ".join(f"{e} epochs" for e in lengths)
    lines += [f"| budget | params (M) | method | start | {head} |",
              "|---|---|---|---|" + "---|" * len(lengths)]  # fmt: skip
    for budget in sorted({r["budget"] for r in rows}):
        for method, kind in dict.fromkeys((r["method"], r["start"]) for r in rows
                                          if r["budget"] == budget):  # fmt: skip
            cells = []
            for e in lengths:
                hit = [r for r in rows if (r["budget"], r["method"], r["start"], r["epochs"]) ==
                       (budget, method, kind, e)]  # fmt: skip
                cells.append(f"{hit[0]['test_acc_mean']:.4f} +- {hit[0]['test_acc_std']:.4f} "
                             f"({hit[0]['n_seeds']})" if hit else "-")  # fmt: skip
            params = next(r["params_M"] for r in rows if r["budget"] == budget)
            lines.append(f"| {budget} | {params:.3f} | {method} | {kind} | " + " | ".join(cells)
                         + " |")  # fmt: skip
    starts = sorted({(r["budget"], r["start"], r["start_test_acc"]) for r in results["runs"]})
    text = "; ".join(f"budget {b} {kind} {acc:.4f}" for b, kind, acc in starts)
    lines += ["", f"Pruned starts (test accuracy before distillation): {text}."]
    worth = results.get("worth_length")
    if worth:
        vals = ", ".join(f"{e} epochs {v:.4f}" for e, v in worth["best_val_loss"].items())
        lines += ["", f"Length worth its time (chosen on validation; `make brain4` uses it): "
                  f"**{worth['epochs']} epochs**. Best method's validation cross-entropy at "
                  f"budget {worth['budget']}: {vals}; a 4x longer run must cut it by >= "
                  f"{100 * worth['min_cut']:.0f}%."]  # fmt: skip
        if worth.get("still_falling"):
            lines[-1] += (
                " The curve still falls at the longest length measured, so a longer "
                "schedule may pay as well; longer lengths have not been run."
            )
    lines += goal_lines(results)
    lines += curve_lines(results)
    lines += [
        "",
        "Paired 95% bootstrap intervals at the longest length every method has reached (points):",
        "",
        "| budget | difference | epochs | seeds | mean (95% CI) |",
        "|---|---|---|---|---|",
    ]
    for budget, pairs in results.get("paired", {}).items():
        for key, p in pairs.items():
            lo, hi = p["ci95"]
            lines.append(
                f"| {budget} | {key} | {p['epochs']} | {len(p['seeds'])} | "
                f"{100 * p['mean_diff']:+.2f} ({100 * lo:+.2f} to {100 * hi:+.2f}) |"
            )
    return "\n".join(lines) + "\n"


# the goals: a student of at most 0.6M parameters at >= 95.0% test accuracy as a 3-seed
# mean (the outside VGG16, 16.4M parameters, scores 93.1% on these images)
GOAL_PARAMS_M, GOAL_ACC, GOAL_SEEDS = 0.6, 0.95, 3


def goals(results: dict[str, Any]) -> dict[str, Any]:
    """Where the benchmark stands on its goals, read from the summary and paired intervals:
    `small` (best <= GOAL_PARAMS_M student, GOAL_SEEDS-seed mean, against GOAL_ACC), `ahead`
    (distillations whose paired interval against ce_only lies above 0) and `teacher` (the
    teacher against ce_only at each budget's longest length)."""
    rows = [r for r in results.get("summary", []) if r["start"] == "ddpg"]
    small_rows = [r for r in rows if r["params_M"] <= GOAL_PARAMS_M]
    full = [r for r in small_rows if r["n_seeds"] >= GOAL_SEEDS]
    pool = full or small_rows
    small: dict[str, Any] = {"params_M_max": GOAL_PARAMS_M, "target": GOAL_ACC,
                             "seeds_needed": GOAL_SEEDS, "status": "pending"}  # fmt: skip
    if pool:
        # the rows with the most seeds first, then the best mean among them
        best = max(pool, key=lambda r: (r["n_seeds"], r["test_acc_mean"]))
        small.update({key: best[key] for key in ("method", "budget", "epochs", "n_seeds",
                                                 "params_M", "test_acc_mean")})  # fmt: skip
        small["gap_points"] = 100 * (best["test_acc_mean"] - GOAL_ACC)
        if full:
            small["status"] = "met" if best["test_acc_mean"] >= GOAL_ACC else "not met"
    ahead = [{"budget": float(budget), "method": key.split("-")[0], "epochs": p["epochs"],
              "seeds": p["seeds"], "mean_diff": p["mean_diff"], "ci95": p["ci95"]}
             for budget, pairs in results.get("paired", {}).items()
             for key, p in pairs.items()
             if key.endswith("-ce_only") and p["ci95"][0] > 0]  # fmt: skip
    teacher = []
    acc = results.get("teacher_test_acc")
    for budget in sorted({r["budget"] for r in rows}):
        ce = [r for r in rows if r["budget"] == budget and r["method"] == "ce_only"]
        if ce and acc is not None:
            longest = max(ce, key=lambda r: r["epochs"])
            teacher.append({"budget": budget, "epochs": longest["epochs"],
                            "ce_only": longest["test_acc_mean"], "teacher": acc,
                            "teacher_not_outgrown": acc >= longest["test_acc_mean"]})  # fmt: skip
    return {"small": small, "ahead": ahead, "teacher": teacher}


def goal_lines(results: dict[str, Any]) -> list[str]:
    """The goals in words, for the Markdown page."""
    g = goals(results)
    small = g["small"]
    lines = ["", "Goals:", ""]
    if "method" not in small:
        lines.append(f"- a student of <= {GOAL_PARAMS_M}M parameters at >= {GOAL_ACC:.1%}: "
                     "no run yet.")  # fmt: skip
    else:
        pending = f"pending (needs {GOAL_SEEDS} seeds; best of the rows with the most seeds)"
        state = {"met": "**met**", "not met": "**not met**", "pending": pending}[small["status"]]
        lines.append(
            f"- a student of <= {GOAL_PARAMS_M}M parameters at >= {GOAL_ACC:.1%} test accuracy "
            f"({GOAL_SEEDS}-seed mean): {state}: `{small['method']}` ({small['params_M']:.3f}M, "
            f"{small['epochs']} epochs) {small['test_acc_mean']:.4f} over {small['n_seeds']} "
            f"seed(s), {small['gap_points']:+.2f} points from the target."
        )
    if g["ahead"]:
        text = "; ".join(f"`{a['method']}` at budget {a['budget']} {100 * a['mean_diff']:+.2f} "
                         f"({100 * a['ci95'][0]:+.2f} to {100 * a['ci95'][1]:+.2f}, "
                         f"{len(a['seeds'])} seed(s))" for a in g["ahead"])  # fmt: skip
        lines.append(
            f"- a distillation ahead of ce_only with a paired interval above 0: **met**: {text}."
        )
    else:
        lines.append("- a distillation ahead of ce_only with a paired interval above 0: "
                     "**not met** so far (no interval lies above 0).")  # fmt: skip
    for t in g["teacher"]:
        verdict = "not outgrown" if t["teacher_not_outgrown"] else "**outgrown**"
        lines.append(f"- teacher {t['teacher']:.4f} against ce_only {t['ce_only']:.4f} at "
                     f"budget {t['budget']}, {t['epochs']} epochs: {verdict}.")  # fmt: skip
    return lines
