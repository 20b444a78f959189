"""`rcskd predict`: classify image files, folders or DICOM files with a .pt or .onnx model.

Each input is read and prepared exactly as the prepare stage prepared the model's training data
(DICOM window, border crop, pad to square, resize, grey/RGB, normalisation), all taken from the
model's `InputSpec`. An unreadable input gives an error row naming the file and why; the other
inputs are still classified. Each row carries warnings a clinician must see: a model trained
on the synthetic phantom, an input whose intensities lie far outside the training data's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rcskd.data.intensity import intensity_warning
from rcskd.data.prepare import fit_image
from rcskd.data.sources.dicom import is_dicom, read_dicom
from rcskd.data.sources.imagefolder import IMAGE_SUFFIXES, read_image
from rcskd.errors import DataError
from rcskd.models.checkpoint import InputSpec


@dataclass
class Prediction:
    """One input's result: predicted class and probabilities, or the error that stopped it."""

    origin: str
    label: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    gradcam: str | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and v != {}}


def model_warnings(inputs: InputSpec) -> list[str]:
    """What is wrong with using this model on real scans at all."""
    if inputs.source == "phantom":
        return ["the model was trained on the synthetic phantom (data.source: phantom), not on "
                "scans: its predictions on real images mean nothing"]  # fmt: skip
    return []


def expand_inputs(paths: list[str | Path]) -> list[Path]:
    """Files as given; folders walked for image and DICOM files (sorted)."""
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found += sorted(
                p
                for p in item.rglob("*")
                if p.is_file() and (p.suffix.lower() in IMAGE_SUFFIXES or is_dicom(p))
            )
        else:
            found.append(item)
    return found


def read_input(path: Path, inputs: InputSpec) -> list[tuple[str, np.ndarray]]:
    """(origin, uint8 image) of a file; a multi-frame DICOM gives one entry per frame.

    DICOM pixels are windowed as the model's training data was (`inputs.dicom_*`). Unreadable
    files raise one DataError naming the file, exactly as prepare reports them.
    """
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if is_dicom(path):
        window = (inputs.dicom_window, inputs.dicom_center, inputs.dicom_width)
        frames, _ = read_dicom(path, *window)
        if len(frames) == 1:
            return [(str(path), frames[0])]
        return [(f"{path}#frame{k}", f) for k, f in enumerate(frames)]
    return [(str(path), read_image(path))]


class Predictor:
    """A loaded model (.pt checkpoint or exported .onnx) with its input contract."""

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: model file not found")
        self.model = self.session = None
        if self.path.suffix == ".onnx":
            from rcskd.export.onnx import onnx_input_spec, onnx_session

            self.inputs = onnx_input_spec(self.path)
            self.session = onnx_session(self.path, threads)
        else:
            from rcskd.models import load_checkpoint

            checkpoint = load_checkpoint(self.path)
            self.model = checkpoint.model
            self.inputs = checkpoint.require_inputs()
        self.classes: list[str] = self.inputs.classes
        self.preprocess = self.inputs.preprocess
        self.warnings = model_warnings(self.inputs)

    def prepare(self, image: np.ndarray) -> torch.Tensor:
        """uint8 C x H x W at the model's size, like the prepare stage makes it."""
        i = self.inputs
        return torch.from_numpy(fit_image(image, i.image_size, i.channels, i.crop_border).copy())

    def probabilities(self, images: torch.Tensor) -> np.ndarray:
        """Softmax outputs (N, classes) of uint8 images."""
        x = self.preprocess(images)
        if self.session is not None:
            from rcskd.export.onnx import run_onnx

            logits = torch.from_numpy(run_onnx(self.session, x))
        else:
            with torch.no_grad():
                logits = self.model(x)
        return logits.softmax(1).numpy()

    def gradcam(self, image: torch.Tensor, target: int) -> np.ndarray:
        """Grad-CAM map (H x W in [0, 1]) of one uint8 image; needs the .pt model."""
        if self.model is None:
            raise DataError(f"{self.path}: Grad-CAM needs the PyTorch checkpoint (.pt), not ONNX")
        from rcskd.models.gradcam import gradcam_maps

        return gradcam_maps(self.model, self.preprocess(image[None]), torch.tensor([target]))[
            0
        ].numpy()


def predict_paths(
    predictor: Predictor, paths: list[str | Path], gradcam_dir: str | Path | None = None
) -> list[Prediction]:
    """Predictions for every input (errors included, in input order)."""
    if gradcam_dir is not None and predictor.model is None:
        raise DataError(f"{predictor.path}: Grad-CAM needs the PyTorch checkpoint (.pt), not ONNX")
    results: list[Prediction] = []
    for path in expand_inputs(paths):
        try:
            entries = read_input(path, predictor.inputs)
        except DataError as exc:
            results.append(Prediction(str(path), error=str(exc)))
            continue
        for origin, raw in entries:
            image = predictor.prepare(raw)
            probs = predictor.probabilities(image[None])[0]
            k = int(probs.argmax())
            row = Prediction(
                origin,
                predictor.classes[k],
                {c: round(float(p), 6) for c, p in zip(predictor.classes, probs, strict=True)},
                warnings=list(predictor.warnings),
            )
            far = intensity_warning(image, predictor.inputs.intensity)
            if far:
                row.warnings.append(far)
            if gradcam_dir is not None:
                row.gradcam = str(_write_overlay(predictor, image, k, origin, Path(gradcam_dir)))
            results.append(row)
    return results


def _write_overlay(
    predictor: Predictor, image: torch.Tensor, k: int, origin: str, out: Path
) -> Path:
    from rcskd.io import write_bytes_atomic
    from rcskd.report.plots import overlay_figure, png_bytes

    cam = predictor.gradcam(image, k)
    grey = image.float().mean(0).div(255.0).numpy()
    name = Path(origin).name.replace("#", "_")  # frame k of a DICOM: file_framek
    target = out / f"{name.replace('.', '_')}_gradcam.png"  # a.png -> a_png_gradcam.png
    figure = overlay_figure(grey, cam, f"{name}: {predictor.classes[k]}")
    write_bytes_atomic(target, png_bytes(figure))
    return target


def format_table(
    results: list[Prediction], classes: list[str], model_warnings: list[str] | None = None
) -> str:
    """A plain-text table: input, predicted class, one probability column per class; a
    prediction with a warning of its own (not one of `model_warnings`) is marked "!"."""
    head = ["input", "predicted", *classes]
    rows = []
    for r in results:
        if r.error:
            rows.append([r.origin, "ERROR", *[""] * len(classes)])
            continue
        own = [w for w in r.warnings if w not in (model_warnings or [])]
        label = f"{r.label} !" if own else r.label
        rows.append([r.origin, label, *[f"{r.probabilities[c]:.3f}" for c in classes]])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    lines = [
        "  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True))
        for line in [head, *rows]
    ]
    return "\n".join(lines)
