import numpy as np
import pytest
from PIL import Image

from rcskd.config import params_from_dict
from rcskd.data.sources.folders import canonical
from rcskd.data.sources.imagefolder import ImageFolderSource, read_image
from rcskd.errors import DataError
from tests.fixtures import BRAIN4, blob_image, image_tree, write_image


def source(root, **data):
    cfg = params_from_dict({"data": {"source": "imagefolder", "root": str(root), **data}}).data
    return ImageFolderSource(cfg, seed=0)


def test_kaggle_layout_with_aliases_keeps_the_given_split(tmp_path):
    image_tree(
        tmp_path,
        {
            "Training": {"glioma_tumor": 3, "no_tumor": 2, "Pituitary Tumor": 1},
            "Testing": {"glioma_tumor": 1, "no_tumor": 1, "Pituitary Tumor": 1},
        },
    )
    src = source(tmp_path)
    samples = list(src)
    assert src.classes == ["glioma", "notumor", "pituitary"]
    assert len(src) == len(samples) == 9
    by_split = {s: sorted(x.label for x in samples if x.split == s) for s in ("train", "test")}
    assert by_split == {"train": [0, 0, 0, 1, 1, 2], "test": [0, 1, 2]}
    assert all(x.patient is None and x.image.dtype == np.uint8 for x in samples)


def test_flat_layout_has_no_given_split_and_rgb_is_kept(tmp_path):
    write_image(tmp_path / "a" / "x.png", blob_image(0, rgb=True))
    write_image(tmp_path / "b" / "y.jpg", blob_image(1))
    samples = list(source(tmp_path))
    assert [s.split for s in samples] == [None, None]
    assert samples[0].image.shape == (48, 48, 3) and samples[1].image.ndim == 2


def test_data_classes_fixes_label_order(tmp_path):
    image_tree(tmp_path, {"": {"b": 1, "a": 1}})
    src = source(tmp_path, classes=["b", "a"])
    assert src.classes == ["b", "a"]
    assert {s.origin.split("/")[-2]: s.label for s in src} == {"b": 0, "a": 1}


def test_canonical_names():
    aliases = {"Glioma-Tumor": "glioma"}
    assert canonical(" glioma_tumor ", aliases) == "glioma"
    assert canonical("No Tumor", {}) == "no_tumor"


def test_unknown_class_names_the_folder(tmp_path):
    image_tree(tmp_path, {"": {"glioma": 1, "astrocytoma": 1}})
    with pytest.raises(DataError, match=r"astrocytoma: unknown class 'astrocytoma'"):
        source(tmp_path, classes=["glioma", "notumor"])


def test_hidden_files_and_folders_are_ignored(tmp_path):
    image_tree(tmp_path, {"": {"a": 1}})
    write_image(tmp_path / "a" / ".ipynb_checkpoints" / "img_0-checkpoint.png", blob_image(0))
    write_image(tmp_path / "a" / ".hidden.png", blob_image(1))
    assert len(source(tmp_path)) == 1


def test_empty_class_folder_is_an_error(tmp_path):
    image_tree(tmp_path, {"": {"glioma": 1}})
    (tmp_path / "notumor").mkdir()
    (tmp_path / "notumor" / "readme.txt").write_text("no images")
    with pytest.raises(DataError, match=r"notumor: class folder has no usable files"):
        source(tmp_path)


def test_class_sets_differing_between_splits_is_an_error(tmp_path):
    image_tree(tmp_path, {"Training": {"glioma": 1, "notumor": 1}, "Testing": {"glioma": 1}})
    with pytest.raises(DataError, match=r"class folders differ between splits"):
        source(tmp_path)


def test_missing_root_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"nope: not a folder"):
        source(tmp_path / "nope")


def test_truncated_and_corrupt_files_error_or_are_skipped(tmp_path):
    image_tree(tmp_path, {"": {"a": 2}})
    good = tmp_path / "a" / "big.jpg"
    Image.fromarray(blob_image(7, 128)).save(good, quality=95)
    data = good.read_bytes()
    (tmp_path / "a" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "a" / "garbage.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"(garbage\.png|truncated\.jpg): cannot decode image"):
        list(source(tmp_path))
    src = source(tmp_path, on_bad_file="skip")
    kept = list(src)
    assert len(kept) == 3  # img_0, img_1, big
    assert len(src.skipped) == 2
    assert any("truncated.jpg" in s for s in src.skipped)


def test_16_bit_png_is_scaled_to_8_bit(tmp_path):
    values = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == (64, 64)
    assert image.min() == 0 and image.max() == 255


@pytest.mark.brain4
@pytest.mark.skipif(not BRAIN4.is_dir(), reason="../shared/data/brain-tumor-mri not present")
def test_brain4_layout_is_recognised():
    src = source(BRAIN4)
    assert src.classes == ["glioma", "meningioma", "notumor", "pituitary"]
    splits = [f.split for f in src.layout.files]
    # 7,019 images; a hidden .ipynb_checkpoints copy in Testing/meningioma is not data
    assert splits.count("test") == 1311 and splits.count("train") == 5708
