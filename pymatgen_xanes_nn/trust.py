"""Trust: out-of-distribution scores, conformal p-values and split-conformal prediction sets.

Plain NumPy on model inputs and outputs, so the classifier's forward pass stays fast; the statistics are fitted
out of fold during training (:mod:`pymatgen_xanes_nn.training`) and stored in the model file.

Scores are all "higher = less like the training data":

* ``reconstruction``: the autoencoder's mean squared error on the grid;
* ``mahalanobis``: latent distance to the nearest class mean (shared covariance);
* ``relative_mahalanobis``: that distance minus the distance to one Gaussian of all codes (Ren et al. 2021), which
  discounts directions every spectrum varies in;
* ``knn``: cosine distance to the nearest training spectrum, ``1 - max cos``;
* ``edge_offset``: how far (eV) the spectrum's e0 lies from the e0 of the training spectra most like it in shape
  (compared with e0 aligned): a calibration shift, or another element's edge moved into the window, keeps the
  shape and moves the edge;
* ``max_softmax``: ``1 - max p``; ``energy``: ``-logsumexp(logits)``.

A score becomes a conformal p-value against the same score of held-out in-distribution spectra; the ``combined``
score is the smallest p-value of its parts times their number (Bonferroni), so a threshold on it keeps the
false-alarm rate below its level whatever the parts' scales.

The network scores (:data:`NETWORK_SCORES`) are calibrated on the out-of-fold scores of the calibration folds'
networks but applied with the shipped network, trained on everything: their scale differs from one training run to
the next (the size of the logits sets ``energy``). Each network's scores are therefore standardized by its own
training spectra (:func:`score_reference`) before calibration and before use, so the p-values compare like with like.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from pymatgen_xanes_nn.preprocessing import find_e0

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pymatgen_xanes_nn.preprocessing import Preprocessing

OOD_SCORES = ("reconstruction", "mahalanobis", "relative_mahalanobis", "knn", "edge_offset", "max_softmax", "energy")
#: The scores the shipped models combine, chosen on the environment benchmark and checked on the chemsys one
#: (docs/RESULTS.md). Round 2: of 41 combinations of the network scores, the k-NN distance alone ranked first (mean
#: AUROC 0.848). Adding ``edge_offset`` (Bonferroni, environment scheme, same folds): other K edges 0.84 -> 0.96,
#: shifts of 3-5 eV 0.92 -> 0.97, at a cost on self-absorption (0.81 -> 0.74) and left-out environments
#: (0.78 -> 0.70); the mean over the sets rose, and rose again on the chemsys scheme (other K edges 0.96 -> 0.99).
DEFAULT_OOD_SCORES = ("knn", "edge_offset")
#: The scores computed by the trained networks (the rest depend on the training spectra only).
NETWORK_SCORES = ("reconstruction", "mahalanobis", "relative_mahalanobis", "max_softmax", "energy")
#: A prediction set with more labels than this says little: the classification reports "don't know".
MAX_USEFUL_SET_SIZE = 3


class KNNIndex:
    """Cosine nearest neighbours of spectra, computed in a PCA projection of the reference spectra.

    The reference vectors are projected on their first ``n_components`` right singular vectors (uncentred): for
    them the projection is near exact, and a query is divided by its *full* norm, so a spectrum that leaves the
    reference subspace loses similarity instead of hiding its off-subspace part.

    Args:
        basis: ``(n_points, k)`` orthonormal columns.
        reference: ``(n, k)`` projected reference spectra, unit length.
    """

    def __init__(self, basis: np.ndarray, reference: np.ndarray):
        self.basis = np.asarray(basis, np.float32)
        self.reference = np.asarray(reference, np.float32)

    @classmethod
    def fit(cls, x: np.ndarray, n_components: int = 64) -> KNNIndex:
        """Build the index of the rows of ``x`` (model inputs)."""
        x = np.asarray(x, np.float64)
        k = min(n_components, *x.shape)
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        basis = vt[:k].T
        ref = x @ basis
        ref /= np.clip(np.linalg.norm(ref, axis=1, keepdims=True), 1e-12, None)
        return cls(basis.astype(np.float32), ref.astype(np.float32))

    def similarity(self, x: np.ndarray) -> np.ndarray:
        """Cosine similarities ``(n_queries, n_reference)``."""
        x = np.asarray(x, np.float32)
        q = (x @ self.basis) / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)
        return q @ self.reference.T

    def distance(self, x: np.ndarray) -> np.ndarray:
        """``1 - max cosine similarity`` of each row of ``x`` to the reference spectra."""
        return 1.0 - self.similarity(x).max(axis=1)


#: Neighbours whose e0 the edge offset compares with.
EDGE_NEIGHBOURS = 5


def align_rows(x: np.ndarray, grid: np.ndarray, e0: np.ndarray, e_ref: float) -> np.ndarray:
    """Rows of ``x`` moved so that each one's ``e0`` sits at ``e_ref`` (ends held flat)."""
    grid = np.asarray(grid, float)
    return np.stack([np.interp(grid + (e - e_ref), grid, row) for row, e in zip(np.atleast_2d(x), e0)])


class EdgeIndex:
    """Where the edge of a spectrum of a given shape should be: e0 of its shape neighbours in the training data.

    Shapes are compared e0-aligned (cosine, as :class:`KNNIndex`), so the offset measures the edge position alone.
    Within FEFF spectra of the training materials the median offset is ~0.5 eV (95% below ~2.3 eV: FEFF's
    Fermi level moves with the cluster); shifted or foreign edges land several eV away.

    Args:
        index: the k-NN index of the aligned reference spectra.
        e0: e0 in eV of each reference spectrum.
        grid: the model's energy grid in eV.
    """

    def __init__(self, index: KNNIndex, e0: np.ndarray, grid: np.ndarray):
        self.index = index
        self.e0 = np.asarray(e0, np.float32)
        self.grid = np.asarray(grid, float)
        self.e_ref = float(self.grid.mean())

    @classmethod
    def fit(cls, x: np.ndarray, grid: np.ndarray, n_components: int = 64) -> EdgeIndex:
        """Index the rows of ``x`` (model inputs on ``grid``)."""
        e0 = find_e0(grid, x)
        return cls(KNNIndex.fit(align_rows(x, grid, e0, float(np.mean(grid))), n_components), e0, grid)

    def offset(self, x: np.ndarray, k: int = EDGE_NEIGHBOURS) -> np.ndarray:
        """``|e0 - median e0 of the k nearest aligned references|`` in eV for each row of ``x``."""
        e0 = find_e0(self.grid, x)
        sim = self.index.similarity(align_rows(x, self.grid, e0, self.e_ref))
        k = min(k, sim.shape[1])
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        neighbours = np.sort(self.e0[top], axis=1)  # the median by hand: np.median's overhead is ~30 us a call
        median = 0.5 * (neighbours[:, (k - 1) // 2] + neighbours[:, k // 2])
        return np.abs(e0 - median)


def input_indexes(x: np.ndarray, grid: np.ndarray, n_components: int = 64) -> dict[str, np.ndarray]:
    """The network-free OOD arrays of a model (k-NN and edge indexes of its training inputs ``x``), as stored."""
    knn, edge = KNNIndex.fit(x, n_components), EdgeIndex.fit(x, grid, n_components)
    return {"knn_basis": knn.basis, "knn_reference": knn.reference, "edge_basis": edge.index.basis,
            "edge_reference": edge.index.reference, "edge_e0": edge.e0}


def flag_rates(flags: np.ndarray, labels: Sequence[str] | None = None) -> dict[str, Any]:
    """How often the OOD flag fires: ``{"n", "ood_rate"}`` and, with ``labels``, the same per label (largest first)."""
    flags = np.asarray(flags, bool)
    out: dict[str, Any] = {"n": int(len(flags)), "ood_rate": float(np.mean(flags)) if len(flags) else 0.0}
    if labels is not None:
        kinds = np.asarray(list(labels))
        if len(kinds) != len(flags):
            raise ValueError(f"{len(flags)} outside spectra but {len(kinds)} outside labels")
        out["by_label"] = {k: {"n": int(np.sum(kinds == k)), "ood_rate": float(np.mean(flags[kinds == k]))}
                           for k in sorted(set(kinds), key=lambda k: (-np.sum(kinds == k), k))}
    return out


def pvalues(calibration: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Conformal p-values: ``(1 + #{calibration >= s}) / (n + 1)`` for each score ``s``.

    Args:
        calibration: scores of held-out in-distribution spectra, sorted ascending.
        scores: scores to test.
    """
    cal = np.asarray(calibration, float)
    n_greater = len(cal) - np.searchsorted(cal, np.asarray(scores, float), side="left")
    return (1.0 + n_greater) / (len(cal) + 1.0)


def score_reference(scores: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """Location and scale of each network score on the network's own training spectra: ``{name: [median, scale]}``.

    The scale is the mean absolute deviation from the median (robust, and unlike the interquartile range not zero
    when most training spectra score the same, as ``max_softmax`` does on confidently fitted spectra).

    Args:
        scores: raw scores of the unaugmented training spectra, as :meth:`XANESClassifier.ood_scores` gives them.
    """
    out = {}
    for name in NETWORK_SCORES:
        s = np.asarray(scores[name], float)
        median = float(np.median(s))
        scale = float(np.mean(np.abs(s - median)))
        out[name] = [median, max(scale, 1e-12 * max(abs(median), 1.0))]  # a floor: constant scores divide by no 0
    return out


def standardize(scores: dict[str, np.ndarray], reference: dict[str, list[float]]) -> dict[str, np.ndarray]:
    """The scores with each network score in ``reference`` made ``(s - median) / scale``; the others unchanged."""
    return {k: (v - reference[k][0]) / reference[k][1] if k in reference else v for k, v in scores.items()}


def combined_pvalue(calibrations: dict[str, np.ndarray], scores: dict[str, np.ndarray]) -> np.ndarray:
    """Bonferroni combination: ``min(1, J * min_j p_j)`` over the ``J`` scores present in ``calibrations``."""
    ps = [pvalues(calibrations[k], scores[k]) for k in calibrations]
    return np.minimum(1.0, len(ps) * np.min(ps, axis=0))


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
        raise ValueError(f"Unknown conformal mode {mode!r}; choose from {CONFORMAL_MODES}")
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


#: Share of correct held-out predictions the "don't know" rule may flag (issue 13: <= 5%).
DONT_KNOW_BUDGET = 0.05
#: Levels the OOD flag may use; training picks the one that lets "don't know" catch the most wrong predictions.
OOD_ALPHAS = (0.01, 0.025, 0.05)


def dont_know(pvalue: np.ndarray, alpha: float, set_size: np.ndarray, confidence: np.ndarray,
              floor: float = 0.0) -> np.ndarray:
    """The "don't know" rule: out of distribution, an empty or a large prediction set, or confidence below the floor.

    Args:
        pvalue: combined OOD p-values (0 where the input is past a quality limit).
        alpha: the OOD flag's level.
        set_size: labels in each prediction set.
        confidence: the calibrated top probability.
        floor: the confidence floor (:func:`fit_dont_know`).
    """
    size = np.asarray(set_size)
    return ((np.asarray(pvalue) < alpha) | (size == 0) | (size > MAX_USEFUL_SET_SIZE)
            | (np.asarray(confidence) < floor))


def fit_dont_know(confidence: np.ndarray, correct: np.ndarray, pvalue: np.ndarray, set_size: np.ndarray,
                  budget: float = DONT_KNOW_BUDGET, alphas: Sequence[float] = OOD_ALPHAS) -> dict[str, float]:
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

    Returns:
        ``{"alpha", "confidence_floor", "correct_flagged", "wrong_flagged"}`` (shares, out of fold).
    """
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, bool)
    rows = []
    for alpha in sorted(alphas):
        other = dont_know(pvalue, alpha, set_size, confidence)
        allowed = int(np.floor(budget * correct.sum())) - int(other[correct].sum())
        free = np.sort(confidence[correct & ~other])
        # the floor flags the correct predictions strictly below it: at most `allowed` of them
        floor = float(free[allowed]) if 0 < allowed < len(free) else 0.0
        flagged = dont_know(pvalue, alpha, set_size, confidence, floor)
        rows.append({"alpha": float(alpha), "confidence_floor": floor,
                     "correct_flagged": float(flagged[correct].mean()) if correct.any() else 0.0,
                     "wrong_flagged": float(flagged[~correct].mean()) if (~correct).any() else 0.0})
    top = max(r["wrong_flagged"] for r in rows)
    se = math.sqrt(top * (1 - top) / max(int((~correct).sum()), 1))
    return max((r for r in rows if r["wrong_flagged"] >= top - se - 1e-12), key=lambda r: r["alpha"])


def gaussian_stats(codes: np.ndarray, y: np.ndarray, n_classes: int, ridge: float = 1e-3) -> dict[str, np.ndarray]:
    """Class means with a shared precision, and one background Gaussian of all codes (relative Mahalanobis)."""
    means = np.stack([codes[y == k].mean(axis=0) if np.any(y == k) else codes.mean(axis=0) for k in range(n_classes)])

    def precision(resid: np.ndarray, dof: int) -> np.ndarray:
        cov = resid.T @ resid / max(dof, 1)
        cov += ridge * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
        return np.linalg.inv(cov)

    background = codes.mean(axis=0)
    return {
        "class_means": means.astype(np.float32),
        "precision": precision(codes - means[y], len(codes) - n_classes).astype(np.float32),
        "background_mean": background.astype(np.float32),
        "background_precision": precision(codes - background, len(codes) - 1).astype(np.float32),
    }


def mahalanobis(codes: np.ndarray, stats: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(distance to the nearest class mean, that squared distance minus the background's)``."""
    diff = codes[:, None, :] - stats["class_means"][None, :, :]
    d2 = np.sum((diff @ stats["precision"]) * diff, axis=2).min(axis=1)  # matmul: einsum's loop is ~5x slower
    b = codes - stats["background_mean"]
    d2_background = np.sum((b @ stats["background_precision"]) * b, axis=1)
    return np.sqrt(np.clip(d2, 0, None)), d2 - d2_background


#: Input-quality limits past which a spectrum is flagged (answered, but "don't know"), from the fault benchmark
#: (benchmark folds, docs/RESULTS.md): the largest energy step near the edge (e0 - 3 to e0 + 12 eV)
#: is <= 0.74 eV in every shipped FEFF spectrum and >= 1.76 eV in every spectrum thinned to 10-30 points; the noise
#: estimate (below) is <= 0.030 of the edge step in every shipped spectrum (FEFF curvature, not noise) and >= 0.073
#: at SNR 5 (99% above 0.11). Features of a Si K edge are 1-3 eV wide: a 1 eV step near the edge resolves them.
MAX_EDGE_STEP = 1.0
MAX_NOISE = 0.06


def quality_measures(energy: np.ndarray, mu: np.ndarray, e0: float, step: float,
                     window: tuple[float, float]) -> dict[str, float]:
    """What the input-quality limits check, on the raw points of one spectrum.

    Args:
        energy: energies in eV (sorted; after any calibration shift).
        mu: absorption on them.
        e0: the spectrum's e0 in eV.
        step: its edge step (absorption units).
        window: the model's energy window in eV.

    Returns:
        ``{"edge_step_ev"``: largest energy step between e0 - 3 and e0 + 12 eV (ends included), ``"noise"``: robust
        noise estimate over the window as a share of the edge step (the residual of each point from the line through
        its neighbours, median-based, so edges and peaks barely count)``}``.
    """
    e, m = np.asarray(energy, float), np.asarray(mu, float)
    lo, hi = max(e0 - 3.0, window[0]), min(e0 + 12.0, window[1])
    near = e[(e > lo) & (e < hi)]
    gap = float(np.diff(np.concatenate([[lo], near, [hi]])).max()) if hi > lo else math.inf
    inside = (e >= window[0]) & (e <= window[1])
    ew, mw = e[inside], m[inside]
    noise = math.inf
    if len(ew) >= 5 and step > 0:
        t = (ew[1:-1] - ew[:-2]) / np.clip(ew[2:] - ew[:-2], 1e-12, None)
        resid = mw[1:-1] - (mw[:-2] * (1 - t) + mw[2:] * t)
        # white noise of sigma gives residuals of sigma * sqrt(1 + t^2 + (1-t)^2) ~ 1.22 sigma; MAD -> sigma
        noise = float(1.4826 * np.median(np.abs(resid)) / np.sqrt(1.5) / step)
    return {"edge_step_ev": gap, "noise": noise}


def quality_problems(measures: dict[str, float]) -> list[str]:
    """Plain-language problems of :func:`quality_measures` output past :data:`MAX_EDGE_STEP` / :data:`MAX_NOISE`."""
    out = []
    if not measures["edge_step_ev"] <= MAX_EDGE_STEP:
        out.append(f"sparse near the edge: {measures['edge_step_ev']:.2g} eV between points (limit {MAX_EDGE_STEP} eV)")
    if not measures["noise"] <= MAX_NOISE:
        snr = 1 / max(measures["noise"], 1e-9)
        out.append(f"noisy: noise ~{measures['noise']:.2g} of the edge step (SNR ~{snr:.0f}; limit {MAX_NOISE})")
    return out


#: Input-quality gate: how far into the model window a spectrum must reach, and the fewest measured points
#: inside the window, from the quality sweep of the OOD benchmark (docs/RESULTS.md; held-out spectra cut at a
#: share of the window, or thinned). Environment model (1,013 spectra, 94.6% intact): cut at 80% of the window
#: 87.1%, at 90% 93.9%; thinned to 10 points 84.2%, to 15 points 93.1%. Chemsys model (281 spectra, 65.8%): cut
#: at 80% 64.4%, 10 points 44.1%, 15 points 64.1%.
#: The sweep cuts the high-energy end, so the gate measures the same thing: how far into the window the spectrum
#: reaches (0.85: up to 1887 eV); every shipped FEFF spectrum reaches >= 0.947. The scores cannot tell truncated
#: or thinned spectra apart (AUROC 0.45-0.65), so this gate, not the OOD flag, is the guard.
MIN_WINDOW_REACH = 0.85
MIN_POINTS_IN_WINDOW = 15


def check_quality(energy: np.ndarray, preprocessing: Preprocessing,
                  min_reach: float = MIN_WINDOW_REACH, min_points: int = MIN_POINTS_IN_WINDOW) -> None:
    """Refuse a spectrum too short or too sparse for a reliable answer.

    Args:
        energy: the spectrum's energies in eV (after any calibration shift).
        preprocessing: the model's preprocessing (its window).
        min_reach: least share of the window, counted from its low end, that the spectrum must reach.
        min_points: fewest points inside the window.

    Raises:
        SpectrumError: naming what is missing.
    """
    from pymatgen_xanes_nn.preprocessing import SpectrumError

    e = np.asarray(energy, float)
    lo, hi = preprocessing.e_min, preprocessing.e_max
    inside = int(np.sum((e >= lo) & (e <= hi)))
    reach = (min(e[-1], hi) - lo) / (hi - lo) if len(e) else 0.0
    if reach < min_reach:
        raise SpectrumError(f"Spectrum ends at {e[-1]:.1f} eV, {max(reach, 0):.0%} of the way through the model "
                            f"window [{lo}, {hi}] eV; it must reach {lo + min_reach * (hi - lo):.0f} eV for a "
                            "reliable answer (input-quality gate)")
    if inside < min_points:
        raise SpectrumError(f"Spectrum has {inside} points in the model window [{lo}, {hi}] eV; at least "
                            f"{min_points} are needed for a reliable answer (input-quality gate)")


def gated_input(energy: np.ndarray, mu: np.ndarray, preprocessing: Preprocessing, shift: float = 0.0,
                smooth: float | None = None, gate: bool = True) -> tuple[np.ndarray, dict[str, float]]:
    """The model input of one raw spectrum and its :func:`quality_measures` (the classifier and benchmarks' path).

    Args:
        energy: energies in eV (before ``shift``).
        mu: absorption on them.
        preprocessing: the model's preprocessing.
        shift: calibration shift in eV.
        smooth: Savitzky-Golay window in eV (None: none).
        gate: refuse spectra too short or too sparse (:func:`check_quality`).

    Raises:
        SpectrumError: the input checks or the gate refuse the spectrum.
    """
    energy = np.asarray(energy, float) + shift
    if gate:
        check_quality(energy, preprocessing)
    row, edge = preprocessing.transform_with_edge(energy, mu, smooth=smooth)
    return row, quality_measures(energy, mu, edge.e0, edge.step, (preprocessing.e_min, preprocessing.e_max))
