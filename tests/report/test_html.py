"""The HTML report: every section present, every image a decodable embedded PNG, in a browser."""

import base64
import importlib.util
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rcskd.report.html import SECTIONS, ReportInputs, build_report, pareto_points
from rcskd.report.plots import confusion_figure, curves_figure, png_bytes

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]


def comparison_row(model, params, acc):
    return {"model": model, "label": model, "acc": acc, "acc_ci95": [acc - 0.02, acc + 0.02],
            "balanced_acc": acc, "macro_f1": acc, "params": params, "flops": 10 * params,
            "latency_ms": {"b1": 1.0, "b32": 8.0}, "params_ratio": params / 1000}  # fmt: skip


@pytest.fixture(scope="module")
def page():
    counts = {s: {"total": 8, **{c: 2 for c in CLASSES}} for s in ("train", "val", "test")}
    prepare = {"source": "phantom", "classes": CLASSES, "counts": counts, "images_read": 24,
               "images_kept": 24, "patient_level_split": True, "leakage_check": "passed",
               "duplicates": {"removed_exact": 2, "removed_near": 1}}  # fmt: skip
    cm = png_bytes(confusion_figure(np.eye(4, dtype=int) * 5, CLASSES, "t"))
    figures = {f"{m}_{k}.png": cm for m in ("teacher", "student")
               for k in ("confusion", "reliability", "gradcam")}  # fmt: skip
    history = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "train_acc": 0.5, "val_acc": 0.4}]
    comparison = [comparison_row("teacher", 1000, 0.9), comparison_row("student", 500, 0.88)]
    past = [{"dvc_exp": "budget-03", "git_commit": "abc", "metrics": {"student.acc": 0.8,
             "student.params": 300}}]  # fmt: skip
    inputs = ReportInputs(
        title="test run",
        prepare=prepare,
        sample_images=np.random.default_rng(0).random((8, 16, 16)),
        sample_labels=[0, 0, 1, 1, 2, 2, 3, 3],
        curves={"teacher": history, "tkd_ca": history},
        comparison=comparison,
        figures=figures,
        search=[{"method": "ddpg", "episode": 1, "reward": 0.5, "best_so_far": 0.5},
                {"method": "ddpg", "episode": 2, "reward": 0.7, "best_so_far": 0.7}],
        ratios={"chosen": {"layer1.0": 0.2, "layer2.0": 0.6}, "uniform": {"layer1.0": 0.4,
                                                                          "layer2.0": 0.4}},
        pareto=pareto_points(comparison, past),
    )  # fmt: skip
    return build_report(inputs)


def test_every_section_is_present_in_order(page):
    ids = re.findall(r'<section id="([a-z]+)"', page)
    assert ids == list(SECTIONS)
    assert "not for diagnosis" in page and "2 exact, 1 near" in page


def test_every_image_is_an_embedded_png(page):
    sources = re.findall(r'<img alt="[^"]*" src="([^"]+)"', page)
    assert len(sources) == 1 + 2 + 2 + 3 * 2 + 2  # samples, curves, search, per-model, 2 pareto
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert image.format == "PNG" and image.size[0] > 50


def test_comparison_table_marks_rc_skd_rows(page):
    assert '<tr class="rcskd"><td>student</td><td>0.880 (0.860-0.900)</td>' in page


def test_pareto_adds_earlier_experiments_once():
    rows = [comparison_row("teacher", 1000, 0.9)]
    student = {"student.acc": 0.8, "student.params": 300}
    past = [
        {"dvc_exp": "e1", "git_commit": "c", "metrics": student},
        {"dvc_exp": "e2", "git_commit": "c", "metrics": student},  # same point: not repeated
        {
            "dvc_exp": "",
            "git_commit": "deadbeef1",
            "metrics": {"pruned.acc": 0.7, "pruned.params": 200},
        },
    ]
    points = pareto_points(rows, past)
    assert [p["label"] for p in points] == ["teacher", "e1:student", "commit deadbee:pruned"]


@pytest.mark.skipif(
    not shutil.which("chromium") or importlib.util.find_spec("playwright") is None,
    reason="needs Debian's chromium (apt install chromium) and the playwright package",
)
def test_report_renders_in_headless_chromium_without_broken_images(page, tmp_path):
    from benchmarks.report_screenshot import screenshot

    path = tmp_path / "report.html"
    path.write_text(page)
    broken, size = screenshot(path, tmp_path / "shot.png")
    assert broken == []
    assert size[1] > 2000 and Path(tmp_path / "shot.png").stat().st_size > 10_000


def test_distillation_curves_show_train_ce_beside_the_objective():
    teacher = [{"epoch": 1, "train_loss": 0.9, "train_ce": 0.9, "train_acc": 0.6,
                "val_loss": 0.8, "val_acc": 0.7}]  # fmt: skip
    distilled = [{**teacher[0], "train_loss": 1.5, "train_kd": 0.6}]
    labels = {
        name: [line.get_label() for line in curves_figure(rows, name).axes[0].get_lines()]
        for name, rows in (("teacher", teacher), ("kd", distilled))
    }
    assert labels["teacher"] == ["train", "validation CE"]
    assert labels["kd"] == ["train objective (CE + distillation)", "train CE", "validation CE"]


def test_pareto_points_carry_batch_1_latency_for_the_latency_plot():
    from rcskd.report.plots import pareto_figure

    rows = [comparison_row("teacher", 1000, 0.9), comparison_row("student_int8", 300, 0.85)]
    past = [
        {
            "dvc_exp": "e1",
            "git_commit": "c",
            "metrics": {"student.acc": 0.8, "student.params": 300, "student.latency_b1_ms": 0.4},
        }
    ]
    points = pareto_points(rows, past)
    assert [p["latency_ms"] for p in points] == [
        rows[0]["latency_ms"]["b1"], rows[1]["latency_ms"]["b1"], 0.4
    ]  # fmt: skip
    figure = pareto_figure(points, "latency_ms")
    assert figure.axes[0].get_xlabel() == "CPU latency at batch 1 (ms)"
