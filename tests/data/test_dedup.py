import io

import numpy as np
import pytest
from PIL import Image

from rcskd.data.dedup import (
    content_hash,
    duplicate_groups,
    near_pairs,
    perceptual_hash,
    remove_cross_split,
    thumbnail,
    verify_disjoint,
)
from rcskd.errors import LeakageError
from tests.fixtures import blob_image


def features(images):
    greys = [Image.fromarray(im).convert("L") for im in images]
    hashes = [content_hash(im) for im in images]
    phash = np.array([perceptual_hash(g) for g in greys], np.uint64)
    thumbs = np.stack([thumbnail(g) for g in greys])
    return hashes, phash, thumbs


def jpeg_copy(image, quality=70):
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())))


def resized_copy(image, size):
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def test_content_hash_depends_on_pixels_and_shape():
    a = blob_image(0)
    assert content_hash(a) == content_hash(a.copy())
    assert content_hash(a) != content_hash(a.reshape(24, 96))
    b = a.copy()
    b[0, 0] ^= 1
    assert content_hash(a) != content_hash(b)


def test_resized_and_reencoded_copies_are_near_duplicates_and_others_are_not():
    base = [blob_image(i, 64) for i in range(6)]
    images = base + [jpeg_copy(base[0]), resized_copy(base[1], 48)]
    hashes, phash, thumbs = features(images)
    pairs = near_pairs(hashes, phash, thumbs, threshold=8, min_correlation=0.95)
    assert sorted(pairs) == [(0, 6), (1, 7)]


def test_correlation_check_rejects_phash_only_matches():
    a, b = blob_image(0, 64), blob_image(1, 64)
    hashes, phash, thumbs = features([a, b])
    assert near_pairs(hashes, phash, thumbs, threshold=64, min_correlation=0.95) == []
    assert near_pairs(hashes, phash, thumbs, threshold=64, min_correlation=-1.0) == [(0, 1)]
    assert near_pairs(hashes, phash, thumbs, threshold=-1, min_correlation=-1.0) == []


def test_groups_join_exact_copies_near_copies_and_patients():
    hashes = ["h1", "h2", "h1", "h3", "h4", "h5"]
    groups = duplicate_groups(hashes, [(1, 3)], ["P", None, None, None, "P", None])
    assert groups[0] == groups[2] == groups[4]  # exact copy + same patient
    assert groups[1] == groups[3]  # near copy
    assert len({groups[0], groups[1], groups[5]}) == 3


def test_cross_split_copies_keep_the_most_protected_split():
    splits = np.array(["train", "test", "val", "train", "val", "train", "train"])
    hashes = ["a", "a", "a", "b", "b", "c", "d"]
    pairs = [(5, 4), (6, 5)]  # 5 ~ 4 (val), 6 ~ 5 (train): one near group spanning train/val
    origins = [f"f{i}" for i in range(7)]
    result = remove_cross_split(splits, hashes, pairs, origins, "drop_from_train")
    assert result.keep.tolist() == [False, True, False, False, True, False, False]
    assert (result.exact_groups, result.removed_exact) == (2, 3)
    assert (result.near_groups, result.removed_near) == (1, 2)
    assert result.within_split_near_pairs == 1  # (6, 5): both train
    kinds = sorted((d, k, kind) for d, k, kind in result.removed)
    assert kinds == [
        (0, 1, "exact"),
        (2, 1, "exact"),
        (3, 4, "exact"),
        (5, 4, "near"),
        (6, 4, "near"),
    ]
    assert verify_disjoint(splits, result.keep, hashes, [None] * 7) == "passed"


def test_within_split_copies_are_kept_and_counted():
    splits = np.array(["train", "train", "test"])
    result = remove_cross_split(splits, ["a", "a", "b"], [], ["x", "y", "z"], "fail")
    assert result.keep.all() and result.within_split_exact_groups == 1


def test_fail_policy_raises_with_examples():
    splits = np.array(["train", "test"])
    with pytest.raises(LeakageError, match=r"1 duplicate groups span splits .* x.png = y.png"):
        remove_cross_split(splits, ["a", "a"], [], ["x.png", "y.png"], "fail")


def test_verify_disjoint_catches_leftovers():
    with pytest.raises(LeakageError, match="still in two splits"):
        verify_disjoint(np.array(["train", "test"]), np.ones(2, bool), ["a", "a"], [None, None])
