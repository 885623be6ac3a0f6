"""Network and evidence together: should "don't know" follow when the network and its nearest spectra disagree?

A trained model's calibration folds leave every real crystal's spectrum scored by networks that never saw it (the
training checkpoint keeps those out-of-fold probabilities and OOD scores). For the same spectrum, the evidence is
its most similar spectra among that fold's *training* crystals, ranked as :func:`~pymatgen_xanes_nn.trust.evidence.
nearest_reference` ranks the shipped ones (cosine in the reference's projection). A rule adds "don't know" when the
network's label and the evidence disagree:

- ``none``: the network alone (today's don't-know: OOD, sets, confidence floor);
- ``top1``: the label differs from the class of the most similar spectrum;
- ``top3_majority``: it differs from the most common class of the three most similar (ties: the most similar);
- ``not_in_top3``: no one of the three most similar has the label.

The choice is nested: for each outer fold, every rule is calibrated (temperature, sets, OOD level, confidence
floor within the 5% budget, :func:`~pymatgen_xanes_nn.trust.calibrate.calibrate`) on the other folds' out-of-fold
predictions and, among the rules that flag at most the budget (5%) of right answers there, the one that flags the
most wrong answers is chosen (the cap is the network alone's share when its OOD flag overspends the budget by
itself; a rule must beat ``none`` by more than one binomial standard error); it is judged on the outer fold it
never saw. Also reported: how often the nearest spectra's class (top-1, majority of three) is right,
i.e. whether the label, not only "don't know", should follow the evidence.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from pymatgen_xanes_nn.errors import InputError
from pymatgen_xanes_nn.trust.evidence import RULES, disagrees, majority_class, out_of_fold_neighbours

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pymatgen_xanes_nn.preprocessing import Preprocessing
    from pymatgen_xanes_nn.training.fit import TrainingConfig

__all__ = ["RULES", "disagrees", "evidence_study"]

def _judge(calibration, proba_raw: np.ndarray, y: np.ndarray, scores: dict[str, np.ndarray], combined: Sequence[str],
           extra: np.ndarray) -> dict[str, Any]:
    """A fitted calibration applied to predictions it was not fitted on: shares flagged among right and wrong."""
    from pymatgen_xanes_nn.trust.abstain import dont_know
    from pymatgen_xanes_nn.trust.calibrate import temper
    from pymatgen_xanes_nn.trust.conformal import prediction_sets
    from pymatgen_xanes_nn.trust.ood import combined_pvalue

    proba = temper(proba_raw, calibration.temperature)
    pvalue = combined_pvalue({k: calibration.calibration[k] for k in combined}, {k: scores[k] for k in combined})
    sets = prediction_sets(proba, calibration.conformal["thresholds"])
    flagged = dont_know(pvalue, calibration.alpha, sets.sum(axis=1), proba.max(axis=1),
                        calibration.conformal["confidence_floor"], extra=extra)
    right = proba.argmax(axis=1) == y
    return {"n": int(len(y)), "n_wrong": int((~right).sum()), "right_flagged": int((flagged & right).sum()),
            "wrong_flagged": int((flagged & ~right).sum()), "n_right": int(right.sum())}


def evidence_study(x: np.ndarray, labels: Sequence[str], groups: Sequence[str], testable: Sequence[bool],
                   config: TrainingConfig, preprocessing: Preprocessing, fold_results: Sequence[dict[str, Any]]
                   ) -> dict[str, Any]:
    """Every rule out of fold, and the rule chosen by nested folds, judged on folds it was not chosen on.

    Args:
        x: the model's training inputs, exactly as it was trained.
        labels: their classes.
        groups: their material groups.
        testable: which rows the calibration folds scored (the real crystals; also the evidence candidates).
        config: the model's training configuration (folds, seed, OOD scores, level, budget).
        preprocessing: the model's preprocessing.
        fold_results: the training checkpoint's per-fold results (``fold``, ``proba_raw``, ``scores``).
    """
    from pymatgen_xanes_nn.training.splits import grouped_folds
    from pymatgen_xanes_nn.trust.abstain import OOD_ALPHAS
    from pymatgen_xanes_nn.trust.calibrate import calibrate

    classes = sorted(set(labels))
    y = np.array([classes.index(lab) for lab in labels])
    folds = grouped_folds(list(groups), y, config.calibration_folds, config.seed, testable)
    by_fold = {r["fold"]: r for r in fold_results}
    if sorted(by_fold) != list(range(len(folds))):
        raise InputError(f"The checkpoint holds folds {sorted(by_fold)}; the model has {len(folds)}")
    neighbours = out_of_fold_neighbours(x, labels, folds, np.asarray(testable, bool), preprocessing)
    combined = list(config.ood_scores)
    alphas = OOD_ALPHAS if config.ood_alpha is None else [config.ood_alpha]

    # per fold: its tested rows, untempered probabilities, OOD scores, and each rule's disagreement flags
    parts = []
    for k, (_, te) in enumerate(folds):
        proba = np.asarray(by_fold[k]["proba_raw"])
        pred = [classes[j] for j in proba.argmax(axis=1)]
        parts.append({"y": y[te], "proba": proba, "scores": {n: np.asarray(v) for n, v in by_fold[k]["scores"].items()},
                      "flags": {r: np.array([disagrees(r, pred[n], neighbours[int(i)]) for n, i in enumerate(te)])
                                for r in RULES}})

    def pooled(idx: Sequence[int], rule: str) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
        return (np.concatenate([parts[i]["proba"] for i in idx]), np.concatenate([parts[i]["y"] for i in idx]),
                {n: np.concatenate([parts[i]["scores"][n] for i in idx]) for n in parts[0]["scores"]},
                np.concatenate([parts[i]["flags"][rule] for i in idx]))

    everything = list(range(len(folds)))
    rules: dict[str, Any] = {}
    for rule in RULES:  # each rule out of fold (in sample for its calibration): what it flags
        proba, yy, scores, flags = pooled(everything, rule)
        right = proba.argmax(axis=1) == yy
        fitted = calibrate(proba, yy, scores, combined, config.conformal_level, config.conformal_mode,
                           config.dont_know_budget, alphas, extra=flags)
        rules[rule] = {"disagree_right": float(flags[right].mean()) if right.any() else 0.0,
                       "disagree_wrong": float(flags[~right].mean()) if (~right).any() else 0.0,
                       **{k: fitted.abstain[k] for k in ("correct_flagged", "wrong_flagged", "confidence_floor",
                                                         "alpha")}}
    proba, yy, _, _ = pooled(everything, "none")
    first = np.concatenate([[classes.index(neighbours[int(i)][0]) for i in te] for _, te in folds])
    majority = np.concatenate([[classes.index(majority_class(neighbours[int(i)])) for i in te] for _, te in folds])
    nested = []
    for j in everything:  # choose on the other folds, judge on fold j
        inner = [i for i in everything if i != j]
        fits = {}
        for rule in RULES:
            proba_i, y_i, scores_i, flags_i = pooled(inner, rule)
            fits[rule] = calibrate(proba_i, y_i, scores_i, combined, config.conformal_level, config.conformal_mode,
                                   config.dont_know_budget, alphas, extra=flags_i)
        n_wrong = int(sum((parts[i]["proba"].argmax(axis=1) != parts[i]["y"]).sum() for i in inner))
        base = fits["none"].abstain["wrong_flagged"]
        se = math.sqrt(base * (1 - base) / max(n_wrong, 1))
        # a rule may flag at most the budget of right answers (its own flags come first, so it can overspend)
        # (or no more than the network alone, whose OOD flag may overspend it by itself)
        cap = max(config.dont_know_budget, fits["none"].abstain["correct_flagged"]) + 1e-9
        admissible = [r for r in RULES if fits[r].abstain["correct_flagged"] <= cap]
        best = max(admissible or ["none"], key=lambda r: fits[r].abstain["wrong_flagged"])
        chosen = best if fits[best].abstain["wrong_flagged"] > base + se else "none"
        p = parts[j]
        judged = {rule: _judge(fits[rule], p["proba"], p["y"], p["scores"], combined, p["flags"][rule])
                  for rule in {chosen, "none"}}
        nested.append({"fold": j, "chosen": chosen, "inner_wrong_flagged": {r: fits[r].abstain["wrong_flagged"]
                                                                             for r in RULES},
                       "chosen_judged": judged[chosen], "none_judged": judged["none"]})

    def share(key: str, part: str) -> float:
        num = sum(f[key][f"{part}_flagged"] for f in nested)
        den = sum(f[key][f"n_{part}"] for f in nested)
        return num / den if den else 0.0

    return {
        "n": int(len(yy)), "n_folds": len(folds), "classes": classes,
        "network_accuracy": float(np.mean(proba.argmax(axis=1) == yy)),
        "evidence_top1_accuracy": float(np.mean(first == yy)),
        "evidence_top3_majority_accuracy": float(np.mean(majority == yy)),
        "rules": rules,
        "nested": nested,
        "chosen": Counter(f["chosen"] for f in nested).most_common(1)[0][0],
        "nested_summary": {
            "chosen_wrong_flagged": share("chosen_judged", "wrong"),
            "chosen_right_flagged": share("chosen_judged", "right"),
            "none_wrong_flagged": share("none_judged", "wrong"),
            "none_right_flagged": share("none_judged", "right"),
        },
    }
