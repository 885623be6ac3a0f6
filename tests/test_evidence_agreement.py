"""Network and evidence together (issue 31, item 4): the rules, and the nested study on known situations."""

from __future__ import annotations

import numpy as np
import pytest

from pymatgen_xanes_nn.preprocessing import DEFAULT_PREPROCESSING
from pymatgen_xanes_nn.studies.evidence_agreement import RULES, disagrees, evidence_study
from pymatgen_xanes_nn.training.fit import TrainingConfig
from pymatgen_xanes_nn.training.splits import grouped_folds

from .conftest import toy_set


def test_rules():
    near = ["SiO4", "SiO6", "SiO6"]
    assert not disagrees("none", "SiN4", near)
    assert disagrees("top1", "SiO6", near) and not disagrees("top1", "SiO4", near)
    assert disagrees("top3_majority", "SiO4", near) and not disagrees("top3_majority", "SiO6", near)
    assert not disagrees("top3_majority", "SiO4", ["SiO4", "SiO6", "SiN4"])  # a tie goes to the most similar
    assert disagrees("not_in_top3", "SiN4", near) and not disagrees("not_in_top3", "SiO6", near)
    assert disagrees("top1", "SiO4", [None, "SiO4"])  # a neighbour of no class of the model
    with pytest.raises(ValueError, match="Unknown evidence rule 'nearest'"):
        disagrees("nearest", "SiO4", near)


def _fold_results(labels, groups, config, wrong_where):
    """Checkpoint-like fold results of a 'network' that is right except on the rows ``wrong_where`` picks."""
    classes = sorted(set(labels))
    y = np.array([classes.index(lab) for lab in labels])
    folds = grouped_folds(groups, y, config.calibration_folds, config.seed)
    rng = np.random.default_rng(0)
    out = []
    for k, (_, te) in enumerate(folds):
        proba = np.full((len(te), len(classes)), 0.02)
        for row, i in enumerate(te):
            guess = (y[i] + 1) % len(classes) if wrong_where(i) else y[i]
            proba[row, guess] = 0.9 + 0.05 * rng.random()
        proba /= proba.sum(axis=1, keepdims=True)
        out.append({"fold": k, "proba_raw": proba.tolist(), "scores": {"knn": [0.0] * len(te)}})  # no OOD flag
    return out


@pytest.fixture(scope="module")
def toy():
    x, labels, groups, _ = toy_set(n_per_class=45)
    return x, labels, groups


def test_a_network_wrong_where_the_evidence_is_right_is_caught_by_the_chosen_rule(toy):
    """The synthetic classes are far apart: the nearest spectrum is always right, so every network error is a
    disagreement. Confident errors escape the network's own don't-know; the nested choice must take a rule."""
    x, labels, groups = toy
    config = TrainingConfig(calibration_folds=5, ood_scores=["knn"], seed=0)
    wrong = set(range(0, len(x), 9))  # ~11% confident errors
    res = evidence_study(x, labels, groups, [True] * len(x), config, DEFAULT_PREPROCESSING,
                         _fold_results(labels, groups, config, lambda i: i in wrong))
    assert res["evidence_top1_accuracy"] == 1.0 and res["network_accuracy"] < 0.95
    assert res["rules"]["top1"]["disagree_wrong"] == 1.0 and res["rules"]["top1"]["disagree_right"] == 0.0
    assert all(f["chosen"] != "none" for f in res["nested"])
    summary = res["nested_summary"]
    assert summary["chosen_wrong_flagged"] == 1.0 > summary["none_wrong_flagged"]
    assert summary["chosen_right_flagged"] <= summary["none_right_flagged"] + 0.02  # the budget holds held out


def test_a_rule_that_adds_nothing_is_not_chosen(toy):
    """A network that is always right gives the rules nothing to catch: the nested choice stays with 'none'."""
    x, labels, groups = toy
    config = TrainingConfig(calibration_folds=5, ood_scores=["knn"], seed=0)
    res = evidence_study(x, labels, groups, [True] * len(x), config, DEFAULT_PREPROCESSING,
                         _fold_results(labels, groups, config, lambda i: False))
    assert [f["chosen"] for f in res["nested"]] == ["none"] * 5
    assert set(res["rules"]) == set(RULES)


def test_a_checkpoint_of_other_folds_is_refused(toy):
    x, labels, groups = toy
    config = TrainingConfig(calibration_folds=5, ood_scores=["knn"], seed=0)
    folds = _fold_results(labels, groups, config, lambda i: False)[:3]
    with pytest.raises(ValueError, match=r"checkpoint holds folds \[0, 1, 2\]; the model has 5"):
        evidence_study(x, labels, groups, [True] * len(x), config, DEFAULT_PREPROCESSING, folds)
