"""Class-per-folder DICOM files read with pydicom (same folder layouts as imagefolder).

Pixel values go through the modality LUT (rescale slope/intercept), then a window: the file's own
VOI LUT / window (`auto`, falling back to robust min-max), plain min-max, or a fixed
centre/width. MONOCHROME1 images are inverted so that bright means high signal. Multi-frame files
give one sample per frame. The patient id is the file's PatientID.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rcskd.config import DataConfig
from rcskd.data.sources.base import Sample, Source, to_uint8
from rcskd.data.sources.folders import scan
from rcskd.registry import SOURCES


def is_dicom(path: Path) -> bool:
    """True for *.dcm / *.dicom files and for files with the DICM preamble marker."""
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    if path.suffix:
        return False
    try:
        with path.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def dicom_frames(ds, window: str, centre: float, width: float) -> list[np.ndarray]:
    """Pixel data of a pydicom dataset as uint8 frames, windowed and MONOCHROME1-corrected."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    raw = ds.pixel_array
    frames = raw if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1 else raw[None]
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    out = []
    for frame in frames:
        if photometric.startswith("RGB") or photometric.startswith("YBR"):
            out.append(to_uint8(np.asarray(frame)))
            continue
        values = apply_modality_lut(frame, ds).astype(np.float64)
        has_voi = "VOILUTSequence" in ds or "WindowCenter" in ds
        if window == "auto" and has_voi:
            values = apply_voi_lut(values, ds, index=0).astype(np.float64)
            image = to_uint8(values, 0.0, 100.0)
        elif window == "fixed":
            lo, hi = centre - width / 2, centre + width / 2
            image = (np.clip((values - lo) / (hi - lo), 0, 1) * 255 + 0.5).astype(np.uint8)
        else:
            image = to_uint8(values) if window == "auto" else to_uint8(values, 0.0, 100.0)
        if photometric == "MONOCHROME1":
            image = 255 - image
        out.append(image)
    return out


@SOURCES.register("dicom")
class DicomSource(Source):
    """DICOM files in class folders, optionally under split folders."""

    def __init__(self, cfg: DataConfig, seed: int) -> None:
        super().__init__(cfg, seed)
        self.layout = scan(Path(cfg.root), cfg, is_dicom)
        self.classes = self.layout.classes

    def __len__(self) -> int:
        return len(self.layout.files)

    def __iter__(self) -> Iterator[Sample]:
        import pydicom
        from pydicom.errors import InvalidDicomError

        dcfg = self.cfg.dicom
        for f in self.layout.files:
            try:
                ds = pydicom.dcmread(f.path)
                frames = dicom_frames(ds, dcfg.window, dcfg.center, dcfg.width)
            except (InvalidDicomError, OSError, ValueError, AttributeError, KeyError) as exc:
                self.bad_file(f.path, f"cannot read DICOM pixel data ({type(exc).__name__}: {exc})")
                continue
            patient = str(getattr(ds, "PatientID", "") or "") or None
            for k, image in enumerate(frames):
                origin = str(f.path) if len(frames) == 1 else f"{f.path}#frame{k}"
                yield Sample(image, f.label, patient, origin, f.split)
