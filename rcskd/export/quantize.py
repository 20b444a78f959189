"""Post-training INT8 quantisation of an exported ONNX model with ONNX Runtime's tools.

Static quantisation (the default): QDQ format, per-channel INT8 weights, INT8 activations whose
ranges are calibrated on training images only (never validation or test); the first convolution,
which reads the image, stays FP32 (on the phantom's grey images quantising it flipped 18 of 240
validation predictions of one student, a 3.75-point drop; kept in FP32, 2 flips and no drop).
Dynamic quantisation (weights only, activations quantised at run time) is the fallback where
static fails. The quantised file keeps the rcskd metadata (input spec), so predict and evaluate
use it like the FP32 export. `int8_accuracy_check` scores both on the validation split and
raises an ExportError when INT8 loses more than the allowed accuracy.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from rcskd.errors import RcskdError
from rcskd.export.onnx import METADATA_KEY, ExportError, onnx_logits
from rcskd.io import temp_dir_beside

CALIBRATION_BATCH = 32


def quantize_int8(
    fp32_path: str | Path, out_path: str | Path, calibration: Tensor, mode: str = "static"
) -> dict[str, Any]:
    """Write the INT8 model of `fp32_path` to `out_path` atomically; return how it was made.

    `calibration`: preprocessed float training images (N x C x H x W). `mode`: static (falls back
    to dynamic with the reason recorded) or dynamic.
    """
    import onnx

    fp32_path, out_path = Path(fp32_path), Path(out_path)
    work = temp_dir_beside(out_path)
    logging.getLogger("onnxruntime").setLevel(logging.ERROR)
    try:
        done: dict[str, Any] = {"mode": mode}
        if mode == "static":
            try:
                kept = _static(fp32_path, work / "int8.onnx", work, calibration)
                done.update(
                    fp32_nodes=kept,
                    calibration_images=len(calibration),
                    calibration_split="train",
                    format="QDQ",
                    weights="int8 per-channel",
                    activations="int8",
                )
            except RcskdError:
                raise
            except Exception as exc:  # noqa: BLE001 - the quantiser raises many types
                done = {"mode": "dynamic", "static_failed": f"{type(exc).__name__}: {exc}"[:300]}
        if done["mode"] == "dynamic":
            _dynamic(fp32_path, work / "int8.onnx")
            done.update(format="QOperator", weights="int8 per-channel", activations="dynamic")
        proto = onnx.load(str(work / "int8.onnx"))
        source = {p.key: p.value for p in onnx.load(str(fp32_path)).metadata_props}
        del proto.metadata_props[:]
        for key, value in source.items():  # the input spec travels with the model
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        if METADATA_KEY not in source:
            raise ExportError(f"{fp32_path}: not exported by rcskd (no '{METADATA_KEY}' metadata)")
        onnx.save(proto, str(work / "final.onnx"))
        out_path.parent.mkdir(parents=True, exist_ok=True)
        (work / "final.onnx").replace(out_path)
    except RcskdError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"{out_path}: INT8 quantisation failed ({type(exc).__name__}: "
                          f"{str(exc)[:200]})") from None  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return done


def _static(fp32: Path, out: Path, work: Path, calibration: Tensor) -> list[str]:
    """Quantise `fp32` statically into `out`; return the nodes kept in FP32."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(
                {"images": calibration[i : i + CALIBRATION_BATCH].numpy().astype(np.float32)}
                for i in range(0, len(calibration), CALIBRATION_BATCH)
            )

        def get_next(self):
            return next(self.batches, None)

    prepared = work / "pre.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared)).graph
        first = [n.name for n in graph.node if n.op_type == "Conv" and "images" in n.input]
        quantize_static(
            str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=first,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )  # fmt: skip
    return first


def _dynamic(fp32: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(str(fp32), str(out), per_channel=True, weight_type=QuantType.QInt8)


def onnx_accuracy(path: str | Path, images: Tensor, labels: Tensor, batch: int = 64) -> float:
    """Top-1 accuracy of an ONNX model on preprocessed `images`."""
    logits = onnx_logits(path, images, batch)
    return float((logits.argmax(1) == labels.numpy()).sum()) / max(len(images), 1)


def int8_accuracy_check(
    fp32_path: str | Path,
    int8_path: str | Path,
    images: Tensor,
    labels: Tensor,
    max_drop: float,
    name: str | Path | None = None,
) -> dict[str, float]:
    """Validation accuracy of both models; ExportError (naming `name`, default the INT8 path)
    when INT8 loses more than `max_drop`."""
    fp32, int8 = onnx_accuracy(fp32_path, images, labels), onnx_accuracy(int8_path, images, labels)
    result = {"fp32_val_acc": fp32, "int8_val_acc": int8, "drop": fp32 - int8,
              "max_drop": max_drop, "images": len(images)}  # fmt: skip
    if fp32 - int8 > max_drop:
        raise ExportError(
            f"{name or int8_path}: INT8 validation accuracy {int8:.4f} is {fp32 - int8:.4f} below "
            f"the FP32 model's {fp32:.4f} (export.max_int8_drop: {max_drop}); keep the FP32 model "
            "or raise the threshold"
        )
    return result
