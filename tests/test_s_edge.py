"""The S K edge end to end: shipped models, routing, measured standards (issue 32)."""

from __future__ import annotations

import json
import os
import tokenize

import pytest

from pymatgen_xanes_nn.classifier import XANESClassifier
from pymatgen_xanes_nn.cli import main
from pymatgen_xanes_nn.edges import S_K

from .conftest import test_file

STANDARDS = ("CaS_rt_001.xdi", "pyrite1_rt_01.xdi", "S_elemental_rt_01.xdi", "gypsum_rt_01.xdi")


@pytest.fixture(scope="module")
def oxidation():
    return XANESClassifier.from_pretrained("s_k_oxidation")


@pytest.mark.parametrize("name", S_K.models)
def test_shipped_s_models_read_the_s_edge(name):
    clf = XANESClassifier.from_pretrained(name)
    assert clf.edge is S_K and clf.metadata["label_scheme"] in S_K.label_schemes
    assert (clf.preprocessing.e_min, clf.preprocessing.e_max) == S_K.window
    # sulfur's chemical shifts in FEFF do not match a beamline's (RESULTS: gypsum 8.6 eV low): the models read the
    # aligned shape, and the OOD flag does not combine the edge position
    assert clf.preprocessing.alignment == "e0" and "edge_offset" not in clf.ood["scores"]
    if clf.metadata["label_scheme"] == "oxidation":
        assert clf.labels == ["S0", "S1-", "S2-", "S4+", "S6+"]


def test_predict_routes_a_measured_s_standard_to_the_s_models(capsys):
    path = test_file("measured", "S", "gypsum_rt_01.xdi")
    assert main(["predict", path, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)[0]
    assert res["model"] == "s_k_oxidation" and res["label"] in XANESClassifier.from_pretrained("s_k_oxidation").labels
    assert res["also"][0]["model"] == "s_k_environment"


def test_measured_standards_are_read_at_every_calibration_error(oxidation, tmp_path, capsys):
    """Every standard is classified at 7 calibration errors; an aligned model's label cannot move with them."""
    from pymatgen_xanes_nn.studies.measured import CALIBRATION_ERRORS, read_standards, standards_for

    table = standards_for(oxidation)
    assert set(table) == set(STANDARDS)
    res = read_standards(oxidation, test_file("measured", "S"), table)
    assert res["shift"] == pytest.approx(-S_K.calibration_offset)
    for f in res["files"].values():
        labels = {r["label"] for r in f["by_error"].values()}
        assert len(f["by_error"]) == len(CALIBRATION_ERRORS) and len(labels) == 1, f
    summary = res["summary"]["all_errors"]
    rows = [r for f in res["files"].values() for r in f["by_error"].values()]
    assert summary["n"] == 28 and summary["right"] == sum(r["right"] for r in rows)
    assert summary["wrong_without_dont_know"] == sum(not r["right"] and not r["dont_know"] for r in rows)
    out = tmp_path / "measured.json"
    assert main(["measured", "--model", "s_k_oxidation", "--output", str(out)]) == 0
    assert json.loads(out.read_text())["summary"] == res["summary"]


def test_no_measured_standards_for_a_scheme_is_named():
    from pymatgen_xanes_nn.studies.measured import standards_for

    with pytest.raises(ValueError, match="No measured standards for the Si K edge"):
        standards_for(XANESClassifier.from_pretrained("si_k_chemsys"))


#: Modules that are about Si chemistry itself, not about an edge: the substitution rules of the derived Si
#: structures (the seed's classes) and the FEFF-settings study of Si compounds.
SI_CHEMISTRY_MODULES = {"edges.py", os.path.join("datagen", "derive.py"), os.path.join("datagen", "feff_study.py")}


def _string_literals(path: str, value: str) -> list[int]:
    """Lines of ``path`` holding a string literal equal to ``value`` (f-string parts and docstrings excluded)."""
    with open(path, encoding="utf-8") as f:
        tokens = tokenize.generate_tokens(f.readline)
        return [tok.start[0] for tok in tokens
                if tok.type == tokenize.STRING and tok.string.strip("\"'rbu") == value]


def test_no_si_literal_outside_the_si_edge_definition():
    """A third edge is one new definition: no stage may assume Si by spelling it (issue 32, item 1)."""
    import pymatgen_xanes_nn

    root = os.path.dirname(pymatgen_xanes_nn.__file__)
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            rel = os.path.relpath(os.path.join(folder, name), root)
            if name.endswith(".py") and rel not in SI_CHEMISTRY_MODULES:
                lines = _string_literals(os.path.join(folder, name), "Si")
                if lines:
                    found[rel] = lines
    assert not found, f"'Si' spelt outside edges.py: {found}"


@pytest.mark.parametrize("name", ["si_k_environment", "si_k_chemsys", *S_K.models])
def test_every_shipped_model_shows_evidence(name):
    """Each model's inputs have an installed reference of the same preprocessing (a changed field must not
    silently orphan one: the chemsys reference predates the e0_column field)."""
    from pymatgen_xanes_nn.io.readers import read_spectrum
    from pymatgen_xanes_nn.paths import data_path

    clf = XANESClassifier.from_pretrained(name)
    path = (test_file("measured", "S", "pyrite1_rt_01.xdi") if clf.edge is S_K
            else data_path(os.path.join("examples", "SiO2_quartz.csv")))
    evidence = clf.classify(read_spectrum(path), shift=-clf.edge.calibration_offset)["evidence"]
    assert len(evidence) == 3 and all(-1.0 <= ev["similarity"] <= 1.0 for ev in evidence)
