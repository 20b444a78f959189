import numpy as np
import pytest

from rcskd.config import params_from_dict
from rcskd.data.sources.figshare_mat import FigshareMatSource, read_slice
from rcskd.errors import DataError
from tests.fixtures import blob_image, write_cvind, write_figshare_mat


def make_set(root, n_patients=6, slices=3):
    k = 1
    for p in range(n_patients):
        for _ in range(slices):
            size = 64 if k % 4 else 32  # mixed sizes, like the 512/256 mix of the original
            image = blob_image(k, size).astype(np.int16) * 7 - 300
            label = 1 + p % 3
            write_figshare_mat(root / f"part{k % 2}" / f"{k}.mat", image, label, f"MR{p:04d}")
            k += 1
    return k - 1


def source(root, **fig):
    raw = {"data": {"source": "figshare_mat", "root": str(root), "figshare_mat": fig}}
    return FigshareMatSource(params_from_dict(raw).data, seed=0)


def test_reads_transposed_int16_images_labels_and_patient_ids(tmp_path):
    image = np.arange(12, dtype=np.int16).reshape(3, 4) * 100
    path = write_figshare_mat(tmp_path / "1.mat", image, 2, "100360")
    out, label, pid = read_slice(path)
    assert out.shape == (3, 4)  # transposed back
    assert out[0, 0] < out[0, 3] < out[2, 3]  # orientation preserved
    assert out.dtype == np.uint8 and label == 2 and pid == "100360"


def test_source_orders_by_file_number_and_maps_labels(tmp_path):
    n = make_set(tmp_path)
    samples = list(source(tmp_path))
    assert len(samples) == n == 18
    assert [int(s.origin.split("/")[-1][:-4]) for s in samples] == list(range(1, 19))
    classes = ["glioma", "meningioma", "pituitary"]
    # patient 0 has figshare label 1 = meningioma
    assert classes[samples[0].label] == "meningioma" and samples[0].patient == "MR0000"
    assert all(s.split is None for s in samples)


def test_cvind_selects_the_test_fold(tmp_path):
    make_set(tmp_path)
    folds = [1 + (k // 3) % 5 for k in range(18)]  # whole patients per fold
    write_cvind(tmp_path / "cvind.mat", folds)
    samples = list(source(tmp_path, cvind="cvind.mat", test_fold=2))
    test_patients = {s.patient for s in samples if s.split == "test"}
    assert test_patients == {"MR0001"}
    assert sum(s.split == "test" for s in samples) == 3


def test_wrong_structure_names_the_file(tmp_path):
    import h5py

    with h5py.File(tmp_path / "1.mat", "w") as f:
        f.create_group("cjdata")["image"] = np.zeros((4, 4), np.int16)
    with pytest.raises(DataError, match=r"1\.mat: wrong structure, missing cjdata/label"):
        list(source(tmp_path))


def test_non_hdf5_mat_names_the_file(tmp_path):
    (tmp_path / "7.mat").write_bytes(b"MATLAB 5.0 MAT-file, not HDF5")
    with pytest.raises(DataError, match=r"7\.mat: not a MATLAB v7.3 \(HDF5\) file"):
        list(source(tmp_path))


def test_bad_label_is_reported(tmp_path):
    write_figshare_mat(tmp_path / "1.mat", blob_image(0).astype(np.int16), 4, "P")
    with pytest.raises(DataError, match=r"cjdata/label must be 1, 2 or 3"):
        list(source(tmp_path))


def test_empty_folder_and_missing_cvind(tmp_path):
    with pytest.raises(DataError, match="no .mat files"):
        source(tmp_path)
    make_set(tmp_path, 1, 1)
    with pytest.raises(DataError, match="cvind file not found"):
        source(tmp_path, cvind="missing.mat")
