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


def compare_spectra(ref: list[list[float]], other: list[list[float]]) -> dict[str, float]:
    """Compare two xmu.dat row lists (energy col 0, mu col 3) on the reference's energies.

    Returns:
        ``cosine``, ``rms`` and ``max_diff_over_peak`` (largest |difference| / reference peak).
    """
    ref_a, oth_a = np.asarray(ref), np.asarray(other)
    lo, hi = max(ref_a[0, 0], oth_a[0, 0]), min(ref_a[-1, 0], oth_a[-1, 0])
    mask = (ref_a[:, 0] >= lo) & (ref_a[:, 0] <= hi)
    e, a = ref_a[mask, 0], ref_a[mask, 3]
    b = np.interp(e, oth_a[:, 0], oth_a[:, 3])
    cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return {
        "cosine": cosine,
        "rms": float(np.sqrt(np.mean((a - b) ** 2))),
        "max_diff_over_peak": float(np.max(np.abs(a - b)) / np.max(a)),
    }


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

    from pymatgen_xanes_nn.simulate import SiteJob, get_settings, simulate_site

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
            s = summary.setdefault(preset, {"cpu_s": [], "cosine": [], "max_diff_over_peak": []})
            for name in s:
                s[name].append(run[name])
    results["reference"] = reference
    results["summary"] = {
        p: {
            "mean_cpu_s": float(np.mean(v["cpu_s"])),
            "min_cosine": float(np.min(v["cosine"])),
            "mean_cosine": float(np.mean(v["cosine"])),
            "max_diff_over_peak": float(np.max(v["max_diff_over_peak"])),
            "n": len(v["cpu_s"]),
        }
        for p, v in summary.items()
    }
    if output:
        with open(output, "w") as f:
            json.dump(results, f)
    return results
