"""Jun Cheng's Brain-3 figshare dataset: MATLAB v7.3 (HDF5) `.mat` files, one slice each.

Each file holds `cjdata/image` (int16, stored transposed), `cjdata/label` (1 meningioma,
2 glioma, 3 pituitary), `cjdata/PID` (patient id as uint16 character codes) and `cjdata/tumorMask`.
The optional `cvind.mat` gives a 5-fold patient-level split indexed by file number; its test fold
(`data.figshare_mat.test_fold`) becomes the test split. Without it, prepare splits by patient.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rcskd.config import DataConfig
from rcskd.data.sources.base import Sample, Source, decoding, first_line, to_uint8
from rcskd.errors import DataError
from rcskd.registry import SOURCES

FIGSHARE_LABELS = {1: "meningioma", 2: "glioma", 3: "pituitary"}
CLASSES = ["glioma", "meningioma", "pituitary"]


def _file_number(path: Path) -> int | None:
    return int(path.stem) if path.stem.isdigit() else None


def read_cvind(path: Path) -> np.ndarray:
    """Fold index (1..5) per file number, from cvind.mat in either HDF5 or classic MAT format."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "cvind" not in f:
                raise DataError(f"{path}: no 'cvind' variable (keys: {list(f.keys())})")
            folds = np.asarray(f["cvind"]).ravel()
    except OSError:  # not HDF5: a classic (v5) MAT file
        from scipy.io import loadmat

        try:
            mat = loadmat(path)
        except Exception as exc:  # scipy raises several unrelated types for bad files
            raise DataError(f"{path}: cannot read as a MATLAB file ({exc})") from None
        if "cvind" not in mat:
            raise DataError(f"{path}: no 'cvind' variable") from None
        folds = np.asarray(mat["cvind"]).ravel()
    folds = folds.astype(int)
    if folds.size == 0 or folds.min() < 1 or folds.max() > 5:
        raise DataError(f"{path}: cvind must hold fold numbers 1..5, found {np.unique(folds)}")
    return folds


def read_slice(path: Path) -> tuple[np.ndarray, int, str]:
    """(image uint8 HxW, figshare label 1..3, patient id) of one `.mat` file.

    Raises DataError naming the file when it is not HDF5 or lacks the cjdata structure.
    """
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a MATLAB v7.3 (HDF5) file ({first_line(exc)})") from None
    # h5py and numpy raise many types for odd contents (strings as pixels, empty labels)
    with decoding(path, "cannot read the cjdata slice"), f:
        for key in ("cjdata/image", "cjdata/label", "cjdata/PID"):
            if key not in f:
                raise DataError(f"{path}: wrong structure, missing {key}")
        image = np.asarray(f["cjdata/image"]).T  # MATLAB stores column-major
        label_arr = np.asarray(f["cjdata/label"]).ravel()
        pid = "".join(chr(int(c)) for c in np.asarray(f["cjdata/PID"]).ravel() if int(c) > 0)
        if image.ndim != 2 or min(image.shape) < 2:
            raise DataError(f"{path}: cjdata/image must be a 2-D slice, got shape {image.shape}")
        label = int(label_arr[0]) if label_arr.size else -1
        if label not in FIGSHARE_LABELS:
            raise DataError(f"{path}: cjdata/label must be 1, 2 or 3, got {label_arr.tolist()}")
        return to_uint8(image), label, pid.strip()


@SOURCES.register("figshare_mat")
class FigshareMatSource(Source):
    """All `*.mat` files under `data.root` (except cvind.mat), in file-number order."""

    def __init__(self, cfg: DataConfig, seed: int) -> None:
        super().__init__(cfg, seed)
        root = Path(cfg.root)
        if not root.is_dir():
            raise DataError(f"{root}: not a folder (data.root must hold the figshare .mat files)")
        if cfg.classes and sorted(cfg.classes) != CLASSES:
            raise DataError(
                f"{root}: figshare_mat has classes {CLASSES}, data.classes={cfg.classes}"
            )
        self.classes = list(cfg.classes) if cfg.classes else list(CLASSES)
        files = [p for p in root.rglob("*.mat") if p.name.lower() != "cvind.mat"]
        if not files:
            raise DataError(f"{root}: no .mat files found")
        big = float("inf")
        self.files = sorted(files, key=lambda p: (_file_number(p) or big, str(p)))
        self.folds: np.ndarray | None = None
        if cfg.figshare_mat.cvind:
            cv = Path(cfg.figshare_mat.cvind)
            if not cv.is_absolute() and not cv.exists():
                cv = root / cv
            if not cv.is_file():
                raise DataError(f"{cv}: cvind file not found (data.figshare_mat.cvind)")
            self.folds = read_cvind(cv)

    def __len__(self) -> int:
        return len(self.files)

    def _split(self, path: Path) -> str | None:
        if self.folds is None:
            return None
        number = _file_number(path)
        if number is None or not 1 <= number <= len(self.folds):
            raise DataError(
                f"{path}: cvind.mat indexes files 1..{len(self.folds)} by number; "
                f"this file's name is not such a number"
            )
        return "test" if self.folds[number - 1] == self.cfg.figshare_mat.test_fold else "train"

    def __iter__(self) -> Iterator[Sample]:
        for path in self.files:
            try:
                image, label, pid = read_slice(path)
            except DataError as exc:
                self.bad_file(path, str(exc).removeprefix(f"{path}: "))
                continue
            label_index = self.classes.index(FIGSHARE_LABELS[label])
            yield Sample(image, label_index, pid or None, str(path), self._split(path))
