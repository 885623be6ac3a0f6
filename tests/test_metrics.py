from __future__ import annotations

import numpy as np
import pytest

from pymatgen_xanes_nn.training.metrics import auroc, classification_metrics, expected_calibration_error, fpr_at_tpr


def test_auroc_matches_its_definition():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 300), rng.normal(1, 1, 200)
    pairs = np.mean(b[None, :] > a[:, None]) + 0.5 * np.mean(b[None, :] == a[:, None])
    assert auroc(a, b) == pytest.approx(pairs, abs=1e-12)
    assert auroc(a, a + 100) == 1.0 and auroc(a + 100, a) == 0.0
    assert auroc(np.zeros(5), np.zeros(7)) == 0.5
    with pytest.raises(ValueError, match="both sides"):
        auroc([], [1.0])


def test_fpr_at_95_tpr():
    inside = np.arange(100.0)
    outside = np.arange(100.0) + 50  # 95% of outside scores are >= 54.95 -> threshold 54 ("lower")
    assert fpr_at_tpr(inside, outside) == pytest.approx(np.mean(inside >= 54))
    assert fpr_at_tpr(inside, inside + 1000) == 0.0


def test_ece_is_zero_for_perfect_calibration_and_positive_otherwise():
    y = np.array([0, 1] * 50)
    sure = np.eye(2)[y]
    assert expected_calibration_error(sure, y) == 0.0
    overconfident = np.eye(2)[1 - y] * 0.98 + 0.01
    assert expected_calibration_error(overconfident, y) == pytest.approx(0.99)
    m = classification_metrics(y, sure, ["a", "b"])
    assert m["accuracy"] == 1.0 and m["per_class_recall"] == {"a": 1.0, "b": 1.0}
