"""The relaxation study: does relaxing a substitution-derived structure change its Si K-edge FEFF spectrum?

Derived structures (:mod:`~pymatgen_xanes_nn.datagen.derive`) are the parent's framework with ions swapped and the
volume scaled by pymatgen's predictor, not relaxed. Here a sample of them is relaxed (cell and positions) with
CHGNet, a universal ML potential whose weights ship inside its PyPI package, the same site is recomputed with
the ``dataset`` FEFF preset, and the two spectra are compared with the FEFF settings study's metrics. The
decision rule is the FEFF-settings tolerance: if the cosine stays >= 0.99 the derived structures ship
unrelaxed; otherwise every one is relaxed.

    pip install ".[relax]"   # CHGNet (and PyTorch): only this study needs it
    xanes-nn relax-study --n 30 --output docs/relax_study.json
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import numpy as np

from pymatgen_xanes_nn.datagen.derive import relax
from pymatgen_xanes_nn.jsonio import write_json

#: The cosine a spectrum must keep to call two structures equivalent for FEFF (as in the FEFF settings study).
COSINE_TOLERANCE = 0.99


def _kind(rec: dict) -> str:
    """A derived structure's substitution, e.g. ``anion: O2- -> N3-``."""
    sub = rec.get("substitution") or {}
    if sub.get("route") == "anion":  # one anion site swapped, with its charge compensation
        return "anion: " + ", ".join(str(sub[k]).replace("->", " -> ") for k in ("site", "compensation") if sub.get(k))
    return f"{sub.get('route')}: " + ", ".join(f"{a} -> {b}" for a, b in sorted((sub.get("map") or {}).items()))


def pick_structures(derived_corpus: dict, unrelaxed: dict[str, dict], n: int = 30,
                    max_atoms: int = 40) -> list[tuple[dict, dict]]:
    """Up to ``n`` derived structures with a finished unrelaxed spectrum, spread over substitutions.

    Args:
        derived_corpus: the derived corpus (``structures`` records).
        unrelaxed: successful task documents of derived sites, by structure id (one site each).
        n: how many.
        max_atoms: largest cell taken (FEFF and the relaxation stay cheap).

    Returns:
        ``(record, task document)`` pairs, round-robin over the substitution kinds so each kind is sampled.
    """
    by_kind: dict[str, list[tuple[dict, dict]]] = {}
    for rec in derived_corpus["structures"]:
        doc = unrelaxed.get(rec["structure_id"])
        if doc is None or len(rec["structure"]["sites"]) > max_atoms:
            continue
        by_kind.setdefault(_kind(rec), []).append((rec, doc))
    for items in by_kind.values():
        items.sort(key=lambda rd: (len(rd[0]["structure"]["sites"]), rd[0]["structure_id"]))
    picked: list[tuple[dict, dict]] = []
    while len(picked) < n and any(by_kind.values()):
        for kind in sorted(by_kind):
            if by_kind[kind] and len(picked) < n:
                picked.append(by_kind[kind].pop(0))
    return picked


#: The relaxations compared with the volume-scaled structure: cell and positions (the issue's question), and
#: positions only at the predicted volume (local bond lengths without the potential's PBE-like volume error).
VARIANTS = {"relaxed": True, "relaxed_fixed_cell": False}


def run_study(derived_corpus: dict, unrelaxed: dict[str, dict], output: str, n: int = 30,
              scratch: str | None = None, n_workers: int = 2) -> dict[str, Any]:
    """Relax, recompute and compare, saving after every step to ``output`` so the study resumes.

    Returns:
        ``runs`` (per structure: relaxation record and spectrum metrics) and ``summary``.
    """
    from pymatgen_xanes_nn.datagen.feff_study import compare_spectra
    from pymatgen_xanes_nn.datagen.simulate import SiteJob, get_settings, simulate_site

    results = json.load(open(output)) if os.path.exists(output) else {"runs": {}}
    results["parameters"] = {"n": n, "feff_settings": "dataset", "cosine_tolerance": COSINE_TOLERANCE}

    lock = threading.RLock()

    def save() -> None:  # called from the FEFF worker threads: one writer at a time, atomically
        with lock:
            write_json(results, output)

    # a resumed study keeps its structures: new spectra in the meantime must not change the sample
    records = {r["structure_id"]: r for r in derived_corpus["structures"]}
    picked = [(records[sid], unrelaxed[sid]) for sid in results["runs"] if sid in records and sid in unrelaxed]
    taken = {rec["structure_id"] for rec, _ in picked}
    picked += [(rec, doc) for rec, doc in pick_structures(derived_corpus, unrelaxed, n + len(taken))
               if rec["structure_id"] not in taken][: max(0, n - len(picked))]
    for rec, doc in picked:  # relaxations first: each is seconds, FEFF is minutes
        run = results["runs"].setdefault(rec["structure_id"], {"task_id": doc["task_id"]})
        run.update(formula=rec.get("formula"), substitution=_kind(rec))
        if "relaxed_structure" in run:  # a study file from before the fixed-cell variant
            run["relaxed"] = {"structure": run.pop("relaxed_structure"), "relaxation": run.pop("relaxation")}
            run["relaxed"].update({k: run.pop(k) for k in ("metrics", "relaxed_spectrum") if k in run})
        for variant, relax_cell in VARIANTS.items():
            if variant not in run:
                try:
                    structure, record = relax(doc["structure"], relax_cell=relax_cell)
                    run[variant] = {"structure": structure, "relaxation": record}
                except ImportError:
                    raise ImportError("the relaxation study needs CHGNet: pip install '.[relax]'") from None
                except Exception as exc:  # a structure CHGNet cannot handle is a result, not a crash
                    run[variant] = {"error": f"relaxation: {type(exc).__name__}: {exc}"}
                save()
    todo = [(sid, variant) for sid, run in results["runs"].items() for variant in VARIANTS
            if variant in run and "structure" in run[variant] and "metrics" not in run[variant]
            and "error" not in run[variant]]
    todo.sort(key=lambda item: item[1] != "relaxed")  # the question first
    settings = get_settings("dataset")
    from concurrent.futures import ThreadPoolExecutor

    def work(item):
        sid, variant = item
        doc, out = unrelaxed[sid], results["runs"][sid][variant]
        job = SiteJob(f"{doc['task_id']}-{variant}", out["structure"], doc["absorbing_atom"])
        new = simulate_site(job, settings, scratch or "/tmp")
        with lock:  # no thread edits the results while another writes them
            if new["state"] != "successful":
                out["error"] = f"FEFF: {new.get('error')}"
            else:
                out["metrics"] = compare_spectra(doc["spectrum"], new["spectrum"])
                out["spectrum"] = new["spectrum"]
            save()

    with ThreadPoolExecutor(n_workers) as pool:
        list(pool.map(work, todo))
    results["summary"] = summarize(results)
    save()
    return results


def _stats(runs: list[dict]) -> dict[str, Any]:
    cos = np.array([r["metrics"]["cosine"] for r in runs])
    aligned = np.array([r["metrics"]["cosine_aligned"] for r in runs])
    vol = np.array([r["relaxation"]["volume_ratio"] for r in runs])
    disp = np.array([r["relaxation"]["max_displacement_a"] for r in runs])
    return {
        "n": len(runs),
        "cosine_min": float(cos.min()), "cosine_median": float(np.median(cos)),
        "fraction_cosine_ge_tolerance": float(np.mean(cos >= COSINE_TOLERANCE)),
        "cosine_aligned_min": float(aligned.min()), "cosine_aligned_median": float(np.median(aligned)),
        "volume_ratio_range": [float(vol.min()), float(vol.max())],
        "max_displacement_a_median": float(np.median(disp)),
    }


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Cosine statistics per variant over the finished runs, and the decision the issue's rule implies."""
    out: dict[str, Any] = {}
    for variant in VARIANTS:
        runs = [r[variant] for r in results["runs"].values() if "metrics" in r.get(variant, {})]
        out[variant] = _stats(runs) if runs else {"n": 0}
        out[variant]["n_failed"] = sum("error" in r.get(variant, {}) for r in results["runs"].values())
    full = out["relaxed"]
    if full["n"]:
        out["decision"] = ("ship unrelaxed" if full["cosine_min"] >= COSINE_TOLERANCE
                           else "relax every derived structure")
    return out


def markdown(results: dict[str, Any]) -> str:
    """The study as a Markdown page (``docs/RELAXATION.md``), from its results."""
    summary = results.get("summary") or summarize(results)
    lines = ["# Relaxation study: volume-scaled vs relaxed derived structures", "",
             "Generated by `xanes-nn relax-study` (`pymatgen_xanes_nn/datagen/relax_study.py`) from "
             "`docs/relax_study.json`.",
             "", __doc__.split("\n\n")[1].replace("\n", " "), "",
             "| variant | n | min cosine | median cosine | share >= 0.99 | min cosine, aligned | volume ratio | "
             "median max displacement (A) |", "|---|---|---|---|---|---|---|---|"]
    for variant in VARIANTS:
        st = summary.get(variant, {})
        if st.get("n"):
            lo, hi = st["volume_ratio_range"]
            lines.append(f"| {variant} | {st['n']} | {st['cosine_min']:.4f} | {st['cosine_median']:.4f} | "
                         f"{st['fraction_cosine_ge_tolerance']:.0%} | {st['cosine_aligned_min']:.4f} | "
                         f"{lo:.3f}-{hi:.3f} | {st['max_displacement_a_median']:.2f} |")
    lines += ["", f"Decision by the rule (minimum cosine of the full relaxation >= {COSINE_TOLERANCE}): "
              f"**{summary.get('decision', 'not enough runs yet')}**.", "", "| structure | formula | substitution | "
              + " | ".join(f"{v} cosine (aligned, shift eV)" for v in VARIANTS) + " |", "|---|---|---|"
              + "---|" * len(VARIANTS)]
    for sid, run in sorted(results["runs"].items()):
        cells = []
        for variant in VARIANTS:
            m = run.get(variant, {}).get("metrics")
            cells.append(f"{m['cosine']:.4f} ({m['cosine_aligned']:.4f}, {m['best_shift_ev']:+.1f})" if m
                         else run.get(variant, {}).get("error", "pending")[:60])
        lines.append(f"| {sid} | {run.get('formula')} | {run.get('substitution', '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
