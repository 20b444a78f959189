"""The comparison table: order, labels, ratios to the teacher, Markdown cells."""

from rcskd.report.comparison import comparison_markdown, comparison_rows


def metrics(acc, params, flops):
    """The part of an evaluate report the table reads."""
    return {"acc": acc, "acc_ci95": [acc - 0.05, acc + 0.05], "balanced_acc": acc,
            "macro_f1": acc - 0.01, "params": params, "flops": flops,
            "latency_ms": {"b1": 2.0, "b32": 20.0}, "size_mb": 1.0}  # fmt: skip


def test_rows_put_references_first_baselines_as_given_and_rc_skd_last_with_ratios():
    m = {"student": metrics(0.9, 500, 50), "kd": metrics(0.8, 500, 50),
         "teacher": metrics(0.95, 1000, 200), "pruned": metrics(0.85, 500, 50),
         "student_tkd": metrics(0.88, 500, 50), "ce_only": metrics(0.82, 500, 50)}  # fmt: skip
    rows = comparison_rows(m)
    assert [r["model"] for r in rows] == [
        "teacher",
        "pruned",
        "kd",
        "ce_only",
        "student_tkd",
        "student",
    ]
    assert rows[-1]["label"] == "RC-SKD (TKD-CA -> DKD-SG)" and rows[-2]["label"] == "TKD-CA"
    assert rows[-1]["params_ratio"] == 0.5 and rows[-1]["flops_ratio"] == 0.25
    assert rows[0]["latency_ms"] == {"b1": 2.0, "b32": 20.0}
    table = comparison_markdown(rows, "note").splitlines()
    assert table[0] == "note"
    assert table[2].startswith("| model | accuracy % (95% CI) |") and "latency b32 (ms)" in table[2]
    assert table[-1] == (
        "| RC-SKD (TKD-CA -> DKD-SG) | 90.0 (85.0-95.0) | 90.0 | 89.0 | 0.001 (0.50x) "
        "| 0.0 (0.25x) | 2.00 | 20.00 |"
    )
