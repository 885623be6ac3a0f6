"""The FEFF settings study: cheaper presets against pymatgen's ``MPXANESSet`` defaults.

For each test structure (one symmetry-unique Si site) every preset is run, and its spectrum is
compared with the ``mp_default`` one on their common energy range: cosine similarity, RMS and
the largest point difference relative to the reference peak height, with the CPU seconds.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np

#: Formula -> (mineral name or None, Si environment of the first unique site or None).
STUDY_FORMULAS = {
    "SiO2": ("Quartz", "SiO4"),
    "Si": (None, "SiSi4"),
    "SiC": (None, "SiC4"),
    "Mg2SiO4": ("Forsterite", "SiO4"),
    "Si3N4": (None, "SiN4"),
    "Mg2Si": (None, None),
}


def _metrics(ref: np.ndarray, other: np.ndarray, shift: float = 0.0) -> dict[str, float]:
    lo, hi = max(ref[0, 0], other[0, 0] + shift), min(ref[-1, 0], other[-1, 0] + shift)
    mask = (ref[:, 0] >= lo) & (ref[:, 0] <= hi)
    a = ref[mask, 3]
    b = np.interp(ref[mask, 0], other[:, 0] + shift, other[:, 3])
    return {
        "cosine": float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))),
        "rms": float(np.sqrt(np.mean((a - b) ** 2))),
        "max_diff_over_peak": float(np.max(np.abs(a - b)) / np.max(a)),
    }


def compare_spectra(ref: list[list[float]], other: list[list[float]], max_shift: float = 3.0) -> dict[str, float]:
    """Compare two xmu.dat row lists (energy col 0, mu col 3) on the reference's energies.

    Returns:
        ``cosine``, ``rms`` and ``max_diff_over_peak`` (largest |difference| / reference peak) as
        computed, plus ``best_shift_ev`` (rigid shift in eV, 0.1 eV steps within +-``max_shift``,
        that maximizes the cosine: FEFF's edge position moves with the SCF settings) and the
        three metrics after that shift (``*_aligned``).
    """
    ref_a, oth_a = np.asarray(ref, float), np.asarray(other, float)
    out = _metrics(ref_a, oth_a)
    shifts = np.round(np.arange(-max_shift, max_shift + 1e-9, 0.1), 1)
    best = max(shifts, key=lambda sh: _metrics(ref_a, oth_a, sh)["cosine"])
    out["best_shift_ev"] = float(best)
    out.update({f"{k}_aligned": v for k, v in _metrics(ref_a, oth_a, best).items()})
    return out


def pick_structures(corpus: dict, formulas: dict[str, tuple] = STUDY_FORMULAS) -> list[dict]:
    """Pick the smallest corpus record per formula, by mineral name and Si environment when given."""
    picked = []
    for formula, (mineral, environment) in formulas.items():
        matches = [r for r in corpus["structures"] if r["formula"] == formula]
        if mineral:
            matches = [r for r in matches if (r.get("mineral") or "").lower() == mineral.lower()] or matches
        if environment:
            matches = [r for r in matches if r["sites"][0]["environment"] == environment] or matches
        if matches:
            picked.append(min(matches, key=lambda r: len(r["structure"]["sites"])))
    return picked


def run_study(
    corpus: dict,
    presets: list[str],
    output: str,
    reference: str = "mp_default_noldos",
    scratch: str | None = None,
    n_workers: int = 2,
) -> dict[str, Any]:
    """Run the study, saving each result to ``output`` (JSON) as it finishes so it can resume.

    A finished ``mp_default`` run stands in for the ``mp_default_noldos`` reference: the LDOS card
    only writes density-of-states files, the ``xmu.dat`` is the same.

    Returns:
        The results dict: ``runs`` (per structure and preset) and ``summary`` (per preset).
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from pymatgen_xanes_nn.datagen.simulate import SiteJob, get_settings, simulate_site

    results = json.load(open(output)) if os.path.exists(output) else {"runs": {}}
    scratch = scratch or tempfile.gettempdir()
    lock = threading.Lock()
    todo = []
    for rec in pick_structures(corpus):
        site = rec["sites"][0]
        key = f"{rec['formula']} ({rec['structure_id']}, site {site['site_index']})"
        runs = results["runs"].setdefault(key, {})
        if reference == "mp_default_noldos" and reference not in runs and "spectrum" in runs.get("mp_default", {}):
            runs[reference] = dict(runs["mp_default"], reused_from="mp_default")
        for preset in [reference, *[p for p in presets if p != reference]]:
            if preset not in runs:
                todo.append((key, rec, site, preset))

    def work(item):
        key, rec, site, preset = item
        job = SiteJob(f"study-{rec['structure_id']}-{preset}", rec["structure"], site["site_index"])
        doc = simulate_site(job, get_settings(preset), scratch)
        if doc["state"] != "successful":
            run = {"error": doc["error"]}
        else:
            t = doc["metadata"]["timing"]
            run = {"spectrum": doc["spectrum"], "cpu_s": t["user_s"] + t["sys_s"], "wall_s": t["wall_s"],
                   "stages": t["stages"]}
        with lock:
            results["runs"][key][preset] = run
            with open(output, "w") as f:
                json.dump(results, f)

    # the expensive references first, so cheap runs fill the gaps
    todo.sort(key=lambda item: item[3] != reference)
    with ThreadPoolExecutor(n_workers) as pool:
        list(pool.map(work, todo))
    return summarize_study(results, reference, output)


def summarize_study(results: dict[str, Any], reference: str, output: str | None = None) -> dict[str, Any]:
    """Add per-run metrics against ``reference`` and a per-preset summary (written to ``output``)."""
    summary: dict[str, dict[str, list[float]]] = {}
    for runs in results["runs"].values():
        ref = runs.get(reference, {})
        for preset, run in runs.items():
            if "spectrum" not in run or "spectrum" not in ref:
                continue
            run.update(compare_spectra(ref["spectrum"], run["spectrum"]))
            s = summary.setdefault(preset, {"cpu_s": [], "cosine": [], "max_diff_over_peak": [],
                                            "cosine_aligned": [], "max_diff_over_peak_aligned": [],
                                            "best_shift_ev": []})
            for name in s:
                s[name].append(run[name])
    results["reference"] = reference
    results["summary"] = {
        p: {
            "mean_cpu_s": float(np.mean(v["cpu_s"])),
            "min_cosine": float(np.min(v["cosine"])),
            "mean_cosine": float(np.mean(v["cosine"])),
            "max_diff_over_peak": float(np.max(v["max_diff_over_peak"])),
            "min_cosine_aligned": float(np.min(v["cosine_aligned"])),
            "max_diff_over_peak_aligned": float(np.max(v["max_diff_over_peak_aligned"])),
            "max_abs_shift_ev": float(np.max(np.abs(v["best_shift_ev"]))),
            "n": len(v["cpu_s"]),
        }
        for p, v in summary.items()
    }
    if output:
        with open(output, "w") as f:
            json.dump(results, f)
    return results


def white_line(energy: np.ndarray, mu: np.ndarray, above_e0: float = 12.0) -> float:
    """Energy (eV) of the highest point within ``above_e0`` eV above e0: the white line of a K edge."""
    from pymatgen_xanes_nn.preprocessing import DEFAULT_PREPROCESSING

    e0 = DEFAULT_PREPROCESSING.edge(energy, mu).e0
    inside = (energy >= e0 - 2.0) & (energy <= e0 + above_e0)
    return float(energy[inside][np.argmax(mu[inside])])


def measured_alignment(pairs: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """How well one energy offset puts FEFF spectra of standards on their measured scale.

    Chemical shifts carry an oxidation state; if FEFF compresses them, no single calibration offset fits every
    standard. For each standard the white-line and e0 positions are compared; the best single offset is the mean
    difference, and what it leaves (residuals, their range) says whether the FEFF physics keeps the shifts.

    Args:
        pairs: compound -> ``(FEFF XAS, measured XAS)``.

    Returns:
        ``{"standards": {compound: {"feff_white_line", "measured_white_line", "feff_e0", "measured_e0"}},
        "white_line": {"offset", "residuals", "max_abs_residual"}, "e0": {...}}``.
    """
    from pymatgen_xanes_nn.calibration import measured_e0

    rows: dict[str, dict[str, float]] = {}
    for compound, (feff, measured) in pairs.items():
        rows[compound] = {
            "feff_white_line": white_line(np.asarray(feff.x), np.asarray(feff.y)),
            "measured_white_line": white_line(np.asarray(measured.x), np.asarray(measured.y)),
            "feff_e0": measured_e0(feff), "measured_e0": measured_e0(measured),
        }
    out: dict[str, Any] = {"standards": rows}
    for feature in ("white_line", "e0"):
        diff = {c: r[f"measured_{feature}"] - r[f"feff_{feature}"] for c, r in rows.items()}
        offset = float(np.mean(list(diff.values())))
        residuals = {c: d - offset for c, d in diff.items()}
        out[feature] = {"offset": offset, "residuals": residuals,
                        "max_abs_residual": float(max(abs(v) for v in residuals.values()))}
    return out
