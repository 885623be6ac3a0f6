"""Se -> S analogue structures for the thin S classes."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from pymatgen_xanes_nn.datagen.analogues import OXYANION_BOND, derive_analogues, to_absorber
from pymatgen_xanes_nn.labels import sulfur_oxidation


def _selenite(bridge: bool = False) -> Structure:
    """A SeO3 pyramid (Se-O 1.70 A) with Na around it in a 7 A cube; ``bridge``: a second Se sharing one O."""
    d, h = 1.70, 0.55
    r = np.sqrt(d ** 2 - h ** 2)
    o = [[r * np.cos(t), r * np.sin(t), -h] for t in (0, 2 * np.pi / 3, 4 * np.pi / 3)]
    species, coords = ["Se", "O", "O", "O", "Na", "Na"], [[0, 0, 0], *o, [2.5, 2.5, 2.5], [-2.5, 2.5, -2.0]]
    if bridge:
        species.append("Se")
        coords.append(list(np.array(o[0]) * 2))
    return Structure(Lattice.cubic(7.0), species, np.array(coords) + 3.0, coords_are_cartesian=True)


def test_a_selenite_becomes_a_sulfite_with_sulfite_bonds():
    s, route = to_absorber(_selenite(), "S", "Se")
    i = next(k for k, site in enumerate(s) if site.specie.symbol == "S")
    bonds = sorted(n.nn_distance for n in s.get_neighbors(s[i], 2.0) if n.specie.symbol == "O")
    assert route == "oxyanion" and np.allclose(bonds, OXYANION_BOND["S"][3], atol=1e-6)
    assert sulfur_oxidation(s, i) == "S4+"


def test_a_bridging_oxygen_fits_no_rule():
    assert to_absorber(_selenite(bridge=True), "S", "Se") is None


def test_a_selenide_cell_shrinks_by_the_covalent_radius_difference():
    znse = Structure.from_spacegroup("F-43m", Lattice.cubic(5.67), ["Zn", "Se"], [[0, 0, 0], [0.25, 0.25, 0.25]])
    s, route = to_absorber(znse, "S", "Se")
    d_old = 5.67 * np.sqrt(3) / 4
    d_new = min(n.nn_distance for n in s.get_neighbors(s[-1], 3.0))
    assert route == "cell" and d_new == pytest.approx(d_old - 0.15, abs=1e-6)
    assert s.composition.reduced_formula == "ZnS"


def test_analogues_keep_only_new_structures_of_the_wanted_classes():
    from pymatgen_xanes_nn.datagen.corpus import RawEntry

    znse = Structure.from_spacegroup("F-43m", Lattice.cubic(5.67), ["Zn", "Se"], [[0, 0, 0], [0.25, 0.25, 0.25]])
    zns = to_absorber(znse, "S", "Se")[0]
    corpus = {"structures": [{"structure": zns.as_dict()}]}
    entries = [RawEntry("amcsd", "1", _selenite()), RawEntry("amcsd", "2", znse), RawEntry("amcsd", "3", _selenite())]
    out = derive_analogues(corpus, sources=[entries])
    assert [r["parent_structure_id"] for r in out["structures"]] == ["amcsd-1"]  # ZnS known; the copy matches
    rec = out["structures"][0]
    assert rec["source"] == "derived" and rec["sites"][0]["oxidation"] == "S4+" and out["per_class"] == {"S4+": 1}
    assert out["rejected"]["matches a known structure"] == 2


def _pyramid(element: str, d: float, n_oxygen: int = 3) -> Structure:
    """An ``element``-O pyramid (bond ``d``) with ``n_oxygen`` O (a 4th one below the apex) and Na in a 7 A cube."""
    h = 0.3 * d
    r = np.sqrt(d ** 2 - h ** 2)
    o = [[r * np.cos(t), r * np.sin(t), -h] for t in (0, 2 * np.pi / 3, 4 * np.pi / 3)]
    if n_oxygen == 4:
        o.append([0.0, 0.0, d])
    species = [element] + ["O"] * len(o) + ["Na", "Na"]
    coords = [[0, 0, 0], *o, [2.5, 2.5, 2.5], [-2.5, 2.5, -2.0]]
    return Structure(Lattice.cubic(7.0), species, np.array(coords) + 3.0, coords_are_cartesian=True)


def test_a_tellurite_becomes_a_sulfite_and_other_tellurium_fits_no_rule():
    s, route = to_absorber(_pyramid("Te", 1.90), "S", "Te")
    i = next(k for k, site in enumerate(s) if site.specie.symbol == "S")
    bonds = sorted(n.nn_distance for n in s.get_neighbors(s[i], 2.0) if n.specie.symbol == "O")
    assert route == "oxyanion" and np.allclose(bonds, OXYANION_BOND["S"][3], atol=1e-6)
    assert sulfur_oxidation(s, i) == "S4+"
    # a see-saw TeO4 is no sulfate, and a telluride's bonds are too long for the cell rule
    assert to_absorber(_pyramid("Te", 1.90, n_oxygen=4), "S", "Te") is None
    znte = Structure.from_spacegroup("F-43m", Lattice.cubic(6.10), ["Zn", "Te"], [[0, 0, 0], [0.25, 0.25, 0.25]])
    assert to_absorber(znte, "S", "Te") is None
    # Se keeps both of its rules: the same SeO4 tetrahedron is a selenate -> sulfate
    assert to_absorber(_pyramid("Se", 1.65, n_oxygen=4), "S", "Se")[1] == "oxyanion"


def test_analogues_of_an_unknown_homologue_are_refused_by_name():
    from pymatgen_xanes_nn.errors import InputError

    with pytest.raises(InputError, match="in place of \\['Po'\\]"):
        derive_analogues({"structures": []}, sources=[[]], homologues=["Po"])
