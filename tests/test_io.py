from __future__ import annotations

import gzip
import json
import os
import shutil

import numpy as np
import pytest
from pymatgen.analysis.xas.spectrum import XAS

from pymatgen_xanes_nn.io import from_task_doc, read_json, read_spectrum, read_two_column, read_xmu
from pymatgen_xanes_nn.preprocessing import SpectrumError

from .conftest import synthetic_edge


def test_read_xmu_columns(diamond_xmu):
    xas = read_xmu(diamond_xmu)
    rows = np.loadtxt(diamond_xmu)
    np.testing.assert_allclose(xas.x, rows[:, 0])
    np.testing.assert_allclose(xas.y, rows[:, 3])
    assert xas.absorbing_element.symbol == "Si" and xas.edge == "K" and xas.spectrum_type == "XANES"
    # the pymatgen-written feff.inp next to it gives the structure
    assert xas.structure is not None and xas.structure.composition.reduced_formula == "Si"


def test_read_xmu_without_feff_inp(diamond_xmu, tmp_path):
    shutil.copy(diamond_xmu, tmp_path / "xmu.dat")
    xas = read_xmu(str(tmp_path / "xmu.dat"))
    assert xas.structure is None and len(xas.x) == 100


def test_read_xmu_other_element(diamond_xmu, tmp_path):
    text = open(diamond_xmu).read().replace("Abs   Z=14", "Abs   Z=26")
    (tmp_path / "xmu.dat").write_text(text)
    assert read_xmu(str(tmp_path / "xmu.dat")).absorbing_element.symbol == "Fe"


def test_corrupt_xmu(diamond_xmu, tmp_path):
    lines = open(diamond_xmu).read().splitlines()
    (tmp_path / "xmu.dat").write_text("\n".join(lines[:40] + ["1840.0 garbage here", *lines[41:]]))
    with pytest.raises(SpectrumError, match="Corrupt FEFF output"):
        read_xmu(str(tmp_path / "xmu.dat"))
    (tmp_path / "header_only").mkdir()
    (tmp_path / "header_only" / "xmu.dat").write_text("\n".join(lines[:22]))
    with pytest.raises(SpectrumError, match="no data rows"):
        read_xmu(str(tmp_path / "header_only" / "xmu.dat"))


def test_two_column_csv_and_text(tmp_path):
    e, mu = synthetic_edge()
    (tmp_path / "s.csv").write_text("energy_eV,mu\n" + "\n".join(f"{a},{b}" for a, b in zip(e, mu)))
    (tmp_path / "s.txt").write_text("# measured\n" + "\n".join(f"{a}  {b}  0.1" for a, b in zip(e, mu)))
    for name in ("s.csv", "s.txt"):
        xas = read_spectrum(str(tmp_path / name))
        np.testing.assert_allclose(xas.x, e)
        np.testing.assert_allclose(xas.y, mu)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "Empty file"),
        ("   \n\n", "Empty file"),
        ("energy,mu\nfoo,bar\n", "No numeric data"),
        ("1840,1\n1841,2\nthis is not data\n", "Unparseable line"),
        ("1840\n1841\n", "1 column"),
    ],
)
def test_two_column_bad(tmp_path, content, match):
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(SpectrumError, match=match):
        read_two_column(str(tmp_path / "bad.csv"))


def test_two_column_nan(tmp_path):
    e, mu = synthetic_edge()
    mu[10] = np.nan
    (tmp_path / "nan.csv").write_text("\n".join(f"{a},{b}" for a, b in zip(e, mu)))
    with pytest.raises(SpectrumError, match="NaN"):
        read_two_column(str(tmp_path / "nan.csv"))


def test_xas_json_roundtrip(diamond_xas, tmp_path):
    path = tmp_path / "xas.json"
    path.write_text(json.dumps(diamond_xas.as_dict(), default=lambda o: o.tolist()))
    xas = read_spectrum(str(path))
    assert isinstance(xas, XAS)
    np.testing.assert_allclose(xas.y, diamond_xas.y)
    with gzip.open(tmp_path / "xas.json.gz", "wt") as f:
        f.write(path.read_text())
    np.testing.assert_allclose(read_spectrum(str(tmp_path / "xas.json.gz")).x, diamond_xas.x)


def test_json_bad(tmp_path):
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(SpectrumError, match="Unparseable JSON"):
        read_json(str(tmp_path / "a.json"))
    (tmp_path / "b.json").write_text('{"hello": 1}')
    with pytest.raises(SpectrumError, match="neither"):
        read_json(str(tmp_path / "b.json"))


def _task_doc(xmu: str) -> dict:
    from pymatgen.io.feff.inputs import Atoms, Header

    header = Header.from_file(os.path.join(os.path.dirname(xmu), "feff.inp"))
    return {
        "task_id": "t1",
        "structure": header.struct.as_dict(),
        "absorbing_atom": 0,
        "spectrum_type": "XANES",
        "edge": "K",
        "spectrum": np.loadtxt(xmu).tolist(),
        "cluster": Atoms.cluster_from_file(os.path.join(os.path.dirname(xmu), "feff.inp")).as_dict(),
    }


def test_task_doc(diamond_xmu, tmp_path):
    doc = _task_doc(diamond_xmu)
    xas = from_task_doc(doc)
    assert xas.absorbing_index == 0 and xas.absorbing_element.symbol == "Si"
    np.testing.assert_allclose(xas.y, np.loadtxt(diamond_xmu)[:, 3])
    (tmp_path / "task.json").write_text(json.dumps(doc))
    np.testing.assert_allclose(read_spectrum(str(tmp_path / "task.json")).x, xas.x)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"spectrum": []}, "no spectrum"),
        ({"spectrum": None}, "no spectrum"),
        ({"spectrum": [[1.0, 2.0]] * 20}, ">= 4 columns"),
        ({"absorbing_atom": 99}, "not in structure"),
        ({"absorbing_atom": None}, "absorbing_atom missing"),
    ],
)
def test_task_doc_bad(diamond_xmu, change, match):
    doc = _task_doc(diamond_xmu)
    doc.update(change)
    with pytest.raises(SpectrumError, match=match):
        from_task_doc(doc)


def test_task_doc_nan(diamond_xmu):
    doc = _task_doc(diamond_xmu)
    doc["spectrum"][5][3] = float("nan")
    with pytest.raises(SpectrumError, match="NaN"):
        from_task_doc(doc)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="No such spectrum file"):
        read_spectrum("does/not/exist.dat")


def test_feff_is_reproducible_between_fixture_and_task_document():
    """alpha-quartz computed twice (fixture xmu.dat and the dataset's task document): identical rows."""
    from pymatgen_xanes_nn.jsonio import PYMATGEN_CLASSES, read_json

    from .conftest import test_file

    xas = read_xmu(test_file("feff", "SiO2_alpha_quartz", "xmu.dat"))
    assert xas.structure.composition.reduced_formula == "SiO2"
    doc = read_json(test_file("tasks", "amcsd-789-s0.json.gz"), PYMATGEN_CLASSES)
    np.testing.assert_array_equal(np.loadtxt(test_file("feff", "SiO2_alpha_quartz", "xmu.dat")), doc["spectrum"])
