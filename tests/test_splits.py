"""Folds: grouped, stratified, and with derived structures kept out of every test fold."""

from __future__ import annotations

import numpy as np

from pymatgen_xanes_nn.training.splits import grouped_folds


def _toy(n_groups=20, seed=0):
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"g{i}" for i in range(n_groups)], 3)
    y = np.repeat(np.arange(n_groups) % 2, 3)
    derived = rng.random(len(y)) < 0.4  # within a group: a parent and its derived structures
    return groups, y, derived


def test_grouped_folds_never_split_a_group():
    groups, y, _ = _toy()
    folds = grouped_folds(groups, y, 4, seed=0)
    assert len(folds) == 4
    tested = np.concatenate([te for _, te in folds])
    assert sorted(tested) == list(range(len(y)))  # every spectrum tested once
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])
        assert len(tr) + len(te) == len(y)
    assert grouped_folds(groups, y, 1, 0) == [] and grouped_folds(groups[:6], y[:6], 3, 0) == []


def test_derived_spectra_train_but_are_never_tested_nor_beside_their_parent():
    groups, y, derived = _toy()
    folds = grouped_folds(groups, y, 4, seed=0, testable=~derived)
    tested = np.concatenate([te for _, te in folds])
    assert not derived[tested].any() and sorted(tested) == list(np.flatnonzero(~derived))
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])  # a derived structure never trains against its tested parent
        assert derived[tr].any()
    # the real spectra's folds are those of the real spectra alone: paired with and without derived data
    real = np.flatnonzero(~derived)
    alone = grouped_folds(groups[real], y[real], 4, seed=0)
    for (_, te), (_, te_alone) in zip(folds, alone):
        np.testing.assert_array_equal(te, real[te_alone])


def test_random_folds_split_only_testable_spectra():
    from pymatgen_xanes_nn.training.splits import random_folds

    groups, y, derived = _toy()
    folds = random_folds(len(y), y, 3, seed=1, testable=~derived)
    tested = np.concatenate([te for _, te in folds])
    assert sorted(tested) == list(np.flatnonzero(~derived))
    for tr, te in folds:
        assert set(np.flatnonzero(derived)) <= set(tr) and not set(tr) & set(te)
    plain = random_folds(len(y), y, 3, seed=1)
    assert sorted(np.concatenate([te for _, te in plain])) == list(range(len(y)))


def test_outside_set_holds_real_unlabelled_crystals_only():
    from pymatgen_xanes_nn.training.fit import SpectraSet

    labels = ["a", None, None, "b", None]
    derived = [False, False, True, True, False]
    s = SpectraSet(np.zeros((5, 3)), [(np.zeros(2), np.zeros(2))] * 5, labels, list("ggghh"), list("vwxyz"),
                   [1] * 5, {}, derived)
    assert s.outside().task_ids == ["w", "z"]  # x is unlabelled but derived: it only ever trains
    assert s.labelled().task_ids == ["v", "y"]
