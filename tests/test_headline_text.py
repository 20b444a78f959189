"""The README's generated results block says in words what the patient benchmark's numbers
say: each method ahead of, level with or behind plain fine-tuning by its paired interval, the
two-stage RC-SKD against fine-tuning, and whether the teacher stays ahead of its students."""

from __future__ import annotations

import sys

from tests.repo_copy import REPO

sys.path.insert(0, str(REPO / "docs"))
from headline_text import patient_lines  # noqa: E402


def _row(method: str, acc: float, epochs: int = 16) -> dict:
    return {"method": method, "budget": 0.05, "params_M": 0.559, "epochs": epochs, "n_seeds": 3,
            "test_acc_mean": acc, "test_acc_std": 0.001, "start": "ddpg"}  # fmt: skip


def _pair(diff: float, lo: float, hi: float, epochs: int = 16) -> dict:
    return {"mean_diff": diff, "ci95": [lo, hi], "epochs": epochs, "seeds": [0, 1, 2]}


def _patient(teacher: float) -> dict:
    return {
        "teacher_test_acc": teacher,
        "runs": [{}] * 7,
        "summary": [_row("ce_only", 0.940), _row("kd", 0.952), _row("rc_skd", 0.936),
                    _row("tkd_ca", 0.941), _row("ce_only", 0.990, epochs=64)],  # fmt: skip
        "paired": {"0.05": {
            "kd-ce_only": _pair(0.012, 0.004, 0.020),
            "rc_skd-ce_only": _pair(-0.004, -0.008, -0.001),
            "tkd_ca-ce_only": _pair(0.001, -0.006, 0.008),
            "rc_skd-kd": _pair(-0.016, -0.024, -0.008),
        }},
    }  # fmt: skip


def test_patient_lines_read_the_intervals():
    text = "\n".join(patient_lines(_patient(teacher=0.9558), prefix="docs/"))
    # compared where the paired intervals were taken (16), not at a half-done longer length
    assert "16 epochs: best `kd` 0.9520 +- 0.0010 (3 seeds)" in text
    assert "`ce_only`) 0.9400" in text
    assert ("ahead of it: `kd` +1.20; level with it: `tkd_ca` +0.10; behind it: `rc_skd` -0.40"
            in text)  # fmt: skip
    assert "rc_skd-kd" not in text and "-1.60" not in text  # only the ce_only comparisons
    assert "two-stage RC-SKD scores 0.9360: behind plain fine-tuning" in text
    assert "The teacher (0.9558) stays ahead of every student here (best 0.9520)" in text
    assert "7 runs so far" in text


def test_patient_lines_say_when_the_teacher_is_matched_or_outgrown():
    text = "\n".join(patient_lines(_patient(teacher=0.9500), prefix="docs/"))
    assert "The teacher (0.9500) is outgrown by a student here (best 0.9520)" in text
    text = "\n".join(patient_lines(_patient(teacher=0.9520), prefix="docs/"))
    assert "The teacher (0.9520) is matched by the best student here (best 0.9520)" in text


def test_the_two_stage_line_follows_its_interval_not_its_mean():
    patient = _patient(teacher=0.9558)
    patient["paired"]["0.05"]["rc_skd-ce_only"] = _pair(0.008, 0.0, 0.017)  # mean up, CI at 0
    patient["summary"][2]["test_acc_mean"] = 0.948
    text = "\n".join(patient_lines(patient, prefix="docs/"))
    assert "two-stage RC-SKD scores 0.9480: level with plain fine-tuning" in text


def test_patient_lines_state_the_small_student_goal():
    patient = _patient(teacher=0.9558)
    assert "Goal" not in "\n".join(patient_lines(patient, prefix="docs/"))  # not read yet
    patient["goals"] = {"small": {"params_M_max": 0.6, "target": 0.95, "seeds_needed": 3,
                                  "status": "not met", "method": "kd", "n_seeds": 3,
                                  "test_acc_mean": 0.9478}}  # fmt: skip
    text = "\n".join(patient_lines(patient, prefix="docs/"))
    assert (
        "- **Goal**, a student of <= 0.6M parameters at >= 95.0% (3-seed mean): not met, `kd`"
        in text
    )
    assert "`kd` 0.9478 over 3 seed(s)" in text
