"""Export a checkpoint to ONNX and TorchScript, each checked against eager PyTorch.

The ONNX file carries what inference needs besides the weights (classes, input size and
channels, normalisation, border cropping) in its metadata, so `rcskd predict` works from the
.onnx file alone. Parity is checked with onnxruntime on real samples; a difference above the
tolerance is an `ExportError`, never a silently wrong model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rcskd.errors import RcskdError
from rcskd.io import temp_dir_beside
from rcskd.models.checkpoint import InputSpec

METADATA_KEY = "rcskd"


class ExportError(RcskdError):
    """An export failed or does not reproduce the PyTorch model."""


def export_onnx(
    model: nn.Module,
    path: str | Path,
    example: Tensor,
    opset: int = 18,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write `model` as ONNX (input "images", output "logits", dynamic batch) atomically."""
    import onnx

    path = Path(path)
    model = model.cpu().eval()
    tmp = temp_dir_beside(path) / path.name
    batch = torch.export.Dim("batch", min=1, max=4096)
    # the exporter logs one warning per torchvision operator it cannot find: not our concern
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(tmp),
                dynamo=True,
                opset_version=opset,
                input_names=["images"],
                output_names=["logits"],
                dynamic_shapes=({0: batch},),
                external_data=False,
                verbose=False,
            )
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(metadata or {})
        onnx.save(proto, str(tmp))
        os.replace(tmp, path)
    except Exception as exc:  # the exporter raises many types; name the file and the cause
        raise ExportError(f"{path}: ONNX export failed ({type(exc).__name__}: {exc})") from None
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)
    return path


def onnx_session(path: str | Path, threads: int = 0, spin: bool = True):
    """An onnxruntime CPU session (threads = 0: onnxruntime's default). `spin=False` stops its
    worker threads busy-waiting after a run, which would steal the CPU from whatever runs next
    (interleaved timing of several models)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The rcskd metadata stored in an exported ONNX file."""
    meta = onnx_session(path).get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise ExportError(f"{path}: not exported by rcskd (no '{METADATA_KEY}' metadata)")
    return json.loads(meta[METADATA_KEY])


def onnx_input_spec(path: str | Path) -> InputSpec:
    """The input spec an exported model was trained with (from its rcskd metadata)."""
    meta = onnx_metadata(path)
    if "inputs" in meta:
        return InputSpec.from_dict(meta["inputs"])
    old = {k: meta.get(k) for k in ("classes", "image_size", "channels", "preprocess")}
    if None in old.values():  # exported before input specs: the same facts as loose keys
        raise ExportError(f"{path}: its rcskd metadata has no input spec")
    return InputSpec(
        classes=old["classes"], image_size=int(old["image_size"]), channels=int(old["channels"]),
        crop_border=bool(meta.get("crop_border", True)), mean=old["preprocess"]["mean"],
        std=old["preprocess"]["std"],
    )  # fmt: skip


def run_onnx(session, images: Tensor) -> np.ndarray:
    """Logits of preprocessed float images from an onnxruntime session."""
    return session.run(["logits"], {"images": images.numpy().astype(np.float32)})[0]


def onnx_logits(
    path: str | Path, images: Tensor, batch: int = 128, preprocess: Any = None
) -> np.ndarray:
    """Logits of the ONNX model at `path` on `images`, `batch` at a time (each batch passed
    through `preprocess` first when given, so raw uint8 images never sit in memory as floats)."""
    session = onnx_session(path)
    parts = []
    for i in range(0, len(images), batch):
        chunk = images[i : i + batch]
        parts.append(run_onnx(session, preprocess(chunk) if preprocess else chunk))
    return np.concatenate(parts)


def check_onnx(model: nn.Module, path: str | Path, samples: Tensor, tol: float = 1e-4) -> float:
    """Max |logit difference| between PyTorch and onnxruntime on `samples` (and on one
    sample alone, to exercise the dynamic batch). Raises ExportError above `tol`."""
    session = onnx_session(path)
    model = model.cpu().eval()
    worst = 0.0
    with torch.no_grad():
        for batch in (samples, samples[:1]):
            diff = np.abs(run_onnx(session, batch) - model(batch).numpy()).max()
            worst = max(worst, float(diff))
    if not worst <= tol:
        raise ExportError(
            f"{path}: onnxruntime logits differ from PyTorch by {worst:.3g} (> {tol:g}) on "
            f"{len(samples)} samples; the export is not trustworthy"
        )
    return worst


def export_torchscript(
    model: nn.Module, path: str | Path, samples: Tensor, tol: float = 1e-4
) -> float:
    """Trace to TorchScript, save atomically, reload and check it; returns the max difference."""
    path = Path(path)
    model = model.cpu().eval()
    tmp = temp_dir_beside(path) / path.name
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, samples[:1])
            torch.jit.save(traced, str(tmp))
            loaded = torch.jit.load(str(tmp))
            worst = max(float((loaded(b) - model(b)).abs().max()) for b in (samples, samples[:1]))
        if not worst <= tol:
            raise ExportError(f"{path}: TorchScript differs from eager by {worst:.3g} (> {tol:g})")
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)
    return worst
