"""The relaxation study's selection, plumbing and decision (CHGNet and FEFF replaced by stand-ins)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from pymatgen_xanes_nn.datagen import relax_study

from .conftest import task_docs


def _corpus_and_docs():
    docs = [d for d in task_docs() if d.get("state") != "failed"]
    records, unrelaxed = [], {}
    for i, d in enumerate(docs):
        sid = f"drv-{i}"
        records.append({"structure_id": sid, "structure": d["structure"],
                        "substitution": {"route": "anion" if i % 2 else "cation", "map": {"O2-": f"X{i % 3}"}}})
        unrelaxed[sid] = dict(d, task_id=f"{sid}-s0")
    return {"structures": records}, unrelaxed


def test_pick_spreads_over_substitutions_and_skips_big_cells():
    corpus, unrelaxed = _corpus_and_docs()
    picked = relax_study.pick_structures(corpus, unrelaxed, n=4)
    kinds = [(r["substitution"]["route"], r["substitution"]["map"]["O2-"]) for r, _ in picked]
    assert len(picked) == min(4, len(corpus["structures"])) and len(set(kinds)) == len(kinds)
    assert relax_study.pick_structures(corpus, unrelaxed, n=4, max_atoms=1) == []


@pytest.mark.parametrize("distort, decision", [(False, "ship unrelaxed"), (True, "relax every derived structure")])
def test_study_decides_by_the_cosine_tolerance(monkeypatch, tmp_path, distort, decision):
    import pymatgen_xanes_nn.datagen.simulate as simulate

    corpus, unrelaxed = _corpus_and_docs()
    record = {"volume_ratio": 1.02, "max_displacement_a": 0.1}
    monkeypatch.setattr(relax_study, "relax", lambda structure, relax_cell=True: (structure, dict(record)))

    calls = []

    def fake_feff(job, settings, scratch, timeout=None):
        calls.append(job.task_id)
        doc = copy.deepcopy(unrelaxed[job.task_id.split("-s0-")[0]])
        if distort:  # a white line that moved by 8 eV: far outside the tolerance
            rows = np.asarray(doc["spectrum"])
            rows[:, 3] = np.interp(rows[:, 0] - 8.0, rows[:, 0], rows[:, 3])
            doc["spectrum"] = rows.tolist()
        return doc

    monkeypatch.setattr(simulate, "simulate_site", fake_feff)
    out = str(tmp_path / "study.json")
    result = relax_study.run_study(corpus, unrelaxed, out, n=3, n_workers=1)
    summary = result["summary"]
    assert summary["relaxed"]["n"] == summary["relaxed_fixed_cell"]["n"] == 3 and summary["decision"] == decision
    assert (summary["relaxed"]["cosine_min"] >= relax_study.COSINE_TOLERANCE) is not distort
    n_runs = len(calls)
    assert n_runs == 6  # 3 structures x (relaxed, relaxed at fixed cell)
    again = relax_study.run_study(corpus, unrelaxed, out, n=3, n_workers=1)  # resumes: nothing recomputed
    assert again["summary"] == result["summary"] and len(calls) == n_runs


def test_markdown_reports_every_structure_and_the_decision(monkeypatch, tmp_path):
    import pymatgen_xanes_nn.datagen.simulate as simulate

    corpus, unrelaxed = _corpus_and_docs()
    monkeypatch.setattr(relax_study, "relax", lambda structure, relax_cell=True: (
        structure, {"volume_ratio": 1.0, "max_displacement_a": 0.0}))
    monkeypatch.setattr(simulate, "simulate_site", lambda job, *a, **k: copy.deepcopy(
        unrelaxed[job.task_id.split("-s0-")[0]]))
    result = relax_study.run_study(corpus, unrelaxed, str(tmp_path / "s.json"), n=2, n_workers=1)
    text = relax_study.markdown(result)
    assert "**ship unrelaxed**" in text and all(sid in text for sid in result["runs"])
    assert "1.0000 (1.0000, +0.0)" in text
