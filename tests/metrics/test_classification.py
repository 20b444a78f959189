"""Every metric against values worked out by hand on small arrays."""

import math

import numpy as np
import pytest

from rcskd.metrics.classification import (
    accuracy,
    balanced_accuracy,
    confusion_matrix,
    f1_per_class,
    macro_f1,
    sensitivity_specificity,
    summary_scores,
)
from rcskd.metrics.clinical import (
    binary_auc,
    bootstrap_interval,
    calibration_bins,
    classification_report,
    expected_calibration_error,
    roc_auc_ovr,
)

Y_TRUE = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 1])
Y_PRED = np.array([0, 1, 0, 1, 2, 2, 2, 0, 2, 1])


def test_confusion_matrix_counts_true_rows_predicted_columns():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 2, 1], [1, 0, 3]]


def test_accuracy_sensitivity_specificity_balanced_accuracy():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(0.7)
    sens, spec = sensitivity_specificity(cm)
    # class 0: TP 2, FN 1, FP 1, TN 6; class 1: 2, 1, 1, 6; class 2: 3, 1, 1, 5
    assert sens == pytest.approx([2 / 3, 2 / 3, 3 / 4])
    assert spec == pytest.approx([6 / 7, 6 / 7, 5 / 6])
    assert balanced_accuracy(cm) == pytest.approx((2 / 3 + 2 / 3 + 3 / 4) / 3)


def test_f1_and_macro_f1():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    # F1 = 2TP / (2TP + FP + FN): 4/6, 4/6, 6/8
    assert f1_per_class(cm) == pytest.approx([4 / 6, 4 / 6, 6 / 8])
    assert macro_f1(cm) == pytest.approx((4 / 6 + 4 / 6 + 6 / 8) / 3)


def test_absent_class_is_undefined_and_left_out_of_macro_means():
    cm = confusion_matrix([0, 0, 1], [0, 1, 1], 3)  # class 2 neither present nor predicted
    sens, spec = sensitivity_specificity(cm)
    assert math.isnan(sens[2]) and spec[2] == 1.0
    assert math.isnan(f1_per_class(cm)[2])
    assert balanced_accuracy(cm) == pytest.approx((1 / 2 + 1) / 2)
    assert macro_f1(cm) == pytest.approx((2 / 3 + 2 / 3) / 2)


def test_auc_counts_pairs_with_ties_as_half():
    positive = np.array([1, 1, 0, 0, 0], bool)
    scores = np.array([0.9, 0.4, 0.5, 0.1, 0.4])
    # 0.9 beats all three negatives; 0.4 beats 0.1, ties 0.4, loses to 0.5: (3 + 1.5) / 6
    assert binary_auc(positive, scores) == pytest.approx(0.75)
    assert binary_auc(positive, -scores) == pytest.approx(0.25)
    assert math.isnan(binary_auc(np.ones(3, bool), np.arange(3.0)))


def test_roc_auc_ovr_per_class():
    probs = np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]])
    y = np.array([0, 0, 1, 1])
    # class 0 scores of positives {0.8, 0.6} vs negatives {0.3, 0.5}: all 4 pairs won
    assert roc_auc_ovr(y, probs) == pytest.approx([1.0, 1.0])


def test_ece_and_reliability_bins():
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.45, 0.55], [0.35, 0.65]])
    y = np.array([0, 1, 1, 0])  # right, wrong, right, wrong
    # bins of width 0.1: (0.9, 1]: conf .95, acc .5 -> |gap| .45, share .5
    # (0.5, 0.6]: conf .55, acc 1 -> .45 x .25; (0.6, 0.7]: conf .65, acc 0 -> .65 x .25
    expected = 0.5 * 0.45 + 0.25 * 0.45 + 0.25 * 0.65
    assert expected_calibration_error(y, probs, 10) == pytest.approx(expected)
    bins = calibration_bins(y, probs, 10)
    assert bins["count"].tolist() == [0, 0, 0, 0, 0, 1, 1, 0, 0, 2]
    assert bins["accuracy"][9] == 0.5 and bins["confidence"][5] == pytest.approx(0.55)
    assert math.isnan(bins["accuracy"][0])


def test_perfectly_calibrated_predictions_have_zero_ece():
    probs = np.tile([[1.0, 0.0]], (5, 1))
    assert expected_calibration_error(np.zeros(5, int), probs) == 0.0


def test_bootstrap_interval_matches_the_normal_approximation():
    y = np.zeros(1000, int)
    pred = np.where(np.arange(1000) < 700, 0, 1)  # 70% right
    lo, hi = bootstrap_interval(y, pred, n_resamples=2000, seed=1)
    half = 1.96 * math.sqrt(0.7 * 0.3 / 1000)  # 0.0284
    assert lo == pytest.approx(0.7 - half, abs=0.006)
    assert hi == pytest.approx(0.7 + half, abs=0.006)
    assert bootstrap_interval(y, y, 100) == (1.0, 1.0)


def test_report_puts_it_together_and_is_json_ready():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=10)
    probs[np.arange(10), Y_PRED] += 1.0  # make Y_PRED the argmax
    probs /= probs.sum(1, keepdims=True)
    report = classification_report(Y_TRUE, probs, ["a", "b", "c"], n_bins=15, n_resamples=50)
    assert report["acc"] == pytest.approx(0.7)
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 2, 1], [1, 0, 3]]
    assert report["per_class"]["c"] == {
        "sensitivity": 0.75,
        "specificity": round(5 / 6, 6),
        "f1": 0.75,
        "auc": report["per_class"]["c"]["auc"],
        "support": 4,
    }
    assert 0 <= report["acc_ci95"][0] <= 0.7 <= report["acc_ci95"][1] <= 1


def test_summary_scores_are_the_training_view_of_the_same_numbers():
    scores = summary_scores(Y_TRUE, Y_PRED, 3)
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert scores == {
        "acc": pytest.approx(0.7),
        "balanced_acc": pytest.approx(balanced_accuracy(cm)),
        "macro_f1": pytest.approx(macro_f1(cm)),
    }


def test_average_ranks_equal_scipy_rankdata_with_ties():
    from scipy.stats import rankdata

    from rcskd.metrics.clinical import average_ranks

    rng = np.random.default_rng(0)
    for _ in range(100):
        values = rng.integers(0, 5, size=int(rng.integers(1, 30))).astype(float)
        np.testing.assert_allclose(average_ranks(values), rankdata(values))
