from pathlib import Path

import numpy as np
import pytest

from rcskd.config import params_from_dict
from rcskd.data.sources.dicom import DicomSource, is_dicom
from rcskd.errors import DataError
from tests.fixtures import compress_dicom, write_dicom

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
    with pytest.raises(DataError, match=r"bad\.dcm: the DICOM file holds no pixel data"):
        list(source(tmp_path))
    src = source(tmp_path, window="auto")
    object.__setattr__(src.cfg, "on_bad_file", "skip")
    assert len(list(src)) == 1 and len(src.skipped) == 1


SYNTAXES = {
    "jpeg_lossless": "1.2.840.10008.1.2.4.57",
    "jpeg_lossless_sv1": "1.2.840.10008.1.2.4.70",
    "jpeg_ls": "1.2.840.10008.1.2.4.80",
    "jpeg_2000_lossless": "1.2.840.10008.1.2.4.90",
    "rle": "1.2.840.10008.1.2.5",
}


@pytest.mark.parametrize("name", SYNTAXES)
def test_compressed_dicoms_decode_exactly(tmp_path, name):
    """The compressed syntaxes of real MR exports decode to the same pixels as uncompressed."""
    write_dicom(tmp_path / "plain" / "x.dcm", RAMP, "P")
    path = write_dicom(tmp_path / "packed" / "x.dcm", RAMP, "P")
    compress_dicom(path, SYNTAXES[name])
    plain, packed = (s.image for s in source(tmp_path, window="minmax"))
    assert np.array_equal(plain, packed)


def test_each_syntax_has_its_chosen_decoder_installed():
    from pydicom.pixels.decoders.base import get_decoder

    from rcskd.data.sources.dicom import DECODER

    for uid, plugin in DECODER.items():
        assert plugin in get_decoder(uid).available_plugins, uid


@pytest.mark.parametrize("name", SYNTAXES)
def test_a_truncated_stream_is_an_error_never_silently_wrong_pixels(tmp_path, name, capfd):
    import pydicom

    path = compress_dicom(write_dicom(tmp_path / "a" / "cut.dcm", RAMP, "P"), SYNTAXES[name])
    ds = pydicom.dcmread(path)
    frame = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = pydicom.encaps.encapsulate([frame[: len(frame) // 2]])
    ds.save_as(path)
    with pytest.raises(DataError, match=r"cut\.dcm: cannot decode the pixel data \("):
        list(source(tmp_path))
    assert "Traceback" not in capfd.readouterr().err


def test_undecodable_dicom_is_one_line_naming_file_and_syntax(tmp_path):
    """A syntax no installed decoder handles (JPEG 2000 Part 2) and a truncated JPEG-LS stream: one
    DataError each naming the file and the syntax; `skip` skips them and counts."""
    import pydicom

    write_dicom(tmp_path / "a" / "ok.dcm", RAMP, "P")
    jxl = write_dicom(tmp_path / "a" / "jp2.dcm", RAMP, "P")
    ds = pydicom.dcmread(jxl)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.92"  # JPEG 2000 Part 2
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 64])
    ds.save_as(jxl)
    with pytest.raises(DataError) as info:
        list(source(tmp_path))
    message = str(info.value)
    assert "jp2.dcm: cannot decode the pixel data (JPEG 2000 Part 2 Multi-comp" in message
    assert "rcskd decodes:" in message and "\n" not in message
    jxl.unlink()
    cut = compress_dicom(write_dicom(tmp_path / "a" / "cut.dcm", RAMP, "P"), SYNTAXES["jpeg_ls"])
    ds = pydicom.dcmread(cut)
    frame = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = pydicom.encaps.encapsulate([frame[:24]])  # the header, cut short
    ds.save_as(cut)
    with pytest.raises(DataError, match=r"cut\.dcm: cannot decode the pixel data \(JPEG-LS Loss"):
        list(source(tmp_path))
    src = source(tmp_path)
    object.__setattr__(src.cfg, "on_bad_file", "skip")
    assert [Path(s.origin).name for s in src] == ["ok.dcm"] and len(src.skipped) == 1
