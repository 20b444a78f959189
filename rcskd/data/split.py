"""Train / val / test assignment: stratified by class, grouped by patient when ids exist."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from rcskd.errors import DataError, LeakageError


def stratified_group_split(
    labels: np.ndarray, groups: list[str], fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Boolean mask selecting about `fraction` of each class, whole groups at a time.

    A group (patient) takes the class most of its images have; groups of each class are shuffled
    and taken while that brings the class's selected count closer to its target.
    """
    selected = np.zeros(len(labels), bool)
    if fraction <= 0 or len(labels) == 0:
        return selected
    members: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    by_class: dict[int, list[str]] = defaultdict(list)
    for g in sorted(members):
        majority = Counter(int(labels[i]) for i in members[g]).most_common(1)[0][0]
        by_class[majority].append(g)
    for cls in sorted(by_class):
        names = by_class[cls]
        target = fraction * sum(len(members[g]) for g in names)
        taken = 0
        for k in rng.permutation(len(names)):
            size = len(members[names[k]])
            if taken + size / 2 > target and taken > 0:
                continue
            if taken == 0 and len(names) < 2:
                break  # a class with a single group stays whole in the larger split
            selected[members[names[k]]] = True
            taken += size
            if taken >= target:
                break
    return selected


def assign_splits(
    labels: np.ndarray,
    groups: list[str],
    given: list[str | None],
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> np.ndarray:
    """Split name per sample ("train", "val", "test").

    A split given by the dataset is honoured; validation is carved from train (stratified,
    whole `groups` at a time: a patient, a set of duplicates) unless the dataset gives one.
    Without any given split, the test split is carved first, then validation from the rest.
    """
    n = len(labels)
    has_given = [g is not None for g in given]
    if any(has_given) and not all(has_given):
        raise DataError("the source gave a split for some samples but not for others")
    rng = np.random.default_rng([seed, 2])
    if all(has_given) and n:
        splits = np.array(given, dtype=object)
        if "test" not in set(given):
            raise DataError("the dataset's own split has no test part")
    else:
        splits = np.full(n, "train", dtype=object)
        splits[stratified_group_split(labels, groups, test_fraction, rng)] = "test"
    if "val" not in set(splits.tolist()):
        pool = np.flatnonzero(splits == "train")
        val = stratified_group_split(labels[pool], [groups[i] for i in pool], val_fraction, rng)
        splits[pool[val]] = "val"
    return splits


def check_patient_leakage(
    splits: np.ndarray, patients: list[str | None], origins: list[str]
) -> None:
    """Fail if one patient id occurs in two splits, naming the patient and two of its files."""
    seen: dict[str, tuple[str, str]] = {}
    for split, patient, origin in zip(splits, patients, origins, strict=True):
        if patient is None:
            continue
        first = seen.setdefault(patient, (split, origin))
        if first[0] != split:
            raise LeakageError(
                f"patient {patient!r} is in both {first[0]} ({first[1]}) and {split} ({origin}); "
                "a patient's images must stay in one split (check the dataset's split folders or "
                "cvind.mat)"
            )
