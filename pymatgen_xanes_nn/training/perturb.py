"""Experimental-like perturbations of raw spectra: shift, broadening, sharpening, white line, backgrounds, noise.

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


#: Where the white-line scaling acts, in eV above e0: fully from e0 to the first, fading out by the second (the Si K
#: white line sits 1-5 eV above e0; the shape resonances beyond ~15 eV are left alone).
WHITE_LINE_REGION = (10.0, 20.0)


def scale_white_line(energy: np.ndarray, mu: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Scale the absorption above the edge step near the edge (the white line) by ``factor``.

    Measured Si K white lines are sharper and higher, or lower with self-absorption, than FEFF's; core-hole
    screening changes them too (RPA raises, no core hole lowers the quartz white line by ~45%). The normalized
    excess over the step, ``max(norm - 1, 0)``, is multiplied by ``factor`` from e0 to 10 eV above it, tapering
    (cosine) to no change at 20 eV. Returned on the uniform 0.05 eV grid, in the input's absorption units.
    """
    fine_e, fine_mu = resample_uniform(np.asarray(energy, float), np.asarray(mu, float))
    edge = find_edge(fine_e, fine_mu)
    norm = edge.normalize(fine_e, fine_mu)
    d = fine_e - edge.e0
    full, end = WHITE_LINE_REGION
    taper = 0.5 * (1 + np.cos(np.pi * np.clip((d - full) / (end - full), 0, 1)))  # 1 up to `full`, 0 from `end`
    weight = np.where(d < 0, 0.0, taper)
    norm = norm + (factor - 1.0) * weight * np.clip(norm - 1.0, 0.0, None)
    return fine_e, edge.pre_line(fine_e) + edge.step * norm


def add_slope(energy: np.ndarray, mu: np.ndarray, slope: float) -> tuple[np.ndarray, np.ndarray]:
    """Add a linear background of ``slope`` edge steps per eV, zero at e0 (a beamline's sloped background)."""
    e, m = np.asarray(energy, float), np.asarray(mu, float)
    edge = find_edge(*resample_uniform(e, m))
    return e, m + slope * edge.step * (e - edge.e0)


def add_curvature(energy: np.ndarray, mu: np.ndarray, curvature: float) -> tuple[np.ndarray, np.ndarray]:
    """Add a quadratic background of ``curvature`` edge steps at 50 eV from e0, zero at e0.

    A curved background: the tail of a lower edge, or a detector's energy response.
    """
    e, m = np.asarray(energy, float), np.asarray(mu, float)
    edge = find_edge(*resample_uniform(e, m))
    return e, m + curvature * edge.step * ((e - edge.e0) / 50.0) ** 2


def sharpen(energy: np.ndarray, mu: np.ndarray, fwhm_ev: float, amount: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Narrower features than FEFF's: an unsharp mask ``mu + amount * (mu - G_fwhm * mu)`` (0.05 eV grid).

    A measured white line can be sharper than FEFF's (less broadening than its core-hole lifetime and self-energy).
    """
    fine_e, fine_mu = resample_uniform(np.asarray(energy, float), np.asarray(mu, float))
    _, smooth = broaden(fine_e, fine_mu, fwhm_ev)
    return fine_e, fine_mu + amount * (fine_mu - smooth)


def self_absorb(energy: np.ndarray, mu: np.ndarray, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """Fluorescence self-absorption of a concentrated sample: the normalized ``n`` becomes ``n (1 + s) / (1 + s n)``.

    Step and pre-edge are kept, the white line and other peaks damped (``s`` = 0: none; ``s`` = 1: a white line of
    1.5 steps falls to 1.2).
    """
    fine_e, fine_mu = resample_uniform(np.asarray(energy, float), np.asarray(mu, float))
    edge = find_edge(fine_e, fine_mu)
    norm = edge.normalize(fine_e, fine_mu)
    damped = norm * (1 + strength) / (1 + strength * np.clip(norm, 0.0, None))
    return fine_e, edge.pre_line(fine_e) + edge.step * damped


def random_perturbation(
    energy: np.ndarray,
    mu: np.ndarray,
    rng: np.random.Generator,
    max_shift: float = 2.0,
    max_fwhm: float = 2.0,
    min_snr: float = 20.0,
    white_line: float = 0.0,
    max_slope: float = 0.0,
    max_self_absorption: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One random augmentation: uniform shift, broadening, background slope and noise level within the bounds.

    With ``white_line`` > 0 the white line is first scaled by a factor drawn log-uniformly from
    ``[1 / (1 + white_line), 1 + white_line]`` (:func:`scale_white_line`); with ``max_self_absorption`` > 0 the
    spectrum is then self-absorbed with a strength uniform in ``[0, max_self_absorption]`` (:func:`self_absorb`).
    Options at 0 draw no random number, so recipes without them augment exactly as before.
    """
    e, m = np.asarray(energy, float), np.asarray(mu, float)
    if white_line > 0:
        e, m = scale_white_line(e, m, float(np.exp(rng.uniform(-1, 1) * np.log1p(white_line))))
    if max_self_absorption > 0:
        e, m = self_absorb(e, m, rng.uniform(0.0, max_self_absorption))
    e, m = shift(e, m, rng.uniform(-max_shift, max_shift))
    e, m = broaden(e, m, rng.uniform(0.0, max_fwhm))
    if max_slope > 0:
        e, m = add_slope(e, m, rng.uniform(-max_slope, max_slope))
    return add_noise(e, m, rng.uniform(min_snr, 10 * min_snr), rng)


def augment(
    raw: list[tuple[np.ndarray, np.ndarray]], labels: list[str], preprocessing, copies: int, seed: int,
    **bounds: float,
) -> tuple[np.ndarray, list[str]]:
    """``copies`` random experimental-like versions (shift, broadening, noise) of each raw spectrum, preprocessed.

    Args:
        raw: ``(energy in eV, mu)`` arrays.
        labels: the label of each.
        preprocessing: the :class:`~pymatgen_xanes_nn.preprocessing.Preprocessing` of the model inputs.
        copies: perturbed copies per spectrum.
        seed: random seed.
        bounds: :func:`random_perturbation`'s bounds (``max_shift``, ``max_fwhm``, ``min_snr``, ``white_line``,
            ``max_slope``).

    Returns:
        ``(x, labels)``; copies that fail preprocessing (e.g. shifted off the window) are dropped.
    """
    from pymatgen_xanes_nn.preprocessing import SpectrumError

    rng = np.random.default_rng(seed)
    rows, out_labels = [], []
    for (e, mu), lab in zip(raw, labels):
        for _ in range(copies):
            try:
                rows.append(preprocessing.transform_arrays(*random_perturbation(e, mu, rng, **bounds)))
                out_labels.append(lab)
            except SpectrumError:
                continue
    return np.asarray(rows, np.float32).reshape(-1, preprocessing.n_inputs), out_labels
