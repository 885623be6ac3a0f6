"""Conformal prediction sets: thresholds on the true class's probability fitted out of fold.

The thresholds are split-conformal quantiles of the calibration folds' out-of-fold scores. A single-network model
applies them to its final network, trained on all spectra, not to the fold networks that made the scores: its sets
then carry no finite-sample coverage guarantee, and their held-out coverage is measured instead (the OOD benchmark,
``docs/RESULTS.md``). An ensemble model keeps the fold networks and forms cross-conformal sets instead
(:mod:`pymatgen_xanes_nn.ensemble`): each network is compared only with its own out-of-fold scores.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from pymatgen_xanes_nn.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Sequence


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The split-conformal threshold: the ``ceil((n + 1) level)``-th smallest of ``n`` scores (inf if n is small)."""
    s = np.sort(np.asarray(scores, float))
    rank = math.ceil((len(s) + 1) * level)
    return float(s[rank - 1]) if rank <= len(s) else math.inf


#: Fewest calibration spectra of a class for its own (class-conditional) threshold; smaller classes share the
#: marginal one. With 20 spectra the 90% quantile is the 19th of 20: stable enough, and a class this small in
#: calibration is rare in the shipped data.
MIN_CLASS_CALIBRATION = 20


#: How split-conformal thresholds are set: one for all classes, or one per class with enough calibration spectra.
CONFORMAL_MODES = ("marginal", "class_conditional")


def fit_conformal(proba: np.ndarray, y: np.ndarray, n_classes: int, level: float = 0.9,
                  mode: str = "marginal", min_class: int = MIN_CLASS_CALIBRATION) -> dict[str, Any]:
    """Split-conformal thresholds on the score ``1 - p_true`` (LAC), marginal or per class where the class allows.

    Args:
        proba: calibrated out-of-fold probabilities ``(n, n_classes)``.
        y: true class indices.
        n_classes: number of classes.
        level: target coverage (a set holds the true label this often).
        mode: one of :data:`CONFORMAL_MODES`.
        min_class: calibration spectra a class needs for its own threshold (class-conditional mode).

    Returns:
        ``{"level", "mode", "thresholds" (one per class), "class_conditional" (bools)}``.
    """
    if mode not in CONFORMAL_MODES:
        raise InputError(f"Unknown conformal mode {mode!r}; choose from {CONFORMAL_MODES}")
    scores = 1.0 - proba[np.arange(len(y)), y]
    marginal = conformal_quantile(scores, level)
    thresholds, conditional = [], []
    for k in range(n_classes):
        sk = scores[y == k]
        own = mode == "class_conditional" and len(sk) >= min_class
        thresholds.append(conformal_quantile(sk, level) if own else marginal)
        conditional.append(bool(own))
    return {"level": float(level), "mode": mode, "thresholds": [min(t, 1.0) for t in thresholds],
            "class_conditional": conditional}


def prediction_sets(proba: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Boolean ``(n, n_classes)``: class ``k`` is in the set when ``1 - p_k <= threshold_k``."""
    return (1.0 - proba) <= np.asarray(thresholds, float)[None, :]
