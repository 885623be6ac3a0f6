"""Input quality: limits past which a spectrum is answered with "don't know" or refused, whatever the scores."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pymatgen_xanes_nn.preprocessing import Preprocessing


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


def check_near_window(energy: np.ndarray, preprocessing: Preprocessing) -> None:
    """Refuse a spectrum that lies nowhere near the model's window, naming the edge it looks like.

    Checked on the measured energies, before any alignment would move another element's edge onto ours.

    Raises:
        SpectrumError: e.g. "... it looks like an Al K edge (wrong edge, or a calibration shift is needed ...)".
    """
    from pymatgen_xanes_nn.preprocessing import SpectrumError

    e = np.asarray(energy, float)
    lo, hi = preprocessing.e_min, preprocessing.e_max
    if len(e) and (e[-1] < lo or e[0] > hi):  # nowhere near the window: another edge, or a calibration slip
        from pymatgen_xanes_nn.edges import edges_in

        names = edges_in(e[0], e[-1])
        raise SpectrumError(f"Spectrum runs from {e[0]:.1f} to {e[-1]:.1f} eV, outside the model window [{lo}, {hi}] "
                            "eV" + (f": it looks like an {names[0]} edge" if names else "") + " (wrong edge, or a "
                            "calibration shift is needed; xanes-nn show FILE says where its edge sits)")


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
    check_near_window(e, preprocessing)
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
    if gate and preprocessing.alignment != "e0":
        check_quality(energy, preprocessing)
    elif gate:
        check_near_window(energy, preprocessing)
    row, edge = preprocessing.transform_with_edge(energy, mu, smooth=smooth)
    if gate and preprocessing.alignment == "e0":  # the grid holds the aligned spectrum: its reach is what counts
        check_quality(energy - edge.e0 + preprocessing.e0_reference, preprocessing)
    return row, quality_measures(energy, mu, edge.e0, edge.step, (preprocessing.e_min, preprocessing.e_max))
