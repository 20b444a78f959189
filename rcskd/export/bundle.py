"""`rcskd export`: a checkpoint -> ONNX + TorchScript + model card, all checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rcskd.data.dataset import load_meta, load_split
from rcskd.errors import DataError
from rcskd.export.onnx import check_onnx, export_onnx, export_torchscript
from rcskd.io import write_json_atomic, write_text_atomic
from rcskd.metrics.complexity import count_flops, count_params
from rcskd.models import Checkpoint, load_checkpoint
from rcskd.report.model_card import model_card


def inference_metadata(checkpoint: Checkpoint) -> dict[str, Any]:
    """What inference needs besides the weights (stored in the ONNX file): the input spec."""
    return {
        "arch": checkpoint.spec.arch,
        "role": checkpoint.provenance.get("role"),
        "inputs": checkpoint.require_inputs().as_dict(),
    }


def export_bundle(
    checkpoint: str | Path,
    out_dir: str | Path,
    prepared: str | Path,
    opset: int = 18,
    samples: int = 32,
    tol: float = 1e-4,
    evaluation: str | Path | None = None,
) -> dict[str, Any]:
    """Export `checkpoint` into `out_dir` (NAME.onnx, NAME.ts, NAME.card.md, NAME.export.json).

    Parity is checked on the first `samples` test images of `prepared`.
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
        **{k: loaded.provenance.get(k) for k in ("ratios", "budget", "resource")},
    }
    exports = {
        "onnx": {"file": onnx_path.name, "opset": opset, "max_abs_diff": onnx_diff,
                 "samples": len(batch)},
        "torchscript": {"file": f"{name}.ts", "max_abs_diff": ts_diff, "samples": len(batch)},
    }  # fmt: skip
    report = None
    if evaluation and Path(evaluation).is_file():
        report = json.loads(Path(evaluation).read_text())
    card = model_card(name, facts, meta, report, exports)
    write_text_atomic(out_dir / f"{name}.card.md", card)
    summary = {"checkpoint": str(checkpoint), "exports": exports, "facts": facts}
    write_json_atomic(out_dir / f"{name}.export.json", summary)
    return summary
