"""Property tests: every source's decode path, fed random bytes and random headers, either
returns a valid image or raises an RcskdError (one line naming the file), never anything else."""

import pickle
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rcskd.config import params_from_dict
from rcskd.data.sources.cifar100 import Cifar100Source
from rcskd.data.sources.dicom import DicomSource
from rcskd.data.sources.figshare_mat import read_slice
from rcskd.data.sources.imagefolder import read_image
from rcskd.errors import RcskdError
from tests.fixtures import write_dicom

FAST = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))


def valid_image(image) -> bool:
    return (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3))
    )


def decodes_or_says_why(read, data: bytes, name: str):
    """Write `data` to a file called `name`, read it: an image or an RcskdError naming it."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        try:
            return read(path)
        except RcskdError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
            return None


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@FAST
@given(st.binary(max_size=2048), st.sampled_from(["x.png", "x.jpg", "x.tif", "x.bmp", "x.gif"]))
def test_random_bytes_as_an_image_file(data, name):
    image = decodes_or_says_why(read_image, data, name)
    assert image is None or valid_image(image)


@FAST
@given(
    st.integers(0, 70000),
    st.integers(0, 70000),
    st.sampled_from([1, 2, 4, 8, 16, 3, 0]),
    st.sampled_from([0, 2, 3, 4, 6, 1, 7]),
    st.binary(max_size=512),
    st.booleans(),
)
def test_png_with_random_header_fields(width, height, depth, colour, pixels, compress):
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    body = zlib.compress(pixels) if compress else pixels
    data = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body)
            + png_chunk(b"IEND", b""))  # fmt: skip
    image = decodes_or_says_why(read_image, data, "x.png")
    assert image is None or valid_image(image)


def dicom_source(root: Path) -> DicomSource:
    return DicomSource(params_from_dict({"data": {"source": "dicom", "root": str(root)}}).data, 0)


def read_dicom_folder(path: Path):
    """The file as the only DICOM of a class folder, through the source (one sample or error)."""
    samples = list(dicom_source(path.parent.parent))
    for sample in samples:
        assert valid_image(sample.image)
    return samples


@FAST
@given(st.binary(max_size=2048))
def test_random_bytes_after_a_dicom_preamble(data):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "a").mkdir()
        path = Path(folder) / "a" / "x.dcm"
        path.write_bytes(b"\0" * 128 + b"DICM" + data)
        try:
            read_dicom_folder(path)
        except RcskdError as exc:
            assert str(path) in str(exc)


SYNTAXES = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2",
            "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.80",
            "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.100",
            "1.2.3.4"]  # fmt: skip


@FAST
@given(
    rows=st.integers(0, 70000),
    columns=st.integers(0, 70000),
    bits=st.sampled_from([1, 8, 12, 16, 32, 64, 7]),
    samples=st.sampled_from([1, 3, 4, 0]),
    photometric=st.sampled_from(
        ["MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "PALETTE COLOR", "", "nonsense"]
    ),  # fmt: skip
    frames=st.sampled_from([None, 0, 1, 2, 1000]),
    representation=st.sampled_from([0, 1, 2]),
    syntax=st.sampled_from(SYNTAXES),
    pixels=st.binary(max_size=4096),
    window=st.sampled_from([None, (40.0, 400.0), (0.0, 0.0), (1e30, -5.0)]),
)
def test_dicom_with_random_header_fields(
    rows, columns, bits, samples, photometric, frames, representation, syntax, pixels, window
):
    import pydicom

    with tempfile.TemporaryDirectory() as folder:
        path = write_dicom(Path(folder) / "a" / "x.dcm", np.zeros((4, 4), np.uint16), "P")
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = syntax
        ds.Rows, ds.Columns, ds.BitsAllocated = rows, columns, bits
        ds.BitsStored, ds.HighBit = bits, max(bits - 1, 0)
        ds.SamplesPerPixel, ds.PhotometricInterpretation = samples, photometric
        ds.PixelRepresentation = representation
        if frames is not None:
            ds.NumberOfFrames = frames
        if window is not None:
            ds.WindowCenter, ds.WindowWidth = window
        ds.PixelData = pixels
        try:
            ds.save_as(path, enforce_file_format=False)
        except Exception:  # noqa: BLE001 - pydicom refused to write it: nothing to read
            return
        try:
            read_dicom_folder(path)
        except RcskdError as exc:
            assert str(path) in str(exc)


@FAST
@given(st.binary(max_size=2048))
def test_random_bytes_as_a_figshare_mat_file(data):
    result = decodes_or_says_why(read_slice, data, "1.mat")
    assert result is None or valid_image(result[0])


@FAST
@given(
    shape=st.lists(st.integers(0, 6), max_size=3),
    dtype=st.sampled_from(["int16", "uint8", "float64", "bool", "S3"]),
    label=st.lists(st.integers(-3, 5), max_size=2),
    pid=st.lists(st.integers(0, 300), max_size=4),
    drop=st.sampled_from([None, "cjdata/image", "cjdata/label", "cjdata/PID"]),
)
def test_figshare_mat_with_random_structure(shape, dtype, label, pid, drop):
    import h5py

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "1.mat"
        with h5py.File(path, "w") as f:
            values = {
                "cjdata/image": np.zeros(shape, dtype),
                "cjdata/label": np.asarray(label, np.float64),
                "cjdata/PID": np.asarray(pid, np.uint16),
            }
            for key, value in values.items():
                if key != drop:
                    f[key] = value
        try:
            image, *_ = read_slice(path)
            assert valid_image(image)
        except RcskdError as exc:
            assert str(path) in str(exc)


@FAST
@given(st.one_of(
    st.binary(max_size=1024),
    st.builds(lambda v: pickle.dumps(v), st.recursive(
        st.none() | st.integers() | st.binary(max_size=8) | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
            st.sampled_from([b"data", b"fine_labels", b"fine_label_names", "x"]), inner,
            max_size=4),
        max_leaves=10)),
))  # fmt: skip
def test_random_cifar_python_files(data):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "cifar-100-python"
        root.mkdir()
        good_meta = pickle.dumps({b"fine_label_names": [b"a", b"b"]})
        for name in ("meta", "train", "test"):
            (root / name).write_bytes(data if name != "meta" else good_meta)
        cfg = params_from_dict({"data": {"source": "cifar100", "root": folder}}).data
        try:
            for sample in Cifar100Source(cfg, 0):
                assert valid_image(sample.image)
        except RcskdError as exc:
            assert "cifar-100-python" in str(exc)


def test_the_properties_would_catch_a_leaking_exception():
    """The harness itself: an exception other than RcskdError fails it."""
    with pytest.raises(ZeroDivisionError):
        decodes_or_says_why(lambda p: 1 / 0, b"", "x.png")
