from collections import Counter

import numpy as np
import pytest

from rcskd.data.split import assign_splits, check_patient_leakage, stratified_group_split
from rcskd.errors import DataError, LeakageError


def test_image_level_split_is_stratified_and_deterministic():
    labels = np.repeat([0, 1, 2, 3], 50)
    groups = [f"img{i}" for i in range(200)]
    splits = assign_splits(labels, groups, [None] * 200, 0.15, 0.2, seed=3)
    for cls in range(4):
        counts = Counter(splits[labels == cls])
        assert counts["test"] == 10  # 20% of 50
        assert counts["val"] == 6  # 15% of the remaining 40
        assert counts["train"] == 34
    again = assign_splits(labels, groups, [None] * 200, 0.15, 0.2, seed=3)
    assert np.array_equal(splits, again)
    other = assign_splits(labels, groups, [None] * 200, 0.15, 0.2, seed=4)
    assert not np.array_equal(splits, other)


def test_groups_are_never_split():
    labels = np.repeat([0, 1], 60)
    groups = [f"patient{i // 4}" for i in range(120)]  # 30 patients of 4 slices
    splits = assign_splits(labels, groups, [None] * 120, 0.2, 0.25, seed=0)
    per_group = {}
    for g, s in zip(groups, splits, strict=True):
        per_group.setdefault(g, set()).add(s)
    assert all(len(s) == 1 for s in per_group.values())
    assert Counter(splits)["test"] == 32  # 8 patients: closest whole-patient count to 30


def test_given_split_is_honoured_and_val_carved_from_train():
    labels = np.array([0, 1] * 20)
    given = ["test"] * 8 + ["train"] * 32
    splits = assign_splits(labels, [str(i) for i in range(40)], given, 0.25, 0.5, seed=0)
    assert list(splits[:8]) == ["test"] * 8
    assert Counter(splits[8:]) == {"train": 24, "val": 8}


def test_given_validation_split_is_kept():
    given = ["train"] * 4 + ["val"] * 2 + ["test"] * 2
    splits = assign_splits(np.zeros(8, int), list("abcdefgh"), given, 0.5, 0.5, seed=0)
    assert list(splits) == given


def test_mixed_or_testless_given_split_is_an_error():
    with pytest.raises(DataError, match="some samples but not for others"):
        assign_splits(np.zeros(2, int), ["a", "b"], ["train", None], 0.1, 0.1, 0)
    with pytest.raises(DataError, match="no test part"):
        assign_splits(np.zeros(2, int), ["a", "b"], ["train", "train"], 0.1, 0.1, 0)


def test_single_group_class_is_not_moved():
    mask = stratified_group_split(np.zeros(5, int), ["p"] * 5, 0.5, np.random.default_rng(0))
    assert not mask.any()


def test_patient_in_two_splits_fails_with_names():
    splits = np.array(["train", "test", "train"])
    with pytest.raises(LeakageError, match=r"patient 'P7' is in both train \(a.png\) and test"):
        check_patient_leakage(splits, ["P7", "P7", None], ["a.png", "b.png", "c.png"])
    check_patient_leakage(splits, ["P1", "P2", None], ["a", "b", "c"])  # no error
