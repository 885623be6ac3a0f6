"""Experimental-like perturbations of raw spectra: energy shift, Gaussian broadening, noise.

Used for the robustness evaluation and for training-time augmentation. They act on the raw
(energy in eV, mu) arrays before preprocessing, as a measured spectrum would differ.
"""

from __future__ import annotations

import numpy as np

from pymatgen_xanes_nn.preprocessing import FINE_STEP, find_edge, resample_uniform

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def shift(energy: np.ndarray, mu: np.ndarray, delta_ev: float) -> tuple[np.ndarray, np.ndarray]:
    """Shift the energy axis by ``delta_ev`` eV."""
    return np.asarray(energy, float) + delta_ev, np.asarray(mu, float)


def broaden(energy: np.ndarray, mu: np.ndarray, fwhm_ev: float) -> tuple[np.ndarray, np.ndarray]:
    """Convolve with a Gaussian of ``fwhm_ev`` eV (instrument resolution) on a uniform grid."""
    from scipy.ndimage import gaussian_filter1d

    fine_e, fine_mu = resample_uniform(np.asarray(energy, float), np.asarray(mu, float))
    if fwhm_ev <= 0:
        return fine_e, fine_mu
    return fine_e, gaussian_filter1d(fine_mu, fwhm_ev * FWHM_TO_SIGMA / FINE_STEP, mode="nearest")


def edge_step(energy: np.ndarray, mu: np.ndarray) -> float:
    """The edge step as preprocessing measures it (:func:`~pymatgen_xanes_nn.preprocessing.find_edge`)."""
    return find_edge(*resample_uniform(np.asarray(energy, float), np.asarray(mu, float))).step


def add_noise(
    energy: np.ndarray, mu: np.ndarray, snr: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Add white Gaussian noise with standard deviation ``edge step / snr`` (the step normalization divides by)."""
    mu = np.asarray(mu, float)
    return np.asarray(energy, float), mu + rng.normal(0.0, abs(edge_step(energy, mu)) / snr, mu.shape)


def random_perturbation(
    energy: np.ndarray,
    mu: np.ndarray,
    rng: np.random.Generator,
    max_shift: float = 2.0,
    max_fwhm: float = 2.0,
    min_snr: float = 20.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One random augmentation: uniform shift, broadening and noise level within the given bounds."""
    e, m = shift(energy, mu, rng.uniform(-max_shift, max_shift))
    e, m = broaden(e, m, rng.uniform(0.0, max_fwhm))
    return add_noise(e, m, rng.uniform(min_snr, 10 * min_snr), rng)


def augment(
    raw: list[tuple[np.ndarray, np.ndarray]], labels: list[str], preprocessing, copies: int, seed: int
) -> tuple[np.ndarray, list[str]]:
    """``copies`` random experimental-like versions (shift, broadening, noise) of each raw spectrum, preprocessed.

    Returns:
        ``(x, labels)``; copies that fail preprocessing (e.g. shifted off the window) are dropped.
    """
    from pymatgen_xanes_nn.preprocessing import SpectrumError

    rng = np.random.default_rng(seed)
    rows, out_labels = [], []
    for (e, mu), lab in zip(raw, labels):
        for _ in range(copies):
            try:
                rows.append(preprocessing.transform_arrays(*random_perturbation(e, mu, rng)))
                out_labels.append(lab)
            except SpectrumError:
                continue
    return np.asarray(rows, np.float32).reshape(-1, preprocessing.n_points), out_labels
