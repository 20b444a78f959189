"""A model card (Markdown) for an exported model: use, data, metrics with intervals, cost."""

from __future__ import annotations

from typing import Any

LICENCES = {
    "phantom": "synthetic (rcskd's generator); anatomy from the MNI152 2009 template shipped "
    "with nilearn (Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, "
    "Montreal Neurological Institute, McGill University; free use with attribution)",
    "imagefolder": "as given by the dataset's owner; the Kaggle Brain Tumor MRI dataset "
    "(M. Nickparvar) is reported as CC0, with attribution kept to it and to its sources "
    "(J. Cheng et al., figshare 10.6084/m9.figshare.1512427; SARTAJ; Br35H)",
    "figshare_mat": "Jun Cheng's brain tumor dataset (figshare), CC BY 4.0",
    "cifar100": "CIFAR-100 (Krizhevsky, 2009)",
    "dicom": "as given by the data's owner (check the study's data-use agreement)",
}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _int8_section(q: dict[str, Any]) -> list[str]:
    """What quantisation did to the model: how, on what data, accuracy and latency vs FP32."""
    kept = "; the first convolution (it reads the image) kept in FP32" * bool(q.get("fp32_nodes"))
    how = (
        f"static post-training quantisation ({q['format']}, {q['weights']} weights, "
        f"{q['activations']} activations calibrated on {q['calibration_images']} "
        f"{q['calibration_split']}ing images, min-max ranges" + kept + ")"
        if q["mode"] == "static"
        else f"dynamic quantisation ({q['weights']} weights, activations quantised at run time"
        + (f"; static failed: {q['static_failed']}" if q.get("static_failed") else "")
        + ")"
    )
    lines = [
        "## INT8 model",
        f"- Made by ONNX Runtime {how}.",
        f"- Validation accuracy ({q['images']} images): FP32 {_pct(q['fp32_val_acc'])}, INT8 "
        f"{_pct(q['int8_val_acc'])} (drop {100 * q['drop']:.2f} points; allowed "
        f"{100 * q['max_drop']:.2f}).",
        f"- Size: FP32 {q['fp32_size_bytes']:,} bytes, INT8 {q['size_bytes']:,} bytes.",
        "",
        "| CPU latency, median ms (onnxruntime) | FP32 | INT8 |",
        "|---|---|---|",
    ]
    for key, fp32 in q["latency_ms"]["fp32"].items():
        threads, batch = key.split("-")[1:]
        lines.append(f"| {threads[1:]} thread(s), batch {batch[1:]} | {fp32:.3f} | "
                     f"{q['latency_ms']['int8'][key]:.3f} |")  # fmt: skip
    return lines


def model_card(
    name: str,
    facts: dict[str, Any],
    data: dict[str, Any] | None,
    evaluation: dict[str, Any] | None,
    exports: dict[str, Any],
) -> str:
    """The card's Markdown. `facts`: arch, params, flops, classes, role, ...; `data`: the
    prepared data's meta.json; `evaluation`: the evaluate stage's report of this model."""
    lines = [
        f"# Model card: {name}",
        "",
        "## Intended use",
        "Research on compressing brain-MRI tumour classifiers. **Not a medical device; not for "
        "diagnosis or any clinical decision.** Outputs are class probabilities for one 2-D slice.",
        "",
        "## Model",
        f"- Architecture: {facts['arch']} (width x{facts['width']}), role: {facts.get('role')}",
        *(
            [
                f"- Shipped: `{facts['shipped_from']}`, the pipeline's best student on validation "
                f"(accuracy {facts['shipped_val_acc']:.4f}; rule: {facts['shipped_rule']})"
            ]
            if facts.get("shipped_from")
            else []
        ),  # fmt: skip
        f"- Classes: {', '.join(facts['classes'])}",
        f"- Input: {facts['channels']} x {facts['image_size']} x {facts['image_size']} "
        f"(grey = 1 channel), border-cropped: {facts.get('crop_border', True)}, padded to square, "
        "resized; normalised with the training mean/std stored in the files",
        f"- DICOM input: window {facts.get('dicom_window', 'auto')}"
        + (
            f" (centre {facts.get('dicom_center')}, width {facts.get('dicom_width')})"
            if facts.get("dicom_window") == "fixed"
            else ""
        )
        + ", as the training data was windowed",
        f"- Parameters: {facts['params']:,}; FLOPs per image: {facts['flops']:,}",
    ]
    if facts.get("ratios"):
        lines.append(
            f"- Pruned by LPB-RL at budget {facts.get('budget')} ({facts.get('resource')})"
        )
    lines += ["", "## Data"]
    if data:
        counts = data["counts"]
        dd = data.get("duplicates", {})
        split = (
            "patient-level" if data.get("patient_level_split") else "image-level (no patient ids)"
        )
        lines += [
            f"- Source: `{data['source']}`; split: {split}; leakage check: "
            f"{data.get('leakage_check')}",
            "- Images: " + ", ".join(f"{s} {counts[s]['total']}" for s in ("train", "val", "test")),
            f"- Cross-split duplicates removed from train: {dd.get('removed_exact', 0)} exact, "
            f"{dd.get('removed_near', 0)} near",
            f"- Licence: {LICENCES.get(data['source'], 'see the data source')}",
        ]
    else:
        lines.append("- (prepared data not available when exporting)")
    lines += ["", "## Test metrics"]
    if evaluation:
        lo, hi = evaluation["acc_ci95"]
        lines += [
            f"- Accuracy {_pct(evaluation['acc'])} (95% bootstrap CI {_pct(lo)}-{_pct(hi)}), "
            f"balanced accuracy {_pct(evaluation['balanced_acc'])}, macro-F1 "
            f"{_pct(evaluation['macro_f1'])}, macro ROC-AUC {evaluation['macro_auc']:.3f}, "
            f"ECE {evaluation['ece']:.3f}",
            f"- CPU latency (median ms, {evaluation.get('latency_threads')} threads): "
            + ", ".join(f"batch {k[1:]}: {v}" for k, v in evaluation["latency_ms"].items()),
            "",
            "| class | sensitivity | specificity | AUC |",
            "|---|---|---|---|",
        ]
        for cls, m in evaluation["per_class"].items():
            lines.append(
                f"| {cls} | {_pct(m['sensitivity'])} | {_pct(m['specificity'])} | "
                f"{m.get('auc', float('nan')):.3f} |"
            )
    else:
        lines.append("- (no evaluation report found: run `dvc repro` first)")
    if "int8" in exports:
        lines += ["", *_int8_section(exports["int8"])]
    lines += ["", "## Files"]
    for kind, info in exports.items():
        if kind == "int8":
            lines.append(f"- int8: `{info['file']}` (checked on validation, above)")
            continue
        lines.append(
            f"- {kind}: `{info['file']}` (max |logit difference| to PyTorch "
            f"{info['max_abs_diff']:.2e} on {info['samples']} test images)"
        )
    lines += [
        "",
        "## Limitations",
        "- Trained and tested on one dataset; accuracy on other scanners, sequences or "
        "populations is unknown. Single 2-D slices, no patient-level aggregation.",
        "- Calibration (ECE) was measured on the test split above only.",
        "",
    ]
    return "\n".join(lines)
