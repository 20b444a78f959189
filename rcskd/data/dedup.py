"""Exact and near-duplicate detection, and their removal across splits.

Exact duplicates share a content hash (SHA-256 of the decoded pixels and their shape), so
byte-identical files and re-encodings with identical pixels both count. Near duplicates are
candidate pairs whose perceptual hashes (64-bit pHash of the border-cropped grey image) differ in
at most `near_threshold` bits, confirmed when their 32x32 thumbnails correlate at least
`near_min_correlation`: on Brain-4, pHash alone pairs different slices that merely share a
silhouette (measured: below 0.9 correlation, 16 cross-class pairs), while resized or re-encoded
copies correlate above 0.95.

Duplicate groups are known before splitting, so carved splits never separate a group; groups that
span splits given by the dataset leak, and keep only the copy in the most protected split
(test > val > train), or stop the stage with policy `fail`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import imagehash
import numpy as np
from PIL import Image

from rcskd.errors import LeakageError

PRIORITY = {"train": 0, "val": 1, "test": 2}
THUMB = 32


def content_hash(image: np.ndarray) -> str:
    """SHA-256 (hex) of an image's shape and pixel bytes."""
    digest = hashlib.sha256(str(image.shape).encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def perceptual_hash(grey: Image.Image) -> int:
    """64-bit DCT perceptual hash of a grey PIL image, as an unsigned integer."""
    return int(str(imagehash.phash(grey, hash_size=8)), 16)


def thumbnail(grey: Image.Image) -> np.ndarray:
    """32x32 uint8 thumbnail used to confirm near-duplicate candidates."""
    return np.asarray(grey.resize((THUMB, THUMB), Image.Resampling.BILINEAR), np.uint8)


def _standardise(thumbs: np.ndarray) -> np.ndarray:
    flat = thumbs.reshape(len(thumbs), -1).astype(np.float32)
    flat -= flat.mean(axis=1, keepdims=True)
    flat /= flat.std(axis=1, keepdims=True) + 1e-6
    return flat


class UnionFind:
    """Disjoint sets over 0..n-1."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def near_pairs(
    hashes: list[str],
    phash: np.ndarray,
    thumbs: np.ndarray,
    threshold: int,
    min_correlation: float,
    chunk: int = 1024,
) -> list[tuple[int, int]]:
    """All pairs i < j (not exact copies) that are confirmed near duplicates."""
    if threshold < 0 or len(phash) < 2:
        return []
    phash = phash.astype(np.uint64)
    unit = _standardise(thumbs)
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(phash), chunk):
        block = phash[start : start + chunk]
        dist = np.bitwise_count(block[:, None] ^ phash[None, start:])
        rows, cols = np.nonzero(dist <= threshold)
        i, j = rows + start, cols + start
        upper = i < j
        for a, b in zip(i[upper].tolist(), j[upper].tolist(), strict=True):
            if hashes[a] == hashes[b]:
                continue
            if float(unit[a] @ unit[b]) / unit.shape[1] >= min_correlation:
                pairs.append((a, b))
    return pairs


def duplicate_groups(
    hashes: list[str], pairs: list[tuple[int, int]], patients: list[str | None]
) -> list[str]:
    """A group id per sample: exact copies, confirmed near copies and one patient's images share
    one id, so a split carved by group never separates them."""
    n = len(hashes)
    uf = UnionFind(n)
    first: dict[str, int] = {}
    for i, key in enumerate(hashes):
        uf.union(i, first.setdefault(key, i))
    for i, patient in enumerate(patients):
        if patient is not None:
            uf.union(i, first.setdefault(f"patient:{patient}", i))
    for a, b in pairs:
        uf.union(a, b)
    return [f"group-{uf.find(i)}" for i in range(n)]


@dataclass
class DedupResult:
    """Which samples to keep, and what was found."""

    keep: np.ndarray
    exact_groups: int = 0  # content-hash groups spanning splits
    near_groups: int = 0  # near-duplicate components spanning splits (after exact removal)
    removed_exact: int = 0
    removed_near: int = 0
    within_split_exact_groups: int = 0  # same-split copies: not leakage, kept
    within_split_near_pairs: int = 0
    removed: list[tuple[int, int, str]] = field(default_factory=list)  # (dropped, kept, kind)


def _resolve(members: list[int], splits: np.ndarray) -> tuple[int, list[int]]:
    """(kept representative, dropped members) of a cross-split group."""
    top = max(PRIORITY[str(splits[i])] for i in members)
    kept = [i for i in members if PRIORITY[str(splits[i])] == top]
    return kept[0], [i for i in members if PRIORITY[str(splits[i])] < top]


def remove_cross_split(
    splits: np.ndarray,
    hashes: list[str],
    pairs: list[tuple[int, int]],
    origins: list[str],
    policy: str,
) -> DedupResult:
    """Drop the lower-priority copies of every duplicate group spanning splits (or raise)."""
    n = len(splits)
    result = DedupResult(keep=np.ones(n, bool))
    leaks: list[str] = []
    by_hash: dict[str, list[int]] = {}
    for i, h in enumerate(hashes):
        by_hash.setdefault(h, []).append(i)
    for members in by_hash.values():
        if len(members) < 2:
            continue
        if len({str(splits[i]) for i in members}) == 1:
            result.within_split_exact_groups += 1
            continue
        result.exact_groups += 1
        kept, dropped = _resolve(members, splits)
        leaks.append(" = ".join(origins[i] for i in members[:3]))
        for i in dropped:
            result.keep[i] = False
            result.removed.append((i, kept, "exact"))
        result.removed_exact += len(dropped)

    uf = UnionFind(n)
    for a, b in pairs:
        if not (result.keep[a] and result.keep[b]):
            continue
        if splits[a] == splits[b]:
            result.within_split_near_pairs += 1
        uf.union(a, b)
    components: dict[int, list[int]] = {}
    for i in sorted({i for pair in pairs for i in pair if result.keep[i]}):
        components.setdefault(uf.find(i), []).append(i)
    for members in components.values():
        if len({str(splits[i]) for i in members}) < 2:
            continue
        result.near_groups += 1
        kept, dropped = _resolve(members, splits)
        leaks.append(" ~ ".join(origins[i] for i in members[:3]))
        for i in dropped:
            result.keep[i] = False
            result.removed.append((i, kept, "near"))
        result.removed_near += len(dropped)

    if policy == "fail" and leaks:
        shown = "; ".join(leaks[:3])
        raise LeakageError(
            f"{len(leaks)} duplicate groups span splits ({result.exact_groups} exact, "
            f"{result.near_groups} near), e.g. {shown}. Set prepare.dedup.policy: drop_from_train "
            "to keep only the copy in the most protected split"
        )
    return result


def verify_disjoint(
    splits: np.ndarray, keep: np.ndarray, hashes: list[str], patients: list[str | None]
) -> str:
    """Re-check the kept samples: no content hash and no patient in two splits.

    Returns "passed"; raises LeakageError otherwise (a bug upstream, never expected).
    """
    owner: dict[str, str] = {}
    for i in np.flatnonzero(keep):
        for key in (f"hash:{hashes[i]}", f"patient:{patients[i]}" if patients[i] else None):
            if key is not None and owner.setdefault(key, str(splits[i])) != str(splits[i]):
                raise LeakageError(f"after deduplication {key} is still in two splits")
    return "passed"
