"""Label schemes: which class a task document belongs to. The one place for the class lists' rules.

``chemsys`` (the seed's task): the chemical system as pymatgen writes it
(``Composition.chemical_system``, e.g. ``"Mg-O-Si"``). The classes are the ``n_classes`` (12)
chemical systems with the most distinct materials (StructureMatcher families) in the dataset,
ties broken alphabetically, among those with at least ``min_groups`` (5) materials (a class needs
materials on both sides of a grouped split); spectra of other systems are outside the model (used
to test the out-of-distribution flag).

``environment``: the absorber's first shell. For Si, the CrystalNN environment (e.g. ``"SiO4"``); for S, the motif
(:func:`sulfur_motif`: bonds to O, S, N, F counted by length, metals as ``M``, e.g. ``"SO4"``, ``"SS1M3"``,
``"SM4"``). Environments with at least ``min_count`` site spectra keep their label; the rest are grouped by the
edge's rule (:class:`~pymatgen_xanes_nn.edges.Edge`): bonded only to metals -> ``metal_group`` (``Si-metallic``,
``S-metal``), anything else -> ``other_group`` (``Si-other``, ``S-other``). Every site is used.

``oxidation`` (S): the oxidation state from the S-O and S-S bonds (:func:`sulfur_oxidation`), exactly the labels
``S2-``, ``S1-``, ``S0``, ``S4+``, ``S6+``; sites none of them describes are outside the model.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from pymatgen_xanes_nn.errors import InputError

LABEL_SCHEMES = ("chemsys", "environment", "oxidation")
#: Neighbours that make a Si environment non-metallic (anions and covalent partners).
ANION_LIKE = frozenset({"H", "B", "C", "N", "O", "F", "P", "S", "Cl", "As", "Se", "Br", "Te", "I", "Sb"})
#: Partners S shares electrons with as an equal or a cation (written by name in its motif); every other neighbour
#: (metals, and As, Sb, P, Si as cations of thio-salts) is a metal ``M``.
S_PARTNERS = frozenset({"O", "S", "N", "F", "Cl", "H", "C", "Se"})


def check_scheme(scheme: str) -> str:
    """Return ``scheme`` or raise ``ValueError`` naming the allowed ones."""
    if scheme not in LABEL_SCHEMES:
        raise InputError(f"Unknown label scheme {scheme!r}; choose one of {LABEL_SCHEMES}")
    return scheme


def absorber(doc: dict[str, Any]) -> str:
    """The absorbing element of a task document (Si for documents that do not say: the first dataset's)."""
    from pymatgen_xanes_nn.edges import SI_K

    return (doc.get("metadata") or {}).get("absorbing_element") or SI_K.element


def raw_label(doc: dict[str, Any], scheme: str) -> str | None:
    """The ungrouped label of a task document under ``scheme`` (None: the scheme does not apply to it)."""
    meta = doc.get("metadata") or {}
    element = absorber(doc)
    if check_scheme(scheme) == "chemsys":
        if meta.get("chemsys"):
            return meta["chemsys"]
        from pymatgen.core import Structure

        return Structure.from_dict(doc["structure"]).composition.chemical_system
    if scheme == "oxidation":
        if element != "S":
            return None
        return meta["oxidation"] if "oxidation" in meta else sulfur_oxidation(_structure(doc), doc["absorbing_atom"])
    if element == "S":
        return meta.get("motif") or sulfur_motif(_structure(doc), doc["absorbing_atom"], meta.get("neighbors", {}))
    return meta.get("environment", f"{element}-other")


def _structure(doc: dict[str, Any]):
    from pymatgen.core import Structure

    return Structure.from_dict(doc["structure"])


#: Oxidation-state labels of S (the ``oxidation`` scheme), most reduced first.
S_OXIDATION_STATES = ("S2-", "S1-", "S0", "S4+", "S6+")
#: Longest bond (Angstrom) from S to each partner that oxidises it or shares its electrons: S-O is 1.43-1.55 in
#: sulfates and sulfites, S-S 2.0-2.2 in S8, polysulfides, pyrite and thiosulfate; non-bonded contacts are >= 2.9.
_S_BOND = {"O": 1.75, "N": 1.8, "F": 1.75, "S": 2.4}


def _s_bonds(structure, index: int) -> dict[str, int]:
    """Bonds from the S atom at ``index`` to O, N, F and S, counted by length (:data:`_S_BOND`)."""
    counts: dict[str, int] = {}
    for nb in structure.get_neighbors(structure[index], max(_S_BOND.values())):
        cutoff = _S_BOND.get(nb.specie.symbol)
        if cutoff is not None and nb.nn_distance <= cutoff:
            counts[nb.specie.symbol] = counts.get(nb.specie.symbol, 0) + 1
    return counts


def sulfur_motif(structure, index: int, neighbors: dict[str, int]) -> str:
    """The first-shell motif of the S atom at ``index``: bonds to O, N, F, S by length, the rest as metals ``M``.

    ``neighbors`` are its CrystalNN neighbours (they give the metals; CrystalNN misses some S-S bonds, e.g.
    pyrite's, which the bond lengths catch). E.g. ``"SO4"`` (sulfate), ``"SO3"`` (sulfite), ``"SO3S1"`` (central S
    of thiosulfate), ``"SS1M3"`` (pyrite), ``"SS2"`` (S8), ``"SM4"`` (sphalerite).
    """
    bonds = _s_bonds(structure, index)
    named = {el: n for el, n in neighbors.items() if el in S_PARTNERS and el not in _S_BOND}  # e.g. H, C, Cl
    metals = sum(n for el, n in neighbors.items() if el not in S_PARTNERS)
    order = ["O", "N", "F", "S"] + sorted(named)
    parts = {**bonds, **named}
    text = "".join(f"{el}{parts[el]}" for el in order if parts.get(el))
    return "S" + text + (f"M{metals}" if metals else "") if (text or metals) else "S(isolated)"


def sulfur_oxidation(structure, index: int) -> str | None:
    """Oxidation state of the S atom at ``index`` from its bonds (one of :data:`S_OXIDATION_STATES`, or None).

    Bonds are counted by length (:data:`_S_BOND`), not by CrystalNN, which misses the S-S bond of pyrite. Four
    bonds to O (or N, F), or three and one to S (the central S of thiosulfate), are S6+; three to O are S4+
    (sulfite); otherwise S is an anion: no S-S bond S2-, one S1- (disulfides, pyrite, terminal S of thiosulfate),
    two S0 (S8, inner atoms of polysulfides). Anything else (e.g. S bonded to two O) is None.
    """
    bonds = _s_bonds(structure, index)
    n_s = bonds.pop("S", 0)
    n_ox = sum(bonds.values())
    if n_ox == 4 or (n_ox == 3 and n_s == 1):
        return "S6+"
    if n_ox == 3 and n_s == 0:
        return "S4+"
    if n_ox == 0 and n_s <= 2:
        return S_OXIDATION_STATES[n_s]
    return None


def training_only(doc: dict[str, Any]) -> bool:
    """Whether a task document may only train, never be tested or count a class.

    True for structures derived by substitution (``metadata.source = "derived"``) and for sites computed again
    with other FEFF physics (``metadata.physics_of``, see :mod:`pymatgen_xanes_nn.studies.domain_shift`): test folds and
    class lists hold real crystals computed with the ``dataset`` preset only.
    """
    meta = doc.get("metadata") or {}
    return meta.get("source") == "derived" or "physics_of" in meta


def grouped_environment(env: str, neighbors: dict[str, int], keep: set[str], element: str | None = None) -> str:
    """Map an environment to its class: kept as is, the edge's ``metal_group`` or its ``other_group``."""
    from pymatgen_xanes_nn.edges import SI_K, get_edge

    edge = get_edge(element or SI_K.element)
    if env in keep:
        return env
    if edge.element == "S":  # the motif says it: bonds to S or O are counted by length, which CrystalNN may miss
        metal_only = re.fullmatch(r"SM\d+", env) is not None
    else:
        metal_only = bool(neighbors) and not set(neighbors) & ANION_LIKE
    return edge.metal_group if metal_only else edge.other_group


def select_classes(
    docs: list[dict], scheme: str, n_classes: int = 12, min_count: int = 12, min_groups: int = 5
) -> list[str]:
    """Apply the scheme's rule to a dataset and return its sorted class list (counted on real crystals only)."""
    docs = [d for d in docs if not training_only(d)]
    if check_scheme(scheme) == "chemsys":
        families: dict[str, set] = {}
        for d in docs:
            families.setdefault(raw_label(d, scheme), set()).add(d.get("metadata", {}).get("group_id", d["task_id"]))
        ranked = sorted(families.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        return sorted(c for c, groups in ranked[:n_classes] if len(groups) >= min_groups)
    if scheme == "oxidation":
        present = {raw_label(d, scheme) for d in docs}
        return [s for s in S_OXIDATION_STATES if s in present]
    labels = [raw_label(d, scheme) for d in docs]
    keep = {env for env, n in Counter(labels).items() if n >= min_count}
    return sorted({grouped_environment(lab, d["metadata"].get("neighbors", {}), keep, absorber(d))
                   for d, lab in zip(docs, labels)})


def assign_labels(docs: list[dict], scheme: str, classes: list[str]) -> list[str | None]:
    """Label each document with one of ``classes`` (None: outside the class list)."""
    from pymatgen_xanes_nn.edges import EDGES

    if check_scheme(scheme) in ("chemsys", "oxidation"):
        return [lab if (lab := raw_label(d, scheme)) in classes else None for d in docs]
    keep = set(classes) - {g for e in EDGES.values() for g in (e.metal_group, e.other_group)}
    out = []
    for d in docs:
        lab = grouped_environment(raw_label(d, scheme), d.get("metadata", {}).get("neighbors", {}), keep, absorber(d))
        out.append(lab if lab in classes else None)
    return out


def evidence_class(evidence: dict[str, str], classes: list[str], scheme: str | None,
                   element: str | None = None) -> str | None:
    """The class a shipped reference spectrum takes in a model with ``classes`` and label ``scheme``.

    Oxidation models name it by the reference's oxidation state (references built before that field have none:
    None); the others by its environment (:func:`environment_class`).
    """
    if scheme == "oxidation":
        state = evidence.get("oxidation")
        return state if state in classes else None
    return environment_class(evidence.get("environment", ""), classes, element)


def environment_class(env: str, classes: list[str], element: str | None = None) -> str | None:
    """The class an environment label (e.g. ``"SiSi4"``) takes in a model with ``classes`` (None: not such a model).

    What the evidence of a classification is called in the model's own terms: ``SiSi4`` is ``Si-metallic`` there.
    """
    from pymatgen_xanes_nn.edges import EDGES, SI_K, get_edge

    edge = get_edge(element or SI_K.element)
    if edge.metal_group not in classes and edge.other_group not in classes:
        return None  # not an environment model
    if not env.startswith(edge.element) or env.endswith("(isolated)"):
        return edge.other_group
    neighbors = {el: int(n) for el, n in re.findall(r"([A-Z][a-z]?)(\d+)", env[len(edge.element):])}
    keep = set(classes) - {g for e in EDGES.values() for g in (e.metal_group, e.other_group)}
    return grouped_environment(env, neighbors, keep, edge.element)
