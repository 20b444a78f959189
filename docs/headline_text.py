"""The README's results block, written from reports/bench/*.json (used by docs/generate.py).

Every number comes from a result file and every line names the file; a file that does not
exist yet gives a line saying so. Each result is stamped with the commit, machine and date its
file records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Loader = Callable[[str], dict[str, Any] | None]


def _stamp(provenance: dict[str, Any] | None, fallback: dict[str, Any] | None = None) -> str:
    p = provenance or fallback or {}
    machine = p.get("cpu") or p.get("machine") or "?"
    commit = str(p.get("git_commit", "?"))[:7]
    return f"{machine}, commit {commit}, {p.get('date', '?')}"


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def teacher_lines(teacher: dict[str, Any] | None, prefix: str) -> list[str]:
    if not teacher or not teacher.get("recipes"):
        return ["- Teacher: no recipe measured yet (`benchmarks/teacher_brain4.py`)."]
    chosen = teacher["chosen_recipe"]
    seed = next(iter(teacher["recipes"][chosen]["seeds"].values()))
    lo, hi = seed["acc_ci95"]
    return [
        f"- **Teacher** (ResNet-18, recipe `{chosen}` chosen on validation among "
        f"{len(teacher['recipes'])}): test accuracy {seed['acc']:.4f} (95% CI {lo:.3f}-{hi:.3f}), "
        f"trained in {seed['dtype']} in {seed['train_seconds'] / 60:.0f} min "
        f"([teacher_brain4]({prefix}benchmarks/teacher.md); {_stamp(teacher.get('provenance'))})."
    ]


def _word(pair: dict[str, Any]) -> str:
    """A paired difference in words: ahead of (interval above 0), behind (below 0) or level
    with (the interval includes 0)."""
    lo, hi = pair["ci95"]
    return "ahead of" if lo > 0 else "behind" if hi < 0 else "level with"


def _standing(pairs: dict[str, Any], ref: str) -> str:
    """Each method against `ref` in words, by its paired interval: ahead (above 0), level
    (includes 0) or behind (below 0)."""
    groups: dict[str, list[str]] = {"ahead of": [], "level with": [], "behind": []}
    for key, pair in sorted(pairs.items()):
        method, _, other = key.partition("-")
        if other != ref:
            continue
        groups[_word(pair)].append(f"`{method}` {_pts(pair['mean_diff'])}")
    said = [f"{word} it: {', '.join(names)}" for word, names in groups.items() if names]
    return "; ".join(said)


def patient_lines(patient: dict[str, Any] | None, prefix: str) -> list[str]:
    if not patient or not patient.get("summary"):
        return ["- Patient distillation: not measured yet (`benchmarks/patient_brain4.py`)."]
    out = []
    rows = patient["summary"]
    teacher_acc = patient.get("teacher_test_acc")
    for budget in sorted({r["budget"] for r in rows}):
        mine = [r for r in rows if r["budget"] == budget and r["start"] == "ddpg"]
        pairs = patient.get("paired", {}).get(str(budget), {})
        # the length the paired intervals were taken at: the longest every method has reached
        longest = next(iter(pairs.values()))["epochs"] if pairs else max(r["epochs"] for r in mine)
        at = sorted((r for r in mine if r["epochs"] == longest), key=lambda r: -r["test_acc_mean"])
        best = at[0]
        plain = next((r for r in at if r["method"] == "ce_only"), None)
        seeds = "seed" if best["n_seeds"] == 1 else "seeds"
        without = (f", fine-tuning without a teacher (`ce_only`) {plain['test_acc_mean']:.4f}"
                   if plain else "")  # fmt: skip
        out.append(
            f"- **Budget {budget}** ({best['params_M']:.2f}M parameters), {longest} epochs: best "
            f"`{best['method']}` {best['test_acc_mean']:.4f} +- {best['test_acc_std']:.4f} "
            f"({best['n_seeds']} {seeds}){without}."
        )
        if plain and pairs:
            standing = _standing(pairs, "ce_only")
            out.append(f"  Paired intervals against `ce_only` (points): {standing}.")
        rc_skd = next((r for r in at if r["method"] == "rc_skd"), None)
        pair = pairs.get("rc_skd-ce_only")
        if rc_skd and plain and pair:
            out.append(f"  The paper's two-stage RC-SKD scores {rc_skd['test_acc_mean']:.4f}: "
                       f"{_word(pair)} plain fine-tuning.")  # fmt: skip
        if teacher_acc is not None:
            top = max(r["test_acc_mean"] for r in at)
            verb = ("stays ahead of every student here" if teacher_acc > top else
                    "is matched by the best student here" if teacher_acc == top else
                    "is outgrown by a student here")  # fmt: skip
            out.append(f"  The teacher ({teacher_acc:.4f}) {verb} (best {top:.4f}).")
    small = patient.get("goals", {}).get("small", {})
    if "method" in small:
        out.append(
            f"- **Goal**, a student of <= {small['params_M_max']}M parameters at >= "
            f"{small['target']:.1%} ({small['seeds_needed']}-seed mean): {small['status']}, "
            f"`{small['method']}` {small['test_acc_mean']:.4f} over {small['n_seeds']} seed(s)."
        )
    done = len(patient["runs"])
    out.append(f"  ([patient_brain4]({prefix}benchmarks/patient.md), {done} runs so far; "
               f"{_stamp(patient.get('provenance'))}).")  # fmt: skip
    return out


def throughput_lines(throughput: dict[str, Any] | None, prefix: str) -> list[str]:
    runs = [r for r in (throughput or {}).get("runs", []) if "ratio_to_fastest" in r]
    if not runs:
        return ["- Training speed: not measured yet (`benchmarks/throughput.py`)."]
    r = runs[-1]
    return [
        f"- **Training speed** ({r['device']}, {r['image_size']} px, {r['threads']} thread(s)): "
        f"the project's loop runs at {r['ratio_to_fastest']:.2f} of the fastest plain loop "
        f"({r['fastest_plain']}), `precision: auto` resolving to {r['project_precision']} "
        f"([throughput]({prefix}benchmarks/throughput.md); commit {r['git_commit'][:7]}, "
        f"{r['date']})."
    ]


def commands_lines(commands: dict[str, Any] | None) -> list[str]:
    if not commands:
        return ["- The two commands: not timed yet (`benchmarks/commands.py`)."]
    c = commands
    return [
        f"- **The two commands** in a fresh clone ({c['cpu']}, {c['cpus']} cores, commit "
        f"{c['git_commit'][:7]}, {c['date']}): install {c['install_s'] / 60:.1f} min, "
        f"`make test` {c['test_s'] / 60:.1f} min ({c['tests_passed']} tests), `make repro` "
        f"{c['repro_s'] / 60:.1f} min."
    ]


def deploy_lines(deploy: dict[str, Any] | None, prefix: str) -> list[str]:
    if not deploy or "summary" not in deploy:
        return []
    s = deploy["summary"]
    return [
        f"- **Deployment** ({s.get('model', 'shipped student')}): INT8 test accuracy "
        f"{s['int8_acc']:.4f} against the teacher's {s['teacher_acc']:.4f}, "
        f"{s['speedup_b1']:.1f}x faster than the eager teacher at batch 1 "
        f"([deploy]({prefix}benchmarks/deploy.md); {_stamp(deploy.get('provenance'))})."
    ]


def headline_block(load: Loader, prefix: str = "docs/") -> str:
    """The block; `prefix` makes its links relative to where it is shown (README: docs/)."""
    lines = [
        "Measured on Brain-4 at 64 px (image-level split: Brain-4 has no patient ids), every",
        "line generated from the named result file by `docs/generate.py`:",
        "",
        *teacher_lines(load("teacher_brain4.json"), prefix),
        *patient_lines(load("patient_brain4.json"), prefix),
        *deploy_lines(load("deploy.json"), prefix),
        *throughput_lines(load("throughput.json"), prefix),
        *commands_lines(load("commands.json")),
    ]
    return "\n".join(lines) + "\n"
