"""The evaluate stage's clinical view of a classifier: ROC-AUC, calibration, bootstrap intervals,
and the full report that puts them together with the counting metrics.

Conventions as in `rcskd.metrics.classification`; NaN marks an undefined value (JSON: null).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rcskd.metrics.classification import (
    accuracy,
    balanced_accuracy,
    confusion_matrix,
    f1_per_class,
    macro_f1,
    safe_ratio,
    sensitivity_specificity,
)


def binary_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC as the Mann-Whitney statistic: P(score of a positive > a negative), ties 1/2."""
    positive = np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = average_ranks(np.asarray(scores))
    rank_sum = ranks[positive].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (scipy's `rankdata`, in numpy alone so
    that evaluation needs no scipy on a bare GPU machine)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]  # first position of each tie group
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.r_[first[1:], len(values)] - 1
    ranks = np.empty(len(values))
    ranks[order] = (first[group] + last[group]) / 2 + 1
    return ranks


def roc_auc_ovr(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """One-vs-rest ROC-AUC per class."""
    y_true = np.asarray(y_true, int)
    return np.array([binary_auc(y_true == k, probs[:, k]) for k in range(probs.shape[1])])


def calibration_bins(
    y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15
) -> dict[str, np.ndarray]:
    """Confidence histogram for ECE and reliability diagrams: equal-width bins over (0, 1].

    Returns per bin: count, mean confidence, accuracy (NaN for an empty bin).
    """
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == np.asarray(y_true)).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin i holds (edges[i], edges[i+1]]; a confidence of exactly 0 cannot occur with softmax
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    conf_sum = np.bincount(index, weights=confidence, minlength=n_bins)
    acc_sum = np.bincount(index, weights=correct, minlength=n_bins)
    return {
        "edges": edges,
        "count": count,
        "confidence": safe_ratio(conf_sum, count),
        "accuracy": safe_ratio(acc_sum, count),
    }


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """ECE = sum over bins of (bin share) * |accuracy - mean confidence|."""
    bins = calibration_bins(y_true, probs, n_bins)
    filled = bins["count"] > 0
    gaps = np.abs(bins["accuracy"][filled] - bins["confidence"][filled])
    return float(np.sum(bins["count"][filled] / len(probs) * gaps))


def bootstrap_interval(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the accuracy (resampling test images with replacement)."""
    correct = (np.asarray(y_true) == np.asarray(y_pred)).astype(float)
    if n_resamples == 0 or correct.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, correct.size, size=(n_resamples, correct.size))
    means = correct[draws].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def _clean(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)


def classification_report(
    y_true: np.ndarray,
    probs: np.ndarray,
    classes: list[str],
    n_bins: int = 15,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Every metric of the evaluate stage, as plain JSON-ready data (NaN -> None)."""
    y_true = np.asarray(y_true, int)
    y_pred = probs.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, len(classes))
    sens, spec = sensitivity_specificity(cm)
    auc = roc_auc_ovr(y_true, probs)
    lo, hi = bootstrap_interval(y_true, y_pred, n_resamples, seed=seed)
    defined_auc = auc[~np.isnan(auc)]
    return {
        "n": int(len(y_true)),
        "acc": _clean(accuracy(y_true, y_pred)),
        "acc_ci95": [_clean(lo), _clean(hi)],
        "balanced_acc": _clean(balanced_accuracy(cm)),
        "macro_f1": _clean(macro_f1(cm)),
        "macro_auc": _clean(float(defined_auc.mean())) if defined_auc.size else None,
        "ece": _clean(expected_calibration_error(y_true, probs, n_bins)),
        "per_class": {
            name: {
                "sensitivity": _clean(sens[k]),
                "specificity": _clean(spec[k]),
                "f1": _clean(f1_per_class(cm)[k]),
                "auc": _clean(auc[k]),
                "support": int(cm[k].sum()),
            }
            for k, name in enumerate(classes)
        },
        "confusion_matrix": cm.tolist(),
    }
