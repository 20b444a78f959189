"""INT8 export: ONNX Runtime static quantisation of the shared quadrant model, its validation
check, its model card and predict with it."""

import json

import pytest
import torch

from rcskd.cli import main
from rcskd.config import ExportConfig
from rcskd.export.bundle import export_bundle
from rcskd.export.latency import onnx_latency_ms
from rcskd.export.onnx import ExportError, onnx_input_spec
from tests.fixtures import QUADRANT_CLASSES as CLASSES
from tests.fixtures import quadrant_data, write_image


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8") / "prepared"
    root.mkdir()
    for split, (n, seed) in {"train": (128, 0), "val": (80, 2), "test": (40, 1)}.items():
        data = quadrant_data(n, seed, size=32)
        torch.save({"images": data.images, "labels": data.labels}, root / f"{split}.pt")
    counts = {s: {"total": n} for s, n in (("train", 128), ("val", 80), ("test", 40))}
    meta = {"source": "imagefolder", "classes": CLASSES, "counts": counts, "image_size": 32,
            "channels": 1, "fingerprint": "x"}  # fmt: skip
    (root / "meta.json").write_text(json.dumps(meta))
    return root


@pytest.fixture(scope="module")
def int8_export(quadrant_checkpoint, prepared, tmp_path_factory):
    ckpt = quadrant_checkpoint[0]
    out = tmp_path_factory.mktemp("int8") / "export"
    options = ExportConfig(max_int8_drop=0.05, calibration_images=64, latency_repeats=5)
    return out, export_bundle(ckpt, out, prepared, samples=16, int8=options)


def test_int8_model_is_calibrated_on_train_checked_on_val_and_keeps_the_input_spec(
    int8_export, quadrant_checkpoint
):
    out, summary = int8_export
    q = summary["exports"]["int8"]
    assert q["mode"] == "static" and q["format"] == "QDQ" and q["calibration_split"] == "train"
    assert q["calibration_images"] == 64 and q["images"] == 80
    assert q["int8_val_acc"] >= 0.9 and q["drop"] <= 0.05  # the quadrant task is easy
    assert q["size_bytes"] < q["fp32_size_bytes"]
    assert set(q["latency_ms"]["int8"]) == {f"onnx-t{t}-b{b}" for t in (1, 2) for b in (1, 32)}
    assert onnx_input_spec(out / "student.int8.onnx") == quadrant_checkpoint[2]
    # the first convolution reads the image in FP32: none of its inputs is dequantised
    import onnx

    graph = onnx.load(str(out / "student.int8.onnx")).graph
    dequantised = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    (first,) = [n for n in graph.node if n.name in q["fp32_nodes"]]
    assert first.op_type == "Conv" and not dequantised & set(first.input)
    others = [n for n in graph.node if n.op_type == "Conv" and n.name != first.name]
    assert others and all(dequantised & set(n.input) for n in others)
    card = (out / "student.card.md").read_text()
    assert "## INT8 model" in card and "calibrated on 64 training images" in card
    assert "first convolution (it reads the image) kept in FP32" in card
    assert "| 1 thread(s), batch 1 |" in card


def test_a_drop_above_the_threshold_fails_loudly_and_leaves_no_int8_file(
    int8_export, quadrant_checkpoint, prepared, tmp_path
):
    measured = int8_export[1]["exports"]["int8"]["drop"]
    options = ExportConfig(max_int8_drop=measured - 0.01, calibration_images=64, latency_repeats=2)
    with pytest.raises(ExportError, match=r"student\.int8\.onnx: INT8 validation accuracy .* "
                                          r"\(export\.max_int8_drop: "):  # fmt: skip
        export_bundle(quadrant_checkpoint[0], tmp_path, prepared, samples=16, int8=options)
    assert not (tmp_path / "student.int8.onnx").exists()
    assert not [p for p in tmp_path.iterdir() if "int8" in p.name]


def test_predict_with_the_int8_model_agrees_with_fp32(int8_export, tmp_path, capsys):
    out, _ = int8_export
    test = quadrant_data(8, 1, size=32)  # in-distribution images: confident, not borderline
    paths = [
        write_image(tmp_path / f"t{i}.png", img[0].numpy()) for i, img in enumerate(test.images)
    ]
    rows = {}
    for name in ("student.onnx", "student.int8.onnx"):
        assert main(["predict", *map(str, paths), "--model", str(out / name), "--json"]) == 0
        rows[name] = json.loads(capsys.readouterr().out)
    truth = [CLASSES[k] for k in test.labels.tolist()]
    confident = [i for i, r in enumerate(rows["student.onnx"])
                 if max(r["probabilities"].values()) > 0.9]  # fmt: skip
    assert len(confident) >= 4  # only calls with a clear margin are compared
    for i in confident:
        assert rows["student.int8.onnx"][i]["label"] == rows["student.onnx"][i]["label"] == truth[i]


def test_interleaved_latency_has_one_median_per_threads_and_batch(int8_export):
    out, _ = int8_export
    result = onnx_latency_ms({"a": out / "student.onnx"}, (1, 32, 32), (1, 4), (1,), repeats=3)
    assert set(result["a"]) == {"onnx-t1-b1", "onnx-t1-b4"}
    assert all(v > 0 for v in result["a"].values())


def test_evaluate_scores_the_int8_model_in_onnxruntime_like_any_model(
    int8_export, quadrant_checkpoint
):
    from rcskd.config import EvaluateConfig, LatencyConfig
    from rcskd.metrics.complexity import count_params
    from rcskd.roles import model_name
    from rcskd.steps.evaluate import evaluate_model

    out, _ = int8_export
    _, model, _, test = quadrant_checkpoint
    cfg = EvaluateConfig(bootstrap=20, gradcam_per_class=1, latency=LatencyConfig(repeats=2))
    path = out / "student.int8.onnx"
    report, figures = evaluate_model(path, test, CLASSES, cfg)
    assert model_name(path) == "student_int8"
    assert report["runtime"] == "onnxruntime" and report["params"] == count_params(model)
    assert report["acc"] >= 0.9 and set(report["latency_ms"]) == {"b1", "b32"}
    assert set(report["latency_ms_by_threads"]) == {"t1", "t2"}
    assert report["latency_ms"] == report["latency_ms_by_threads"]["t2"]
    assert report["size_mb"] < (out / "student.onnx").stat().st_size / 2**20
    assert sorted(figures) == ["student_int8_confusion.png", "student_int8_reliability.png"]
