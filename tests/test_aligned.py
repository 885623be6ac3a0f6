"""Calibration-proof inputs (issue 31): e0-aligned spectra with their e0 kept beside them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pymatgen_xanes_nn.classifier import InvalidModelError, XANESClassifier
from pymatgen_xanes_nn.preprocessing import DEFAULT_PREPROCESSING, Preprocessing
from pymatgen_xanes_nn.training.fit import train

from .conftest import CENTERS, synthetic_edge, toy_set

ALIGNED = dataclasses.replace(DEFAULT_PREPROCESSING, alignment="e0", e0_column=True)


def test_e0_column_holds_the_edge_and_follows_a_calibration_shift():
    e, mu = synthetic_edge(e0=1843.0)
    x = ALIGNED.transform_arrays(e, mu)
    assert x.shape == (ALIGNED.n_inputs,) == (DEFAULT_PREPROCESSING.n_points + 1,)
    e0 = float(ALIGNED.e0_of(x))
    assert e0 == pytest.approx(ALIGNED.edge(e, mu).e0, abs=1e-3) and abs(e0 - 1843.0) < 1.0, e0
    moved = ALIGNED.transform_arrays(e, mu, shift=2.5)
    assert float(ALIGNED.e0_of(moved)) == pytest.approx(e0 + 2.5, abs=0.06)
    # the grid part is the same aligned spectrum: the shift lives in the e0 column only
    assert np.abs(ALIGNED.spectra(moved) - ALIGNED.spectra(x)).max() < 0.05


def test_e0_column_needs_alignment_and_keeps_old_fingerprints():
    with pytest.raises(ValueError, match="e0_column needs alignment"):
        Preprocessing(e0_column=True)
    assert DEFAULT_PREPROCESSING.e0_of(np.zeros((2, 500))) is None
    assert Preprocessing.from_dict(ALIGNED.as_dict()) == ALIGNED
    with pytest.raises(ValueError, match="e0_column"):
        Preprocessing.from_dict({**ALIGNED.as_dict(), "e0_column": "yes"})
    # models written before the field existed keep their preprocessing fingerprint (their evidence file's name)
    import hashlib
    import json

    before = {k: v for k, v in dataclasses.asdict(DEFAULT_PREPROCESSING).items() if k != "e0_column"}
    assert DEFAULT_PREPROCESSING.fingerprint == hashlib.sha256(
        json.dumps(before, sort_keys=True).encode()).hexdigest()[:16]
    assert ALIGNED.fingerprint != dataclasses.replace(ALIGNED, e0_column=False).fingerprint


def _aligned_toy(n_per_class: int = 24, seed: int = 0):
    """:func:`toy_set`'s classes, each spectrum measured around its own e0: aligned, only e0 tells them apart."""
    return toy_set(n_per_class, seed, preprocessing=ALIGNED, around_e0=True, noise=0.001)


@pytest.fixture(scope="module")
def aligned_models():
    """The toy classes differ only in e0: aligned without the e0 input they look alike; with it, they do not."""
    xa, labels, groups, raw = _aligned_toy()
    kw = {"ae_config": "NN2", "ae_epochs": 30, "fnn_epochs": 120, "seed": 1, "calibration_folds": 3,
          "preprocessing": ALIGNED}
    return {flag: train(xa, labels, groups, name=f"toy-e0-{flag}", e0_input=flag, **kw) for flag in (False, True)}


def test_the_fnn_reads_the_e0_column(aligned_models):
    xa, labels, _, _ = _aligned_toy(seed=7)  # new spectra: a small network can memorize its training noise
    acc = {flag: np.mean(np.array(m.predict(xa)) == np.array(labels)) for flag, m in aligned_models.items()}
    assert acc[False] <= 0.5 and acc[True] >= acc[False] + 0.3, acc  # chance: 1/3
    with_e0 = aligned_models[True]
    assert with_e0.feature_size == with_e0.code_size + 1
    # moving only the e0 column moves the answer: A-Si's spectrum with C-Si's edge position reads C-Si
    row = xa[[labels.index("A-Si")]].copy()
    row[0, -1] = CENTERS["C-Si"] - ALIGNED.e0_reference
    assert with_e0.predict(row[0]) == "C-Si"


def test_aligned_model_round_trips_and_checks_its_e0_input(aligned_models, tmp_path):
    clf = aligned_models[True]
    path = tmp_path / "m.json.gz"
    clf.to(str(path))
    back = XANESClassifier.from_file(str(path))
    assert back.e0_input and back.preprocessing.e0_column
    xa = _aligned_toy()[0][:5]
    np.testing.assert_allclose(back.probabilities(xa), clf.probabilities(xa), atol=1e-6)
    d = clf.as_dict()
    d["preprocessing"] = {**d["preprocessing"], "e0_column": False, "alignment": "absolute"}
    with pytest.raises(InvalidModelError, match="e0_input"):
        XANESClassifier(**{k: v for k, v in d.items() if not k.startswith("@") and k != "checksum"})


def test_edge_offset_reads_the_absolute_e0_of_an_aligned_model(aligned_models):
    """The OOD score that needs absolute energies still has them: a shifted spectrum scores a larger offset."""
    clf = aligned_models[False]
    e, mu = synthetic_edge(e0=CENTERS["B-Si"])
    scores = {s: clf.ood_scores(clf.vectorize(ALIGNED_XAS(e + s, mu))[0], standardized=False)["edge_offset"][0]
              for s in (0.0, 6.0)}
    assert scores[6.0] > scores[0.0] + 3.0, scores


def ALIGNED_XAS(e, mu):  # noqa: N802 - a tiny factory
    from pymatgen.analysis.xas.spectrum import XAS

    return XAS(e, mu, None, "Si")
