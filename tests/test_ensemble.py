"""Cross-fitted ensembles: the fold networks as the model, cross-conformal sets and p-values."""

from __future__ import annotations

import numpy as np
import pytest

from pymatgen_xanes_nn.ensemble import cross_conformal_pvalues, disagreement
from pymatgen_xanes_nn.trust.ood import pvalues
from tests.conftest import toy_set

OPTIONS = dict(name="toy_ensemble", ae_config="NN2", ae_epochs=30, fnn_epochs=40, seed=1, calibration_folds=3,
               ood_scores=("knn", "energy"), ensemble=True)


@pytest.fixture(scope="module")
def ensemble_model(tmp_path_factory):
    from pymatgen_xanes_nn.training.fit import train

    x, labels, groups, _ = toy_set()
    checkpoint = str(tmp_path_factory.mktemp("ens") / "train.partial.jsonl")
    return train(x, labels, groups, checkpoint=checkpoint, **OPTIONS), checkpoint


def test_cross_conformal_pvalues_pool_each_members_own_counts():
    cal = [np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.6])]
    # member 0 scores 0.25 (1 of its 3 at or above), member 1 scores 0.55 (1 of its 2): (1 + 2) / 6
    assert cross_conformal_pvalues(cal, np.array([[0.25], [0.55]]))[0] == pytest.approx(3 / 6)
    # one member is split conformal: the same as the pooled p-value
    c = np.sort(np.random.default_rng(0).random(50))
    s = np.random.default_rng(1).random(20)
    np.testing.assert_allclose(cross_conformal_pvalues([c], s[None]), pvalues(c, s))


def test_cross_conformal_sets_cover_exchangeable_data():
    """Members that see the same distribution: sets at 90% cover about 90% of fresh rows (not in sample)."""
    from pymatgen_xanes_nn.ensemble import Ensemble, FoldNetwork

    rng = np.random.default_rng(0)
    n_classes, k = 4, 5

    def scores(n):  # a member's 1 - p_true of spectra it never saw, and its probabilities of fresh ones
        return rng.beta(1, 4, n)

    members = []
    for _ in range(k):
        cal = np.sort(scores(200))
        members.append(FoldNetwork([], [], np.zeros(1), np.ones(1), {}, {}, cal,
                                   rng.integers(0, n_classes, 200), {}))
    ens = Ensemble(members, 1.0)
    n = 4000
    y = rng.integers(0, n_classes, n)
    proba = rng.dirichlet(np.ones(n_classes), size=(k, n))
    # the true class's probability drawn like the calibration scores, the same for every member (worst case)
    true_p = 1.0 - scores(n)
    proba[:, np.arange(n), y] = true_p[None, :]
    sets = ens.sets(proba, 0.9, [])
    assert 0.86 <= sets[np.arange(n), y].mean() <= 0.94


def test_an_ensemble_predicts_with_its_members_and_round_trips(ensemble_model, tmp_path):
    from pymatgen_xanes_nn.classifier import XANESClassifier

    clf, _ = ensemble_model
    assert len(clf.members) == 3 and "ensemble of 3" in repr(clf)
    x, labels, _, _ = toy_set(seed=5)
    p = clf.probabilities(x)
    np.testing.assert_allclose(p, clf._member_outputs(x)[2].mean(axis=0), rtol=1e-6)
    assert np.mean(np.array(clf.labels)[p.argmax(axis=1)] == np.array(labels)) > 0.8
    path = str(tmp_path / "ens.json.gz")
    clf.to(path)
    back = XANESClassifier.from_file(path)
    np.testing.assert_allclose(back.probabilities(x), p, atol=1e-6)
    np.testing.assert_array_equal(back.prediction_sets(x), clf.prediction_sets(x))
    np.testing.assert_allclose(back.ood_pvalues(x), clf.ood_pvalues(x))
    r = back.classify(x[:4])
    assert all(0 <= c["members_disagreeing"] <= 1 and c["label"] in c["probabilities"] for c in r)
    # every member holds the scores of the spectra it held out, sorted, and together they are all scored spectra
    assert sum(len(m.conformal_scores) for m in clf.members) == len(toy_set()[0])
    assert all(np.all(np.diff(m.conformal_scores) >= 0) for m in clf.members)


def test_an_ensemble_p_value_reads_each_member_against_its_own_fold(ensemble_model):
    """The energy p-value is cross-conformal; the single-network (pooled) one differs once members differ."""
    clf, _ = ensemble_model
    x, _, _, _ = toy_set(seed=7)
    codes, logits, _ = clf._member_outputs(x)
    ens = clf.ensemble
    own = ens.pvalues(ens.member_scores(codes, logits), ["energy"])["energy"]
    by_hand = cross_conformal_pvalues([m.calibration["energy"] for m in clf.members],
                                      np.stack([m.scores(z, lg)["energy"] for m, z, lg in
                                                zip(clf.members, codes, logits)]))
    np.testing.assert_allclose(own, by_hand)
    pooled = clf.ood_pvalue(clf.ood_scores(x))
    assert not np.allclose(clf.ood_pvalues(x), pooled)


def test_a_resumed_training_ships_the_same_members(ensemble_model):
    from pymatgen_xanes_nn.training.fit import train

    clf, checkpoint = ensemble_model
    x, labels, groups, _ = toy_set()
    again = train(x, labels, groups, checkpoint=checkpoint, **OPTIONS)  # folds read back, not retrained
    for a, b in zip(clf.members, again.members):
        np.testing.assert_array_equal(a.fnn[0]["W"], b.fnn[0]["W"])
        np.testing.assert_array_equal(a.conformal_scores, b.conformal_scores)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["members"].pop(), "a member is missing"),
    (lambda d: d["members"].__delitem__(slice(1, None)), "members must be a list"),
    (lambda d: d["members"][0]["conformal_scores"].update(
        b64=__import__("base64").b64encode(np.linspace(1, 0, d["members"][0]["conformal_scores"]["shape"][0])
                                         .astype(np.float32).tobytes()).decode()), "conformal_scores must be sorted"),
    (lambda d: d["members"][1]["fnn"][0].update(W=d["members"][1]["encoder"][0]["W"]), "member 1.fnn layer 0"),
    (lambda d: d["members"][0]["reference"].pop("energy"), "reference"),
    (lambda d: d["ood"].update(scores=["knn", "reconstruction"]), "no decoder"),
])
def test_a_tampered_ensemble_is_refused_naming_the_field(ensemble_model, edit, message):
    from pymatgen_xanes_nn.classifier import InvalidModelError, XANESClassifier
    from pymatgen_xanes_nn.io.model_file import model_checksum

    clf, _ = ensemble_model
    d = clf.as_dict()
    edit(d)
    d["checksum"] = model_checksum(d)  # re-signed: the checksum cannot be what refuses it
    with pytest.raises(InvalidModelError, match=message):
        XANESClassifier.from_dict(d)


def test_ensemble_options_are_checked():
    from pymatgen_xanes_nn.training.fit import TrainingConfig

    with pytest.raises(ValueError, match="ensemble needs"):
        TrainingConfig(ensemble=True, calibration_folds=0)
    with pytest.raises(ValueError, match="ensemble needs"):
        TrainingConfig(ensemble=True, ood_scores=("reconstruction",))
    assert "ensemble" not in TrainingConfig().as_dict()  # old checkpoint keys hold


def test_disagreement_counts_members_off_the_label():
    proba = np.array([[[0.9, 0.1]], [[0.2, 0.8]], [[0.6, 0.4]], [[0.7, 0.3]]])
    assert disagreement(proba, np.array([0]))[0] == pytest.approx(0.25)
