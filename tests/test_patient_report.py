"""The patient benchmark's reading of its goals (benchmarks/patient_report.py)."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from patient_report import goal_lines, goals  # noqa: E402


def _row(method, acc, n, params=0.559, budget=0.05, epochs=64, start="ddpg"):
    return {"method": method, "test_acc_mean": acc, "n_seeds": n, "params_M": params,
            "budget": budget, "epochs": epochs, "start": start}  # fmt: skip


def _pair(lo, hi, seeds=(0, 1, 2)):
    return {"mean_diff": (lo + hi) / 2, "ci95": [lo, hi], "epochs": 64, "seeds": list(seeds)}


def test_small_student_goal_needs_three_seeds_and_reads_their_mean():
    summary = [
        _row("kd", 0.9600, 1),
        _row("tkd_ca", 0.9490, 3),
        _row("ce_only", 0.9470, 3),
        _row("rc_skd_joint", 0.9700, 3, params=2.1),  # too large: not a candidate
        _row("ce_only", 0.9900, 3, start="uniform"),
    ]  # another start: not a candidate
    small = goals({"summary": summary, "teacher_test_acc": 0.9558})["small"]
    assert small["status"] == "not met" and small["method"] == "tkd_ca"
    assert abs(small["gap_points"] - (-0.10)) < 1e-9
    summary.append(_row("kd", 0.9512, 3))
    small = goals({"summary": summary})["small"]
    assert small["status"] == "met" and small["method"] == "kd"
    # with fewer seeds everywhere it is pending, and names the row with the most seeds
    pending = goals({"summary": [_row("kd", 0.96, 1), _row("tkd_ca", 0.95, 2)]})["small"]
    assert pending["status"] == "pending" and pending["method"] == "tkd_ca"


def test_ahead_goal_takes_intervals_against_ce_only_above_zero_only():
    paired = {"0.05": {"tkd_ca-ce_only": _pair(0.002, 0.02), "kd-ce_only": _pair(0.0, 0.018),
                       "tkd_ca-kd": _pair(0.001, 0.01)}}  # fmt: skip
    ahead = goals({"summary": [], "paired": paired})["ahead"]
    assert [(a["method"], a["budget"]) for a in ahead] == [("tkd_ca", 0.05)]
    assert goals({"summary": [], "paired": {}})["ahead"] == []


def test_teacher_goal_compares_with_ce_only_at_its_longest_length():
    summary = [_row("ce_only", 0.9600, 1, epochs=16), _row("ce_only", 0.9500, 3)]
    teacher = goals({"summary": summary, "teacher_test_acc": 0.9558})["teacher"]
    assert teacher == [{"budget": 0.05, "epochs": 64, "ce_only": 0.95, "teacher": 0.9558,
                        "teacher_not_outgrown": True}]  # fmt: skip
    lines = "\n".join(goal_lines({"summary": summary, "teacher_test_acc": 0.94}))
    assert "**outgrown**" in lines and "**not met** so far" in lines


def _run(method, seed, correct, epochs=64, val_loss=0.05):
    return {"method": method, "budget": 0.05, "epochs": epochs, "seed": seed, "start": "ddpg",
            "params_M": 0.559, "test_acc": sum(correct) / len(correct), "val_acc": 0.99,
            "val_loss": val_loss, "test_correct": correct}  # fmt: skip


def test_summary_and_pairs_use_the_longest_length_every_method_reached_and_shared_seeds():
    from patient_report import summarise

    n = 200
    ce = [1] * 180 + [0] * 20  # 0.90
    kd = [1] * 190 + [0] * 10  # 0.95: right on 10 images ce_only gets wrong
    runs = [_run("ce_only", s, ce) for s in (0, 1, 2)] + [_run("kd", s, kd) for s in (0, 1)]
    runs += [_run("tkd_ca", 0, [1] * n), _run("tkd_ca", 0, [0] * n, epochs=256)]
    results = {"runs": runs}
    summarise(results)
    rows = {(r["method"], r["epochs"]): r for r in results["summary"]}
    assert rows["ce_only", 64]["n_seeds"] == 3 and rows["ce_only", 64]["test_acc_mean"] == 0.9
    assert rows["kd", 64]["test_acc_mean"] == 0.95 and rows["tkd_ca", 256]["n_seeds"] == 1
    pairs = results["paired"]["0.05"]
    # 256 epochs is not complete (only tkd_ca reached it): the pairs are taken at 64
    assert {p["epochs"] for p in pairs.values()} == {64}
    assert pairs["kd-ce_only"]["seeds"] == [0, 1]  # the seeds both sides have
    assert pairs["tkd_ca-ce_only"]["seeds"] == [0] and pairs["tkd_ca-kd"]["seeds"] == [0]
    assert abs(pairs["kd-ce_only"]["mean_diff"] - 0.05) < 1e-12
    lo, hi = pairs["kd-ce_only"]["ci95"]
    assert 0 < lo < 0.05 < hi  # 10 of 200 images better, none worse: above 0
    assert abs(pairs["tkd_ca-kd"]["mean_diff"] - 0.05) < 1e-12


def test_curve_table_takes_the_lowest_seed_with_a_whole_curve():
    from patient_report import curve_lines

    def curve(epochs, acc):
        return [{"epoch": e, "val_acc": 0.9, "test_acc": acc} for e in range(1, epochs + 1)]

    runs = [_run("kd", 0, [1]) | {"curve": curve(30, 0.1)},  # cut short by a restart: skipped
            _run("kd", 2, [1]) | {"curve": curve(64, 0.3)},
            _run("kd", 1, [1]) | {"curve": curve(64, 0.2)},
            _run("ce_only", 0, [1]) | {"curve": []},  # no curve at all: no row
            _run("kd", 0, [1], epochs=16) | {"curve": curve(16, 0.5)}]  # shorter  # fmt: skip
    lines = curve_lines({"runs": runs})
    assert lines[3].endswith("epoch 32 | epoch 48 | epoch 64 |")
    body = [line for line in lines if line.startswith("| kd")]
    assert body == ["| kd | 1 | " + " | ".join(["0.2000 (0.9000)"] * 8) + " |"]
    assert not any(line.startswith("| ce_only") for line in lines)
