"""Analogue structures for thin classes: crystals of a heavier homologue with the absorber in its place.

The S corpus holds 16 sulfite (S4+) sites and few elemental or disulfide ones; the same offline sources hold
selenites, elemental selenium and diselenides, and tellurites. Putting S where Se (or Te) is, with its bonds
shortened to S lengths, gives plausible structures of the thin classes. Like every derived structure they only
train, never test (``source = "derived"``, :func:`~pymatgen_xanes_nn.labels.training_only`).

Geometry: in an oxyanion (the homologue bonded to 3 or 4 O) each O moves along its bond to the S-O length of that
anion; elsewhere (the homologue bonded to metals or to itself) the cell shrinks so that the mean first-shell bond
shortens by the difference of the covalent radii. Structures where an O bridges two homologue atoms, or where
oxyanion and anion sites mix, are left out: neither rule fits them. Te takes the oxyanion rule only, and only for
TeO3 pyramids (tellurite -> sulfite): Te4+ with four or more short O bonds (see-saw TeO4, TeO6 tellurates) has no
sulfur counterpart, and Te-Te and Te-metal bonds are too long for a rigid cell shrink to give S-S or S-metal ones.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
from pymatgen.core import Structure

from pymatgen_xanes_nn.edges import S_K
from pymatgen_xanes_nn.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

logger = logging.getLogger(__name__)

ANALOGUES_VERSION = "1"
#: Homologues each absorber is put in the place of.
HOMOLOGUES: dict[str, tuple[str, ...]] = {S_K.element: ("Se", "Te")}
#: Rules a homologue may take, and the O counts of the oxyanions it may form (see the module docstring).
HOMOLOGUE_RULES: dict[str, tuple[str, ...]] = {"Se": ("oxyanion", "cell"), "Te": ("oxyanion",)}
HOMOLOGUE_OXYANIONS: dict[str, tuple[int, ...]] = {"Se": (3, 4), "Te": (3,)}
#: Absorber-O bond length (Angstrom) of an oxyanion with this many O: sulfite 1.51, sulfate 1.47 (ICSD medians).
OXYANION_BOND: dict[str, dict[int, float]] = {S_K.element: {3: 1.51, 4: 1.47}}
#: Longest homologue-O distance counted as a bond (Se-O in selenites and selenates: 1.6-1.8 Angstrom; the three short
#: Te-O bonds of a tellurite: 1.85-2.0 Angstrom, its fourth and further O at >= 2.1).
OXYANION_CUTOFF: dict[str, float] = {"Se": 2.0, "Te": 2.05}
#: Covalent radii (Angstrom, Cordero et al. 2008): their difference (0.15) is about the S-M vs Se-M bond difference
#: (ZnS/ZnSe 0.11, PbS/PbSe 0.09, S-S/Se-Se 0.30).
COVALENT_RADIUS = {"S": 1.05, "Se": 1.20, "Te": 1.38}
#: Shortest interatomic distance (Angstrom) a derived structure may keep.
MIN_DISTANCE = 1.0


def to_absorber(structure: Structure, absorber: str, homologue: str) -> tuple[Structure, str] | None:
    """``structure`` with ``absorber`` in place of ``homologue``, bonds shortened; None if no rule fits.

    Returns:
        ``(structure, route)`` with route ``"oxyanion"`` (O moved along the bonds) or ``"cell"`` (cell shrunk).
    """
    s = structure.copy()
    sites = [i for i, site in enumerate(s) if site.specie.symbol == homologue]
    if not sites:
        return None
    oxygen = {i: [n for n in s.get_neighbors(s[i], OXYANION_CUTOFF[homologue]) if n.specie.symbol == "O"]
              for i in sites}
    n_oxy = {i: len(v) for i, v in oxygen.items()}
    counts = set(HOMOLOGUE_OXYANIONS[homologue]) & set(OXYANION_BOND[absorber])
    if all(n in counts for n in n_oxy.values()):
        owners = Counter(n.index for v in oxygen.values() for n in v)
        if max(owners.values()) > 1:
            return None  # an O bridging two oxyanions (e.g. a pyroselenite): no single bond to fix
        for i, neighbours in oxygen.items():
            target = OXYANION_BOND[absorber][n_oxy[i]]
            for n in neighbours:
                v = n.coords - s[i].coords
                s.replace(n.index, "O", coords=s[i].coords + v * (target / np.linalg.norm(v)),
                          coords_are_cartesian=True)
        route = "oxyanion"
    elif not any(n_oxy.values()) and "cell" in HOMOLOGUE_RULES[homologue]:
        first = [min(n.nn_distance for n in s.get_neighbors(s[i], 4.0)) for i in sites
                 if s.get_neighbors(s[i], 4.0)]
        if not first:
            return None
        d = float(np.mean(first))
        factor = (d - (COVALENT_RADIUS[homologue] - COVALENT_RADIUS[absorber])) / d
        s.scale_lattice(s.volume * factor ** 3)
        route = "cell"
    else:
        return None
    s.replace_species({homologue: absorber})
    dmat = s.distance_matrix + np.eye(len(s)) * 10.0
    if dmat.min() < MIN_DISTANCE:
        return None
    return s, route


def _record(structure: Structure, parent_id: str, mineral: str | None, route: str, homologue: str,
            absorber: str) -> dict[str, Any]:
    from pymatgen_xanes_nn.datagen.derive import derived_record

    key = hashlib.sha1(f"{parent_id}|{homologue}->{absorber}|{route}".encode()).hexdigest()[:8]
    # its own material group: the parent is in no corpus of this edge
    return derived_record(structure, key, parent_id, f"drv-{parent_id}",
                          f"{homologue} -> {absorber} analogue of {mineral or parent_id} ({parent_id}), {route} rule",
                          {"map": {homologue: absorber}, "route": f"analogue-{route}"}, absorber)


def derive_analogues(
    corpus: dict, absorber: str = S_K.element, classes: Sequence[str] = ("S4+", "S0", "S1-"),
    sources: Iterable | None = None, max_atoms: int = 60, progress: bool = False,
    homologues: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Analogue structures whose absorber sites fall in ``classes`` (oxidation labels), new to ``corpus``.

    Args:
        corpus: the absorber's corpus (:func:`~pymatgen_xanes_nn.datagen.corpus.load_corpus`): analogues matching
            one of its structures are dropped.
        absorber: the absorbing element.
        classes: keep a structure when one of its unique absorber sites has one of these oxidation labels.
        sources: iterables of :class:`~pymatgen_xanes_nn.datagen.corpus.RawEntry` (default: AMCSD, then
            matbench_dielectric, for each homologue).
        max_atoms: largest cell kept (FEFF time grows with the unique sites).
        progress: show a progress bar.
        homologues: the homologues to use (default: all of :data:`HOMOLOGUES` for the absorber; a later run can
            add one without recomputing the others).

    Returns:
        A derived-corpus document: ``version``, ``element``, ``parameters``, ``structures``, ``per_class`` (sites)
        and ``rejected`` (counts by reason).
    """
    from tqdm import tqdm

    from pymatgen_xanes_nn.datagen.corpus import RawEntry, iter_amcsd, iter_matbench
    from pymatgen_xanes_nn.datagen.derive import Deduplicator

    homologues = tuple(homologues or HOMOLOGUES[absorber])
    unknown = set(homologues) - set(HOMOLOGUES[absorber])
    if unknown:
        raise InputError(f"No analogue rule puts {absorber} in place of {sorted(unknown)}; "
                         f"known: {HOMOLOGUES[absorber]}")
    if sources is None:
        sources = [src for h in homologues for src in (iter_amcsd(element=h), iter_matbench(element=h))]
    dedup = Deduplicator(Structure.from_dict(r["structure"]) for r in corpus["structures"])
    records, rejected, per_class = [], Counter(), Counter()
    for source in sources:
        for entry in tqdm(source, disable=not progress, desc="analogues"):
            if not isinstance(entry, RawEntry):
                rejected["unparseable"] += 1
                continue
            elements = {el.symbol for el in entry.structure.composition.elements}
            present = [h for h in HOMOLOGUES[absorber] if h in elements]
            if absorber in elements or len(present) != 1 or present[0] not in homologues \
                    or len(entry.structure) > max_atoms:
                rejected["has the absorber, no single homologue, or too large"] += 1
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                made = to_absorber(entry.structure, absorber, present[0])
            if made is None:
                rejected["no bond rule fits"] += 1
                continue
            structure, route = made
            if not dedup.add(structure):
                rejected["matches a known structure"] += 1
                continue
            parent = f"{'amcsd' if entry.source == 'amcsd' else 'mbd'}-{entry.source_id}"
            rec = _record(structure, parent, entry.mineral, route, present[0], absorber)
            labels = [site.get("oxidation") for site in rec["sites"]]
            if not set(labels) & set(classes):
                rejected["no site in the wanted classes"] += 1
                continue
            records.append(rec)
            per_class.update(labels)
    return {"version": ANALOGUES_VERSION, "element": absorber,
            "parameters": {"classes": list(classes), "max_atoms": max_atoms, "homologues": list(homologues),
                           "oxyanion_bond": {str(k): v for k, v in OXYANION_BOND[absorber].items()}},
            "structures": records, "per_class": dict(per_class), "rejected": dict(rejected)}
