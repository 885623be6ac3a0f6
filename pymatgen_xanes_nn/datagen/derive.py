"""Derive new Si structures from the corpus by ion substitution.

This is how the Materials Project made its hypothetical silicates (Hautier et al., Inorg. Chem. 50,
656 (2011)): corpus structure -> oxidation states (bond valence) -> substitution -> predicted volume ->
StructureMatcher de-duplication against the corpus and each other -> a derived-corpus record
(the shape of :mod:`pymatgen_xanes_nn.datagen.corpus` records, plus provenance) -> :mod:`simulate`.

Three routes, all charge balanced by oxidation states:

1. ``cation``: whole-element substitution chosen by pymatgen's data-mined substitution probabilities
   (``Substitutor.pred_from_structures``) towards a target chemical system, e.g. Li2FeSiO4 -> Li2CoSiO4.
   This fills the seed's 12 classes.
2. ``anion``: one symmetry-distinct anion site bonded to Si swapped for another anion, with a
   compensating cation swap on the nearest cation when the charges differ (O -> S isovalent;
   O -> N with M(n+) -> M'(n+1)+; N -> O with Si -> Al as in SiAlONs; C -> N with Si -> Al as in
   SiC-AlN). This makes the mixed-anion Si sites (SiO3N, SiO3S, SiC3N, SiN3O, ...) the corpus lacks.
3. ``prototype``: AB binaries and elemental frameworks of the corpus re-occupied by Si and C (SiC
   polytypes -> Si polytypes and the reverse), the only way to grow the C-Si and Si classes: the
   substitution-probability table has no C4- or Si0.

Cells are kept small (``max_atoms``): FEFF cost grows with the number of unique Si sites.
Every record carries ``source = "derived"``, ``parent_structure_id``, the ``substitution`` and the
parent's ``group_id``, so no grouped split puts a derived structure and its parent on opposite sides.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import warnings
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from pymatgen_xanes_nn.edges import SI_K

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from pymatgen.core import Species, Structure

logger = logging.getLogger(__name__)

DERIVED_VERSION = "1"
DERIVED_FILE = "derived_corpus.json.gz"
#: Largest parent cell (atoms): FEFF cost per structure grows with its unique Si sites.
MAX_ATOMS = 40
#: Materials per seed class the derivation aims at (issue 14: every class to >= 40).
TARGET_MATERIALS = 45
#: Minimum substitution probability (pymatgen's lambda table) for the cation route; MP used 1e-3.
THRESHOLD = 1e-3
#: Minimum conditional probability of a charge-compensating cation swap (lambda table).
MIN_COMPENSATION_PROBABILITY = 0.01
#: Si-anion bond cutoffs (Angstrom) for picking anion sites that touch Si.
BOND_CUTOFF = {"O": 2.0, "N": 2.05, "C": 2.1, "S": 2.5}
#: Anion swaps: old -> (new, charge change of the site). A charge change is compensated on the nearest cation.
ANION_SWAPS: dict[str, tuple[str, ...]] = {"O": ("S", "N"), "N": ("O",), "C": ("N",), "S": ("O",)}
ANION_CHARGE = {"O": -2, "S": -2, "N": -3, "C": -4}
#: Covalent bond lengths (Angstrom) for the prototype route (diamond Si 2.35, 3C-SiC 1.89).
PROTOTYPE_BONDS = {("Si", "Si"): 2.35, ("C", "Si"): 1.89}


def decorate(structure: Structure) -> Structure | None:
    """The structure with oxidation states (bond valence, else pymatgen's guess), or None if none fit."""
    from pymatgen.analysis.bond_valence import BVAnalyzer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return BVAnalyzer().get_oxi_state_decorated_structure(structure)
        except Exception:  # BVAnalyzer raises ValueError and others on unusual chemistries
            pass
        try:
            s = structure.copy()
            s.add_oxidation_state_by_guess(max_sites=-50)
            if all(getattr(sp, "oxi_state", None) is not None for sp in s.types_of_species):
                return s
        except Exception:
            pass
    return None


def predict_volume(structure: Structure, parent: Structure) -> Structure:
    """Scale ``structure`` to the volume pymatgen's ionic-radius predictor gives relative to ``parent``."""
    from pymatgen.analysis.structure_prediction.volume_predictor import RLSVolumePredictor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = RLSVolumePredictor(check_isostructural=False).get_predicted_structure(structure, parent)
            if 0.6 < out.volume / parent.volume < 1.6:
                return out
        except Exception:  # missing radii: keep the parent's volume
            pass
    return structure.copy()


def scale_to_bond(structure: Structure, pair: tuple[str, str], length: float) -> Structure:
    """Scale the lattice so the shortest ``pair`` distance equals ``length`` (Angstrom)."""
    a, b = pair
    ia = [i for i, s in enumerate(structure) if s.specie.symbol == a]
    ib = [i for i, s in enumerate(structure) if s.specie.symbol == b]
    dmat = structure.distance_matrix[np.ix_(ia, ib)]
    dmat = dmat[dmat > 0.1]
    out = structure.copy()
    out.scale_lattice(structure.volume * (length / float(dmat.min())) ** 3)
    return out


def strip(structure: Structure) -> Structure:
    """A copy without oxidation states (the corpus's form)."""
    s = structure.copy()
    s.remove_oxidation_states()
    return s


def derived_record(structure: Structure, key: str, parent_id: str, group_id: str, note: str,
                   substitution: dict[str, Any], element: str = SI_K.element) -> dict[str, Any]:
    """A derived structure as a corpus record (``source = "derived"``: it only ever trains).

    Args:
        structure: the derived structure (no oxidation states).
        key: a short hash naming the derivation (the record is ``drv-<parent_id>-<key>``).
        parent_id: the structure it was derived from.
        group_id: its material group (a corpus parent's, so that folds keep them together).
        note: how it was made, for the record.
        substitution: the substitution, with its ``route``.
        element: the absorber whose unique sites are annotated.
    """
    from pymatgen.core import Composition

    from pymatgen_xanes_nn.datagen.corpus import absorber_sites

    comp = Composition(structure.composition)
    return {
        "structure_id": f"drv-{parent_id}-{key}",
        "source": "derived",
        "source_id": key,
        "mineral": None,
        "formula": comp.reduced_formula,
        "chemsys": comp.chemical_system,
        "group_id": group_id,
        "ordered_from_disorder": False,
        "notes": [note],
        "family_members": [],
        "parent_structure_id": parent_id,
        "substitution": substitution,
        "sites": absorber_sites(structure, element),
        "structure": structure.as_dict(),
    }


def _record(structure: Structure, parent: dict, route: str, substitution: dict[str, Any]) -> dict[str, Any]:
    key = hashlib.sha1(f"{parent['structure_id']}|{route}|{sorted(substitution.items())}".encode()).hexdigest()[:8]
    return derived_record(structure, key, parent["structure_id"], parent["group_id"],
                          f"{route} substitution of {parent['formula']} ({parent['structure_id']})",
                          dict(substitution, route=route))


def target_species(corpus: dict, chemsys: str) -> list[tuple[str, ...]]:
    """The oxidation-state species sets of the corpus's materials in ``chemsys`` (most common first)."""
    counts: Counter = Counter()
    from pymatgen.core import Structure

    for rec in corpus["structures"]:
        if rec["chemsys"] != chemsys:
            continue
        s = decorate(Structure.from_dict(rec["structure"]))
        if s is not None:
            counts[tuple(sorted(str(sp) for sp in s.types_of_species))] += 1
    return [k for k, _ in counts.most_common()]


def cation_candidates(
    parents: Sequence[tuple[dict, Structure]], species: Sequence[str], threshold: float = THRESHOLD
) -> list[tuple[float, dict, Structure, dict[str, str]]]:
    """Substitutions of whole elements that turn a parent into ``species`` (pymatgen's Substitutor).

    Returns:
        ``(probability, parent record, new structure with predicted volume, {old: new})``, most probable first.
    """
    from pymatgen.analysis.structure_prediction.substitutor import Substitutor
    from pymatgen.core import Species

    by_id = {rec["structure_id"]: (rec, s) for rec, s in parents}
    sub = Substitutor(threshold=threshold)
    allowed = {str(sp) for sp in sub.get_allowed_species()}
    if not set(species) <= allowed:
        return []
    pool = [{"structure": s, "id": rec["structure_id"]} for rec, s in parents
            if {str(sp) for sp in s.types_of_species} <= allowed]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        transformed = sub.pred_from_structures(list(species), pool, remove_duplicates=False)
    out = []
    for ts in transformed:
        rec, parent = by_id[ts.history[0]["source"]]
        mapping = {str(k): str(Species.from_dict(v) if isinstance(v, dict) else v)
                   for k, v in ts.history[-1]["species_map"].items()}
        new = predict_volume(ts.final_structure, parent)
        out.append((float(ts.other_parameters["proba"]), rec, new, mapping))
    out.sort(key=lambda t: -t[0])
    return out


def _nearest(structure: Structure, index: int, candidates: Iterable[int]) -> int | None:
    best, best_d = None, np.inf
    for j in candidates:
        d = structure.get_distance(index, j)
        if d < best_d:
            best, best_d = j, d
    return best


@functools.lru_cache(maxsize=1)
def substitution_table():
    """Pymatgen's data-mined substitution probabilities (Hautier et al. 2011), loaded once."""
    from pymatgen.analysis.structure_prediction.substitution_probability import SubstitutionProbability

    return SubstitutionProbability()


def _compensate(old: Species, change: int) -> Species | None:
    """The most probable cation of charge ``old + change`` to replace ``old`` (lambda table)."""
    from pymatgen.core import Species

    if old.symbol == "Si" and change == -1:
        return Species("Al", 3)  # SiAlON / SiC-AlN: the physical pair, named rather than searched
    table = substitution_table()
    if old not in table.species:
        return None
    want = old.oxi_state + change
    scored = [(table.prob(sp, old), sp) for sp in table.species
              if getattr(sp, "oxi_state", None) == want and sp.symbol != "Si"]
    # a compensation must itself be a plausible substitution (U4+ -> P5+ is the best 5+ partner, but not plausible)
    scored = [t for t in scored if table.cond_prob(t[1], old) >= MIN_COMPENSATION_PROBABILITY]
    return max(scored, key=lambda t: t[0])[1] if scored else None


def anion_candidates(rec: dict, parent: Structure) -> list[tuple[dict, Structure, dict[str, Any]]]:
    """Mixed-anion structures from one parent: one anion site bonded to Si swapped (charge compensated).

    A more negative anion (O -> N) is compensated on the nearest non-Si cation (Si4+ has no 5+ state in a
    silicate); a less negative one (N -> O, C -> N) turns a Si bonded to it into Al (SiAlON, SiC-AlN) when
    another Si stays bonded to the new anion, else the nearest non-Si cation is reduced.
    """
    from pymatgen.core import Species
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            orbits = SpacegroupAnalyzer(strip(parent), symprec=0.01).get_symmetrized_structure().equivalent_indices
    except Exception:
        orbits = [[i] for i in range(len(parent))]
    si = [i for i, s in enumerate(parent) if s.specie.symbol == "Si"]
    others = [j for j, s in enumerate(parent) if getattr(s.specie, "oxi_state", 0) > 0 and s.specie.symbol != "Si"]
    out = []
    for orbit in orbits:
        i = orbit[0]
        old = parent[i].specie
        el = old.symbol
        if el not in ANION_SWAPS or getattr(old, "oxi_state", 0) >= 0:
            continue
        bonded = sorted((j for j in si if parent.get_distance(i, j) <= BOND_CUTOFF[el]),
                        key=lambda j: parent.get_distance(i, j))
        if not bonded:
            continue
        for new_el in ANION_SWAPS[el]:
            change = ANION_CHARGE[el] - ANION_CHARGE[new_el]  # what the cations must gain
            new = parent.copy()
            new.replace(i, Species(new_el, ANION_CHARGE[new_el]))
            subst: dict[str, Any] = {"site": f"{el}->{new_el}", "anion_site_index": int(i)}
            if change:
                j = bonded[0] if change < 0 and len(bonded) >= 2 else _nearest(parent, i, others)
                comp = _compensate(parent[j].specie, change) if j is not None else None
                if comp is None:
                    continue
                new.replace(j, comp)
                subst["compensation"] = f"{parent[j].specie}->{comp}"
                subst["cation_site_index"] = int(j)
            out.append((rec, predict_volume(new, parent), subst))
    return out


def prototype_candidates(parents: Sequence[tuple[dict, Structure]]) -> list[tuple[dict, Structure, dict[str, Any]]]:
    """Si and C-Si frameworks from the corpus's 1:1 binaries: both sites -> Si, or one -> Si and the other -> C.

    Each new framework is scaled to its covalent bond length (:data:`PROTOTYPE_BONDS`).
    """
    out = []
    for rec, s in parents:
        amounts = s.composition.get_el_amt_dict()
        if len(amounts) != 2 or len(set(amounts.values())) != 1:
            continue
        x, y = sorted(amounts)
        for mapping, pair in (({x: "Si", y: "C"}, ("C", "Si")), ({x: "C", y: "Si"}, ("C", "Si")),
                              ({x: "Si", y: "Si"}, ("Si", "Si"))):
            if all(k == v for k, v in mapping.items()):
                continue  # the parent itself
            new = strip(s)
            new.replace_species({k: v for k, v in mapping.items() if k != v})
            out.append((rec, scale_to_bond(new, pair, PROTOTYPE_BONDS[pair]), {"map": mapping}))
    return out


def outside_parents(max_atoms: int = MAX_ATOMS, path: str | None = None) -> list[dict]:
    """Si-free structures of matbench_dielectric (Materials Project) as extra parents, in corpus-record form.

    The Materials Project's substitution predictions drew on every known structure, not only silicates:
    Mg2GeO4 is a parent of a Mg2SiO4, ZnS of SiC polytypes. Each gets its own group (``gx-...``): it is in
    no split of ours, so only its derived structures carry the group.
    """
    import gzip
    import json

    from pymatgen.core import Composition, Structure

    from pymatgen_xanes_nn.datagen.corpus import matbench_path

    with gzip.open(path or matbench_path(), "rt") as f:
        table = json.load(f)
    out = []
    for row, sdict in table["structure"].items():
        if len(sdict["sites"]) > max_atoms:
            continue
        structure = Structure.from_dict(sdict)
        if "Si" in {el.symbol for el in structure.composition.elements} or not structure.is_ordered:
            continue
        comp = Composition(structure.composition)
        out.append({"structure_id": f"mbd-{row}", "group_id": f"gx-mbd-{row}", "formula": comp.reduced_formula,
                    "chemsys": comp.chemical_system, "structure": sdict})
    return out


class Deduplicator:
    """StructureMatcher de-duplication against a reference set and everything accepted so far."""

    def __init__(self, references: Iterable[Structure]):
        from pymatgen.analysis.structure_matcher import StructureMatcher

        self.matcher = StructureMatcher()
        self.seen: dict[str, list[Structure]] = {}
        for s in references:
            self.seen.setdefault(s.composition.reduced_formula, []).append(s)

    def add(self, structure: Structure) -> bool:
        """Accept ``structure`` if no known structure matches it; return whether it was new."""
        key = structure.composition.reduced_formula
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if any(self.matcher.fit(structure, other) for other in self.seen.get(key, [])):
                return False
        self.seen.setdefault(key, []).append(structure)
        return True


def derive(
    corpus: dict,
    seed_classes: Sequence[str],
    extra_parents: Sequence[dict] = (),
    existing: Sequence[dict] = (),
    species: dict[str, list[tuple[str, ...]]] | None = None,
    target_materials: int = TARGET_MATERIALS,
    max_atoms: int = MAX_ATOMS,
    max_anion_atoms: int = 24,
    max_sites: int = 2600,
    threshold: float = THRESHOLD,
    progress: bool = False,
) -> dict[str, Any]:
    """Derive structures: seed classes first (cation and prototype routes), then mixed-anion sites.

    Args:
        corpus: a corpus document (:func:`pymatgen_xanes_nn.datagen.corpus.load_corpus`).
        seed_classes: chemical systems to fill to ``target_materials`` materials each.
        extra_parents: parent records from outside the corpus (:func:`outside_parents`) for the cation and
            prototype routes.
        existing: derived records of an earlier run, kept first (their spectra may already be computed), so a
            rerun with more parents only adds structures.
        species: oxidation-state species sets per class (default: those of the corpus's members of the class).
        target_materials: materials (real + derived) each seed class should reach.
        max_atoms: largest parent cell for the cation and prototype routes.
        max_anion_atoms: largest parent cell for the anion route (symmetry drops: every Si may become unique).
        max_sites: stop adding structures once this many unique Si sites are derived.
        threshold: substitution probability cut of the cation route.
        progress: show progress bars.

    Returns:
        A derived-corpus document: ``version``, ``parameters``, ``structures`` (records in priority order),
        ``per_class`` counts and ``shortfall`` (classes that stayed below ``target_materials``).
    """
    from pymatgen.core import Structure
    from tqdm import tqdm

    recs = corpus["structures"]
    structures = [Structure.from_dict(r["structure"]) for r in recs]
    dedup = Deduplicator(structures + [Structure.from_dict(r["structure"]) for r in existing])
    small = [(r, s) for r, s in zip(recs, structures) if len(s) <= max_atoms]
    small += [(r, Structure.from_dict(r["structure"])) for r in extra_parents]
    decorated = []
    for r, s in tqdm(small, disable=not progress, desc="oxidation states"):
        d = decorate(s)
        if d is not None:
            decorated.append((r, d))
    real = Counter(r["chemsys"] for r in recs)
    records: list[dict] = list(existing)
    n_sites = sum(len(r["sites"]) for r in existing)
    have = Counter(r["chemsys"] for r in existing)

    def accept(rec: dict, new: Structure, route: str, subst: dict) -> bool:
        nonlocal n_sites
        plain = strip(new)
        if len(plain) > max_atoms * 2 or not dedup.add(plain):
            return False
        out = _record(plain, rec, route, subst)
        if not out["sites"]:
            return False
        records.append(out)
        n_sites += len(out["sites"])
        return True

    per_class: dict[str, int] = {}
    protos = prototype_candidates([(r, strip(s)) for r, s in small])
    for chemsys in tqdm(seed_classes, disable=not progress, desc="seed classes"):
        made = have[chemsys]
        need = target_materials - real[chemsys]
        if need > 0:
            if chemsys in ("Si", "C-Si"):
                cands = [(1.0, r, s, sub) for r, s, sub in protos if s.composition.chemical_system == chemsys]
                route = "prototype"
            else:
                cands, route = [], "cation"
                for target in (species or {}).get(chemsys) or target_species(corpus, chemsys)[:3]:
                    cands += cation_candidates(decorated, target, threshold)
                cands.sort(key=lambda t: -t[0])
            for proba, rec, new, sub in cands:
                if made >= need:
                    break
                subst = {"map": sub} if route == "cation" else sub
                if route == "cation":
                    subst["probability"] = proba
                made += accept(rec, new, route, subst)
        per_class[chemsys] = real[chemsys] + made
    anion_parents = [(r, d) for r, d in decorated if len(d) <= max_anion_atoms and r.get("sites")]
    anion_parents.sort(key=lambda rd: (len(rd[1]), rd[0]["structure_id"]))
    for rec, parent in tqdm(anion_parents, disable=not progress, desc="mixed anions"):
        if n_sites >= max_sites:
            break
        for r, new, subst in anion_candidates(rec, parent):
            if n_sites >= max_sites:
                break
            accept(r, new, "anion", subst)
    # FEFF runs in this order: the seed classes' structures first, then the mixed-anion ones
    records.sort(key=lambda r: r["substitution"]["route"] == "anion")
    return {
        "version": DERIVED_VERSION,
        "parameters": {"seed_classes": list(seed_classes), "target_materials": target_materials,
                       "n_extra_parents": len(extra_parents), "n_existing": len(existing),
                       "max_atoms": max_atoms, "max_anion_atoms": max_anion_atoms, "max_sites": max_sites,
                       "threshold": threshold},
        "structures": records,
        "per_class": per_class,
        "shortfall": {c: n for c, n in per_class.items() if n < target_materials},
    }


# ---------------------------------------------------------------------------- relaxation (optional extra)
def relax(structure: dict, fmax: float = 0.1, steps: int = 500, relax_cell: bool = True) -> tuple[dict, dict[str, Any]]:
    """Relax positions (and the cell, unless ``relax_cell`` is False) with CHGNet's bundled weights (FIRE).

    Returns:
        The relaxed structure dict and a record: energies (eV/atom), the volume ratio, the largest Cartesian
        displacement of a site in the relaxed cell (Angstrom), steps taken and CPU seconds.
    """
    import time

    import chgnet
    from pymatgen.core import Structure

    before = Structure.from_dict(structure)
    t = time.process_time()
    result = _optimizer().relax(before, fmax=fmax, steps=steps, relax_cell=relax_cell, verbose=False)
    after: Structure = result["final_structure"]
    energies = result["trajectory"].energies
    dfrac = np.array(after.frac_coords) - np.array(before.frac_coords)
    dfrac -= np.round(dfrac)
    displacement = np.linalg.norm(after.lattice.get_cartesian_coords(dfrac), axis=1)
    record = {
        "chgnet_version": chgnet.__version__,
        "relax_cell": relax_cell,
        "fmax_ev_per_a": fmax,
        "steps": len(energies),
        "energy_before_ev_per_atom": float(energies[0]) / len(before),
        "energy_after_ev_per_atom": float(energies[-1]) / len(before),
        "volume_ratio": float(after.volume / before.volume),
        "max_displacement_a": float(displacement.max()),
        "cpu_s": time.process_time() - t,
    }
    return after.as_dict(), record


@functools.lru_cache(maxsize=1)
def _optimizer():
    """CHGNet's relaxer, loaded once per process (loading the bundled weights takes ~1 s)."""
    from chgnet.model import StructOptimizer

    return StructOptimizer()


#: Relaxed structures per write of the relaxed corpus (a killed run loses at most this many relaxations).
RELAX_CHUNK = 10
RELAXED_FILE = "derived_corpus_relaxed.json.gz"


def relax_corpus(derived: dict, output: str, limit: int | None = None, chunk: int = RELAX_CHUNK) -> dict[str, int]:
    """Relax every derived structure (cell and positions, CHGNet) into a relaxed derived corpus, resumably.

    The relaxation study (``docs/RELAXATION.md``) found volume-scaled and relaxed structures give FEFF spectra
    further apart than the 0.99 cosine tolerance, so derived structures are relaxed before FEFF. Each record
    keeps its id, provenance and substitution; ``structure`` becomes the relaxed one, ``sites`` (unique Si
    sites, environments) are recomputed on it, and ``relaxation`` records the change. ``output`` is written
    every ``chunk`` structures and read back on a rerun, so it is the checkpoint to commit.

    Returns:
        Counts: ``done`` (already in ``output``), ``relaxed``, ``failed`` (kept out, reason logged).
    """
    import os

    from pymatgen.core import Structure

    from pymatgen_xanes_nn.datagen.corpus import absorber_sites
    from pymatgen_xanes_nn.jsonio import PYMATGEN_CLASSES, read_json, write_json

    out = read_json(output, PYMATGEN_CLASSES) if os.path.exists(output) else dict(
        {k: v for k, v in derived.items() if k != "structures"}, structures=[], failed={})
    out["relaxation"] = {"method": "CHGNet StructOptimizer (FIRE), cell and positions", "fmax_ev_per_a": 0.1}
    done = {r["structure_id"] for r in out["structures"]} | set(out.get("failed", {}))
    counts = {"done": len(done), "relaxed": 0, "failed": 0}
    todo = [r for r in derived["structures"] if r["structure_id"] not in done][:limit]
    for i, rec in enumerate(todo, 1):
        try:
            relaxed, record = relax(rec["structure"])
            sites = absorber_sites(Structure.from_dict(relaxed))
            if not sites:
                raise ValueError("no Si site left after relaxation")
            out["structures"].append(dict(rec, structure=relaxed, sites=sites, relaxation=record))
            counts["relaxed"] += 1
        except Exception as exc:  # one structure CHGNet or the site analysis cannot handle never stops the run
            out.setdefault("failed", {})[rec["structure_id"]] = f"{type(exc).__name__}: {exc}"[:300]
            logger.warning("%s: relaxation failed: %s", rec["structure_id"], exc)
            counts["failed"] += 1
        if i % chunk == 0 or i == len(todo):
            write_json(out, output)
    return counts
