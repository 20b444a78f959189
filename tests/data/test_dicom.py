import numpy as np
import pytest

from rcskd.config import params_from_dict
from rcskd.data.sources.dicom import DicomSource, is_dicom
from rcskd.errors import DataError
from tests.fixtures import write_dicom

RAMP = (np.arange(32 * 32).reshape(32, 32) % 1000).astype(np.uint16)


def source(root, **dicom):
    raw = {"data": {"source": "dicom", "root": str(root), "dicom": dicom}}
    return DicomSource(params_from_dict(raw).data, seed=0)


def test_class_folders_patient_ids_and_minmax(tmp_path):
    write_dicom(tmp_path / "glioma" / "a.dcm", RAMP, "P1")
    write_dicom(tmp_path / "notumor" / "b.dcm", RAMP, "P2")
    samples = list(source(tmp_path, window="minmax"))
    assert [s.patient for s in samples] == ["P1", "P2"]
    image = samples[0].image
    assert image.dtype == np.uint8 and image.min() == 0 and image.max() == 255
    assert image[0, 10] > image[0, 0]  # 10/999 of the range: about 3 grey levels


def test_monochrome1_is_inverted(tmp_path):
    write_dicom(tmp_path / "a" / "m2.dcm", RAMP, "P1")
    write_dicom(tmp_path / "b" / "m1.dcm", RAMP, "P1", photometric="MONOCHROME1")
    m2, m1 = [s.image for s in source(tmp_path, window="minmax")]
    assert np.array_equal(m1, 255 - m2)


def test_rescale_then_fixed_window(tmp_path):
    # stored 0..999, slope 2, intercept -1000 -> -1000..998; window centre 0 width 200
    write_dicom(tmp_path / "a" / "x.dcm", RAMP, "P", slope=2.0, intercept=-1000.0)
    (image,) = [s.image for s in source(tmp_path, window="fixed", center=0.0, width=200.0)]
    values = RAMP.astype(float) * 2 - 1000
    assert np.all(image[values <= -100] == 0)
    assert np.all(image[values >= 100] == 255)
    mid = (values > -90) & (values < 90)
    expected = (values[mid] + 100) / 200 * 255
    assert np.allclose(image[mid], expected, atol=1.0)


def test_auto_uses_the_files_window(tmp_path):
    write_dicom(tmp_path / "a" / "x.dcm", RAMP, "P", window=(500.0, 200.0))
    (image,) = [s.image for s in source(tmp_path)]
    assert np.all(image[RAMP < 390] == 0) and np.all(image[RAMP > 610] == 255)


def test_files_without_suffix_are_found_by_preamble(tmp_path):
    path = write_dicom(tmp_path / "a" / "IM0001", RAMP, "P")
    (tmp_path / "a" / "notes").write_text("not dicom")
    assert is_dicom(path) and not is_dicom(tmp_path / "a" / "notes")
    assert len(list(source(tmp_path))) == 1


def test_corrupt_dicom_names_the_file(tmp_path):
    write_dicom(tmp_path / "a" / "ok.dcm", RAMP, "P")
    (tmp_path / "a" / "bad.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x01" * 20)
    with pytest.raises(DataError, match=r"bad\.dcm: cannot read DICOM pixel data"):
        list(source(tmp_path))
    src = source(tmp_path, window="auto")
    object.__setattr__(src.cfg, "on_bad_file", "skip")
    assert len(list(src)) == 1 and len(src.skipped) == 1
