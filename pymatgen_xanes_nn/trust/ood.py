"""Out-of-distribution scores and their conformal p-values.

Plain NumPy on model inputs and outputs, so the classifier's forward pass stays fast; the statistics are fitted
out of fold during training (:mod:`pymatgen_xanes_nn.training.fit`) and stored in the model file.

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

from typing import TYPE_CHECKING, Any

import numpy as np

from pymatgen_xanes_nn.preprocessing import find_e0

if TYPE_CHECKING:
    from collections.abc import Sequence


OOD_SCORES = ("reconstruction", "mahalanobis", "relative_mahalanobis", "knn", "edge_offset", "max_softmax", "energy")
#: The scores the shipped models combine, chosen on the environment benchmark and checked on the chemsys one
#: (docs/RESULTS.md). Round 2: of 41 combinations of the network scores, the k-NN distance alone ranked first (mean
#: AUROC 0.848). Adding ``edge_offset`` (Bonferroni, environment scheme, same folds): other K edges 0.84 -> 0.96,
#: shifts of 3-5 eV 0.92 -> 0.97, at a cost on self-absorption (0.81 -> 0.74) and left-out environments
#: (0.78 -> 0.70); the mean over the sets rose, and rose again on the chemsys scheme (other K edges 0.96 -> 0.99).
DEFAULT_OOD_SCORES = ("knn", "edge_offset")
#: The scores computed by the trained networks (the rest depend on the training spectra only).
NETWORK_SCORES = ("reconstruction", "mahalanobis", "relative_mahalanobis", "max_softmax", "energy")
#: The network scores an ensemble's members give (they carry no decoder: no reconstruction).
ENSEMBLE_SCORES = ("mahalanobis", "relative_mahalanobis", "max_softmax", "energy")
#: The latent Gaussians of :func:`gaussian_stats`.
GAUSSIAN_ARRAYS = ("class_means", "precision", "background_mean", "background_precision")


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
        aligned: the model's inputs are e0-aligned already (their absolute e0 comes separately, from the
            preprocessing's e0 column); otherwise rows are aligned here and e0 is found on the grid.
    """

    def __init__(self, index: KNNIndex, e0: np.ndarray, grid: np.ndarray, aligned: bool = False):
        self.index = index
        self.e0 = np.asarray(e0, np.float32)
        self.grid = np.asarray(grid, float)
        self.e_ref = float(self.grid.mean())
        self.aligned = aligned

    @classmethod
    def fit(cls, x: np.ndarray, grid: np.ndarray, n_components: int = 64, e0: np.ndarray | None = None) -> EdgeIndex:
        """Index the rows of ``x`` (spectra on ``grid``); ``e0``: their absolute e0 when the rows are aligned."""
        if e0 is not None:
            return cls(KNNIndex.fit(np.asarray(x, np.float32), n_components), e0, grid, aligned=True)
        e0 = find_e0(grid, x)
        return cls(KNNIndex.fit(align_rows(x, grid, e0, float(np.mean(grid))), n_components), e0, grid)

    def offset(self, x: np.ndarray, e0: np.ndarray | None = None, k: int = EDGE_NEIGHBOURS) -> np.ndarray:
        """``|e0 - median e0 of the k nearest aligned references|`` in eV for each row of ``x``.

        ``e0``: the rows' absolute e0 (needed, and only used, when the index holds aligned rows).
        """
        if self.aligned:
            if e0 is None:
                raise ValueError("This edge index holds e0-aligned spectra: give the rows' absolute e0")
            sim = self.index.similarity(np.asarray(x, np.float32))
        else:
            e0 = find_e0(self.grid, x)
            sim = self.index.similarity(align_rows(x, self.grid, e0, self.e_ref))
        k = min(k, sim.shape[1])
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        neighbours = np.sort(self.e0[top], axis=1)  # the median by hand: np.median's overhead is ~30 us a call
        median = 0.5 * (neighbours[:, (k - 1) // 2] + neighbours[:, k // 2])
        return np.abs(e0 - median)


def input_indexes(x: np.ndarray, preprocessing, n_components: int = 64) -> dict[str, np.ndarray]:
    """The network-free OOD arrays of a model (k-NN and edge indexes of its training inputs ``x``), as stored.

    An e0-aligned preprocessing without an e0 column has no absolute edge position to index: no edge index.
    """
    spectra, e0 = preprocessing.spectra(x), preprocessing.e0_of(x)
    knn = KNNIndex.fit(spectra, n_components)
    out = {"knn_basis": knn.basis, "knn_reference": knn.reference}
    if preprocessing.alignment == "e0" and e0 is None:
        return out
    edge = EdgeIndex.fit(spectra, preprocessing.grid, n_components, e0=e0)
    return {**out, "edge_basis": edge.index.basis, "edge_reference": edge.index.reference, "edge_e0": edge.e0}


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
    """Bonferroni combination of the p-values of the scores present in ``calibrations``."""
    return bonferroni([pvalues(calibrations[k], scores[k]) for k in calibrations])


def bonferroni(ps: Sequence[np.ndarray]) -> np.ndarray:
    """``min(1, J * min_j p_j)`` over ``J`` p-values per row."""
    return np.minimum(1.0, len(ps) * np.min(ps, axis=0))


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


def network_scores(codes: np.ndarray, logits: np.ndarray, stats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The network scores read from the codes and logits (:data:`ENSEMBLE_SCORES`), raw (unstandardized).

    ``max_softmax`` uses the network's own probabilities (temperature 1).
    """
    from pymatgen_xanes_nn.models import logsumexp, softmax

    maha, rel = mahalanobis(codes, stats)
    return {"mahalanobis": maha, "relative_mahalanobis": rel,
            "max_softmax": 1.0 - softmax(logits, axis=1).max(axis=1), "energy": -logsumexp(logits, axis=1)}


def mahalanobis(codes: np.ndarray, stats: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(distance to the nearest class mean, that squared distance minus the background's)``."""
    diff = codes[:, None, :] - stats["class_means"][None, :, :]
    d2 = np.sum((diff @ stats["precision"]) * diff, axis=2).min(axis=1)  # matmul: einsum's loop is ~5x slower
    b = codes - stats["background_mean"]
    d2_background = np.sum((b @ stats["background_precision"]) * b, axis=1)
    return np.sqrt(np.clip(d2, 0, None)), d2 - d2_background
