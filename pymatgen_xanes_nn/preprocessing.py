"""The one place where a K-edge spectrum becomes the model's input vector.

Like the seed paper, every spectrum is interpolated (``scipy.interpolate.interp1d``, linear) onto
one shared absolute-energy grid of 500 points. The window, point count, normalization and
alignment are explicit, versioned parameters of :class:`Preprocessing`, stored with every model.

Steps of :meth:`Preprocessing.transform`:
    1. validate (finite, strictly increasing energies, enough points, non-zero signal);
    2. apply an optional energy ``shift`` (eV) to calibrate a measured spectrum;
    3. optionally smooth (Savitzky-Golay, window in eV) on a uniform 0.05 eV resampling;
    4. find e0 as the maximum of the smoothed first derivative (:func:`find_e0`);
    5. normalize (edge step: pre-edge 0, post-edge 1; pre_edge: the same with Athena / larch's pre-edge line and
       post-edge polynomial; or max; or area; or none) - :func:`find_edge` is the one place e0 and the edge step
       are computed;
    6. optionally align e0 to a reference energy;
    7. interpolate onto the grid; outside the measured range the first/last normalized value is
       held constant (the FEFF pre-edge is ~0 and the post-edge ~flat), so no NaN ever reaches a
       model. A spectrum whose range misses the edge, or covers too little of the grid, is refused.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from monty.json import MSONable

from pymatgen_xanes_nn.edges import SI_K, get_edge
from pymatgen_xanes_nn.edges import Edge as AbsorptionEdge
from pymatgen_xanes_nn.errors import InputError, XANESError

if TYPE_CHECKING:
    from pymatgen.analysis.xas.spectrum import XAS

PREPROCESSING_VERSION = "1.0"
#: Spectrum types that contain the near-edge region.
ACCEPTED_SPECTRUM_TYPES = ("XANES", "XAFS")
NORMALIZATIONS = ("edge_step", "pre_edge", "max", "area", "none")
ALIGNMENTS = ("absolute", "e0")
#: Fewest points a spectrum may have.
MIN_POINTS = 10
#: Most points a spectrum may have (a quick-XAFS scan has a few 10^4).
MAX_POINTS = 1_000_000
#: Widest energy span (eV) accepted: Si K-edge EXAFS ends ~1 keV above the edge. It bounds the fine
#: resampling grid (span / FINE_STEP points, 1.6 MB here), so one typo cannot allocate gigabytes.
MAX_SPAN = 10_000.0
#: Uniform step (eV) of the internal resampling used for smoothing and the derivative.
FINE_STEP = 0.05


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


class SpectrumError(XANESError):
    """A spectrum that cannot be turned into a model input; the message names the problem."""


@dataclass(frozen=True)
class Preprocessing(MSONable):
    """Versioned preprocessing parameters: energy window, grid size, normalization, alignment.

    Args:
        e_min: lower end of the grid in eV.
        e_max: upper end of the grid in eV.
        n_points: number of grid points (the seed uses 500).
        normalization: ``"edge_step"`` (pre-edge mean 0, post-edge mean 1), ``"pre_edge"`` (Athena / larch:
            pre-edge line subtracted, divided by the step between it and the post-edge polynomial at e0),
            ``"max"`` (peak 1), ``"area"`` (unit mean over the grid) or ``"none"``.
        alignment: ``"absolute"`` keeps FEFF's absolute energies (the seed's choice);
            ``"e0"`` moves every spectrum so its e0 sits at ``e0_reference`` (robust to shifts,
            but discards the chemical shift).
        e0_reference: energy in eV that e0 is moved to when ``alignment="e0"``.
        e0_column: append the spectrum's own e0 minus ``e0_reference`` (eV, after any calibration shift) to the
            aligned spectrum as one last input value (needs ``alignment="e0"``): the chemical shift that alignment
            removes from the grid, kept beside it for the models and OOD scores that read it.
        min_coverage: smallest fraction of the grid the spectrum must cover.
        post_edge: (start, end) in eV above e0 of the region whose mean defines the edge step.
        version: version of the preprocessing definition.
    """

    e_min: float = SI_K.window[0]
    e_max: float = SI_K.window[1]
    n_points: int = 500
    normalization: Literal["edge_step", "pre_edge", "max", "area", "none"] = "edge_step"
    alignment: Literal["absolute", "e0"] = "absolute"
    e0_reference: float = SI_K.e0_feff
    e0_column: bool = False
    min_coverage: float = 0.5
    post_edge: tuple[float, float] = (25.0, 45.0)
    version: str = PREPROCESSING_VERSION

    def __post_init__(self):
        if self.normalization not in NORMALIZATIONS:
            raise InputError(f"Unsupported normalization {self.normalization!r}; choose one of {NORMALIZATIONS}")
        if self.alignment not in ALIGNMENTS:
            raise InputError(f"Unsupported alignment {self.alignment!r}; choose one of {ALIGNMENTS}")
        if self.e0_column and self.alignment != "e0":
            raise InputError("e0_column needs alignment='e0': an absolute grid already holds e0")
        if not self.e_max > self.e_min or self.n_points < 2:
            raise InputError(f"Invalid grid: e_min={self.e_min}, e_max={self.e_max}, n_points={self.n_points}")
        # JSON round trips turn tuples into lists
        object.__setattr__(self, "post_edge", tuple(self.post_edge))
        if not 0 <= self.post_edge[0] < self.post_edge[1]:
            raise InputError(f"Invalid post_edge {self.post_edge}: need 0 <= start < end (eV above e0)")
        if not 0 < self.min_coverage <= 1:
            raise InputError(f"Invalid min_coverage {self.min_coverage}: need a fraction in (0, 1]")

    def as_dict(self) -> dict:
        """Return a JSON-able dict."""
        return {"@module": type(self).__module__, "@class": type(self).__name__, **asdict(self)}

    @classmethod
    def for_edge(cls, edge: AbsorptionEdge | str, **overrides) -> Preprocessing:
        """The default preprocessing of an edge (its window and e0 reference); ``overrides`` set other fields."""
        edge = get_edge(edge)
        fields = {"e_min": edge.window[0], "e_max": edge.window[1], "e0_reference": edge.e0_feff}
        return cls(**{**fields, **overrides})

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        """Rebuild from :meth:`as_dict` output, reading every field as plain data.

        Unlike ``MSONable.from_dict`` nothing nested is decoded: a field that is not a number or a
        string (e.g. a ``{"@module": ...}`` dict naming a class to import) is refused.

        Raises:
            ValueError: on unknown fields or fields of the wrong type.
        """
        if not isinstance(d, dict):
            raise InputError(f"Preprocessing must be a dict, got {type(d).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(k for k in d if not k.startswith("@") and k not in fields)
        if unknown:
            raise InputError(f"Unknown preprocessing fields {unknown}")
        kwargs = {}
        for key, value in d.items():
            if key.startswith("@"):
                continue
            if key == "post_edge":
                ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(v) for v in value)
            elif key in ("normalization", "alignment", "version"):
                ok = isinstance(value, str)
            elif key == "e0_column":
                ok = isinstance(value, bool)
            elif key == "n_points":
                ok = isinstance(value, int) and not isinstance(value, bool)
            else:
                ok = _is_number(value)
            if not ok:
                raise InputError(f"Preprocessing field {key!r} has an invalid value of type {type(value).__name__}")
            kwargs[key] = tuple(value) if key == "post_edge" else value
        return cls(**kwargs)

    @property
    def fingerprint(self) -> str:
        """16 hex digits of the SHA-256 of every parameter: equal fingerprints, identical model inputs."""
        import hashlib
        import json

        fields = asdict(self)
        if not self.e0_column:  # absent before e0_column existed: older models keep their fingerprint
            del fields["e0_column"]
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def absorption_edge(self) -> AbsorptionEdge:
        """The defined edge whose e0 range this grid's window covers (the element :meth:`transform` accepts).

        Raises:
            ValueError: if the window covers no defined edge's e0 range.
        """
        from pymatgen_xanes_nn.edges import EDGES

        for edge in EDGES.values():
            if edge.e0_range[0] < self.e_max and self.e_min < edge.e0_range[1]:
                return edge
        raise InputError(f"The window [{self.e_min}, {self.e_max}] eV covers no defined edge")

    @property
    def n_inputs(self) -> int:
        """Length of a model input: the grid's points, plus one with :attr:`e0_column`."""
        return self.n_points + int(self.e0_column)

    def spectra(self, x: np.ndarray) -> np.ndarray:
        """The grid part of model-input rows (without the e0 column)."""
        return np.asarray(x)[..., : self.n_points]

    def e0_of(self, x: np.ndarray) -> np.ndarray | None:
        """The absolute e0 in eV of model-input rows, when they carry it (:attr:`e0_column`); else None."""
        return np.asarray(x)[..., self.n_points] + self.e0_reference if self.e0_column else None

    def differences(self, other: Preprocessing | dict) -> dict[str, tuple]:
        """``{field: (self's value, other's value)}`` for every parameter that differs."""
        theirs = other if isinstance(other, dict) else asdict(other)
        mine = asdict(self)
        return {k: (v, theirs.get(k)) for k, v in mine.items()
                if (list(v) if isinstance(v, tuple) else v) != (list(theirs[k]) if isinstance(theirs.get(k), tuple)
                                                                else theirs.get(k))}

    @functools.cached_property
    def grid(self) -> np.ndarray:
        """The model's energy grid in eV (read-only; computed once per instance)."""
        grid = np.linspace(self.e_min, self.e_max, self.n_points)
        grid.flags.writeable = False
        return grid

    def transform(
        self, xas: XAS | dict, shift: float = 0.0, smooth: float | None = None
    ) -> np.ndarray:
        """Turn a K-edge XAS into the model's input vector.

        Args:
            xas: a pymatgen ``XAS`` (or its dict).
            shift: energy shift in eV added to the spectrum's energies (calibration).
            smooth: Savitzky-Golay window in eV for noisy measured spectra (None: no smoothing).

        Returns:
            Array of shape ``(n_inputs,)``: the spectrum on :attr:`grid` (and its e0 with :attr:`e0_column`).
        """
        xas = check_xas(xas, self.absorption_edge)
        return self.transform_arrays(xas.x, xas.y, shift=shift, smooth=smooth)

    def transform_arrays(
        self, energy, mu, shift: float = 0.0, smooth: float | None = None
    ) -> np.ndarray:
        """Like :meth:`transform`, for raw arrays (energies in eV, absorption in any unit)."""
        return self.transform_with_edge(energy, mu, shift, smooth)[0]

    def edge(self, energy, mu, shift: float = 0.0, smooth: float | None = None) -> Edge:
        """The :class:`Edge` (e0, pre-edge line, step) this preprocessing finds in raw arrays; no window checks."""
        fine_e, fine_mu = self._fine(energy, mu, shift, smooth)
        return find_edge(fine_e, fine_mu, self.post_edge, pre_line=self.normalization == "pre_edge")

    def _fine(self, energy, mu, shift: float, smooth: float | None) -> tuple[np.ndarray, np.ndarray]:
        energy, mu = validate_arrays(energy, mu)
        fine_e, fine_mu = resample_uniform(energy + float(shift), mu)
        return fine_e, (savgol_smooth(fine_mu, smooth) if smooth else fine_mu)

    def transform_with_edge(
        self, energy, mu, shift: float = 0.0, smooth: float | None = None
    ) -> tuple[np.ndarray, Edge]:
        """The model input of raw arrays and the :class:`Edge` it was normalized with (e0 before alignment)."""
        fine_e, fine_mu = self._fine(energy, mu, shift, smooth)
        edge = find_edge(fine_e, fine_mu, self.post_edge, pre_line=self.normalization == "pre_edge")
        norm = self._normalize(fine_e, fine_mu, edge)
        # the measured e0, before any alignment: an e0-aligned model would otherwise move another element's edge
        # (Al K at 1560 eV, P K at 2146 eV) onto the Si K edge and classify it
        if not self.e_min <= edge.e0 <= self.e_max:
            raise SpectrumError(
                f"Spectrum edge e0={edge.e0:.1f} eV lies outside the model's window "
                f"[{self.e_min}, {self.e_max}] eV: wrong edge, or a calibration shift is needed"
            )
        if self.alignment == "e0":
            fine_e = fine_e - edge.e0 + self.e0_reference
        grid = self.grid
        covered = np.clip(min(fine_e[-1], self.e_max) - max(fine_e[0], self.e_min), 0, None)
        coverage = covered / (self.e_max - self.e_min)
        if coverage < self.min_coverage:
            raise SpectrumError(
                f"Spectrum range [{fine_e[0]:.1f}, {fine_e[-1]:.1f}] eV covers {coverage:.0%} of the "
                f"model's window [{self.e_min}, {self.e_max}] eV (need {self.min_coverage:.0%})"
            )
        from scipy.interpolate import interp1d

        f = interp1d(fine_e, norm, bounds_error=False, fill_value=(norm[0], norm[-1]), assume_sorted=True)
        out = f(grid)
        if not np.isfinite(out).all():  # e.g. intensities near the float limit overflow in the edge step
            raise SpectrumError(f"The normalized spectrum has {int((~np.isfinite(out)).sum())} non-finite values "
                                f"(intensities span {np.min(mu):.3g} to {np.max(mu):.3g}): not a usable spectrum")
        if self.e0_column:
            out = np.append(out, edge.e0 - self.e0_reference)
        return out, edge

    def _normalize(self, energy: np.ndarray, mu: np.ndarray, edge: Edge) -> np.ndarray:
        if self.normalization == "none":
            return mu
        if self.normalization == "max":
            peak = mu.max() - mu.min()
            if peak <= 0:
                raise SpectrumError("Spectrum is flat: cannot normalize")
            return (mu - mu.min()) / peak
        if self.normalization == "area":
            area = np.trapezoid(mu - mu.min(), energy) / (energy[-1] - energy[0])
            if area <= 0:
                raise SpectrumError("Spectrum is flat: cannot normalize")
            return (mu - mu.min()) / area
        if edge.step <= 0:
            raise SpectrumError(f"No absorption edge: the post-edge lies {edge.step:.3g} below the pre-edge at e0")
        return edge.normalize(energy, mu)


@dataclass(frozen=True)
class Edge:
    """The absorption edge of one spectrum.

    Args:
        e0: edge energy in eV (:func:`find_e0`).
        pre_offset: the pre-edge line at e0 (absorption units).
        pre_slope: its slope per eV (0 for the ``edge_step`` normalization).
        step: edge step: post-edge curve minus pre-edge line at e0.
    """

    e0: float
    pre_offset: float
    pre_slope: float
    step: float

    def pre_line(self, energy: np.ndarray) -> np.ndarray:
        """The pre-edge line at ``energy`` (eV)."""
        return self.pre_offset + self.pre_slope * (np.asarray(energy, float) - self.e0)

    def normalize(self, energy: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """``(mu - pre-edge line) / step``: 0 before the edge, ~1 after it."""
        return (np.asarray(mu, float) - self.pre_line(energy)) / self.step


#: The pre-edge region ends this far below e0 (eV), as in larch's ``pre_edge`` (pre2 = -5 eV for XANES scans).
PRE_EDGE_GAP = 5.0
#: A pre-edge line needs at least this span (eV) of pre-edge data; shorter pre-edges (FEFF's ~8 eV) use the mean.
MIN_PRE_LINE_SPAN = 10.0


def post_edge_degree(span: float) -> int:
    """Larch's rule for the post-edge polynomial degree (``nnorm``) over a post-edge region of ``span`` eV."""
    return 2 if span > 350.0 else 1 if span > 50.0 else 0


def find_edge(energy: np.ndarray, mu: np.ndarray, post_edge: tuple[float, float] = (25.0, 45.0),
              pre_line: bool = False) -> Edge:
    """e0, pre-edge and edge step of a spectrum on a uniform grid (the one place they are computed).

    Args:
        energy: uniform energies in eV (:func:`resample_uniform`).
        mu: absorption on them.
        post_edge: (start, end) in eV above e0 of the post-edge region; when the spectrum ends before it, the
            last 10% of its points stand in.
        pre_line: fit a line to the pre-edge (``e < e0 - 5 eV``) when it spans >= 10 eV and a post-edge polynomial
            of larch's degree to mu minus that line (Athena / larch ``pre_edge``); otherwise both are means
            (``edge_step``).
    """
    e0 = find_e0(energy, mu)
    pre = energy < e0 - PRE_EDGE_GAP
    slope = 0.0
    if pre_line and pre.sum() >= 3 and np.ptp(energy[pre]) >= MIN_PRE_LINE_SPAN:
        slope, offset = (float(c) for c in np.polyfit(energy[pre] - e0, mu[pre], 1))
    else:
        offset = float(np.mean(mu[pre])) if pre.sum() >= 3 else float(mu[0])
    post = (energy >= e0 + post_edge[0]) & (energy <= e0 + post_edge[1])
    if post.sum() < 3:  # short spectrum: the last 10% of its points
        post = np.zeros(len(mu), bool)
        post[-max(3, len(mu) // 10):] = True
    # the post-edge curve is fitted to mu minus the pre-edge line: over a XANES scan's short post-edge (degree 0)
    # a background slope would otherwise bias the step by slope x (distance of the post-edge from e0)
    above = mu[post] - slope * (energy[post] - e0)
    degree = post_edge_degree(float(np.ptp(energy[post]))) if pre_line else 0
    post_at_e0 = float(np.polyval(np.polyfit(energy[post] - e0, above, degree), 0.0)) if degree else float(
        np.mean(above))
    return Edge(e0=e0, pre_offset=offset, pre_slope=slope, step=post_at_e0 - offset)


def xas_from_dict(d: dict, where: str = "XAS document") -> XAS:
    """Build a pymatgen ``XAS`` from its dict, as data.

    ``XAS.from_dict`` runs monty's decoder on nested fields, which imports whatever module a
    ``{"@module": ...}`` names; only pymatgen's own structure and spectrum classes may appear.

    Raises:
        SpectrumError: if the dict names another class, nests too deep or is not a valid XAS.
    """
    from pymatgen.analysis.xas.spectrum import XAS

    from pymatgen_xanes_nn.jsonio import PYMATGEN_CLASSES, UnsafeDocumentError, check_classes

    try:
        check_classes(d, PYMATGEN_CLASSES, where=where)
    except UnsafeDocumentError as exc:
        raise SpectrumError(str(exc)) from exc
    try:
        return XAS.from_dict(d)
    except Exception as exc:  # pymatgen raises many types on malformed dicts
        raise SpectrumError(f"Invalid {where}: {type(exc).__name__}: {exc}") from exc


def check_xas(xas: XAS | dict, edge: AbsorptionEdge | str = SI_K) -> XAS:
    """Return ``xas`` as an ``XAS`` after checking element and edge (those of ``edge``) and spectrum type."""
    from pymatgen.analysis.xas.spectrum import XAS

    if isinstance(xas, dict):
        xas = xas_from_dict(xas)
    if not isinstance(xas, XAS):
        raise TypeError(f"Expected a pymatgen XAS or its dict, got {type(xas).__name__}")
    edge = get_edge(edge)
    element = getattr(xas.absorbing_element, "symbol", str(xas.absorbing_element))
    if element != edge.element:
        raise SpectrumError(f"Absorbing element is {element}; this model handles {edge.element} only")
    if str(xas.edge) != edge.edge:
        raise SpectrumError(f"Edge is {xas.edge}; this model handles the {edge.name} edge only")
    if xas.spectrum_type not in ACCEPTED_SPECTRUM_TYPES:
        raise SpectrumError(f"Spectrum type is {xas.spectrum_type}; need one of {ACCEPTED_SPECTRUM_TYPES}")
    return xas


def validate_arrays(energy, mu) -> tuple[np.ndarray, np.ndarray]:
    """Check raw spectrum arrays and return them as float arrays.

    Raises:
        SpectrumError: on empty, too short, mismatched, non-finite, unsorted or duplicated input,
            or a spectrum with no signal.
    """
    energy = np.asarray(energy, dtype=float).ravel()
    mu = np.asarray(mu, dtype=float).ravel()
    if energy.size == 0 or mu.size == 0:
        raise SpectrumError("Empty spectrum")
    if energy.size != mu.size:
        raise SpectrumError(f"Energy ({energy.size}) and intensity ({mu.size}) have different lengths")
    if energy.size < MIN_POINTS:
        raise SpectrumError(f"Spectrum has {energy.size} points; need at least {MIN_POINTS}")
    if not np.isfinite(energy).all():
        raise SpectrumError("Energies contain NaN or inf")
    if not np.isfinite(mu).all():
        raise SpectrumError("Intensities contain NaN or inf")
    diffs = np.diff(energy)
    if (diffs == 0).any():
        raise SpectrumError(f"Duplicated energies, e.g. {energy[1:][diffs == 0][0]} eV")
    if (diffs < 0).any():
        raise SpectrumError("Energies are not sorted in increasing order")
    if energy.size > MAX_POINTS:
        raise SpectrumError(f"Spectrum has {energy.size} points; at most {MAX_POINTS} are accepted")
    span = energy[-1] - energy[0]
    if span > MAX_SPAN:  # checked before resampling onto the fine grid, which would allocate span / 0.05 eV points
        raise SpectrumError(
            f"Energies span {span:.4g} eV ({energy[0]:.6g} to {energy[-1]:.6g} eV); a K-edge spectrum spans at "
            f"most {MAX_SPAN:.0f} eV: check for a typo or the energy unit"
        )
    if np.ptp(mu) == 0:
        raise SpectrumError("Spectrum is flat: no absorption signal")
    if (mu < 0).mean() > 0.05:
        warnings.warn("More than 5% of the intensities are negative; check the background", stacklevel=3)
    return energy, mu


def resample_uniform(energy: np.ndarray, mu: np.ndarray, step: float = FINE_STEP) -> tuple[np.ndarray, np.ndarray]:
    """Linearly resample a spectrum onto a uniform grid of ``step`` eV over its own range."""
    n = max(int(np.floor((energy[-1] - energy[0]) / step)) + 1, 2)
    fine = energy[0] + step * np.arange(n)
    return fine, np.interp(fine, energy, mu)


def savgol_smooth(mu: np.ndarray, window_ev: float, step: float = FINE_STEP, polyorder: int = 3) -> np.ndarray:
    """Savitzky-Golay smoothing with a window of ``window_ev`` eV on a uniform ``step`` grid."""
    from scipy.signal import savgol_filter

    if window_ev <= 0:
        raise InputError(f"Smoothing window must be positive, got {window_ev} eV")
    window = max(int(round(window_ev / step)) | 1, polyorder + 2 | 1)
    if window >= len(mu):
        raise SpectrumError(f"Smoothing window {window_ev} eV is longer than the spectrum")
    return savgol_filter(mu, window, polyorder)


#: Gaussian smoothing (sigma, eV) of the derivative whose maximum is e0, as larch smooths it before the search.
#: The raw derivative on the 0.05 eV grid let noise pick e0: on augmented copies of the environment spectra
#: (shift, broadening, SNR 20-200) e0 moved by > 2 eV in 8.7% and by up to 47 eV; with 0.5 eV, 1.5% and 4.5 eV
#: (``python benchmarks/e0_robustness.py``; clean FEFF spectra move by a median 0.15 eV).
E0_SMOOTHING = 0.5


@functools.lru_cache(maxsize=64)
def _gaussian_slope_weights(sigma: float) -> np.ndarray:
    """Correlation weights of a derivative-of-Gaussian filter (``sigma`` in grid points).

    The weights scipy's ``gaussian_filter1d(order=1)`` builds on every call, built once: find_e0 runs in every
    classify.
    """
    radius = int(4.0 * sigma + 0.5)
    t = np.arange(-radius, radius + 1, dtype=float)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    return (-t / sigma**2 * g / g.sum())[::-1].copy()


def find_e0(energy: np.ndarray, mu: np.ndarray, smoothing: float = E0_SMOOTHING) -> float | np.ndarray:
    """Edge energy in eV: the maximum of the Gaussian-smoothed first derivative (larch's ``find_e0`` smooths too).

    The one place e0 is defined: preprocessing, the builders, the OOD edge index and the quality checks call it.

    Args:
        energy: energies in eV; resampled onto a uniform grid when they are not uniform.
        mu: absorption on them, one spectrum or ``(n, len(energy))`` rows (e.g. model inputs on the model grid).
        smoothing: Gaussian sigma in eV (0: the raw derivative).

    Returns:
        e0 in eV: a float for one spectrum, an array for rows.
    """
    from scipy.ndimage import correlate1d

    energy, mu = np.asarray(energy, float), np.asarray(mu, float)
    step = (energy[-1] - energy[0]) / (len(energy) - 1)
    diffs = np.diff(energy)
    if diffs.max() - diffs.min() > 1e-3 * step:
        if mu.ndim != 1:
            raise InputError("Rows of spectra need a uniform energy grid to find e0")
        energy, mu = resample_uniform(energy, mu)
        step = FINE_STEP
    if smoothing > 0:
        # mode="nearest" holds the ends flat: a noisy end point cannot become the steepest rise
        slope = correlate1d(mu, _gaussian_slope_weights(round(smoothing / step, 6)), axis=-1, mode="nearest")
    else:
        slope = np.gradient(mu, axis=-1)
    e0 = energy[np.argmax(slope, axis=-1)]
    return float(e0) if mu.ndim == 1 else e0


#: The preprocessing new models are trained with (see docs/RESULTS.md for the choice).
DEFAULT_PREPROCESSING = Preprocessing()
