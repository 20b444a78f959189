"""Export (ONNX parity with onnxruntime, TorchScript, model card) and `rcskd predict`."""

import json

import numpy as np
import pydicom
import pytest
import torch

from rcskd.cli import main
from rcskd.export.bundle import export_bundle
from rcskd.export.onnx import (
    ExportError,
    check_onnx,
    onnx_input_spec,
    onnx_session,
    run_onnx,
)
from rcskd.models import ModelSpec, build_model
from rcskd.predict import Predictor, read_input
from tests.fixtures import QUADRANT_CLASSES as CLASSES
from tests.fixtures import compress_dicom, quadrant_png, write_dicom

# The shared quadrant model was trained on grey noise 0-60 with a square at 220; its input spec
# says DICOMs are windowed `fixed` at centre 1686, width 3624, which maps a raw 300 to 30 and a
# raw 3000 to 220, i.e. onto the training intensities.
DICOM_BACKGROUND, DICOM_SQUARE = 300, 3000


@pytest.fixture(scope="module")
def exported(quadrant_checkpoint, tmp_path_factory):
    """The shared quadrant classifier, its prepared test split, and its export bundle."""
    ckpt, model, inputs, test = quadrant_checkpoint
    pre = inputs.preprocess
    root = tmp_path_factory.mktemp("export")
    prepared = root / "prepared"
    prepared.mkdir()
    torch.save({"images": test.images, "labels": test.labels}, prepared / "test.pt")
    counts = {s: {"total": n} for s, n in (("train", 128), ("val", 0), ("test", 40))}
    meta = {"source": "imagefolder", "classes": CLASSES, "counts": counts, "image_size": 32,
            "channels": 1, "patient_level_split": False, "leakage_check": "passed",
            "duplicates": {"removed_exact": 3, "removed_near": 1}, "fingerprint": "x"}  # fmt: skip
    (prepared / "meta.json").write_text(json.dumps(meta))
    evaluation = root / "student_eval.json"
    evaluation.write_text(json.dumps({
        "acc": 0.95, "acc_ci95": [0.9, 0.99], "balanced_acc": 0.95, "macro_f1": 0.94,
        "macro_auc": 0.99, "ece": 0.03, "latency_ms": {"b1": 1.5, "b32": 9.0},
        "latency_threads": 2,
        "per_class": {c: {"sensitivity": 0.9, "specificity": 0.97, "auc": 0.98} for c in CLASSES},
    }))  # fmt: skip
    out = root / "export"
    summary = export_bundle(ckpt, out, prepared, opset=18, samples=16, evaluation=evaluation)
    return ckpt, model, pre, test, out, summary


def test_onnx_matches_pytorch_for_any_batch_size(exported):
    _, model, pre, test, out, summary = exported
    assert summary["exports"]["onnx"]["max_abs_diff"] < 1e-4
    session = onnx_session(out / "student.onnx")
    for n in (1, 3, 40):  # dynamic batch: sizes the export never saw
        x = pre(test.images[:n])
        with torch.no_grad():
            expected = model(x).numpy()
        got = run_onnx(session, x)
        assert got.shape == (n, 4)
        assert np.abs(got - expected).max() < 1e-4
    import onnx

    proto = onnx.load(str(out / "student.onnx"))
    assert {o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")} == {18}


def test_onnx_carries_the_checkpoints_input_spec(exported, quadrant_checkpoint):
    *_, out, _ = exported
    inputs = onnx_input_spec(out / "student.onnx")
    assert inputs == quadrant_checkpoint[2]
    assert inputs.classes == CLASSES and inputs.image_size == 32 and inputs.channels == 1
    assert inputs.crop_border is False and inputs.dicom_window == "fixed"


def test_a_model_that_no_longer_matches_its_export_fails_loudly(exported):
    _, model, pre, test, out, _ = exported
    broken = build_model(ModelSpec("resnet20", 4, 1, 0.25)).eval()  # other weights
    with pytest.raises(ExportError, match=r"student\.onnx: onnxruntime logits differ"):
        check_onnx(broken, out / "student.onnx", pre(test.images[:8]))


def test_torchscript_reloads_and_agrees(exported):
    _, model, pre, test, out, summary = exported
    scripted = torch.jit.load(str(out / "student.ts"))
    x = pre(test.images[:5])
    with torch.no_grad():
        assert torch.allclose(scripted(x), model(x), atol=1e-5)
    assert summary["exports"]["torchscript"]["max_abs_diff"] < 1e-5


def test_model_card_states_use_data_metrics_and_cost(exported):
    *_, out, _ = exported
    card = (out / "student.card.md").read_text()
    assert "not for diagnosis" in card
    assert "image-level (no patient ids)" in card and "3 exact, 1 near" in card
    assert "Accuracy 95.0% (95% bootstrap CI 90.0%-99.0%)" in card
    assert "| top_left | 90.0% | 97.0% | 0.980 |" in card
    assert "Parameters:" in card and "FLOPs per image:" in card and "batch 32: 9.0" in card
    assert "CC0" in card  # the data's licence


def test_export_without_prepared_data_names_the_folder(exported, tmp_path, capsys):
    ckpt, *_ = exported
    code = main(
        ["export", str(ckpt), "--out", str(tmp_path / "o"), "--prepared", str(tmp_path / "nope")]
    )
    assert code == 2
    assert "nope: no prepared data" in capsys.readouterr().err
    assert not (tmp_path / "o" / "student.onnx").exists()


def quadrant_dicom_pixels(k: int) -> np.ndarray:
    """Raw 16-bit pixels: noisy background, a bright square in quadrant k (as in training)."""
    rng = np.random.default_rng(k)
    pixels = rng.uniform(DICOM_BACKGROUND - 250, DICOM_BACKGROUND + 250, (32, 32))
    r, c = (k // 2) * 16, (k % 2) * 16
    pixels[r + 2 : r + 14, c + 2 : c + 14] = DICOM_SQUARE
    return pixels.astype(np.uint16)


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    for k in range(4):
        quadrant_png(folder, k, f"q{k}.png")
    write_dicom(folder / "scan.dcm", quadrant_dicom_pixels(k=1), "p1")  # top right
    packed = write_dicom(folder / "packed.dcm", quadrant_dicom_pixels(k=1), "p1")
    compress_dicom(packed, "1.2.840.10008.1.2.4.80")  # JPEG-LS, as many MR exports are
    cut = compress_dicom(write_dicom(folder / "cut.dcm", quadrant_dicom_pixels(k=1), "p1"),
                         "1.2.840.10008.1.2.4.90")  # fmt: skip
    ds = pydicom.dcmread(cut)
    frame = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = pydicom.encaps.encapsulate([frame[: len(frame) // 2]])
    ds.save_as(cut)
    bad = folder / "broken.png"
    bad.write_bytes(b"not an image at all")
    return folder, bad


@pytest.mark.parametrize("kind", ["pt", "onnx"])
def test_predict_classifies_good_inputs_and_names_bad_ones(
    exported, inputs, tmp_path, capsys, kind
):
    ckpt, *_, out, _ = exported
    folder, bad = inputs
    model = ckpt if kind == "pt" else out / "student.onnx"
    missing = tmp_path / "missing.png"
    code = main(["predict", str(folder), str(missing), "--model", str(model), "--json"])
    captured = capsys.readouterr()
    rows = {r["origin"].split("/")[-1]: r for r in json.loads(captured.out)}
    assert code == 1  # some inputs failed, the rest were processed
    for k in range(4):
        row = rows[f"q{k}.png"]
        assert row["label"] == CLASSES[k]
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert rows["scan.dcm"]["label"] == "top_right"
    assert rows["scan.dcm"]["probabilities"]["top_right"] > 0.9  # not a borderline call
    assert rows["packed.dcm"]["probabilities"] == rows["scan.dcm"]["probabilities"]
    assert "cut.dcm: cannot decode the pixel data (JPEG 2000" in rows["cut.dcm"]["error"]
    assert "broken.png: cannot decode image" in rows["broken.png"]["error"]
    assert "missing.png: no such file" in rows["missing.png"]["error"]
    assert "Traceback" not in captured.err and "broken.png" in captured.err


def test_pt_and_onnx_predict_the_same_probabilities(exported, inputs, capsys):
    ckpt, *_, out, _ = exported
    folder, _ = inputs
    results = []
    for model in (ckpt, out / "student.onnx"):
        main(["predict", str(folder / "q1.png"), "--model", str(model), "--json"])
        results.append(json.loads(capsys.readouterr().out)[0]["probabilities"])
    for c in CLASSES:
        assert results[0][c] == pytest.approx(results[1][c], abs=1e-5)


def test_predict_table_and_gradcam_overlay(exported, inputs, tmp_path, capsys):
    ckpt, *_, out, _ = exported
    folder, _ = inputs
    cams = tmp_path / "cams"
    code = main(["predict", str(folder / "q2.png"), "--model", str(ckpt), "--gradcam", str(cams)])
    table = capsys.readouterr().out.splitlines()
    assert code == 0
    assert table[0].split() == ["input", "predicted", *CLASSES]
    assert "bottom_left" in table[1]
    png = cams / "q2_png_gradcam.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code = main(["predict", str(folder / "q2.png"), "--model", str(out / "student.onnx"),
                 "--gradcam", str(cams)])  # fmt: skip
    assert code == 2
    assert "Grad-CAM needs the PyTorch checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("k", range(4))
def test_a_model_trained_with_a_fixed_window_predicts_dicoms_with_that_window(
    exported, tmp_path, k
):
    """The window comes from the model's input spec, for the .pt and the .onnx alike."""
    import pydicom

    from rcskd.data.sources.dicom import dicom_frames

    ckpt, *_, out, _ = exported
    path = write_dicom(tmp_path / f"q{k}.dcm", quadrant_dicom_pixels(k), "p1")
    for model in (ckpt, out / "student.onnx"):
        predictor = Predictor(model)
        ((_, image),) = read_input(path, predictor.inputs)
        expected = dicom_frames(pydicom.dcmread(path), "fixed", 1686.0, 3624.0)[0]
        np.testing.assert_array_equal(image, expected)
        assert 20 <= image[:2].mean() <= 40 and image.max() >= 215  # training intensities
        probs = predictor.probabilities(predictor.prepare(image)[None])[0]
        assert CLASSES[int(probs.argmax())] == CLASSES[k] and probs.max() > 0.6  # clear margin


def test_predict_warns_about_inputs_far_outside_the_training_intensities(
    exported, inputs, tmp_path, capsys
):
    ckpt, *_ = exported
    folder, _ = inputs
    from PIL import Image

    white = tmp_path / "white.png"
    Image.fromarray(np.full((32, 32), 255, np.uint8)).save(white)
    code = main(["predict", str(folder / "q0.png"), str(white), "--model", str(ckpt), "--json"])
    captured = capsys.readouterr()
    rows = {r["origin"].split("/")[-1]: r for r in json.loads(captured.out)}
    assert code == 0
    assert rows["q0.png"]["warnings"] == []  # like the training images
    (far,) = rows["white.png"]["warnings"]
    assert far.startswith("intensity far outside the training data (mean intensity 1.000 vs")
    assert f"warning: {white}: intensity far outside" in captured.err
    assert "q0.png: " not in captured.err
    main(["predict", str(folder / "q0.png"), str(white), "--model", str(ckpt)])
    table = capsys.readouterr().out.splitlines()
    assert table[1].split()[1] == "top_left" and table[1].split()[2] != "!"
    assert table[2].split()[2] == "!"  # the flagged prediction


def test_predict_warns_that_a_phantom_model_means_nothing_on_scans(
    quadrant_checkpoint, inputs, tmp_path, capsys
):
    import dataclasses

    from rcskd.models import save_checkpoint

    _, model, spec_inputs, _ = quadrant_checkpoint
    phantom = tmp_path / "phantom.pt"
    phantom_inputs = dataclasses.replace(spec_inputs, source="phantom")
    save_checkpoint(phantom, model, ModelSpec("resnet20", 4, 1, 0.25), phantom_inputs, {})
    folder, _ = inputs
    main(["predict", str(folder / "q0.png"), "--model", str(phantom), "--json"])
    captured = capsys.readouterr()
    (row,) = json.loads(captured.out)
    assert any("trained on the synthetic phantom" in w for w in row["warnings"])
    assert captured.err.count("trained on the synthetic phantom") == 1
