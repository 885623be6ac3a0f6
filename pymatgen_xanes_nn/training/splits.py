"""How spectra are split for evaluation and cross-fitting: the one place for folds.

Every grouped split keeps a material group (StructureMatcher family; a derived structure carries its parent's) on
one side. With ``testable`` only those spectra (real crystals) form test folds: a derived structure trains in
every fold except the one that tests its parent, where it sits on neither side.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

Fold = tuple[np.ndarray, np.ndarray]


def grouped_folds(groups: Sequence[str], y: np.ndarray, n_folds: int, seed: int,
                  testable: Sequence[bool] | None = None) -> list[Fold]:
    """Stratified grouped K-fold ``(train, test)`` index pairs; none if ``n_folds`` < 2 or groups are too few.

    Args:
        groups: material group per spectrum.
        y: class index per spectrum (stratification).
        n_folds: folds.
        seed: shuffle seed.
        testable: which spectra may be tested (default: all); the others only ever train, never alongside a
            tested spectrum of their group.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    groups, y = np.asarray(groups), np.asarray(y)
    testable = np.ones(len(y), bool) if testable is None else np.asarray(testable, bool)
    candidates = np.flatnonzero(testable)
    if n_folds < 2 or len(set(groups[candidates])) < n_folds:
        return []
    with warnings.catch_warnings():  # classes with fewer groups than folds: sklearn warns, the split is still grouped
        warnings.simplefilter("ignore", UserWarning)
        splits = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed).split(
            np.zeros(len(candidates)), y[candidates], groups[candidates])
        folds = []
        for _, te in splits:
            test = candidates[te]
            folds.append((np.flatnonzero(~np.isin(groups, groups[test])), test))
    return folds


def random_folds(n: int, y: np.ndarray, n_splits: int, seed: int,
                 testable: Sequence[bool] | None = None) -> list[Fold]:
    """The seed's protocol: stratified random K-fold by spectrum (groups ignored).

    With ``testable`` only those spectra are split; the others train in every fold.
    """
    from sklearn.model_selection import StratifiedKFold

    testable = np.ones(n, bool) if testable is None else np.asarray(testable, bool)
    candidates, always = np.flatnonzero(testable), np.flatnonzero(~testable)
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [(np.sort(np.concatenate([candidates[tr], always])), candidates[te])
            for tr, te in cv.split(np.zeros(len(candidates)), np.asarray(y)[candidates])]
