import csv
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from rcskd.data.dataset import PreparedDataset, load_meta
from rcskd.data.prepare import crop_to_content, fit_image, prepare
from rcskd.errors import DataError, LeakageError
from tests.fixtures import BRAIN4, blob_image, image_tree, tiny_params, write_image


def folder_params(root, **prep):
    return tiny_params(data={"source": "imagefolder", "root": str(root)}, prepare=prep)


def leaky_tree(root):
    """Kaggle-style tree where two test images also sit in Training: one byte-identical, one
    re-encoded and resized."""
    image_tree(
        root, {"Training": {"glioma": 10, "notumor": 10}, "Testing": {"glioma": 3, "notumor": 3}}
    )
    test_img = np.asarray(Image.open(root / "Testing" / "glioma" / "img_0.png"))
    write_image(root / "Training" / "glioma" / "copy.png", test_img)
    other = np.asarray(Image.open(root / "Testing" / "notumor" / "img_1.png"))
    small = Image.fromarray(other).resize((40, 40), Image.Resampling.BILINEAR)
    small.save(root / "Training" / "notumor" / "near.jpg", quality=90)


def read_manifest(out):
    with (out / "manifest.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_prepare_removes_cross_split_duplicates_and_writes_everything(tmp_path):
    leaky_tree(tmp_path / "raw")
    out = tmp_path / "prepared"
    report = prepare(folder_params(tmp_path / "raw"), out, progress=False)
    dup = report["duplicates"]
    assert (dup["exact_groups_cross_split"], dup["removed_exact"]) == (1, 1)
    assert (dup["near_groups_cross_split"], dup["removed_near"]) == (1, 1)
    assert report["images_read"] == 28 and report["images_kept"] == 26
    assert report["counts"]["test"] == {"total": 6, "glioma": 3, "notumor": 3}
    assert report["counts"]["train"]["total"] + report["counts"]["val"]["total"] == 20
    assert report["leakage_check"] == "passed" and report["patient_level_split"] is False

    rows = read_manifest(out)
    assert len(rows) == 26
    origins = {r["origin"] for r in rows}
    assert not any(o.endswith(("copy.png", "near.jpg")) for o in origins)
    with (out / "duplicates.csv").open() as fh:
        dropped = {r["dropped_origin"].rsplit("/", 1)[-1]: r["kind"] for r in csv.DictReader(fh)}
    assert dropped == {"copy.png": "exact", "near.jpg": "near"}

    train = PreparedDataset(out, "train")
    image, label = train[0]
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    first = next(r for r in rows if r["split"] == "train" and r["index"] == "0")
    assert label == int(first["label"])
    meta = load_meta(out)
    assert meta["classes"] == ["glioma", "notumor"] and meta["fingerprint"] == report["fingerprint"]


def test_prepare_is_deterministic(tmp_path):
    image_tree(tmp_path / "raw", {"": {"a": 12, "b": 12}})
    first = prepare(folder_params(tmp_path / "raw"), tmp_path / "p1", progress=False)
    second = prepare(folder_params(tmp_path / "raw"), tmp_path / "p2", progress=False)
    assert first["fingerprint"] == second["fingerprint"]
    t1 = torch.load(tmp_path / "p1" / "train.pt", weights_only=True)
    t2 = torch.load(tmp_path / "p2" / "train.pt", weights_only=True)
    assert torch.equal(t1["images"], t2["images"])


def test_fail_policy_stops_and_leaves_no_partial_output(tmp_path):
    leaky_tree(tmp_path / "raw")
    out = tmp_path / "prepared"
    out.mkdir()
    (out / "old.txt").write_text("previous run")
    params = folder_params(tmp_path / "raw", dedup={"policy": "fail"})
    with pytest.raises(LeakageError, match="duplicate groups span splits"):
        prepare(params, out, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["prepared", "raw"]  # no temp folder left behind
    assert os.listdir(out) == ["old.txt"]  # the previous cache is untouched


def test_bad_file_midway_leaves_no_partial_output(tmp_path):
    image_tree(tmp_path / "raw", {"": {"a": 3, "b": 3}})
    (tmp_path / "raw" / "b" / "zz_broken.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match=r"zz_broken\.png: cannot decode image"):
        prepare(folder_params(tmp_path / "raw"), tmp_path / "prepared", progress=False)
    assert sorted(os.listdir(tmp_path)) == ["raw"]


def test_three_channels_and_skip_policy(tmp_path):
    image_tree(tmp_path / "raw", {"": {"a": 6, "b": 6}})
    (tmp_path / "raw" / "a" / "broken.png").write_bytes(b"nope")
    params = tiny_params(
        data={"source": "imagefolder", "root": str(tmp_path / "raw"), "on_bad_file": "skip"},
        prepare={"channels": 3, "image_size": 16, "min_images_per_class": 1},
    )
    report = prepare(params, tmp_path / "prepared", progress=False)
    assert report["skipped_bad_files"] == 1 and report["images_read"] == 12
    images = torch.load(tmp_path / "prepared" / "test.pt", weights_only=True)["images"]
    assert images.shape[1:] == (3, 16, 16) and images.dtype == torch.uint8


def test_phantom_prepare_splits_by_patient(tmp_path):
    report = prepare(tiny_params(), tmp_path / "prepared", progress=False)
    assert report["images_read"] == 32 and report["patient_level_split"] is True
    rows = read_manifest(tmp_path / "prepared")
    split_of = {}
    for r in rows:
        assert split_of.setdefault(r["patient"], r["split"]) == r["split"]
    assert {r["split"] for r in rows} == {"train", "val", "test"}


def test_crop_and_fit_keep_aspect():
    frame = np.zeros((100, 60), np.uint8)
    frame[20:80, 10:50] = 200
    cropped = crop_to_content(frame)
    assert cropped.shape == (64, 44)  # content plus a 2-pixel margin
    fitted = fit_image(frame, 32, 1, crop=True)
    assert fitted.shape == (1, 32, 32)
    assert fitted[0, 16, 0] == 0 and fitted[0, 16, 16] > 150  # padded sides, bright centre
    flat = np.full((10, 10), 7, np.uint8)
    assert crop_to_content(flat).shape == (10, 10)  # nothing to crop


def test_missing_cache_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="run the prepare stage first"):
        PreparedDataset(tmp_path, "train")


@pytest.mark.brain4
@pytest.mark.skipif(not BRAIN4.is_dir(), reason="../shared/data/brain-tumor-mri not present")
def test_brain4_finds_the_189_exact_cross_split_groups(tmp_path):
    params = tiny_params(data={"source": "imagefolder", "root": str(BRAIN4)})
    report = prepare(params, tmp_path / "prepared", progress=False)
    dup = report["duplicates"]
    assert report["images_read"] == 7019
    assert dup["exact_groups_cross_split"] == 189
    assert dup["within_split_exact_groups"] == 111  # 300 byte-identical groups in all
    assert dup["near_groups_cross_split"] > 100  # resized / re-encoded copies
    assert report["counts"]["test"]["total"] == 1311
    json.dumps(report)  # the report is plain JSON


def test_patient_in_two_given_splits_stops_prepare(tmp_path):
    from tests.fixtures import write_dicom

    raw = tmp_path / "raw"
    for k in range(5):
        pixels = (blob_image(k, 32).astype(np.uint16) * 4).astype(np.uint16)
        split = "Testing" if k >= 3 else "Training"
        patient = "P-shared" if k in (0, 3) else f"P{k}"
        write_dicom(raw / split / ("a" if k % 2 else "b") / f"{k}.dcm", pixels, patient)
    params = tiny_params(data={"source": "dicom", "root": str(raw)})
    with pytest.raises(LeakageError, match=r"patient 'P-shared' is in both"):
        prepare(params, tmp_path / "prepared", progress=False)
    assert not (tmp_path / "prepared").exists()


def test_cache_is_byte_identical_across_runs(tmp_path):
    import hashlib

    image_tree(tmp_path / "raw", {"": {"a": 6, "b": 6}})
    digests = []
    for name in ("p1", "p2"):
        params = folder_params(tmp_path / "raw", min_images_per_class=1)
        prepare(params, tmp_path / name, progress=False)
        files = sorted((tmp_path / name).iterdir())
        digests.append({f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files})
    assert digests[0] == digests[1] and "meta.json" in digests[0]


def _prepare_fails(params, out, capsys=None) -> str:
    with pytest.raises(DataError) as info:
        prepare(params, out, progress=False)
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.*"))  # nothing written
    return str(info.value)


def test_a_single_class_is_refused_before_reading(tmp_path):
    image_tree(tmp_path / "raw", {"": {"glioma": 12}})
    message = _prepare_fails(folder_params(tmp_path / "raw"), tmp_path / "out")
    assert message == (
        f"{tmp_path / 'raw'}: found 1 class(es) ['glioma']; a classifier needs at least 2 "
        "(one folder per class)"
    )


def test_one_image_per_class_names_the_empty_split(tmp_path):
    image_tree(tmp_path / "raw", {"": {"a": 1, "b": 1, "c": 1}})
    message = _prepare_fails(folder_params(tmp_path / "raw"), tmp_path / "out")
    assert f"{tmp_path / 'raw'}: the " in message and "split is empty" in message


def test_a_class_below_the_minimum_in_a_split_is_named(tmp_path):
    image_tree(tmp_path / "raw", {"": {"a": 20, "b": 20, "rare": 4}})
    params = folder_params(tmp_path / "raw", min_images_per_class=2)
    message = _prepare_fails(params, tmp_path / "out")
    assert "class 'rare' has " in message and "prepare.min_images_per_class (2)" in message
    report = prepare(folder_params(tmp_path / "raw", min_images_per_class=1), tmp_path / "ok",
                     progress=False)  # fmt: skip
    assert min(report["counts"][s]["rare"] for s in ("train", "val", "test")) == 1


def test_a_class_whose_files_were_all_skipped_is_named(tmp_path, capsys):
    image_tree(tmp_path / "raw", {"": {"a": 12, "b": 12}})
    (tmp_path / "raw" / "c").mkdir()
    (tmp_path / "raw" / "c" / "only.png").write_bytes(b"not a png")
    params = tiny_params(
        data={"source": "imagefolder", "root": str(tmp_path / "raw"), "on_bad_file": "skip"}
    )
    message = _prepare_fails(params, tmp_path / "out")
    assert message.startswith(f"{tmp_path / 'raw'}: class 'c' has no readable image; 1 file(s)")
    assert "only.png: cannot decode image" in message
    warning = [line for line in capsys.readouterr().err.splitlines() if "only.png" in line]
    assert warning and warning[0].startswith("warning: skipping ")  # its own line


def test_a_killed_prepare_leaves_a_temp_folder_the_next_run_removes(tmp_path):
    """A prepare killed (SIGKILL) while writing leaves `.prepared.<pid>.*.tmp`; the next run
    removes it (its process is gone) and a live writer's temp stays."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    stale = tmp_path / f".prepared.{dead}.abc123.tmp"
    (stale / "sub").mkdir(parents=True)
    live = tmp_path / f".prepared.{os.getpid()}.zzz.tmp"
    live.mkdir()
    image_tree(tmp_path / "raw", {"": {"a": 12, "b": 12}})
    prepare(folder_params(tmp_path / "raw"), tmp_path / "prepared", progress=False)
    assert not stale.exists() and live.exists() and (tmp_path / "prepared" / "meta.json").exists()
