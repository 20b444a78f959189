"""Writers for small on-disk datasets in every format rcskd reads (tests make their own data)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rcskd.config import params_from_dict
from rcskd.data.dataset import TensorSplit

# the Kaggle Brain Tumor MRI dataset beside the repository, or at RCSKD_BRAIN4 (docs/data.md)
BRAIN4 = Path(
    os.environ.get(
        "RCSKD_BRAIN4", Path(__file__).resolve().parents[2] / "shared" / "data" / "brain-tumor-mri"
    )
)


def blob_image(seed: int, size: int = 48, rgb: bool = False) -> np.ndarray:
    """A distinct synthetic image: bright random ellipses on a dark frame (dedup-safe)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    img = np.zeros((size, size))
    for _ in range(4):
        cy, cx, ry, rx = rng.uniform(0.2, 0.8, 2).tolist() + rng.uniform(0.05, 0.3, 2).tolist()
        img += rng.uniform(0.3, 1.0) * (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1)
    img += rng.normal(0, 0.05, img.shape)
    img = (np.clip(img / img.max(), 0, 1) * 255).astype(np.uint8)
    return np.stack([img, np.roll(img, 3, 1), img // 2], -1) if rgb else img


def write_image(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def image_tree(root: Path, layout: dict[str, dict[str, int]], start: int = 0) -> list[Path]:
    """root/<split>/<class>/img_k.png with distinct images; `layout` split -> class -> count.
    A split named "" puts class folders directly under root."""
    paths, seed = [], start
    for split, classes in layout.items():
        for name, count in classes.items():
            for k in range(count):
                folder = root / split / name if split else root / name
                paths.append(write_image(folder / f"img_{k}.png", blob_image(seed)))
                seed += 1
    return paths


def write_figshare_mat(path: Path, image: np.ndarray, label: int, pid: str) -> Path:
    """A MATLAB v7.3 file in Jun Cheng's cjdata structure (image stored transposed)."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        g = f.create_group("cjdata")
        g["image"] = image.astype(np.int16).T
        g["label"] = np.array([[float(label)]])
        g["PID"] = np.array([[ord(c)] for c in pid], dtype=np.uint16)
        g["tumorMask"] = (image > image.mean()).astype(np.uint8).T
    return path


def write_cvind(path: Path, folds: list[int]) -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        f["cvind"] = np.asarray(folds, float)[None, :]
    return path


def write_cifar(root: Path, n_train: int, n_test: int, n_classes: int = 5) -> Path:
    """cifar-100-python/{train,test,meta} in the original pickle layout (bytes keys)."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        data = np.stack([blob_image(1000 * (split == "test") + i, 32, rgb=True) for i in range(n)])
        blob = {
            b"data": data.transpose(0, 3, 1, 2).reshape(n, -1),
            b"fine_labels": rng.integers(0, n_classes, n).tolist(),
            b"filenames": [f"img_{i}.png".encode() for i in range(n)],
        }
        (folder / split).write_bytes(pickle.dumps(blob))
    meta = {b"fine_label_names": [f"class{i}".encode() for i in range(n_classes)]}
    (folder / "meta").write_bytes(pickle.dumps(meta))
    return folder


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    patient: str,
    slope: float = 1.0,
    intercept: float = 0.0,
    photometric: str = "MONOCHROME2",
    window: tuple[float, float] | None = None,
) -> Path:
    """An uncompressed single-frame 16-bit DICOM file written with pydicom."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = patient
    ds.Modality = "MR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def compress_dicom(path: Path, syntax: str) -> Path:
    """Re-encode the uncompressed DICOM at `path` in place with transfer syntax UID `syntax`:
    JPEG Lossless through GDCM (pydicom cannot encode it), the others through pydicom's encoders
    (pyjpegls, pylibjpeg-openjpeg, its own RLE)."""
    import pydicom
    from pydicom.uid import JPEGLossless, JPEGLosslessSV1

    if syntax in (JPEGLossless, JPEGLosslessSV1):
        import gdcm

        reader = gdcm.ImageReader()
        reader.SetFileName(str(path))
        assert reader.Read(), path
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.GetTSType(syntax)))
        change.SetInput(reader.GetImage())
        assert change.Change(), syntax
        writer = gdcm.ImageWriter()
        writer.SetFileName(str(path))
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        assert writer.Write(), path
    else:
        ds = pydicom.dcmread(path)
        ds.compress(syntax)
        ds.save_as(path)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == syntax
    return path


def tiny_params(**sections):
    """Params for tests: small phantom, 32 px cache; `sections` override per section."""
    raw = {
        "seed": 0,
        "data": {"phantom": {"patients": 16, "slices_per_patient": 2, "size": 48}},
        "prepare": {"image_size": 32},
    }
    for key, value in sections.items():
        if isinstance(value, dict):
            raw.setdefault(key, {}).update(value)
        else:
            raw[key] = value
    return params_from_dict(raw)


QUADRANT_CLASSES = ["top_left", "top_right", "bottom_left", "bottom_right"]


def quadrant_png(folder: Path, k: int, name: str) -> Path:
    """A 32 px PNG of class k of the quadrant task (flat background, the square in quadrant k)."""
    img = np.full((32, 32), 30, np.uint8)
    r, c = (k // 2) * 16, (k % 2) * 16
    img[r + 2 : r + 14, c + 2 : c + 14] = 220
    return write_image(folder / name, img)


def quadrant_data(n: int, seed: int, size: int = 16) -> TensorSplit:
    """Class k = a bright square in quadrant k of a noisy image (easy, but needs spatial cues)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    images = (torch.rand(n, 1, size, size, generator=g) * 60).to(torch.uint8)
    h = size // 2
    for i, k in enumerate(labels.tolist()):
        r, c = (k // 2) * h, (k % 2) * h
        images[i, 0, r + 2 : r + h - 2, c + 2 : c + h - 2] = 220
    return TensorSplit(images, labels)


def train_quadrant_checkpoint(path: Path) -> Path:
    """A tiny ResNet trained on the quadrant task, saved as a pipeline checkpoint with its input
    spec (the model of the CLI tests and of the docs' `rcskd predict` example)."""
    from rcskd.config import AugmentConfig, TrainConfig
    from rcskd.data.intensity import intensity_profile
    from rcskd.data.transforms import fit_preprocess
    from rcskd.models import InputSpec, ModelSpec, build_model, save_checkpoint
    from rcskd.train import CrossEntropy, fit

    torch.manual_seed(0)
    train, test = quadrant_data(128, 0, size=32), quadrant_data(40, 1, size=32)
    pre = fit_preprocess(train.images)
    spec = ModelSpec("resnet20", 4, 1, 0.25)
    model = build_model(spec)
    cfg = TrainConfig(epochs=6, batch_size=16, lr=0.05, warmup_epochs=0.5, precision="fp32",
                      augment=AugmentConfig(0, 0, 0, 0, 0, 0, 0, 0))  # fmt: skip
    fit(model, CrossEntropy(), train, test, cfg, pre, show_progress=False)
    inputs = InputSpec(QUADRANT_CLASSES, 32, 1, crop_border=False, mean=list(pre.mean),
                       std=list(pre.std), dicom_window="fixed", dicom_center=1686.0,
                       dicom_width=3624.0, source="imagefolder",
                       intensity=intensity_profile(train.images))  # fmt: skip
    save_checkpoint(path, model, spec, inputs, {"role": "student"})
    return path
