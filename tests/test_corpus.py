from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure

from pymatgen_xanes_nn.datagen.corpus import (
    RawEntry,
    absorber_sites,
    build_corpus,
    chemsys_ranking,
    deduplicate,
    environment_label,
    load_corpus,
    parse_cif,
)
from pymatgen_xanes_nn.labels import assign_labels, select_classes


def _quartz_cif(si_occ: float = 1.0, o_occ: float = 1.0) -> str:
    """alpha-quartz (from the test task document) as CIF, with optional partial occupancies."""
    from pymatgen.io.cif import CifWriter

    from .conftest import task_docs

    quartz = Structure.from_dict(next(d for d in task_docs() if d["task_id"] == "amcsd-789-s0")["structure"])
    for i, site in enumerate(quartz):
        occ = si_occ if site.specie.symbol == "Si" else o_occ
        if occ < 1:
            quartz.replace(i, {site.specie.symbol: occ})
    return str(CifWriter(quartz))


def test_parse_quartz_and_sites():
    entry = parse_cif(_quartz_cif(), "amcsd", "q")
    assert isinstance(entry, RawEntry) and not entry.ordered_from_disorder
    sites = absorber_sites(entry.structure)
    assert len(sites) == 1 and sites[0]["multiplicity"] == 3
    assert sites[0]["environment"] == "SiO4" and sites[0]["cn"] == 4


def test_disorder_rules():
    assert parse_cif(_quartz_cif(si_occ=0.5), "amcsd", "q") == "disordered Si site"
    entry = parse_cif(_quartz_cif(o_occ=0.9), "amcsd", "q")
    assert isinstance(entry, RawEntry) and entry.ordered_from_disorder and entry.structure.is_ordered
    assert entry.structure.composition.reduced_formula == "SiO2"
    assert parse_cif("this is not a cif", "amcsd", "x").startswith("unparseable")


def test_environment_label():
    assert environment_label({"O": 4}) == "SiO4"
    assert environment_label({"O": 2, "N": 2}) == "SiN2O2"
    assert environment_label({}) == "Si(isolated)"


def test_deduplicate_and_build():
    si = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.431), ["Si"], [[0, 0, 0]])
    si_p = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.40), ["Si"], [[0, 0, 0]])  # a pressure variant
    sic = Structure.from_spacegroup("F-43m", Lattice.cubic(4.36), ["Si", "C"], [[0, 0, 0], [0.25, 0.25, 0.25]])
    entries = [RawEntry("amcsd", "1", si), RawEntry("amcsd", "2", sic), RawEntry("matbench_dielectric", "7", si_p)]
    assert [len(f) for f in deduplicate(entries)] == [2, 1]
    corpus = build_corpus([entries, [("99", "unparseable: x")]])
    assert len(corpus["structures"]) == 2 and corpus["rejected"] == {"unparseable": ["99"]}
    first = corpus["structures"][0]
    assert first["family_members"] == ["amcsd:1", "matbench_dielectric:7"] and first["chemsys"] == "Si"
    assert first["sites"][0]["environment"] == "SiSi4"


def test_shipped_corpus():
    corpus = load_corpus()
    records = corpus["structures"]
    assert len(records) > 600
    assert len({r["group_id"] for r in records}) == len(records)
    assert all(r["sites"] and all(s["multiplicity"] >= 1 for s in r["sites"]) for r in records)
    top = [c for c, _ in chemsys_ranking(corpus)[:3]]
    assert top[0] == "O-Si"


@pytest.mark.parametrize("scheme", ["chemsys", "environment"])
def test_label_schemes(scheme):
    from .conftest import fake_task_docs

    docs = fake_task_docs(n_groups=3, sites=1)
    classes = select_classes(docs, scheme, n_classes=2, min_count=3, min_groups=2)
    labels = assign_labels(docs, scheme, classes)
    assert set(labels) - {None} == set(classes)
    if scheme == "chemsys":
        assert len(classes) == 2 and None in labels  # the third system is outside the class list
    with pytest.raises(ValueError, match="Unknown label scheme"):
        select_classes(docs, "spacegroup")
    # derived structures never pick classes: many derived spectra of a new system leave the list as it was
    import copy

    derived = []
    for d in docs:
        d = copy.deepcopy(d)
        d["metadata"].update(source="derived", chemsys="Li-O-Si", environment="SiO5")
        derived += [d] * 5
    assert select_classes(docs + derived, scheme, n_classes=2, min_count=3, min_groups=2) == classes


def test_chemsys_rule_needs_enough_materials():
    from .conftest import fake_task_docs

    docs = fake_task_docs(n_groups=3, sites=1)
    assert select_classes(docs, "chemsys", min_groups=3) == ["C-Si", "Mg-O-Si", "O-Si"]
    assert select_classes(docs, "chemsys", min_groups=4) == []


def test_a_family_stands_by_its_relaxed_or_newest_member():
    from pymatgen_xanes_nn.datagen.corpus import representative

    si = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.431), ["Si"], [[0, 0, 0]])
    old, new, mp = RawEntry("amcsd", "6", si), RawEntry("amcsd", "17728", si), RawEntry("matbench_dielectric", "3", si)
    assert representative([old, new]) is new
    assert representative([old, mp, new]) is mp


@pytest.mark.parametrize("structure_id, oxidation", [
    ("amcsd-19829", "S6+"),  # anhydrite, CaSO4
    ("amcsd-17434", "S4+"),  # Na2SO3
    ("amcsd-15833", "S0"),  # sulfur, S8 rings
    ("mbd-3727", "S1-"),  # pyrite, FeS2 (CrystalNN misses its S-S bond)
    ("mbd-2982", "S2-"),  # sphalerite, ZnS
])
def test_sulfur_oxidation_of_well_known_compounds(structure_id, oxidation):
    from pymatgen_xanes_nn.edges import S_K
    from pymatgen_xanes_nn.labels import sulfur_oxidation

    corpus = load_corpus(element=S_K.element)
    rec = next(r for r in corpus["structures"] if r["structure_id"] == structure_id)
    structure = Structure.from_dict(rec["structure"])
    assert {sulfur_oxidation(structure, s["site_index"]) for s in rec["sites"]} == {oxidation}
    assert {s["oxidation"] for s in rec["sites"]} == {oxidation}


def test_pyrite_with_its_s_s_bond_stretched_is_a_sulfide():
    from pymatgen_xanes_nn.labels import sulfur_oxidation

    def pyrite(x: float) -> Structure:
        return Structure.from_spacegroup("Pa-3", Lattice.cubic(5.417), ["Fe", "S"], [[0, 0, 0], [x, x, x]])

    s_index = next(i for i, site in enumerate(pyrite(0.385)) if site.specie.symbol == "S")
    assert sulfur_oxidation(pyrite(0.385), s_index) == "S1-"  # S-S 2.16 A
    assert sulfur_oxidation(pyrite(0.338), s_index) == "S2-"  # AMCSD 6 (1925): S-S 3.0 A


@pytest.mark.parametrize("structure_id, motif", [
    ("amcsd-19829", "SO4"), ("amcsd-17434", "SO3"), ("amcsd-15833", "SS2"), ("mbd-3727", "SS1M3"),
    ("mbd-2982", "SM4"),
])
def test_sulfur_motif_of_well_known_compounds(structure_id, motif):
    from pymatgen_xanes_nn.edges import S_K
    from pymatgen_xanes_nn.labels import sulfur_motif

    rec = next(r for r in load_corpus(element=S_K.element)["structures"] if r["structure_id"] == structure_id)
    structure = Structure.from_dict(rec["structure"])
    assert {sulfur_motif(structure, s["site_index"], s["neighbors"]) for s in rec["sites"]} == {motif}


def test_s_label_schemes_on_the_shipped_s_spectra():
    from pymatgen_xanes_nn.edges import S_K
    from pymatgen_xanes_nn.io.tasks import load_collection
    from pymatgen_xanes_nn.labels import S_OXIDATION_STATES

    docs = load_collection(S_K.tasks_collection)
    assert select_classes(docs, "oxidation") == list(S_OXIDATION_STATES)
    labels = assign_labels(docs, "oxidation", list(S_OXIDATION_STATES))
    assert all(lab == d["metadata"].get("oxidation") for d, lab in zip(docs, labels))
    envs = select_classes(docs, "environment", min_count=5)
    assert {"SO4", "SS2", S_K.metal_group, S_K.other_group} <= set(envs) and not any(e.startswith("Si") for e in envs)
    # a Si document has no oxidation label and keeps its Si environment classes
    si = load_tasks_si()
    assert assign_labels(si[:5], "oxidation", list(S_OXIDATION_STATES)) == [None] * 5


def load_tasks_si():
    from pymatgen_xanes_nn.io.tasks import load_tasks

    return load_tasks(derived=False)
