"""Out-of-fold calibration, the one path: temperature, conformal sets, OOD calibration scores and "don't know".

Training calibrates a model on the out-of-fold predictions of its calibration folds; the OOD benchmark calibrates
each held-out fold on the other folds the same way. Both call :func:`calibrate`, so what is measured is what ships.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import log_softmax, softmax

from pymatgen_xanes_nn.trust.abstain import DONT_KNOW_BUDGET, OOD_ALPHAS, fit_dont_know
from pymatgen_xanes_nn.trust.conformal import fit_conformal, prediction_sets
from pymatgen_xanes_nn.trust.ood import combined_pvalue

if TYPE_CHECKING:
    from collections.abc import Sequence


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimizing the negative log-likelihood of held-out predictions."""
    from scipy.optimize import minimize_scalar

    logp = np.log(np.clip(proba, 1e-12, None))

    def nll(log_t: float) -> float:
        return float(-np.mean(log_softmax(logp / np.exp(log_t), axis=1)[np.arange(len(y)), y]))

    res = minimize_scalar(nll, bounds=(-4.0, 4.0), method="bounded")
    return float(np.exp(res.x))


def temper(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities with their logits divided by ``temperature``."""
    return softmax(np.log(np.clip(proba, 1e-12, None)) / temperature, axis=1)


@dataclass
class Calibration:
    """What :func:`calibrate` fits out of fold; a model or a benchmark fold applies it as is.

    Attributes:
        temperature: the softmax temperature.
        conformal: ``thresholds``, ``level``, ``mode`` and ``confidence_floor`` of the prediction sets.
        calibration: every OOD score's out-of-fold values, sorted (the p-values' reference).
        alpha: the OOD level "don't know" uses.
        abstain: :func:`~pymatgen_xanes_nn.trust.abstain.fit_dont_know`'s shares, out of fold.
        proba: the tempered out-of-fold probabilities.
        pvalue: the out-of-fold combined OOD p-values (in sample: about ``alpha`` by construction).
    """

    temperature: float
    conformal: dict[str, Any]
    calibration: dict[str, np.ndarray]
    alpha: float
    abstain: dict[str, float]
    proba: np.ndarray = field(repr=False)
    pvalue: np.ndarray = field(repr=False)


def calibrate(proba_raw: np.ndarray, y: np.ndarray, scores: dict[str, np.ndarray], combined: Sequence[str],
              level: float = 0.9, mode: str = "marginal", budget: float = DONT_KNOW_BUDGET,
              alphas: Sequence[float] = OOD_ALPHAS, poor: np.ndarray | None = None,
              extra: np.ndarray | None = None) -> Calibration:
    """Fit temperature, sets, OOD calibration and the don't-know policy on out-of-fold predictions.

    Args:
        proba_raw: untempered out-of-fold probabilities ``(n, n_classes)`` of spectra inside the classes.
        y: their class indices.
        scores: their OOD scores by name (raw or standardized, as the model will compute them).
        combined: the scores the OOD p-value combines.
        level: nominal coverage of the prediction sets.
        mode: ``"marginal"`` or ``"class_conditional"`` thresholds.
        budget: the share of correct predictions "don't know" may flag.
        alphas: candidate OOD levels.
        poor: which spectra failed an input-quality limit (their p-value is 0).
        extra: further don't-know reasons per spectrum (e.g. network and evidence disagree), fitted with the rest.
    """
    y = np.asarray(y)
    temperature = fit_temperature(proba_raw, y)
    proba = temper(proba_raw, temperature)
    conformal = fit_conformal(proba, y, proba.shape[1], level, mode)
    calibration = {name: np.sort(np.asarray(v)).astype(np.float32) for name, v in scores.items()}
    pvalue = combined_pvalue({k: calibration[k] for k in combined}, {k: scores[k] for k in combined})
    if poor is not None:
        pvalue = np.where(np.asarray(poor, bool), 0.0, pvalue)
    sets = prediction_sets(proba, conformal["thresholds"])
    abstain = fit_dont_know(proba.max(axis=1), proba.argmax(axis=1) == y, pvalue, sets.sum(axis=1), budget, alphas,
                            extra=extra)
    conformal["confidence_floor"] = abstain["confidence_floor"]
    return Calibration(temperature, conformal, calibration, abstain["alpha"], abstain, proba, pvalue)
