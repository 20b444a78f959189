"""Counting metrics on plain arrays: confusion matrix, accuracy, sensitivity, F1.

What training needs to pick its best epoch; the evaluate stage's clinical metrics (AUC,
calibration, bootstrap intervals) live in `rcskd.metrics.clinical`, so editing those never
retrains a model.

Conventions: `y_true` int labels (N,), `y_pred` int labels (N,), `probs` class probabilities
(N, K). A per-class value that is undefined (a class absent from the data) is NaN and is left out
of macro means; JSON writers turn NaN into null.
"""

from __future__ import annotations

import math

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts C[i, j] of true class i predicted as j."""
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of correct predictions."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred)) if y_true.size else math.nan


def safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den element-wise, NaN where den is 0."""
    num, den = num.astype(float), den.astype(float)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def sensitivity_specificity(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class, one-vs-rest: sensitivity TP/(TP+FN) and specificity TN/(TN+FP)."""
    tp = np.diag(cm)
    fn = cm.sum(axis=1) - tp
    fp = cm.sum(axis=0) - tp
    tn = cm.sum() - tp - fn - fp
    return safe_ratio(tp, tp + fn), safe_ratio(tn, tn + fp)


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean per-class sensitivity (recall) over the classes present."""
    sens, _ = sensitivity_specificity(cm)
    return float(np.nanmean(sens)) if np.any(~np.isnan(sens)) else math.nan


def f1_per_class(cm: np.ndarray) -> np.ndarray:
    """F1 = 2TP / (2TP + FP + FN) per class; NaN for a class neither present nor predicted."""
    tp = np.diag(cm)
    fn = cm.sum(axis=1) - tp
    fp = cm.sum(axis=0) - tp
    return safe_ratio(2 * tp, 2 * tp + fp + fn)


def macro_f1(cm: np.ndarray) -> float:
    """Unweighted mean of the defined per-class F1 scores."""
    f1 = f1_per_class(cm)
    return float(np.nanmean(f1)) if np.any(~np.isnan(f1)) else math.nan


def summary_scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy, balanced accuracy and macro-F1: what training reports on validation."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    return {
        "acc": accuracy(y_true, y_pred),
        "balanced_acc": balanced_accuracy(cm),
        "macro_f1": macro_f1(cm),
    }
