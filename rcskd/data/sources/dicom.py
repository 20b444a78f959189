"""Class-per-folder DICOM files read with pydicom (same folder layouts as imagefolder).

Transfer syntaxes decoded: uncompressed (implicit/explicit VR, little/big endian, deflated), RLE
Lossless, JPEG Baseline and Extended, JPEG Lossless (Process 14, SV1 too), JPEG-LS (lossless and
near-lossless) and JPEG 2000 (lossless and lossy). Each compressed syntax is decoded by the one
plugin that rejects a truncated stream (`DECODER`): pylibjpeg-libjpeg, for one, returns wrong
pixels without a word for cut JPEG Lossless and JPEG-LS data, so it is not installed, and no
other plugin is tried after the chosen one fails. Any file that cannot be decoded is one
DataError naming the file and its syntax.

Pixel values go through the modality LUT (rescale slope/intercept), then a window: the file's own
VOI LUT / window (`auto`, falling back to robust min-max), plain min-max, or a fixed
centre/width. MONOCHROME1 images are inverted so that bright means high signal. Multi-frame files
give one sample per frame. The patient id is the file's PatientID.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rcskd.config import DataConfig
from rcskd.data.sources.base import Sample, Source, decoding, to_uint8
from rcskd.data.sources.folders import scan
from rcskd.errors import DataError
from rcskd.registry import SOURCES

# transfer syntax UID -> the decoding plugin pydicom must use for it
DECODER = {
    "1.2.840.10008.1.2.4.50": "gdcm",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51": "gdcm",  # JPEG Extended
    "1.2.840.10008.1.2.4.57": "gdcm",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70": "gdcm",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80": "pyjpegls",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": "pyjpegls",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90": "pylibjpeg",  # JPEG 2000 Lossless (openjpeg)
    "1.2.840.10008.1.2.4.91": "pylibjpeg",  # JPEG 2000
    "1.2.840.10008.1.2.5": "pydicom",  # RLE Lossless
}
SUPPORTED_SYNTAXES = (
    "uncompressed, RLE Lossless, JPEG Baseline/Extended, JPEG Lossless, JPEG-LS, JPEG 2000"
)


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
    from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array

    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", ""))
    raw = pixel_array(ds, decoding_plugin=DECODER.get(syntax, ""))
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


def transfer_syntax(ds) -> str:
    """The file's transfer syntax by name (its UID when pydicom does not know it)."""
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    return str(uid.name) if uid is not None else "no transfer syntax in the file meta"


def read_dicom(
    path: str | Path, window: str, centre: float, width: float
) -> tuple[list[np.ndarray], str | None]:
    """uint8 frames (see `dicom_frames`) and PatientID of one DICOM file.

    Raises one DataError naming the file (and the transfer syntax, when decoding fails).
    """
    import pydicom

    # pydicom logs each failing plugin's traceback; the DataError below says it in one line
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    with decoding(path, "not a readable DICOM file"):
        ds = pydicom.dcmread(path)
        syntax = transfer_syntax(ds)
        if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            raise DataError(f"{path}: the DICOM file holds no pixel data")
    try:
        with decoding(path, f"cannot decode the pixel data ({syntax})"):
            frames = dicom_frames(ds, window, centre, width)
    except DataError as exc:
        missing = ("NotImplementedError" in str(exc)) or ("missing dependencies" in str(exc))
        if missing:  # no decoder for this syntax: say which ones rcskd has
            raise DataError(f"{exc}; rcskd decodes: {SUPPORTED_SYNTAXES}") from None
        raise
    with decoding(path, "unreadable PatientID"):
        patient = str(getattr(ds, "PatientID", "") or "") or None
    return frames, patient


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
        dcfg = self.cfg.dicom
        for f in self.layout.files:
            try:
                frames, patient = read_dicom(f.path, dcfg.window, dcfg.center, dcfg.width)
            except DataError as exc:
                self.bad_file(f.path, str(exc).removeprefix(f"{f.path}: "))
                continue
            for k, image in enumerate(frames):
                origin = str(f.path) if len(frames) == 1 else f"{f.path}#frame{k}"
                yield Sample(image, f.label, patient, origin, f.split)
