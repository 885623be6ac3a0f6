"""Structures derived by ion substitution: charge balance, volume, provenance, de-duplication."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from pymatgen_xanes_nn.datagen.corpus import absorber_sites
from pymatgen_xanes_nn.datagen.derive import (
    Deduplicator,
    anion_candidates,
    cation_candidates,
    decorate,
    derive,
    prototype_candidates,
    strip,
)

from .conftest import diamond_si


def _quartz() -> Structure:
    return Structure(Lattice.hexagonal(4.913, 5.405), ["Si"] * 3 + ["O"] * 6,
                     [[0.4697, 0, 0], [0, 0.4697, 2 / 3], [0.5303, 0.5303, 1 / 3],
                      [0.4135, 0.2669, 0.1191], [0.2669, 0.4135, 0.5475], [0.7331, 0.1466, 0.7857],
                      [0.5865, 0.8534, 0.2142], [0.8534, 0.5865, 0.4524], [0.1466, 0.7331, 0.8809]])


def _sic() -> Structure:
    return Structure.from_spacegroup("F-43m", Lattice.cubic(4.36), ["Si", "C"], [[0, 0, 0], [0.25, 0.25, 0.25]])


def _forsterite() -> Structure:
    return Structure.from_spacegroup(
        "Pnma", Lattice.orthorhombic(10.19, 5.98, 4.76), ["Mg", "Mg", "Si", "O", "O", "O"],
        [[0, 0, 0], [0.2774, 0.25, 0.9915], [0.0940, 0.25, 0.4262], [0.0913, 0.25, 0.7657],
         [0.4474, 0.25, 0.2215], [0.1628, 0.0331, 0.2777]])


def _rec(structure: Structure, sid: str, group: str = "g1") -> dict:
    comp = structure.composition
    return {"structure_id": sid, "group_id": group, "formula": comp.reduced_formula, "chemsys": comp.chemical_system,
            "sites": absorber_sites(structure), "structure": structure.as_dict()}


def test_decorate_assigns_charge_balanced_oxidation_states():
    s = decorate(_quartz())
    assert {str(sp) for sp in s.types_of_species} == {"Si4+", "O2-"}
    assert abs(sum(site.specie.oxi_state for site in s)) < 1e-6


def test_cation_route_follows_substitution_probabilities_and_predicts_volume():
    fo = _forsterite()
    parents = [(_rec(fo, "fo"), decorate(fo))]
    cands = cation_candidates(parents, ["Fe2+", "Si4+", "O2-"])
    assert cands, "Mg2+ -> Fe2+ is among the most probable substitutions"
    proba, rec, new, mapping = cands[0]
    assert mapping == {"Mg2+": "Fe2+"} and rec["structure_id"] == "fo" and proba > 1e-3
    assert new.composition.reduced_formula == "Fe2SiO4"
    # Fe2+ is larger than Mg2+: the ionic-radius predictor expands the cell (fayalite is ~8% larger)
    assert 1.0 < new.volume / fo.volume < 1.2
    assert cation_candidates(parents, ["Na+", "Si4+", "O2-"]) == []  # no charge-balanced mapping


def test_anion_route_makes_mixed_environments_and_balances_charge():
    q = decorate(_quartz())
    cands = anion_candidates(_rec(_quartz(), "q"), q)
    swaps = {sub["site"] for _, _, sub in cands}
    assert swaps == {"O->S"}, "O->N needs a non-Si cation to compensate; quartz has none"
    new = strip(cands[0][1])
    envs = {s["environment"] for s in absorber_sites(new)}
    assert "SiO3S1" in envs


def test_anion_route_sialon_pair_keeps_charge():
    from pymatgen.core import Species

    s = decorate(_forsterite())
    cands = anion_candidates(_rec(_forsterite(), "fo"), s)
    on = [(new, sub) for _, new, sub in cands if sub["site"] == "O->N"]
    assert on, "O->N with a Mg2+ -> M3+ compensation"
    for new, sub in on:
        assert abs(sum(site.specie.oxi_state for site in new)) < 1e-6, sub
        assert isinstance(new[sub["cation_site_index"]].specie, Species)


def test_prototype_route_scales_to_the_bond_length():
    cands = prototype_candidates([(_rec(_sic(), "sic"), _sic())])
    by_system = {s.composition.chemical_system: s for _, s, _ in cands}
    si = by_system["Si"]
    d = si.distance_matrix[0][si.distance_matrix[0] > 0.1].min()
    assert d == pytest.approx(2.35, abs=1e-3)


def test_deduplicator_matches_scaled_copies():
    dedup = Deduplicator([diamond_si()])
    bigger = diamond_si()
    bigger.scale_lattice(bigger.volume * 1.05)
    assert dedup.add(bigger) is False
    assert dedup.add(_quartz()) is True and dedup.add(_quartz()) is False


def test_derive_records_provenance_and_the_parents_group():
    corpus = {"structures": [_rec(_forsterite(), "fo", "g7"), _rec(_quartz(), "q", "g8")]}
    species = {"Fe-O-Si": [("Fe2+", "O2-", "Si4+")]}
    out = derive(corpus, ["Fe-O-Si"], target_materials=2, max_sites=40, species=species)
    recs = out["structures"]
    assert out["per_class"]["Fe-O-Si"] == 1 and recs[0]["substitution"]["map"] == {"Mg2+": "Fe2+"}
    assert out["shortfall"] == {"Fe-O-Si": 1}
    routes = [r["substitution"]["route"] for r in recs]
    assert routes[0] == "cation" and routes == sorted(routes, key=lambda r: r == "anion")
    for r in recs:
        parent = r["parent_structure_id"]
        assert r["source"] == "derived" and r["group_id"] == {"fo": "g7", "q": "g8"}[parent]
        assert r["sites"] and r["structure_id"].startswith(f"drv-{parent}-")
    # a rerun keeps what exists and adds nothing new
    again = derive(corpus, ["Fe-O-Si"], target_materials=2, max_sites=40, existing=recs, species=species)
    assert [r["structure_id"] for r in again["structures"]][: len(recs)] == [r["structure_id"] for r in recs]
    assert len(again["structures"]) == len(recs)
    assert np.isfinite([Structure.from_dict(r["structure"]).volume for r in recs]).all()


def test_relax_corpus_resumes_and_recomputes_sites(monkeypatch, tmp_path):
    """CHGNet replaced by a stand-in that stretches the cell 2%: sites are recomputed, reruns skip done ones."""
    import copy

    from pymatgen.core import Structure

    import pymatgen_xanes_nn.datagen.derive as derive
    from pymatgen_xanes_nn.datagen.corpus import absorber_sites
    from pymatgen_xanes_nn.jsonio import PYMATGEN_CLASSES, read_json

    from .conftest import diamond_si

    calls = []

    def fake_relax(structure, relax_cell=True):
        calls.append(1)
        s = Structure.from_dict(structure)
        if len(calls) == 2:
            raise RuntimeError("did not converge")
        s.scale_lattice(s.volume * 1.02)
        return s.as_dict(), {"volume_ratio": 1.02}

    monkeypatch.setattr(derive, "relax", fake_relax)
    base = diamond_si()
    recs = [{"structure_id": f"drv-{i}", "structure": base.as_dict(), "sites": absorber_sites(base),
             "source": "derived"} for i in range(3)]
    out = str(tmp_path / "relaxed.json.gz")
    counts = derive.relax_corpus({"version": "1", "structures": copy.deepcopy(recs)}, out, chunk=1)
    assert counts == {"done": 0, "relaxed": 2, "failed": 1}
    relaxed = read_json(out, PYMATGEN_CLASSES)
    assert [r["structure_id"] for r in relaxed["structures"]] == ["drv-0", "drv-2"]
    assert "did not converge" in relaxed["failed"]["drv-1"]
    assert relaxed["structures"][0]["relaxation"] == {"volume_ratio": 1.02} and relaxed["structures"][0]["sites"]
    assert Structure.from_dict(relaxed["structures"][0]["structure"]).volume > base.volume * 1.01
    again = derive.relax_corpus({"version": "1", "structures": recs}, out)
    assert again == {"done": 3, "relaxed": 0, "failed": 0} and len(calls) == 3  # nothing relaxed twice


def test_jobs_of_relaxed_structures_carry_their_provenance():
    from pymatgen_xanes_nn.datagen.corpus import absorber_sites
    from pymatgen_xanes_nn.datagen.simulate import jobs_from_corpus

    from .conftest import diamond_si

    s = diamond_si()
    rec = {"structure_id": "drv-x", "source": "derived", "source_id": "x", "mineral": None, "formula": "Si",
           "chemsys": "Si", "group_id": "g1", "ordered_from_disorder": False, "parent_structure_id": "mbd-1",
           "substitution": {"route": "prototype"}, "relaxation": {"volume_ratio": 1.02}, "sites": absorber_sites(s),
           "structure": s.as_dict()}
    (job,) = jobs_from_corpus({"structures": [rec]})
    assert job.metadata["relaxation"] == {"volume_ratio": 1.02} and job.metadata["parent_structure_id"] == "mbd-1"
    assert job.metadata["group_id"] == "g1"  # the parent's group: grouped splits keep them together
