"""`rcskd export`: a checkpoint -> ONNX + TorchScript + model card, all checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rcskd.config import ExportConfig
from rcskd.data.dataset import load_meta, load_split
from rcskd.errors import DataError
from rcskd.export.latency import onnx_latency_ms
from rcskd.export.onnx import check_onnx, export_onnx, export_torchscript
from rcskd.export.quantize import int8_accuracy_check, quantize_int8
from rcskd.io import write_json_atomic, write_text_atomic
from rcskd.metrics.complexity import count_flops, count_params
from rcskd.models import Checkpoint, load_checkpoint
from rcskd.report.model_card import model_card

# what the model card repeats of a checkpoint's provenance (pruning; which student shipped)
PROVENANCE_FACTS = ("ratios", "budget", "resource", "shipped_from", "shipped_val_acc",
                    "shipped_rule")  # fmt: skip


def inference_metadata(checkpoint: Checkpoint) -> dict[str, Any]:
    """What inference needs besides the weights (stored in the ONNX file): the input spec;
    and what evaluate reports of it: the source model's parameters and FLOPs."""
    inputs = checkpoint.require_inputs()
    return {
        "arch": checkpoint.spec.arch,
        "role": checkpoint.provenance.get("role"),
        "shipped_from": checkpoint.provenance.get("shipped_from"),
        "inputs": inputs.as_dict(),
        "params": count_params(checkpoint.model),
        "flops": count_flops(checkpoint.model, inputs.shape),
    }


def export_int8(
    onnx_path: Path, out: Path, prepared: str | Path, inputs: Any, options: ExportConfig
) -> dict[str, Any]:
    """Quantise, check on validation (ExportError past `max_drop`, and no file then), time."""
    import torch

    train = load_split(prepared, "train")[0]
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    calibration = inputs.preprocess(train[order[: options.calibration_images]])
    val_images, val_labels = load_split(prepared, "val")
    unchecked = out.with_name(f".{out.name}.unchecked")
    try:
        made = quantize_int8(onnx_path, unchecked, calibration, options.int8_mode)
        check = int8_accuracy_check(onnx_path, unchecked, inputs.preprocess(val_images),
                                    val_labels, options.max_int8_drop, name=out)  # fmt: skip
        unchecked.replace(out)
    finally:
        unchecked.unlink(missing_ok=True)
    latency = onnx_latency_ms({"fp32": onnx_path, "int8": out}, inputs.shape,
                              repeats=options.latency_repeats)  # fmt: skip
    return {
        "file": out.name, **made, **check,
        "size_bytes": out.stat().st_size, "fp32_size_bytes": onnx_path.stat().st_size,
        "latency_ms": latency,
    }  # fmt: skip


def export_bundle(
    checkpoint: str | Path,
    out_dir: str | Path,
    prepared: str | Path,
    opset: int = 18,
    samples: int = 32,
    tol: float = 1e-4,
    evaluation: str | Path | None = None,
    int8: ExportConfig | None = None,
) -> dict[str, Any]:
    """Export `checkpoint` into `out_dir` (NAME.onnx, NAME.ts, NAME.card.md, NAME.export.json,
    and with `int8` NAME.int8.onnx).

    Parity is checked on the first `samples` test images of `prepared`; the INT8 model is
    calibrated on training images and checked on the validation split.
    """
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    if not (Path(prepared) / "meta.json").is_file():
        raise DataError(
            f"{prepared}: no prepared data to check the export on; run `dvc repro` first "
            "or pass --prepared"
        )
    loaded = load_checkpoint(checkpoint)
    model, spec = loaded.model, loaded.spec
    meta = load_meta(prepared)
    loaded.require_classes(meta["classes"])
    inputs = loaded.require_inputs()
    images = load_split(prepared, "test")[0][:samples]
    batch = inputs.preprocess(images)
    name = checkpoint.stem
    metadata = inference_metadata(loaded)
    onnx_path = export_onnx(model, out_dir / f"{name}.onnx", batch[:2], opset, metadata)
    onnx_diff = check_onnx(model, onnx_path, batch, tol)
    ts_diff = export_torchscript(model, out_dir / f"{name}.ts", batch, tol)
    facts = {
        "arch": spec.arch,
        "role": metadata["role"],
        **inputs.as_dict(),
        "width": spec.width,
        "params": count_params(model),
        "flops": count_flops(model, inputs.shape),
        **{k: loaded.provenance.get(k) for k in PROVENANCE_FACTS},
    }
    exports = {
        "onnx": {"file": onnx_path.name, "opset": opset, "max_abs_diff": onnx_diff,
                 "samples": len(batch)},
        "torchscript": {"file": f"{name}.ts", "max_abs_diff": ts_diff, "samples": len(batch)},
    }  # fmt: skip
    if int8 is not None:
        exports["int8"] = export_int8(onnx_path, out_dir / f"{name}.int8.onnx", prepared,
                                      inputs, int8)  # fmt: skip
    report = None
    if evaluation and Path(evaluation).is_file():
        report = json.loads(Path(evaluation).read_text())
    card = model_card(name, facts, meta, report, exports)
    write_text_atomic(out_dir / f"{name}.card.md", card)
    summary = {"checkpoint": str(checkpoint), "exports": exports, "facts": facts}
    write_json_atomic(out_dir / f"{name}.export.json", summary)
    return summary
