"""Label schemes: which class a task document belongs to. The one place for the class lists' rules.

``chemsys`` (the seed's task): the chemical system as pymatgen writes it
(``Composition.chemical_system``, e.g. ``"Mg-O-Si"``). The classes are the ``n_classes`` (12)
chemical systems with the most distinct materials (StructureMatcher families) in the dataset,
ties broken alphabetically, among those with at least ``min_groups`` (5) materials (a class needs
materials on both sides of a grouped split); spectra of other systems are outside the model (used
to test the out-of-distribution flag).

``environment``: the Si local environment from CrystalNN (e.g. ``"SiO4"``). Environments with at
least ``min_count`` site spectra keep their label; the rest are grouped: Si bonded only to metals
or Si -> ``"Si-metallic"``, anything else -> ``"Si-other"``. Every site is used.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

LABEL_SCHEMES = ("chemsys", "environment")
#: Neighbours that make a Si environment non-metallic (anions and covalent partners).
ANION_LIKE = frozenset({"H", "B", "C", "N", "O", "F", "P", "S", "Cl", "As", "Se", "Br", "Te", "I", "Sb"})


def check_scheme(scheme: str) -> str:
    """Return ``scheme`` or raise ``ValueError`` naming the allowed ones."""
    if scheme not in LABEL_SCHEMES:
        raise ValueError(f"Unknown label scheme {scheme!r}; choose one of {LABEL_SCHEMES}")
    return scheme


def raw_label(doc: dict[str, Any], scheme: str) -> str:
    """The ungrouped label of a task document under ``scheme``."""
    meta = doc.get("metadata") or {}
    if check_scheme(scheme) == "chemsys":
        if meta.get("chemsys"):
            return meta["chemsys"]
        from pymatgen.core import Structure

        return Structure.from_dict(doc["structure"]).composition.chemical_system
    return meta.get("environment", "Si-other")


#: Oxidation-state labels of S (the ``oxidation`` scheme), most reduced first.
S_OXIDATION_STATES = ("S2-", "S1-", "S0", "S4+", "S6+")
#: Longest bond (Angstrom) from S to each partner that oxidises it or shares its electrons: S-O is 1.43-1.55 in
#: sulfates and sulfites, S-S 2.0-2.2 in S8, polysulfides, pyrite and thiosulfate; non-bonded contacts are >= 2.9.
_S_BOND = {"O": 1.75, "N": 1.8, "F": 1.75, "S": 2.4}


def sulfur_oxidation(structure, index: int) -> str | None:
    """Oxidation state of the S atom at ``index`` from its bonds (one of :data:`S_OXIDATION_STATES`, or None).

    Bonds are counted by length (:data:`_S_BOND`), not by CrystalNN, which misses the S-S bond of pyrite. Four
    bonds to O (or N, F), or three and one to S (the central S of thiosulfate), are S6+; three to O are S4+
    (sulfite); otherwise S is an anion: no S-S bond S2-, one S1- (disulfides, pyrite, terminal S of thiosulfate),
    two S0 (S8, inner atoms of polysulfides). Anything else (e.g. S bonded to two O) is None.
    """
    n_ox = n_s = 0
    for nb in structure.get_neighbors(structure[index], max(_S_BOND.values())):
        cutoff = _S_BOND.get(nb.specie.symbol)
        if cutoff is not None and nb.nn_distance <= cutoff:
            if nb.specie.symbol == "S":
                n_s += 1
            else:
                n_ox += 1
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


def grouped_environment(env: str, neighbors: dict[str, int], keep: set[str]) -> str:
    """Map a Si environment to its class: kept as is, ``Si-metallic`` or ``Si-other``."""
    if env in keep:
        return env
    if neighbors and not set(neighbors) & ANION_LIKE:
        return "Si-metallic"
    return "Si-other"


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
    counts = Counter(raw_label(d, scheme) for d in docs)
    keep = {env for env, n in counts.items() if n >= min_count}
    return sorted({grouped_environment(raw_label(d, scheme), d["metadata"].get("neighbors", {}), keep) for d in docs})


def assign_labels(docs: list[dict], scheme: str, classes: list[str]) -> list[str | None]:
    """Label each document with one of ``classes`` (None: outside the class list)."""
    if check_scheme(scheme) == "chemsys":
        return [lab if (lab := raw_label(d, scheme)) in classes else None for d in docs]
    keep = set(classes) - {"Si-metallic", "Si-other"}
    out = []
    for d in docs:
        lab = grouped_environment(raw_label(d, scheme), d.get("metadata", {}).get("neighbors", {}), keep)
        out.append(lab if lab in classes else None)
    return out
