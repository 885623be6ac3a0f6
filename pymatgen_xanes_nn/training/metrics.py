"""Metrics of classifiers and out-of-distribution scores: plain functions of arrays, imported by everyone else.

This module imports nothing of the package, so training, evaluation, the classifier and the report can all
use it without importing each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, n_bins: int = 10) -> float:
    """ECE: confidence-weighted gap between accuracy and confidence over equal-width bins."""
    bins = calibration_bins(proba, y, n_bins)
    return float(np.sum(np.abs(np.subtract(bins["correct"], bins["confidence"]))) / len(y))


def calibration_bins(proba: np.ndarray, y: np.ndarray, n_bins: int = 10) -> dict[str, list[float]]:
    """Per confidence bin: count, number correct and summed confidence (poolable across folds)."""
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    return {
        "count": np.bincount(bins, minlength=n_bins).astype(float).tolist(),
        "correct": np.bincount(bins, weights=correct, minlength=n_bins).tolist(),
        "confidence": np.bincount(bins, weights=conf, minlength=n_bins).tolist(),
    }


def classification_metrics(y: np.ndarray, proba: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro-F1, per-class recall, confusion matrix and ECE."""
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score, recall_score

    y = np.asarray(y)
    pred = proba.argmax(axis=1)
    labels = list(range(len(classes)))
    present = sorted(set(y))
    recall = recall_score(y, pred, labels=labels, average=None, zero_division=0)
    return {
        "n": int(len(y)),
        "accuracy": float(np.mean(pred == y)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)) if len(present) > 1 else float(np.mean(pred == y)),
        "macro_f1": float(f1_score(y, pred, labels=present, average="macro", zero_division=0)),
        "per_class_recall": {classes[k]: float(recall[k]) for k in present},
        "confusion_matrix": confusion_matrix(y, pred, labels=labels).tolist(),
        "ece": expected_calibration_error(proba, y),
        "calibration_bins": calibration_bins(proba, y),
    }


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """Area under the ROC curve of a score meant to be higher out of distribution (ties count half).

    Computed as the Mann-Whitney statistic: the probability that a random outside spectrum scores higher than a
    random inside one.
    """
    from scipy.stats import rankdata

    a, b = np.asarray(in_scores, float).ravel(), np.asarray(out_scores, float).ravel()
    if not len(a) or not len(b):
        raise ValueError(f"AUROC needs both sides: {len(a)} inside, {len(b)} outside scores")
    ranks = rankdata(np.concatenate([a, b]))
    return float((ranks[len(a):].sum() - len(b) * (len(b) + 1) / 2) / (len(a) * len(b)))


def fpr_at_tpr(in_scores: np.ndarray, out_scores: np.ndarray, tpr: float = 0.95) -> float:
    """Share of inside spectra flagged when the threshold catches ``tpr`` of the outside ones (FPR@95TPR)."""
    a, b = np.asarray(in_scores, float).ravel(), np.asarray(out_scores, float).ravel()
    threshold = np.quantile(b, 1.0 - tpr, method="lower")
    return float(np.mean(a >= threshold))


def one_standard_error_choice(criterion: dict[str, float], worst_drop: dict[str, float],
                              clean_accuracy: float, n: int) -> tuple[str, list[str], float]:
    """The most robust of the candidates the data cannot tell apart from the best.

    Args:
        criterion: candidate -> selection criterion (higher is better).
        worst_drop: candidate -> largest accuracy drop of any perturbed set below the candidate's clean accuracy.
        clean_accuracy: the best candidate's clean accuracy (fraction), for its binomial standard error.
        n: the number of test spectra behind ``clean_accuracy``.

    Returns:
        (chosen, tied, standard error): the tied candidates score within one binomial standard error of the best;
        of those the one with the smallest worst drop (then the higher criterion) is chosen.
    """
    if not criterion:
        raise ValueError("no candidates to choose from")
    se = float(np.sqrt(clean_accuracy * (1 - clean_accuracy) / max(n, 1)))
    top = max(criterion.values())
    tied = [c for c, v in criterion.items() if v >= top - se]
    return min(tied, key=lambda c: (worst_drop[c], -criterion[c])), tied, se
