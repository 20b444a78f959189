"""The evaluate step: every model the pipeline produced, on the test split, same protocol.

This is the only step that reads the test split. Per model: accuracy with a 95% bootstrap
interval, balanced accuracy, macro-F1, per-class sensitivity / specificity / AUC, ECE with its
reliability bins, confusion matrix; parameters, FLOPs, CPU latency and file size; figures
(confusion, reliability, Grad-CAM) as PNG bytes for the caller to write. PyTorch checkpoints
(.pt) run eagerly; exported ONNX models (the INT8 student) run in onnxruntime, timed there, with
no Grad-CAM (it needs the PyTorch graph).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rcskd.config import EvaluateConfig, Params
from rcskd.data.dataset import TensorSplit, load_meta, load_splits
from rcskd.errors import DataError
from rcskd.export.latency import onnx_latency_ms
from rcskd.export.onnx import onnx_input_spec, onnx_logits, onnx_metadata
from rcskd.metrics.clinical import calibration_bins, classification_report
from rcskd.metrics.complexity import (
    count_flops,
    count_params,
    measure_latency,
    measure_latency_cuda,
)
from rcskd.models import load_checkpoint
from rcskd.models.gradcam import gradcam_maps
from rcskd.report.comparison import comparison_markdown, comparison_rows
from rcskd.report.plots import confusion_figure, gradcam_figure, png_bytes, reliability_figure
from rcskd.roles import model_name
from rcskd.train import predict_logits, resolve_device


def pick_examples(labels: torch.Tensor, per_class: int, n_classes: int) -> list[int]:
    """The first `per_class` test images of each class (deterministic, same for every model)."""
    chosen: list[int] = []
    for k in range(n_classes):
        chosen += (labels == k).nonzero().flatten()[:per_class].tolist()
    return chosen


def _figures(name: str, report: dict[str, Any], bins: dict, classes: list[str]) -> dict[str, bytes]:
    return {
        f"{name}_confusion.png": png_bytes(
            confusion_figure(np.array(report["confusion_matrix"]), classes, name)
        ),
        f"{name}_reliability.png": png_bytes(
            reliability_figure(
                bins["confidence"], bins["accuracy"], bins["count"], report["ece"], name
            )
        ),
    }


def evaluate_onnx_model(
    path: str | Path, test: TensorSplit, classes: list[str], cfg: EvaluateConfig, seed: int = 0
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(report, figures) of an exported ONNX model on `test`, run and timed in onnxruntime."""
    path = Path(path)
    meta = onnx_metadata(path)
    inputs = onnx_input_spec(path)
    if list(inputs.classes) != list(classes):
        raise DataError(f"{path}: model classes {inputs.classes} differ from the data's {classes}")
    if "params" not in meta or "flops" not in meta:
        raise DataError(f"{path}: exported before rcskd recorded params/FLOPs; export it again")
    logits = onnx_logits(path, test.images, cfg.batch_size, inputs.preprocess)
    probs = torch.from_numpy(logits).softmax(1).numpy()
    y = test.labels.numpy()
    report = classification_report(y, probs, classes, cfg.ece_bins, cfg.bootstrap, seed)
    bins = calibration_bins(y, probs, cfg.ece_bins)
    report["calibration"] = {k: v.tolist() for k, v in bins.items()}
    lat = cfg.latency
    threads = sorted({1, lat.threads})  # deployment targets often run one thread: report both
    timed = onnx_latency_ms(
        {"m": path}, inputs.shape, lat.batch_sizes, threads, lat.repeats, lat.warmup
    )["m"]
    by_threads = {
        f"t{t}": {f"b{b}": timed[f"onnx-t{t}-b{b}"] for b in lat.batch_sizes} for t in threads
    }
    report.update(
        {
            "arch": meta.get("arch"),
            "runtime": "onnxruntime",
            "params": int(meta["params"]),
            "flops": int(meta["flops"]),
            "latency_ms": by_threads[f"t{lat.threads}"],
            "latency_threads": lat.threads,
            "latency_ms_by_threads": by_threads,
            "size_mb": round(path.stat().st_size / 2**20, 3),
        }
    )
    return report, _figures(model_name(path), report, bins, classes)


def evaluate_model(
    path: str | Path,
    test: TensorSplit,
    classes: list[str],
    cfg: EvaluateConfig,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(report, figures) of the checkpoint (or exported .onnx) at `path` on `test`."""
    path = Path(path)
    if path.suffix == ".onnx":
        return evaluate_onnx_model(path, test, classes, cfg, seed)
    checkpoint = load_checkpoint(path)
    checkpoint.require_classes(classes)
    model, spec = checkpoint.model, checkpoint.spec
    name = model_name(path)
    preprocess = checkpoint.require_inputs().preprocess
    model.to(device)
    logits = predict_logits(model, test.images, preprocess, cfg.batch_size, device)
    probs = logits.softmax(1).numpy()
    y = test.labels.numpy()
    report = classification_report(y, probs, classes, cfg.ece_bins, cfg.bootstrap, seed)
    bins = calibration_bins(y, probs, cfg.ece_bins)
    report["calibration"] = {k: v.tolist() for k, v in bins.items()}
    shape = tuple(test.images.shape[1:])
    cuda_latency = {}
    if torch.device(device).type == "cuda":  # where the model will often run: report both
        timed = measure_latency_cuda(
            model, shape, cfg.latency.batch_sizes, cfg.latency.repeats, cfg.latency.warmup, device
        )
        cuda_latency = {f"b{b}": round(v["median_ms"], 3) for b, v in timed.items()}
    model.cpu()
    latency = measure_latency(
        model,
        shape,
        cfg.latency.batch_sizes,
        cfg.latency.threads,
        cfg.latency.repeats,
        cfg.latency.warmup,
    )
    report.update(
        {
            "arch": spec.arch,
            "runtime": "pytorch",
            "params": count_params(model),
            "flops": count_flops(model, shape),
            "latency_ms": {f"b{b}": round(v["median_ms"], 3) for b, v in latency.items()},
            "latency_threads": cfg.latency.threads,
            **({"latency_ms_cuda": cuda_latency} if cuda_latency else {}),
            "size_mb": round(path.stat().st_size / 2**20, 3),
        }
    )
    figures = _figures(name, report, bins, classes)
    examples = pick_examples(test.labels, cfg.gradcam_per_class, len(classes))
    if examples:
        images = test.images[examples]
        predicted = torch.from_numpy(probs[examples].argmax(1))
        tap = cfg.gradcam_tap or None
        maps = gradcam_maps(model, preprocess(images), predicted, tap).numpy()
        captions = [
            f"{classes[int(test.labels[i])]} -> {classes[int(p)]}"
            for i, p in zip(examples, predicted, strict=True)
        ]
        grey = images.float().mean(1).div(255.0).numpy()
        figures[f"{name}_gradcam.png"] = png_bytes(
            gradcam_figure(grey, maps, captions, f"{name}: Grad-CAM (true -> predicted)")
        )
    return report, figures


def flat_metrics(report: dict[str, Any], classes: list[str]) -> dict[str, Any]:
    """The columns `dvc exp show` displays for one model (one level under the model name)."""
    flat = {
        "acc": report["acc"],
        "acc_ci95_low": report["acc_ci95"][0],
        "acc_ci95_high": report["acc_ci95"][1],
        "balanced_acc": report["balanced_acc"],
        "macro_f1": report["macro_f1"],
        "macro_auc": report["macro_auc"],
        "ece": report["ece"],
        "params": report["params"],
        "flops": report["flops"],
        "size_mb": report["size_mb"],
    }
    for batch, ms in report["latency_ms"].items():
        flat[f"latency_{batch}_ms"] = ms
    for batch, ms in report.get("latency_ms_cuda", {}).items():
        flat[f"latency_cuda_{batch}_ms"] = ms
    for name in classes:
        flat[f"sensitivity_{name}"] = report["per_class"][name]["sensitivity"]
        flat[f"specificity_{name}"] = report["per_class"][name]["specificity"]
    return flat


@dataclass
class EvaluateResult:
    """Per model: full report and figures; plus the flat metrics and the comparison table."""

    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    comparison: list[dict[str, Any]] = field(default_factory=list)
    table: str = ""


def evaluate_models(
    params: Params, prepared: str | Path, paths: list[Path], log=print, shipped: str | None = None
) -> EvaluateResult:
    """Evaluate each checkpoint in `paths` (named by its file stem) on the prepared test split;
    the table marks the `shipped` student (the ship stage's choice)."""
    meta = load_meta(prepared)
    test = load_splits(prepared)["test"]
    classes = meta["classes"]
    device = resolve_device(params.device)
    result = EvaluateResult()
    for path in paths:
        name = model_name(path)
        log(f"evaluate: {name} ({path})")
        report, figures = evaluate_model(path, test, classes, params.evaluate, params.seed, device)
        result.reports[name] = report
        result.figures.update(figures)
        result.metrics[name] = flat_metrics(report, classes)
    result.comparison = comparison_rows(result.reports, shipped)
    note = (
        f"Test split ({len(test.labels)} images). Latency: median ms per batch on CPU, "
        f"{params.evaluate.latency.threads} threads (PyTorch eager for .pt checkpoints, "
        "onnxruntime for ONNX models such as the INT8 student). Ratios are to the teacher."
    )
    result.table = comparison_markdown(result.comparison, note)
    return result
