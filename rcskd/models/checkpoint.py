"""Checkpoints: a state_dict, the `ModelSpec` that rebuilds the model, the `InputSpec` that says
how raw images become its input, and provenance. Plain data only, never a pickled module, so a
checkpoint loads with `torch.load(..., weights_only=True)`, which cannot run code.

Predict, export and evaluate prepare inputs from `Checkpoint.inputs` alone: the classes, image
size, channels, border crop, normalisation and DICOM window the model was trained with.
"""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rcskd.data.transforms import Preprocess
from rcskd.io import save_torch_atomic
from rcskd.models.spec import CheckpointError, ModelSpec, build_model, spec_of

FORMAT = "rcskd-checkpoint/2"
_OLD_FORMAT = "rcskd-checkpoint/1"  # inputs were loose keys of "extra"; still readable


@dataclass(frozen=True)
class InputSpec:
    """How a raw image becomes the model's input, as the prepare stage made the training data."""

    classes: list[str]
    image_size: int
    channels: int = 1
    crop_border: bool = True
    mean: list[float] = field(default_factory=lambda: [0.0])  # of pixel / 255, per channel
    std: list[float] = field(default_factory=lambda: [1.0])
    dicom_window: str = "auto"  # auto | minmax | fixed (params data.dicom)
    dicom_center: float = 40.0
    dicom_width: float = 400.0
    source: str = ""  # data.source of the training data ("phantom": synthetic images)
    # per-image intensity of the training split (rcskd.data.intensity): predict flags inputs
    # far outside it; empty for models trained before it was recorded
    intensity: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_meta(
        cls, meta: dict[str, Any], preprocess: Preprocess, intensity: dict[str, float] | None = None
    ) -> InputSpec:
        """The spec of a model trained on the prepared data described by `meta` (meta.json)."""
        dicom = meta.get("dicom", {})
        return cls(
            classes=list(meta["classes"]),
            image_size=int(meta["image_size"]),
            channels=int(meta["channels"]),
            crop_border=bool(meta.get("crop_border", True)),
            mean=list(preprocess.mean),
            std=list(preprocess.std),
            dicom_window=dicom.get("window", "auto"),
            dicom_center=float(dicom.get("center", 40.0)),
            dicom_width=float(dicom.get("width", 400.0)),
            source=str(meta.get("source", "")),
            intensity=dict(intensity or {}),
        )

    @property
    def preprocess(self) -> Preprocess:
        """Normalisation of uint8 images into model input."""
        return Preprocess(tuple(self.mean), tuple(self.std))

    @property
    def shape(self) -> tuple[int, int, int]:
        """C x H x W of one input image."""
        return (self.channels, self.image_size, self.image_size)

    def as_dict(self) -> dict[str, Any]:
        """Plain data (checkpoints, ONNX metadata, model cards)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        """Inverse of `as_dict`; unknown keys are an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise CheckpointError(f"input spec has unknown keys {unknown}")
        return cls(**data)


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (CPU, eval mode) and what it was built and trained with."""

    model: nn.Module
    spec: ModelSpec
    inputs: InputSpec | None
    provenance: dict[str, Any]
    path: Path | None = None

    def require_inputs(self) -> InputSpec:
        """The input spec, or a clear error for a bare (architecture-only) checkpoint."""
        if self.inputs is None:
            raise CheckpointError(f"{self.path}: the checkpoint has no input spec (classes, size)")
        return self.inputs

    def require_classes(self, classes: list[str]) -> None:
        """Stop with a clear error when the model was trained for other classes."""
        trained = self.inputs.classes if self.inputs else None
        if trained != list(classes):
            raise CheckpointError(
                f"{self.path}: trained for classes {trained}, but the prepared data has "
                f"{list(classes)}; rerun the pipeline (dvc repro)"
            )


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    spec: ModelSpec,
    inputs: InputSpec | None = None,
    provenance: dict[str, Any] | None = None,
) -> None:
    """Write {format, spec, inputs, state_dict, provenance} atomically (plain data only)."""
    payload = {
        "format": FORMAT,
        "spec": dataclasses.asdict(spec_of(model, spec)),
        "inputs": inputs.as_dict() if inputs is not None else None,
        "state_dict": model.state_dict(),
        "provenance": provenance or {},
    }
    save_torch_atomic(path, payload)


def _inputs_of_old(extra: dict[str, Any]) -> tuple[InputSpec | None, dict[str, Any]]:
    """Format 1 kept the input facts among other keys of `extra`."""
    keys = ("classes", "image_size", "channels", "preprocess", "crop_border")
    if "classes" not in extra or "preprocess" not in extra:
        return None, dict(extra)
    inputs = InputSpec(
        classes=list(extra["classes"]),
        image_size=int(extra["image_size"]),
        channels=int(extra.get("channels", 1)),
        crop_border=bool(extra.get("crop_border", True)),
        mean=list(extra["preprocess"]["mean"]),
        std=list(extra["preprocess"]["std"]),
    )
    return inputs, {k: v for k, v in extra.items() if k not in keys}


def _kind_of(path: Path, head: bytes) -> str:
    """What a non-checkpoint file looks like, for the error message."""
    if path.suffix.lower() == ".onnx":
        return "an ONNX model: use it with `rcskd predict --model`"
    if head.lstrip()[:1] in (b"{", b"["):
        return "JSON"
    if not head:
        return "empty"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data of another kind"
    return "text"


def load_checkpoint(path: str | Path) -> Checkpoint:
    """The checkpoint written by `save_checkpoint` at `path`, model rebuilt and in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    with path.open("rb") as fh:
        head = fh.read(4)
    # torch.save writes a zip archive (or, in old versions, a pickle, opcode 0x80 first): anything
    # else (a JSON report, a model card, an ONNX file) is not a checkpoint at all
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise CheckpointError(
            f"{path}: not an rcskd checkpoint (a .pt file written by rcskd; this file is "
            f"{_kind_of(path, head)})"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" not in str(exc) and "global" not in str(exc).lower():
            raise CheckpointError(f"{path}: not a readable checkpoint ({exc})") from None
        raise CheckpointError(
            f"{path}: refused: the file holds pickled Python objects (e.g. a whole nn.Module), "
            "and loading those can run code. rcskd checkpoints hold a state_dict and a plain "
            "spec: re-save the model with rcskd.models.save_checkpoint"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({exc})") from None
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt not in (FORMAT, _OLD_FORMAT):
        raise CheckpointError(f"{path}: not an rcskd checkpoint (expected format {FORMAT})")
    spec = ModelSpec(**payload["spec"])
    model = build_model(spec)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the spec ({exc})") from None
    model.eval()
    if fmt == _OLD_FORMAT:
        inputs, provenance = _inputs_of_old(payload.get("extra") or {})
    else:
        raw = payload.get("inputs")
        inputs = InputSpec.from_dict(raw) if raw is not None else None
        provenance = dict(payload.get("provenance") or {})
    return Checkpoint(model, spec, inputs, provenance, path)
