"""The don't-know policy: when an answer is withheld, and its levels fitted out of fold."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

#: A prediction set with more labels than this says little: the classification reports "don't know".
MAX_USEFUL_SET_SIZE = 3
#: Share of correct held-out predictions the "don't know" rule may flag (issue 13: <= 5%).
DONT_KNOW_BUDGET = 0.05
#: Levels the OOD flag may use; training picks the one that lets "don't know" catch the most wrong predictions.
OOD_ALPHAS = (0.01, 0.025, 0.05)


def dont_know(pvalue: np.ndarray, alpha: float, set_size: np.ndarray, confidence: np.ndarray,
              floor: float = 0.0, extra: np.ndarray | None = None) -> np.ndarray:
    """The "don't know" rule: out of distribution, an empty or a large prediction set, or confidence below the floor.

    Args:
        pvalue: combined OOD p-values (0 where the input is past a quality limit).
        alpha: the OOD flag's level.
        set_size: labels in each prediction set.
        confidence: the calibrated top probability.
        floor: the confidence floor (:func:`fit_dont_know`).
        extra: further reasons, one flag per prediction (e.g. the network and its evidence disagree).
    """
    size = np.asarray(set_size)
    flags = ((np.asarray(pvalue) < alpha) | (size == 0) | (size > MAX_USEFUL_SET_SIZE)
             | (np.asarray(confidence) < floor))
    return flags if extra is None else flags | np.asarray(extra, bool)


def fit_dont_know(confidence: np.ndarray, correct: np.ndarray, pvalue: np.ndarray, set_size: np.ndarray,
                  budget: float = DONT_KNOW_BUDGET, alphas: Sequence[float] = OOD_ALPHAS,
                  extra: np.ndarray | None = None) -> dict[str, float]:
    """The OOD level and confidence floor under which "don't know" catches the most wrong predictions.

    For each level in ``alphas`` the floor is the highest confidence such that :func:`dont_know` flags at most
    ``budget`` of the correct predictions (0 when the other reasons already use the budget). The level whose rule
    flags the largest share of wrong predictions wins, except that the largest level within one binomial standard
    error of that share is preferred: out-of-fold errors hold no shifted spectra or foreign edges, which only the
    OOD flag catches, so a floor that buys a few more of those errors must not switch the flag nearly off (a
    retrained environment model went from level 0.05 to 0.01 and stopped flagging 4 eV shifts).

    Args:
        confidence: calibrated out-of-fold top probabilities.
        correct: whether each out-of-fold prediction was right.
        pvalue: out-of-fold combined OOD p-values.
        set_size: out-of-fold prediction-set sizes.
        budget: the share of correct predictions that may be flagged.
        alphas: candidate OOD levels.
        extra: further reasons that always flag (they use the budget first; see :func:`dont_know`).

    Returns:
        ``{"alpha", "confidence_floor", "correct_flagged", "wrong_flagged"}`` (shares, out of fold).
    """
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, bool)
    rows = []
    for alpha in sorted(alphas):
        other = dont_know(pvalue, alpha, set_size, confidence, extra=extra)
        allowed = int(np.floor(budget * correct.sum())) - int(other[correct].sum())
        free = np.sort(confidence[correct & ~other])
        # the floor flags the correct predictions strictly below it: at most `allowed` of them
        floor = float(free[allowed]) if 0 < allowed < len(free) else 0.0
        flagged = dont_know(pvalue, alpha, set_size, confidence, floor, extra=extra)
        rows.append({"alpha": float(alpha), "confidence_floor": floor,
                     "correct_flagged": float(flagged[correct].mean()) if correct.any() else 0.0,
                     "wrong_flagged": float(flagged[~correct].mean()) if (~correct).any() else 0.0})
    top = max(r["wrong_flagged"] for r in rows)
    se = math.sqrt(top * (1 - top) / max(int((~correct).sum()), 1))
    return max((r for r in rows if r["wrong_flagged"] >= top - se - 1e-12), key=lambda r: r["alpha"])
