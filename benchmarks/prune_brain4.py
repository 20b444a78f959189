"""Benchmark: LPB-RL's search methods at equal cost on the brain4-64 teacher (issue protocol).

    python benchmarks/prune_brain4.py [--budgets 0.5 0.2] [--seeds 0 1 2 3 4] [--force]

For each budget, method (ddpg, cem, random, uniform) and search seed, the prune stage's code path
runs with `prune.search` = method and `prune.search_seed` = seed: the same number of proxy
evaluations (`--episodes`; uniform: 1) through the same env, then the returned candidate is
fine-tuned identically (same epochs, optimizer, augmentation and fine-tune seed 0 for all) and
scored on the 1,311 test images. Uniform has no randomness: it runs once per budget.
`--flops-budget F` (< 1) runs the FLOPs-aware search (`prune.flops_budget`: a candidate keeping
more than F of the teacher's FLOPs loses the excess from its reward) as its own rows, labelled
`<method>+flops<F>`, beside the parameter-only ones; `--finetune-top-k K` re-ranks each search's
K best candidates by a short fine-tune (`prune.proxy.finetune_top_k`, the multi-fidelity score;
rows `<method>+top<K>`; the search column leaves the re-rank's time out).
`--finetune-seed-from-search` refits the finished parameter-only candidates with fine-tune seed =
search seed (uniform's one candidate under every seed), rows `<method>+ftseed`: how much of a
gap is one fine-tune's luck. Writes
reports/bench/prune_brain4.json (+ .md) after every finished run; finished runs are skipped.
Every run records its teacher's test accuracy and test-correctness digest; runs from another
teacher (a rebuilt one is not bitwise the same) are not mixed in: the script stops, or drops them
with `--drop-other-teachers`. Paired intervals: per test image, each method's correctness
averaged over its seeds; 2,000 bootstrap resamples of the images give the interval of ddpg's
accuracy minus each other's.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench_common import (
    RESULTS,
    WORK,
    brain4_params,
    brain4_teacher,
    load_results,
    origin_of,
    paired_cell,
    prepared_brain4,
    provenance,
    save_results,
    summarise_by_budget,
    test_score,
)

from rcskd.config import Params
from rcskd.data.dataset import load_meta, load_splits
from rcskd.steps.prune import PruneResult, finetune_ratios, run_prune
from rcskd.train import RunOptions

METHODS = ("ddpg", "cem", "random", "uniform")
REFIT = "+ftseed"  # the label suffix of a candidate refitted with fine-tune seed = search seed
POOLED = "+all"  # every distinct fine-tune of a method's candidates (plain and refitted)
OUT = RESULTS / "prune_brain4.json"


def label(method: str, flops_budget: float = 1.0, top_k: int = 0) -> str:
    """A run's method label: the FLOPs-aware and the re-ranked variants get their own rows."""
    flops = f"+flops{flops_budget}" if flops_budget < 1.0 else ""
    return method + flops + (f"+top{top_k}" if top_k > 0 else "")


def candidate_path(
    method: str, budget: float, seed: int, flops_budget: float = 1.0, top_k: int = 0
) -> Path:
    """Where a search's fine-tuned candidate is kept (the distill benchmark starts from the
    parameter-only DDPG one)."""
    suffix = ("" if flops_budget >= 1.0 else f"_f{flops_budget}") + (f"_k{top_k}" if top_k else "")
    return WORK / "brain4-64-seed0" / f"pruned_{method}_b{budget}_s{seed}{suffix}.pt"


def variant_of(settings: dict[str, Any]) -> tuple[float, int]:
    """(flops_budget, finetune_top_k) of a run's settings: what `label` and `candidate_path`
    tell apart."""
    return settings.get("flops_budget", 1.0), settings.get("finetune_top_k", 0)


def candidate_params(
    method: str, budget: float, seed: int, settings: dict[str, Any], finetune_seed: int = 0
) -> Params:
    """The prune stage's params of one search (`settings`: episodes, finetune_epochs,
    max_ratio, flops_budget, finetune_top_k); the fine-tune seed is the same for every method."""
    return brain4_params(
        finetune_seed,
        prune={
            "budget": budget,
            "max_ratio": settings["max_ratio"],
            "flops_budget": settings.get("flops_budget", 1.0),
            "search": method,
            "search_seed": seed,
            "compare_baselines": False,
            "agent": {"episodes": settings["episodes"]},
            "proxy": {"finetune_top_k": settings.get("finetune_top_k", 0)},
            "finetune": {"epochs": settings["finetune_epochs"], "balanced_sampling": True},
        },
    )


def prune_candidate(method: str, budget: float, seed: int, settings: dict[str, Any],
                    prepared: Path, teacher: Path) -> PruneResult:  # fmt: skip
    """One search and its fine-tune, saved at `candidate_path`. Same settings on the same
    machine give the same checkpoint."""
    params = candidate_params(method, budget, seed, settings)
    path = candidate_path(method, budget, seed, *variant_of(settings))
    return run_prune(params, prepared, teacher, path, RunOptions(f"{path}.resume"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.5, 0.2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--episodes", type=int, default=60)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument(
        "--max-ratio",
        type=float,
        default=0.9,
        help="most a block may lose (0.8 cannot reach budget 0.2 on ResNet-18)",
    )
    parser.add_argument(
        "--flops-budget", type=float, default=1.0,
        help="< 1: the FLOPs-aware search (prune.flops_budget), reported as its own rows",
    )  # fmt: skip
    parser.add_argument(
        "--finetune-top-k", type=int, default=0,
        help="> 0: re-rank the k best candidates by a short fine-tune (prune.proxy."
        "finetune_top_k), reported as its own rows",
    )  # fmt: skip
    parser.add_argument(
        "--finetune-seed-from-search", action="store_true",
        help="refit the finished searches' candidates with fine-tune seed = search seed "
        "(rows <method>+ftseed) instead of searching",
    )  # fmt: skip
    parser.add_argument(
        "--drop-other-teachers", action="store_true",
        help="drop finished runs whose teacher is not this machine's (and redo them)",
    )  # fmt: skip
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    results = {"runs": []} if args.force else load_results(OUT)
    if isinstance(results.get("runs"), dict):  # an older layout: start afresh
        results = {"runs": []}
    prepared = prepared_brain4(brain4_params(0))
    test = load_splits(prepared)["test"]
    assert load_meta(prepared)["counts"]["test"]["total"] == len(test.labels)
    teacher = brain4_teacher(0)
    origin = origin_of({"teacher": teacher}, test)
    results["runs"] = same_teacher_runs(results["runs"], origin, args.drop_other_teachers)
    if args.finetune_seed_from_search:
        refit_candidates(results, vars(args), prepared, teacher, origin)
        return
    done = {(r["budget"], r["method"], r["seed"]) for r in results["runs"]}
    variant = variant_of(vars(args))
    plain = variant == (1.0, 0)
    for budget in args.budgets:
        for seed in args.seeds:
            for method in args.methods:
                if method == "uniform" and (seed != args.seeds[0] or not plain):
                    continue  # deterministic: one run per budget; it ignores reward and rank
                name = label(method, *variant)
                if (budget, name, seed) in done:
                    print(f"b{budget} {name} seed {seed}: done, skipped")
                    continue
                path = candidate_path(method, budget, seed, *variant)
                result = prune_candidate(method, budget, seed, vars(args), prepared, teacher)
                score = test_score(path, test)
                report = result.summary
                results["runs"].append({
                    "budget": budget,
                    "method": name,
                    "seed": seed,
                    "flops_budget": args.flops_budget,
                    "finetune_top_k": args.finetune_top_k,
                    **score,
                    "proxy_score": report["proxy_score"],
                    "best_episode": report["best_episode"],
                    "finetune_val_acc": report["val_acc"],
                    "params_ratio": report["achieved_params_ratio"],
                    "flops_ratio": report["achieved_flops_ratio"],
                    "search_s": report["search_wall_time_s"],
                    "ratios": result.ratios,
                    "search_history": result.search_history,
                    **origin,
                })  # fmt: skip
                params = candidate_params(method, budget, seed, vars(args))
                record(results, params, prepared, vars(args))
                print(f"b{budget} {name} seed {seed}: test acc {score['test_acc']:.4f}, "
                      f"proxy {report['proxy_score']:.3f}")  # fmt: skip


def record(results: dict, params: Params, prepared: Path, settings: dict[str, Any]) -> None:
    """Provenance, the shared search settings, the summary; then the JSON and Markdown."""
    results["provenance"] = provenance(params, prepared, settings["seeds"])
    # the search settings every run shares (seeds and the variant are per run)
    per_run = ("force", "drop_other_teachers", "flops_budget", "finetune_top_k", "seeds",
               "finetune_seed_from_search")  # fmt: skip
    results["settings"] = {k: v for k, v in settings.items() if k not in per_run}
    summarise(results)
    save_results(OUT, results, markdown(results))


def refit_candidates(
    results: dict, settings: dict[str, Any], prepared: Path, teacher: Path, origin: dict
) -> None:
    """Rows `<method>+ftseed`: the finished parameter-only search of each seed (uniform's one
    candidate for every seed) fine-tuned again with fine-tune seed = search seed, no search.
    Seed 0's row is the plain run itself: same candidate, same fine-tune seed, so the same
    checkpoint (tests/steps checks `finetune_ratios` reproduces the prune step bit for bit)."""
    test = load_splits(prepared)["test"]
    finished = {(r["budget"], r["method"], r["seed"]): r for r in results["runs"]}
    for budget in settings["budgets"]:
        for seed in settings["seeds"]:
            for method in settings["methods"]:
                name = method + REFIT
                if (budget, name, seed) in finished:
                    print(f"b{budget} {name} seed {seed}: done, skipped")
                    continue
                row = refit_row(finished, budget, method, seed)
                params = candidate_params(method, budget, seed, settings, finetune_seed=seed)
                if seed != 0:
                    path = candidate_path(method, budget, seed).with_suffix(f".ft{seed}.pt")
                    fitted, params_ratio, flops_ratio = finetune_ratios(
                        params, prepared, teacher, row["ratios"], path,
                        RunOptions(f"{path}.resume"),
                    )  # fmt: skip
                    row.update(
                        **test_score(path, test),
                        finetune_val_acc=fitted.summary["val_acc"],
                        params_ratio=round(params_ratio, 6),
                        flops_ratio=round(flops_ratio, 6),
                        **origin,
                    )
                results["runs"].append(row)
                record(results, params, prepared, settings)
                print(f"b{budget} {name} seed {seed}: test acc {row['test_acc']:.4f}")


def refit_row(finished: dict[tuple, dict], budget: float, method: str, seed: int) -> dict:
    """The `+ftseed` row of (budget, method, seed), before its refit: a copy of the finished
    search it refits (uniform: its seed-0 run; its search log left out), relabelled."""
    source = finished.get((budget, method, 0 if method == "uniform" else seed))
    if source is None:
        raise SystemExit(
            f"b{budget} {method} seed {seed}: no finished search to refit; run the benchmark "
            "without --finetune-seed-from-search first"
        )
    row = {k: v for k, v in source.items() if k != "search_history"}
    row.update(method=method + REFIT, seed=seed, finetune_seed=seed)
    return row


def same_teacher_runs(runs: list[dict], origin: dict[str, Any], drop: bool) -> list[dict]:
    """The finished runs that searched this machine's teacher; others stop the script (mixing
    them would compare searches over different teachers) unless `drop`."""
    digest = origin["teacher_digest"]
    foreign = [r for r in runs if r.get("teacher_digest") != digest]
    if foreign and not drop:
        raise SystemExit(
            f"{len(foreign)} finished runs searched another teacher than this machine's (test "
            f"digest {digest}, acc {origin['teacher_test_acc']:.4f}); comparing them with new "
            "runs would be unfair: rerun with --drop-other-teachers to redo them here"
        )
    if foreign:
        print(f"dropping {len(foreign)} runs of another teacher; they are redone here")
    return [r for r in runs if r.get("teacher_digest") == digest]


def summarise(results: dict) -> None:
    """Per budget and method: mean +- std over seeds; paired intervals of ddpg (and of each
    FLOPs-aware ddpg) minus each."""
    means = (("proxy_mean", "proxy_score"), ("val_acc_mean", "finetune_val_acc"),
             ("params_ratio", "params_ratio"),
             ("flops_ratio", "flops_ratio"), ("search_s", "search_s"))  # fmt: skip
    references = ("ddpg", *sorted({r["method"] for r in results["runs"]
                                   if r["method"].startswith("ddpg+")}))  # fmt: skip
    results["summary"], results["paired"] = summarise_by_budget(results["runs"], references, means)
    if any(r["method"].endswith(REFIT) for r in results["runs"]):
        pooled = summarise_by_budget(pooled_runs(results["runs"]), "ddpg" + POOLED, means)
        results["pooled"] = {"summary": pooled[0], "paired": pooled[1]}


def pooled_runs(runs: list[dict]) -> list[dict]:
    """Every distinct fine-tune of each parameter-only method, labelled `<method>+all`: its
    plain runs (fine-tune seed 0) and its `+ftseed` refits of seeds other than 0 (the seed-0
    refit is the plain run itself); uniform's one candidate under each fine-tune seed."""
    pooled = []
    for r in runs:
        method = r["method"].split("+")[0]
        plain = r["method"] == method != "uniform"
        refit = r["method"] == method + REFIT and (r["seed"] != 0 or method == "uniform")
        if plain or refit:
            pooled.append({**r, "method": method + POOLED})
    return pooled


def teacher_lines(runs: list[dict]) -> list[str]:
    """The teacher every run searched (test accuracy and correctness digest)."""
    pairs = sorted(
        {(r["teacher_test_acc"], r["teacher_digest"]) for r in runs if "teacher_digest" in r}
    )
    text = "; ".join(f"test acc {acc:.4f} (correctness digest {digest})" for acc, digest in pairs)
    return [f"Teacher searched by every run: {text or 'not recorded'}."]


def markdown(results: dict) -> str:
    s = results["settings"]
    lines = [
        "# LPB-RL search methods at equal cost (brain4-64 ResNet-18 teacher)",
        "",
        f"Split: {results['provenance']['split']}; test = 1,311 images. Each method: "
        f"{s['episodes']} proxy-scored candidates through the same env (uniform: 1), then the "
        f"candidate is fine-tuned identically ({s['finetune_epochs']} epochs, fine-tune seed 0); "
        f"a block may lose at most {s['max_ratio']} of its internal channels. "
        "Test accuracy mean +- std over search seeds; paired 95% bootstrap interval (2,000 "
        "resamples of the test images) of DDPG minus each method, correctness averaged over "
        "seeds per image. Val acc: the fine-tuned candidate on the validation split (what a "
        "user choosing between methods would see). Rows `+ftseed`: the same candidates "
        "fine-tuned with fine-tune seed = search seed (uniform: its one candidate under each "
        "seed), so a row's spread includes the fine-tune's own.",
        "",
        *teacher_lines(results["runs"]),
        "",
        "| budget | method | seeds | test acc | ddpg minus this (95% CI) | val acc | proxy acc | "
        "params kept | FLOPs kept | search |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for budget, methods in results["summary"].items():
        for method, m in methods.items():
            ci = paired_cell(results, budget, f"ddpg-{method}")
            lines.append(
                f"| {budget} | {method} | {m['n_seeds']} | {m['test_acc_mean']:.4f} +- "
                f"{m['test_acc_std']:.4f} | {ci} | {m['val_acc_mean']:.4f} | "
                f"{m['proxy_mean']:.3f} | "
                f"{m['params_ratio']:.3f} | {m['flops_ratio']:.3f} | {m['search_s'] / 60:.1f} min |"
            )
    lines += pooled_lines(results)
    for budget, methods in results["summary"].items():
        for ref in (name for name in methods if name.startswith("ddpg+")):
            cells = [f"{other} {paired_cell(results, budget, f'{ref}-{other}')}"
                     for other in methods if other != ref]  # fmt: skip
            lines += ["", f"Budget {budget}, {ref} minus each: " + "; ".join(cells) + "."]
    return "\n".join(lines) + "\n"


def pooled_lines(results: dict) -> list[str]:
    """The table of every distinct fine-tune pooled per method (when refits exist)."""
    if "pooled" not in results:
        return []
    pooled = results["pooled"]
    lines = [
        "",
        "Every distinct fine-tune pooled per method (plain runs and `+ftseed` refits: 9 per "
        "search, 5 for uniform); paired interval of DDPG's pool minus each:",
        "",
        "| budget | method | fine-tunes | test acc | ddpg minus this (95% CI) |",
        "|---|---|---|---|---|",
    ]
    for budget, methods in pooled["summary"].items():
        for method, m in methods.items():
            ci = paired_cell(pooled, budget, f"ddpg{POOLED}-{method}")
            lines.append(f"| {budget} | {method} | {m['n_seeds']} | {m['test_acc_mean']:.4f} +- "
                         f"{m['test_acc_std']:.4f} | {ci} |")  # fmt: skip
    return lines


if __name__ == "__main__":
    main()
