from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymatgen.analysis.xas.spectrum import XAS

from pymatgen_xanes_nn.preprocessing import (
    DEFAULT_PREPROCESSING,
    Preprocessing,
    SpectrumError,
    find_e0,
    validate_arrays,
)

from .conftest import synthetic_edge


def test_grid_is_the_seed_grid():
    grid = DEFAULT_PREPROCESSING.grid
    assert grid.shape == (500,)
    assert np.all(np.diff(grid) > 0)
    assert grid[0] == DEFAULT_PREPROCESSING.e_min and grid[-1] == DEFAULT_PREPROCESSING.e_max


def test_feff_spectrum_transform(diamond_xas):
    vec = DEFAULT_PREPROCESSING.transform(diamond_xas)
    assert vec.shape == (500,)
    assert np.isfinite(vec).all()
    # edge-step normalization: pre-edge ~0, post-edge region ~1
    grid = DEFAULT_PREPROCESSING.grid
    e0 = find_e0(np.asarray(diamond_xas.x), np.asarray(diamond_xas.y))
    assert abs(np.mean(vec[grid < e0 - 1.5])) < 0.2
    post = (grid > e0 + 25) & (grid < e0 + 45)
    assert np.mean(vec[post]) == pytest.approx(1.0, abs=0.05)


def test_e0_is_max_derivative():
    e, mu = synthetic_edge(e0=1846.0)
    e0 = find_e0(e, mu)
    assert abs(e0 - 1846.5) < 1.5  # arctan edge plus the rising white line


def test_e0_does_not_follow_noise():
    # noise on the fine 0.05 eV grid, as augmentation and a finely sampled measurement add it: the raw derivative's
    # maximum then lands anywhere (it did, by up to 47 eV on augmented dataset spectra); the smoothed one stays put
    from pymatgen_xanes_nn.preprocessing import resample_uniform

    e, mu = resample_uniform(*synthetic_edge(e0=1846.0))
    clean = find_e0(e, mu)
    rng = np.random.default_rng(0)
    noisy = [mu + rng.normal(0.0, 1.0 / 30, mu.shape) for _ in range(40)]
    errors = np.abs([find_e0(e, m) - clean for m in noisy])
    assert errors.max() < 0.5
    assert np.abs([find_e0(e, m, smoothing=0.0) - find_e0(e, mu, smoothing=0.0) for m in noisy]).max() > 2.0


def test_e0_slope_filter_is_scipys_gaussian_derivative():
    from scipy.ndimage import correlate1d, gaussian_filter1d

    from pymatgen_xanes_nn.preprocessing import _gaussian_slope_weights

    rows = np.cumsum(np.random.default_rng(0).normal(size=(3, 400)), axis=1)
    for sigma in (2.0, 4.16, 10.0):
        np.testing.assert_allclose(correlate1d(rows, _gaussian_slope_weights(sigma), axis=-1, mode="nearest"),
                                   gaussian_filter1d(rows, sigma, axis=-1, order=1, mode="nearest"), atol=1e-12)


def test_e0_of_rows_matches_e0_of_each_spectrum():
    from pymatgen_xanes_nn.preprocessing import resample_uniform

    e, mu = resample_uniform(*synthetic_edge(e0=1846.0))
    rows = np.stack([mu, np.interp(e - 3.0, e, mu)])
    np.testing.assert_allclose(find_e0(e, rows), [find_e0(e, rows[0]), find_e0(e, rows[1])])
    assert find_e0(e, rows)[1] - find_e0(e, rows)[0] == pytest.approx(3.0, abs=0.06)
    with pytest.raises(ValueError, match="uniform"):
        find_e0(np.r_[e[:5], e[6:]], rows[:, 1:])


@pytest.mark.parametrize("normalization", ["edge_step", "max", "area", "none"])
def test_normalizations(normalization):
    e, mu = synthetic_edge()
    vec = Preprocessing(normalization=normalization).transform_arrays(e, 3.0 * mu + 2.0)
    assert np.isfinite(vec).all()
    if normalization == "max":
        assert vec.max() == pytest.approx(1.0, abs=1e-3)  # the peak falls between grid points
        assert vec.min() >= -1e-9
    if normalization == "none":
        assert vec.max() > 3.0


def test_shift_moves_absolute_but_not_e0_aligned():
    e, mu = synthetic_edge()
    absolute = Preprocessing()
    aligned = Preprocessing(alignment="e0")
    assert np.abs(absolute.transform_arrays(e, mu) - absolute.transform_arrays(e, mu, shift=2.0)).max() > 0.3
    np.testing.assert_allclose(aligned.transform_arrays(e, mu), aligned.transform_arrays(e, mu, shift=2.0), atol=0.05)


@pytest.mark.parametrize("alignment", ["absolute", "e0"])
def test_another_edge_is_refused_whatever_the_alignment(alignment):
    """An Al K edge (1560 eV) is refused by its measured e0: e0 alignment must not move it onto the Si K edge."""
    e, mu = synthetic_edge(e0=1560.0, lo=1540.0, hi=1620.0)
    with pytest.raises(SpectrumError, match="e0=1560.* outside the model's window"):
        Preprocessing(alignment=alignment).transform_arrays(e, mu)


def test_shift_calibrates():
    e, mu = synthetic_edge(e0=1846.0)
    pre = Preprocessing()
    np.testing.assert_allclose(pre.transform_arrays(e - 3.0, mu, shift=3.0), pre.transform_arrays(e, mu), atol=1e-9)


def test_smoothing_reduces_noise():
    e, mu = synthetic_edge(n=1200)
    rng = np.random.default_rng(0)
    noisy = mu + rng.normal(0, 0.05, mu.size)
    pre = Preprocessing()
    clean = pre.transform_arrays(e, mu)
    err_raw = np.abs(pre.transform_arrays(e, noisy) - clean).mean()
    err_smooth = np.abs(pre.transform_arrays(e, noisy, smooth=1.5) - clean).mean()
    assert err_smooth < 0.6 * err_raw


def test_uncovered_range_is_filled_not_nan():
    e, mu = synthetic_edge(lo=1840.0, hi=1880.0)  # covers 2/3 of the window
    vec = DEFAULT_PREPROCESSING.transform_arrays(e, mu)
    assert np.isfinite(vec).all()
    grid = DEFAULT_PREPROCESSING.grid
    assert np.allclose(vec[grid > 1881], vec[-1])


@pytest.mark.parametrize(
    ("energy", "mu", "match"),
    [
        ([], [], "Empty"),
        (np.arange(5.0) + 1840, np.arange(5.0), "5 points"),
        (np.r_[np.linspace(1830, 1890, 49), np.nan], np.ones(50), "NaN"),
        (np.linspace(1830, 1890, 50), np.r_[np.ones(49), np.inf], "NaN or inf"),
        (np.linspace(1890, 1830, 50), np.linspace(0, 1, 50), "not sorted"),
        (np.r_[1830.0, 1830.0, np.linspace(1831, 1890, 48)], np.linspace(0, 1, 50), "Duplicated"),
        (np.linspace(1830, 1890, 50), np.ones(50), "flat"),
        (np.linspace(1830, 1890, 50), np.ones(49), "different lengths"),
    ],
)
def test_bad_arrays(energy, mu, match):
    with pytest.raises(SpectrumError, match=match):
        DEFAULT_PREPROCESSING.transform_arrays(energy, mu)


def test_range_missing_edge():
    e, mu = synthetic_edge(e0=1560.0, lo=1550.0, hi=1610.0)  # an Al K edge
    with pytest.raises(SpectrumError, match="outside the model's window"):
        DEFAULT_PREPROCESSING.transform_arrays(e, mu)


def test_too_little_coverage():
    e, mu = synthetic_edge(e0=1846.0, lo=1840.0, hi=1855.0)
    with pytest.raises(SpectrumError, match="covers"):
        DEFAULT_PREPROCESSING.transform_arrays(e, mu)


def test_no_edge_step():
    e = np.linspace(1830, 1890, 200)
    mu = np.exp(-((e - 1846) ** 2) / 2)  # a peak that returns to zero: no step
    with pytest.raises(SpectrumError, match="No absorption edge"):
        DEFAULT_PREPROCESSING.transform_arrays(e, mu)


def test_wrong_element_and_edge():
    e, mu = synthetic_edge()
    with pytest.raises(SpectrumError, match="Absorbing element is Fe"):
        DEFAULT_PREPROCESSING.transform(XAS(e, mu, None, "Fe"))
    with pytest.raises(SpectrumError, match="Edge is L3"):
        DEFAULT_PREPROCESSING.transform(XAS(e, mu, None, "Si", edge="L3"))
    with pytest.raises(SpectrumError, match="Spectrum type is EXAFS"):
        DEFAULT_PREPROCESSING.transform(XAS(e, mu, None, "Si", spectrum_type="EXAFS"))


def test_accepts_dict(diamond_xas):
    np.testing.assert_allclose(
        DEFAULT_PREPROCESSING.transform(diamond_xas.as_dict()), DEFAULT_PREPROCESSING.transform(diamond_xas)
    )


def test_negative_intensities_warn():
    e, mu = synthetic_edge()
    with pytest.warns(UserWarning, match="negative"):
        validate_arrays(e, mu - 0.3)


def test_invalid_parameters():
    with pytest.raises(ValueError, match="Unsupported normalization"):
        Preprocessing(normalization="zscore")
    with pytest.raises(ValueError, match="Unsupported alignment"):
        Preprocessing(alignment="peak")
    with pytest.raises(ValueError, match="Invalid grid"):
        Preprocessing(e_min=1900.0, e_max=1800.0)


def test_roundtrip():
    pre = Preprocessing(normalization="max", alignment="e0", n_points=300)
    assert Preprocessing.from_dict(pre.as_dict()) == pre


@settings(max_examples=150, deadline=None)
@given(
    e0=st.floats(1838.0, 1855.0),
    width=st.floats(0.2, 5.0),
    scale=st.floats(1e-3, 1e4),
    offset=st.floats(-10, 10),
    n=st.integers(10, 800),
    noise=st.floats(0, 0.2),
    shift=st.floats(-3, 3),
    lo=st.floats(1825.0, 1837.0),
    hi=st.floats(1870.0, 1920.0),
    seed=st.integers(0, 2**16),
)
def test_fuzz_never_nan(e0, width, scale, offset, n, noise, shift, lo, hi, seed):
    """Any plausible spectrum gives a finite 500-vector or a SpectrumError, never NaN."""
    rng = np.random.default_rng(seed)
    e = np.linspace(lo, hi, n)
    mu = scale * (0.5 + np.arctan((e - e0) / width) / np.pi + noise * rng.normal(size=n)) + offset
    for pre in (DEFAULT_PREPROCESSING, Preprocessing(alignment="e0"), Preprocessing(normalization="max")):
        try:
            vec = pre.transform_arrays(e, mu, shift=shift)
        except SpectrumError:
            continue
        assert vec.shape == (pre.n_points,)
        assert np.isfinite(vec).all()


def test_pre_edge_normalization_removes_a_sloped_background():
    """Athena / larch convention: a pre-edge line under a long pre-edge, where the edge-step mean is biased."""
    from pymatgen_xanes_nn.preprocessing import Preprocessing, find_edge, resample_uniform

    e, clean = synthetic_edge(lo=1790.0, hi=1895.0, n=600)
    measured = 0.3 * clean + 2.0 - 0.004 * (e - 1846.0)  # transmission background falling with energy
    athena = Preprocessing(normalization="pre_edge")
    want = DEFAULT_PREPROCESSING.transform_arrays(e, clean)
    athena_error = np.abs(athena.transform_arrays(e, measured) - want).max()
    assert athena_error < 0.07  # what is left is the arctan's own tail, which the line partly follows
    assert np.abs(DEFAULT_PREPROCESSING.transform_arrays(e, measured) - want).max() > 4 * athena_error
    edge = find_edge(*resample_uniform(e, measured), pre_line=True)
    clean_step = find_edge(*resample_uniform(e, clean)).step
    assert edge.pre_slope == pytest.approx(-0.004, rel=0.1) and edge.step == pytest.approx(0.3 * clean_step, rel=0.06)
    # FEFF's short pre-edge (~8 eV before e0 - 5 eV) gets no line: both agree on the shipped kind of spectrum
    e, mu = synthetic_edge(lo=1838.0)
    np.testing.assert_allclose(athena.transform_arrays(e, mu), DEFAULT_PREPROCESSING.transform_arrays(e, mu))


def test_noise_is_relative_to_the_normalized_step():
    from pymatgen_xanes_nn.preprocessing import find_edge, resample_uniform
    from pymatgen_xanes_nn.training.perturb import add_noise, edge_step

    e, mu = synthetic_edge(n=4000)
    mu = 5.0 * mu + 3.0
    assert edge_step(e, mu) == pytest.approx(find_edge(*resample_uniform(e, mu)).step)
    _, noisy = add_noise(e, mu, 20.0, np.random.default_rng(0))
    assert np.std(noisy - mu) == pytest.approx(edge_step(e, mu) / 20.0, rel=0.05)


def test_transform_reports_the_edge_it_used(diamond_xas):
    vec, edge = DEFAULT_PREPROCESSING.transform_with_edge(diamond_xas.x, diamond_xas.y, shift=1.5)
    np.testing.assert_array_equal(vec, DEFAULT_PREPROCESSING.transform_arrays(diamond_xas.x, diamond_xas.y, 1.5))
    assert edge.e0 == DEFAULT_PREPROCESSING.edge(diamond_xas.x, diamond_xas.y, shift=1.5).e0
    assert edge.e0 - DEFAULT_PREPROCESSING.edge(diamond_xas.x, diamond_xas.y).e0 == pytest.approx(1.5, abs=0.06)


def test_white_line_scaling_changes_the_white_line_only():
    from pymatgen_xanes_nn.preprocessing import find_edge, resample_uniform
    from pymatgen_xanes_nn.training.perturb import scale_white_line

    e, mu = synthetic_edge(n=3000, lo=1830.0, hi=1895.0)
    mu = 2.0 * mu + 0.5
    fine_e, fine_mu = resample_uniform(e, mu)
    same_e, same = scale_white_line(e, mu, 1.0)
    np.testing.assert_array_equal(same_e, fine_e)
    np.testing.assert_allclose(same, fine_mu, atol=1e-12)
    edge = find_edge(fine_e, fine_mu)
    for factor in (0.6, 1.5):
        _, scaled = scale_white_line(e, mu, factor)
        excess, new_excess = edge.normalize(fine_e, fine_mu) - 1, edge.normalize(fine_e, scaled) - 1
        near = (fine_e > edge.e0 + 1) & (fine_e < edge.e0 + 10) & (excess > 0.05)
        np.testing.assert_allclose(new_excess[near], factor * excess[near], rtol=1e-9)
        far = (fine_e < edge.e0) | (fine_e > edge.e0 + 20)
        np.testing.assert_allclose(scaled[far], fine_mu[far], atol=1e-12)  # pre-edge, rise and post-edge kept
        assert find_edge(fine_e, scaled).step == pytest.approx(edge.step, rel=0.02)


def test_experiment_like_perturbations_do_what_they_say():
    """Self-absorption damps the white line and keeps the step; sharpening raises it; curvature is zero at e0."""
    from pymatgen_xanes_nn.preprocessing import find_edge, resample_uniform
    from pymatgen_xanes_nn.training.perturb import add_curvature, self_absorb, sharpen

    e, mu = synthetic_edge(n=3000, lo=1830.0, hi=1895.0)
    fine_e, fine_mu = resample_uniform(e, mu)
    edge = find_edge(fine_e, fine_mu)
    peak = edge.normalize(fine_e, fine_mu).max()
    _, none = self_absorb(e, mu, 0.0)
    np.testing.assert_allclose(none, fine_mu, atol=1e-12)
    _, damped = self_absorb(e, mu, 1.0)
    new = edge.normalize(fine_e, damped)
    assert new.max() == pytest.approx(peak * 2 / (1 + peak), rel=1e-6) and new.max() < peak
    assert find_edge(fine_e, damped).step == pytest.approx(edge.step, rel=0.05)
    _, sharp = sharpen(e, mu, 1.0)
    assert edge.normalize(fine_e, sharp).max() > peak + 0.02
    e2, curved = add_curvature(e, mu, 0.1)
    at_e0 = np.argmin(np.abs(e2 - edge.e0))
    assert curved[at_e0] - mu[at_e0] == pytest.approx(0.0, abs=1e-3 * edge.step)
    assert curved[-1] - mu[-1] == pytest.approx(0.1 * edge.step * ((e[-1] - edge.e0) / 50) ** 2, rel=1e-3)


def test_augmentation_without_white_line_draws_as_before():
    from pymatgen_xanes_nn.training.perturb import augment

    raw = [synthetic_edge(e0=1846.0 + k) for k in range(3)]
    plain, _ = augment(raw, ["a", "b", "c"], DEFAULT_PREPROCESSING, 2, seed=5)
    np.testing.assert_array_equal(augment(raw, ["a", "b", "c"], DEFAULT_PREPROCESSING, 2, seed=5, white_line=0.0)[0],
                                  plain)
    scaled, _ = augment(raw, ["a", "b", "c"], DEFAULT_PREPROCESSING, 2, seed=5, white_line=0.5)
    assert np.abs(scaled - plain).max() > 0.05
    np.testing.assert_array_equal(augment(raw, ["a", "b", "c"], DEFAULT_PREPROCESSING, 2, seed=5,
                                          max_self_absorption=0.0)[0], plain)
    absorbed, _ = augment(raw, ["a", "b", "c"], DEFAULT_PREPROCESSING, 2, seed=5, max_self_absorption=0.5)
    assert absorbed.max() < plain.max()  # the white lines are damped
