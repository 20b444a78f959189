"""The prepare step: read a source, split, remove cross-split duplicates, resize, cache.

Output folder (written to a temporary folder and renamed into place when complete):
    {train,val,test}.pt   {"images": uint8 N x C x S x S, "labels": int64 N}
    manifest.csv          one row per kept image (split, index, label, class, patient, origin,
                          content hash, perceptual hash)
    duplicates.csv        every dropped copy and the copy that was kept
    meta.json             classes, image size, channels, source, counts, fingerprint
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from rcskd.config import Params, as_dict
from rcskd.data import sources  # noqa: F401  (registers the sources)
from rcskd.data.dedup import (
    content_hash,
    duplicate_groups,
    near_pairs,
    perceptual_hash,
    remove_cross_split,
    thumbnail,
    verify_disjoint,
)
from rcskd.data.sources.base import SPLITS, Source
from rcskd.data.split import assign_splits, check_patient_leakage
from rcskd.errors import DataError
from rcskd.io import atomic_dir
from rcskd.progress import progress as progress_bar
from rcskd.registry import SOURCES

MANIFEST_FIELDS = [
    "split",
    "index",
    "label",
    "class_name",
    "patient",
    "origin",
    "content_hash",
    "phash",
]


def crop_to_content(image: np.ndarray, margin: int = 2) -> np.ndarray:
    """Crop the dark border around the content (scanner frames, black padding)."""
    grey = image if image.ndim == 2 else image.max(axis=-1)
    threshold = max(20.0, 0.1 * float(np.percentile(grey, 99)))
    rows = np.flatnonzero((grey > threshold).any(axis=1))
    cols = np.flatnonzero((grey > threshold).any(axis=0))
    if rows.size == 0 or cols.size == 0:
        return image
    r0, r1 = max(rows[0] - margin, 0), min(rows[-1] + margin + 1, grey.shape[0])
    c0, c1 = max(cols[0] - margin, 0), min(cols[-1] + margin + 1, grey.shape[1])
    if (r1 - r0) * (c1 - c0) < 0.05 * grey.size:  # a speck, not the content: keep the frame
        return image
    return image[r0:r1, c0:c1]


def fit_image(image: np.ndarray, size: int, channels: int, crop: bool) -> np.ndarray:
    """uint8 C x size x size: optional border crop, pad to square (keeps aspect), resize."""
    if crop:
        image = crop_to_content(image)
    pil = Image.fromarray(image)
    pil = pil.convert("L" if channels == 1 else "RGB")
    w, h = pil.size
    side = max(w, h)
    if w != h:
        canvas = Image.new(pil.mode, (side, side), 0)
        canvas.paste(pil, ((side - w) // 2, (side - h) // 2))
        pil = canvas
    if side != size:
        pil = pil.resize((size, size), Image.Resampling.BILINEAR)  # antialiased when shrinking
    arr = np.asarray(pil)
    return arr[None] if channels == 1 else np.ascontiguousarray(arr.transpose(2, 0, 1))


def _validate(sample: Any, n_classes: int) -> None:
    image = sample.image
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise DataError(f"{sample.origin}: source gave a non-uint8 image")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise DataError(f"{sample.origin}: image must be HxW or HxWx3, got shape {image.shape}")
    if not 0 <= sample.label < n_classes:
        raise DataError(f"{sample.origin}: label {sample.label} outside 0..{n_classes - 1}")


def check_classes_read(
    where: str, classes: list[str], labels: np.ndarray, skipped: list[str]
) -> None:
    """Every class must have kept at least one readable image (skips can empty a class)."""
    for k, name in enumerate(classes):
        if not np.any(labels == k):
            why = f"; {len(skipped)} file(s) were skipped, e.g. {skipped[0]}" if skipped else ""
            raise DataError(f"{where}: class '{name}' has no readable image{why}")


def check_split_counts(
    where: str,
    classes: list[str],
    labels: np.ndarray,
    splits: np.ndarray,
    keep: np.ndarray,
    minimum: int,
) -> None:
    """After splitting and deduplication, each split holds images and each class at least
    `minimum` of them in each split (else training or evaluation would be meaningless)."""
    for split in SPLITS:
        if not np.any((splits == split) & keep):
            raise DataError(
                f"{where}: the {split} split is empty after splitting and deduplication "
                f"({int(keep.sum())} images in all); add images or change "
                "prepare.val_fraction / prepare.test_fraction"
            )
    for split in SPLITS:
        mask = (splits == split) & keep
        for k, name in enumerate(classes):
            count = int(np.sum(mask & (labels == k)))
            if count < minimum:
                raise DataError(
                    f"{where}: class '{name}' has {count} image(s) in the {split} split, fewer "
                    f"than prepare.min_images_per_class ({minimum}); add images of it or lower "
                    "that value"
                )


def prepare(params: Params, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Build the prepared cache in `out_dir`; return the report (meta.json plus wall time)."""
    start = time.perf_counter()
    pcfg = params.prepare
    source: Source = SOURCES.build(params.data.source, params.data, params.seed)
    classes = list(source.classes)
    where = params.data.root
    if len(classes) < 2:
        raise DataError(
            f"{where}: found {len(classes)} class(es) {classes}; a classifier needs at least 2 "
            "(one folder per class)"
        )
    images, labels, patients, origins, given, hashes, phashes, thumbs = ([] for _ in range(8))
    bar = progress_bar(source, f"prepare: {params.data.source}", len(source), enabled=progress)
    for sample in bar:
        _validate(sample, len(classes))
        hashes.append(content_hash(sample.image))
        grey = Image.fromarray(crop_to_content(sample.image)).convert("L")
        phashes.append(perceptual_hash(grey))
        thumbs.append(thumbnail(grey))
        images.append(fit_image(sample.image, pcfg.image_size, pcfg.channels, pcfg.crop_border))
        labels.append(sample.label)
        patients.append(sample.patient)
        origins.append(sample.origin)
        given.append(sample.split)
    if not images:
        raise DataError(f"{where}: the source gave no images")

    labels_arr = np.asarray(labels, np.int64)
    check_classes_read(where, classes, labels_arr, source.skipped)
    dcfg = pcfg.dedup
    pairs = near_pairs(
        hashes,
        np.asarray(phashes, np.uint64),
        np.stack(thumbs),
        dcfg.near_threshold,
        dcfg.near_min_correlation,
    )
    groups = duplicate_groups(hashes, pairs, patients)
    splits = assign_splits(
        labels_arr, groups, given, pcfg.val_fraction, pcfg.test_fraction, params.seed
    )
    check_patient_leakage(splits, patients, origins)
    dd = remove_cross_split(splits, hashes, pairs, origins, dcfg.policy)
    keep = dd.keep
    check_split_counts(where, classes, labels_arr, splits, keep, pcfg.min_images_per_class)

    with atomic_dir(out_dir) as tmp:
        rows, index_in_split = _write_splits(tmp, images, labels_arr, splits, keep)
        manifest = io.StringIO()
        writer = csv.DictWriter(manifest, MANIFEST_FIELDS, lineterminator="\n")
        writer.writeheader()
        for i in rows:
            writer.writerow(
                {
                    "split": splits[i],
                    "index": index_in_split[i],
                    "label": int(labels_arr[i]),
                    "class_name": classes[labels_arr[i]],
                    "patient": patients[i] or "",
                    "origin": origins[i],
                    "content_hash": hashes[i],
                    "phash": f"{phashes[i]:016x}",
                }
            )
        (tmp / "manifest.csv").write_text(manifest.getvalue())
        with (tmp / "duplicates.csv").open("w", newline="") as fh:
            dup = csv.writer(fh, lineterminator="\n")
            dup.writerow(["kind", "dropped_split", "dropped_origin", "kept_split", "kept_origin"])
            for dropped, kept, kind in dd.removed:
                dup.writerow([kind, splits[dropped], origins[dropped], splits[kept], origins[kept]])
        report = _report(params, classes, source, labels_arr, splits, keep, dd, manifest.getvalue())
        report["patient_level_split"] = any(p is not None for p in patients)
        report["leakage_check"] = verify_disjoint(splits, keep, hashes, patients)
        # meta.json is part of the cached output: no wall time in it, so the same inputs give a
        # byte-identical cache on any machine.
        (tmp / "meta.json").write_text(json.dumps(report, indent=2) + "\n")
    report["wall_time_s"] = round(time.perf_counter() - start, 2)
    return report


def _write_splits(tmp: Path, images, labels, splits, keep) -> tuple[list[int], dict[int, int]]:
    rows: list[int] = []
    index_in_split: dict[int, int] = {}
    for split in SPLITS:
        idx = np.flatnonzero((splits == split) & keep)
        for k, i in enumerate(idx):
            index_in_split[int(i)] = k
        rows.extend(int(i) for i in idx)
        shape = (0, *images[0].shape)
        stacked = np.stack([images[i] for i in idx]) if len(idx) else np.zeros(shape, np.uint8)
        torch.save(
            {"images": torch.from_numpy(stacked), "labels": torch.from_numpy(labels[idx])},
            tmp / f"{split}.pt",
        )
    return rows, index_in_split


def _report(params, classes, source, labels, splits, keep, dd, manifest_text) -> dict[str, Any]:
    counts: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        mask = (splits == split) & keep
        per_class = {c: int(np.sum(mask & (labels == k))) for k, c in enumerate(classes)}
        counts[split] = {"total": int(mask.sum()), **per_class}
    return {
        "source": params.data.source,
        "classes": classes,
        "image_size": params.prepare.image_size,
        "channels": params.prepare.channels,
        # how raw pixels became these images: what a model trained on them must be fed
        "crop_border": params.prepare.crop_border,
        "dicom": as_dict(params.data.dicom),
        "images_read": int(len(labels)),
        "images_kept": int(keep.sum()),
        "skipped_bad_files": len(source.skipped),
        "skipped_examples": source.skipped[:5],
        "counts": counts,
        "duplicates": {
            "exact_groups_cross_split": dd.exact_groups,
            "near_groups_cross_split": dd.near_groups,
            "removed_exact": dd.removed_exact,
            "removed_near": dd.removed_near,
            "within_split_exact_groups": dd.within_split_exact_groups,
            "within_split_near_pairs": dd.within_split_near_pairs,
            "near_threshold": params.prepare.dedup.near_threshold,
            "near_min_correlation": params.prepare.dedup.near_min_correlation,
            "policy": params.prepare.dedup.policy,
        },
        "fingerprint": hashlib.sha256(manifest_text.encode()).hexdigest(),
    }
