"""The structure corpus: Si-containing crystals from offline, PyPI-distributed sources.

Sources:
    * AMCSD minerals shipped inside ``larixite`` (``larixite/amcsd_cif1.db``, MIT).
    * The ``matbench_dielectric`` example table shipped inside the ``crystal-toolkit`` wheel
      (Materials Project structures, BSD-style licence).

Every structure is parsed with pymatgen, de-duplicated with ``StructureMatcher`` (the first
member of a family is kept and the others are recorded as ``family_members``), and annotated
with its symmetry-unique Si sites (multiplicity and CrystalNN local environment). Each
structure carries a ``group_id`` (one per StructureMatcher family) so that evaluation splits
never put one material on both sides.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import sqlite3
import warnings
from collections import Counter
from dataclasses import dataclass, field
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from pymatgen.core import Composition, Element, Structure

from pymatgen_xanes_nn.edges import S_K, SI_K
from pymatgen_xanes_nn.labels import sulfur_motif, sulfur_oxidation

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

logger = logging.getLogger(__name__)

CORPUS_VERSION = "2"  # 2: families stand by representative(); 1 took the first member
#: Overlap threshold (Angstrom) after majority ordering: split positions collapse closer than this.
MIN_INTERATOMIC_DISTANCE = 0.7


@dataclass
class RawEntry:
    """A parsed structure before de-duplication."""

    source: str
    source_id: str
    structure: Structure
    mineral: str | None = None
    ordered_from_disorder: bool = False
    notes: list[str] = field(default_factory=list)


def amcsd_db_path() -> str:
    """Return the path of the AMCSD sqlite database inside the installed ``larixite``."""
    spec = find_spec("larixite")
    if spec is None or spec.origin is None:
        raise ImportError("The corpus needs larixite: pip install 'pymatgen-xanes-nn[corpus]'")
    return os.path.join(os.path.dirname(spec.origin), "amcsd_cif1.db")


def matbench_path() -> str:
    """Return the path of ``matbench_dielectric.json.gz`` inside the installed ``crystal_toolkit``.

    Only the data file is used, so ``pip install --no-deps crystal-toolkit`` is enough.
    """
    spec = find_spec("crystal_toolkit")
    if spec is None or spec.origin is None:
        raise ImportError("The corpus needs the crystal-toolkit wheel: pip install --no-deps crystal-toolkit")
    return os.path.join(os.path.dirname(spec.origin), "apps", "examples", "matbench_dielectric.json.gz")


def _majority_order(structure: Structure) -> Structure:
    """Order a structure that is disordered only off the absorber's sublattice by majority occupancy.

    Sites whose majority is a vacancy are removed.
    """
    species, coords = [], []
    for site in structure:
        occu = site.species.as_dict()
        element, frac = max(occu.items(), key=lambda kv: kv[1])
        if frac < 1.0 - sum(occu.values()):  # vacancy is the majority
            continue
        species.append(element)
        coords.append(site.frac_coords)
    return Structure(structure.lattice, species, coords)


def _check_structure(structure: Structure, element: str = SI_K.element) -> str | None:
    """Return why a structure is unusable for ``element``'s edge, or None."""
    for el in structure.composition.elements:
        if not isinstance(el, Element) or el.Z > 94:
            return f"unsupported species {el} (e.g. NH4 read as Nh)"
    if element not in {el.symbol for el in structure.composition.elements}:
        return f"no {element}"
    if len(structure) > 1:
        dmat = structure.distance_matrix
        dmat[range(len(structure)), range(len(structure))] = 10.0
        if dmat.min() < MIN_INTERATOMIC_DISTANCE:
            return f"atoms closer than {MIN_INTERATOMIC_DISTANCE} A"
    return None


def parse_cif(ciftext: str, source: str, source_id: str, mineral: str | None = None,
              element: str = SI_K.element) -> RawEntry | str:
    """Parse CIF text into a :class:`RawEntry` for ``element``'s edge, or return the reason it was rejected."""
    from pymatgen.io.cif import CifParser

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structures = CifParser(io.StringIO(ciftext)).parse_structures(primitive=True)
    except Exception as exc:  # pymatgen raises many types on bad CIFs
        return f"unparseable: {type(exc).__name__}: {exc}"[:200]
    if not structures:
        return "unparseable: no structure"
    structure = structures[0]
    entry = RawEntry(source, source_id, structure, mineral=mineral)
    if not structure.is_ordered:
        for site in structure:
            if element in {el.symbol for el in site.species.elements} and (
                len(site.species) > 1 or site.species.num_atoms < 1 - 1e-3
            ):
                return f"disordered {element} site"
        entry.structure = _majority_order(structure)
        entry.ordered_from_disorder = True
        entry.notes.append(f"ordered by majority occupancy (disorder off the {element} sublattice)")
    reason = _check_structure(entry.structure, element)
    return reason if reason else entry


def iter_amcsd(db_path: str | None = None, element: str = SI_K.element) -> Iterator[RawEntry | tuple[str, str]]:
    """Yield AMCSD entries containing ``element`` (or ``(source_id, reason)`` for rejected ones)."""
    from larixite.amcsd import AMCSD

    db_path = db_path or amcsd_db_path()
    # read-only URI: larixite's AMCSD() without read_only alters the database file
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    ids = sorted(
        int(r[0])
        for r in con.execute(
            "select distinct e.cif_id from cif_elements e join cif c on c.id = e.cif_id where e.element = ?",
            (element,),
        )
    )
    con.close()
    amcsd = AMCSD(db_path, read_only=True)
    for cif_id in ids:
        cif = amcsd.get_cif(cif_id)
        # larixite returns the mineral as an (id, name) database row
        mineral = cif.mineral if cif.mineral is None or isinstance(cif.mineral, str) else str(cif.mineral[1])
        mineral = None if mineral in (None, "", "<missing>") else mineral
        result = parse_cif(cif.ciftext, "amcsd", str(cif_id), mineral=mineral, element=element)
        yield result if isinstance(result, RawEntry) else (str(cif_id), result)


def iter_matbench(path: str | None = None, element: str = SI_K.element) -> Iterator[RawEntry | tuple[str, str]]:
    """Yield the structures of the matbench_dielectric example table that contain ``element``."""
    with gzip.open(path or matbench_path(), "rt") as f:
        table = json.load(f)
    for row, sdict in table["structure"].items():
        structure = Structure.from_dict(sdict)
        if element not in {el.symbol for el in structure.composition.elements}:
            continue
        reason = _check_structure(structure, element)
        yield (row, reason) if reason else RawEntry("matbench_dielectric", row, structure)


def absorber_sites(structure: Structure, element: str = SI_K.element, symprec: float = 0.01) -> list[dict[str, Any]]:
    """Symmetry-unique sites of ``element`` with multiplicity and CrystalNN local environment.

    Returns:
        One dict per unique absorber site: ``site_index`` (index into ``structure``), ``multiplicity``,
        ``cn`` (CrystalNN coordination number), ``neighbors`` (e.g. ``{"O": 4}``) and
        ``environment`` (e.g. ``"SiO4"``).
    """
    from pymatgen.analysis.local_env import CrystalNN
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        groups = SpacegroupAnalyzer(structure, symprec=symprec).get_symmetrized_structure().equivalent_indices
    except Exception:  # spglib can fail on odd cells: every site is then unique
        groups = [[i] for i in range(len(structure))]
    cnn = CrystalNN()
    sites = []
    for group in groups:
        index = group[0]
        if structure[index].specie.symbol != element:
            continue
        try:
            nn = cnn.get_nn_info(structure, index)
            neighbors = dict(sorted(Counter(n["site"].specie.symbol for n in nn).items()))
        except Exception as exc:
            logger.warning("CrystalNN failed on site %d: %s", index, exc)
            neighbors = {}
        site = {
            "site_index": int(index),
            "multiplicity": len(group),
            "cn": int(sum(neighbors.values())),
            "neighbors": neighbors,
            "environment": environment_label(neighbors, element),
        }
        if element == S_K.element:
            site["oxidation"] = sulfur_oxidation(structure, index)
            site["motif"] = sulfur_motif(structure, index, neighbors)
        sites.append(site)
    return sites


def environment_label(neighbors: dict[str, int], element: str = SI_K.element) -> str:
    """Write a local environment as a formula, e.g. ``{"O": 4} -> "SiO4"``, ``{} -> "Si(isolated)"``."""
    if not neighbors:
        return f"{element}(isolated)"
    return element + "".join(f"{el}{n}" for el, n in sorted(neighbors.items()))


def deduplicate(entries: list[RawEntry]) -> list[list[RawEntry]]:
    """Group entries into StructureMatcher families (default tolerances), in input order."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    matcher = StructureMatcher()
    by_comp: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        by_comp.setdefault(e.structure.composition.reduced_formula, []).append(i)
    families: list[list[int]] = []
    for idx in by_comp.values():
        remaining = list(idx)
        while remaining:
            head, rest = remaining[0], remaining[1:]
            family, left = [head], []
            for j in rest:
                (family if matcher.fit(entries[head].structure, entries[j].structure) else left).append(j)
            families.append(family)
            remaining = left
    families.sort(key=lambda fam: fam[0])
    return [[entries[i] for i in fam] for fam in families]


def representative(family: list[RawEntry]) -> RawEntry:
    """The member that stands for a StructureMatcher family.

    A Materials Project (DFT-relaxed) structure if there is one, else the newest AMCSD entry: the oldest entries are
    early refinements (AMCSD 6, pyrite of 1925, puts S at x = 0.338 and loses the S-S bond that x = 0.385 gives;
    StructureMatcher still matches the two).

    Corpus version 1 (the shipped Si corpus) kept the first member instead.
    """
    relaxed = [e for e in family if e.source == "matbench_dielectric"]
    if relaxed:
        return relaxed[0]
    return max(family, key=lambda e: int(e.source_id) if e.source_id.isdigit() else -1)


def build_corpus(
    sources: Iterable[Iterable[RawEntry | tuple[str, str]]] | None = None,
    progress: bool = False,
    element: str = SI_K.element,
) -> dict[str, Any]:
    """Build the corpus document: structures, their unique absorber sites, groups and rejections.

    Args:
        sources: iterables of parsed entries (default: AMCSD, then matbench_dielectric).
        progress: show a progress bar while annotating sites.
        element: the absorbing element.

    Returns:
        A dict with ``version``, ``structures`` (list of records) and ``rejected`` (counts and ids).
    """
    from tqdm import tqdm

    sources = sources if sources is not None else [iter_amcsd(element=element), iter_matbench(element=element)]
    entries: list[RawEntry] = []
    rejected: dict[str, list[str]] = {}
    for source in sources:
        for item in source:
            if isinstance(item, RawEntry):
                entries.append(item)
            else:
                rejected.setdefault(item[1].split(":")[0], []).append(item[0])
    families = deduplicate(entries)
    records = []
    for group_number, family in enumerate(tqdm(families, disable=not progress, desc=f"{element} sites")):
        head = representative(family)
        structure = head.structure
        sites = absorber_sites(structure, element)
        if any(not site["neighbors"] for site in sites):  # e.g. digenite: its Cu sites all below half occupancy
            rejected.setdefault("isolated absorber after ordering", []).append(f"{head.source}:{head.source_id}")
            continue
        comp = Composition(structure.composition)
        key = f"{'amcsd' if head.source == 'amcsd' else 'mbd'}-{head.source_id}"
        records.append(
            {
                "structure_id": key,
                "source": head.source,
                "source_id": head.source_id,
                "mineral": head.mineral,
                "formula": comp.reduced_formula,
                "chemsys": comp.chemical_system,
                "group_id": f"g{group_number:04d}",
                "ordered_from_disorder": head.ordered_from_disorder,
                "notes": head.notes,
                "family_members": [f"{m.source}:{m.source_id}" for m in family],
                "sites": sites,
                "structure": structure.as_dict(),
            }
        )
    return {
        "version": CORPUS_VERSION,
        "element": element,
        "structures": records,
        "rejected": {reason: sorted(ids) for reason, ids in rejected.items()},
    }


def chemsys_ranking(corpus: dict[str, Any]) -> list[tuple[str, int]]:
    """Chemical systems sorted by number of unique structures (descending, then by name)."""
    counts = Counter(r["chemsys"] for r in corpus["structures"])
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def save_corpus(corpus: dict[str, Any], filename: str) -> None:
    """Write the corpus as gzipped JSON."""
    with gzip.open(filename, "wt") as f:
        json.dump(corpus, f)


def load_corpus(filename: str | None = None, element: str = SI_K.element) -> dict[str, Any]:
    """Read a corpus file (default: the one shipped with the package for ``element``'s edge)."""
    from pymatgen_xanes_nn.edges import get_edge
    from pymatgen_xanes_nn.paths import data_path

    with gzip.open(filename or data_path(get_edge(element).corpus_file), "rt") as f:
        return json.load(f)
