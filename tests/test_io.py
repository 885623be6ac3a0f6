from __future__ import annotations

import gzip
import json
import os
import shutil

import numpy as np
import pytest
from pymatgen.analysis.xas.spectrum import XAS

from pymatgen_xanes_nn.io.readers import (
    SpectrumNote,
    from_task_doc,
    read_athena,
    read_columns,
    read_json,
    read_spectra,
    read_spectrum,
    read_xmu,
)
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
    (tmp_path / "s.txt").write_text("# measured\n" + "\n".join(f"{a}  {b}" for a, b in zip(e, mu)))
    (tmp_path / "s3.txt").write_text("# measured\n" + "\n".join(f"{a}  {b}  0.1" for a, b in zip(e, mu)))
    for name, columns in (("s.csv", None), ("s.txt", None), ("s3.txt", ["energy", "mu", "err"])):
        xas = read_spectrum(str(tmp_path / name), columns=columns)
        np.testing.assert_allclose(xas.x, e)
        np.testing.assert_allclose(xas.y, mu)
    with pytest.raises(SpectrumError, match="no header naming them"):  # the third column could be anything
        read_spectrum(str(tmp_path / "s3.txt"))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "Empty file"),
        ("   \n\n", "Empty file"),
        ("energy,mu\nfoo,bar\n", "No numeric data"),
        ("1840,1\n1841,2\nthis is not data\n", "Unparseable line"),
        ("1840\n1841\n", "1 column"),
        ("1840 1 2\n1841 2 3\n", "no header naming them"),
        ("# energy i0 itrans\n1840 1 0\n1841 2 1\n", "positive I0 and It"),
        ("# energy i0 iref\n1840 1 2\n1841 2 3\n", "no column gives mu"),
        ("# angle i0 mu\n1840 1 2\n1841 2 3\n", "no energy column"),
        ("1840 1\n1841 2 3\n", "has 3 columns, earlier lines 2"),
    ],
)
def test_two_column_bad(tmp_path, content, match):
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(SpectrumError, match=match):
        read_columns(str(tmp_path / "bad.csv"))


def test_two_column_nan(tmp_path):
    e, mu = synthetic_edge()
    mu[10] = np.nan
    (tmp_path / "nan.csv").write_text("\n".join(f"{a},{b}" for a, b in zip(e, mu)))
    with pytest.raises(SpectrumError, match="NaN"):
        read_columns(str(tmp_path / "nan.csv"))


def test_xas_json_roundtrip(diamond_xas, tmp_path):
    path = tmp_path / "xas.json"
    path.write_text(json.dumps(diamond_xas.as_dict(), default=lambda o: o.tolist()))
    xas = read_spectrum(str(path))
    assert isinstance(xas, XAS)
    np.testing.assert_allclose(xas.y, diamond_xas.y)
    with gzip.open(tmp_path / "xas.json.gz", "wt") as f:
        f.write(path.read_text())
    np.testing.assert_allclose(read_spectrum(str(tmp_path / "xas.json.gz")).x, diamond_xas.x)


def test_xas_written_by_monty_dumpfn_is_read(diamond_xas, tmp_path):
    """dumpfn encodes XAS.x / XAS.y as {"@module": "numpy", "@class": "array"}: that is data, not code."""
    from monty.serialization import dumpfn

    dumpfn(diamond_xas, str(tmp_path / "xas.json"))
    assert '"@module": "numpy"' in (tmp_path / "xas.json").read_text()
    np.testing.assert_allclose(read_spectrum(str(tmp_path / "xas.json")).y, diamond_xas.y)


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


def _write(path, header: str, rows, encoding: str = "utf-8") -> str:
    path.write_bytes((header + "".join(" ".join(f"{v:.6f}" for v in r) + "\n" for r in rows)).encode(encoding))
    return str(path)


def _read_with_notes(filename: str, **kwargs):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SpectrumNote)
        xas = read_spectrum(filename, **kwargs)
    return xas, [str(w.message) for w in caught if issubclass(w.category, SpectrumNote)]


def test_measured_channels_become_mu(tmp_path):
    """Transmission ln(I0/It) and fluorescence If/I0 from named columns; unnamed extra columns are ignored."""
    e, mu = synthetic_edge()
    i0 = 1e5 * (1 + 0.1 * np.sin(e / 7))
    trans = _write(tmp_path / "t.dat", "# energy i0 itrans irefer\n", zip(e, i0, i0 * np.exp(-mu), i0 / 3))
    xas, notes = _read_with_notes(trans)
    np.testing.assert_allclose(xas.y, mu, atol=1e-5)  # not I0, the first column after energy
    assert any("transmission" in n for n in notes)
    fluo = _write(tmp_path / "f.dat", "# Energy (eV)  I0  IFluor\n", zip(e, i0, i0 * mu / 100))
    xas, notes = _read_with_notes(fluo)
    np.testing.assert_allclose(xas.y, mu / 100, rtol=1e-4)
    assert any("fluorescence" in n for n in notes)
    index = _write(tmp_path / "i.dat", "# index energy mu\n", zip(range(len(e)), e, mu))
    np.testing.assert_allclose(read_spectrum(index).x, e, atol=1e-6)  # the index is not the energy
    bare = _write(tmp_path / "b.dat", "", zip(e, i0, i0 * np.exp(-mu)))
    xas = read_spectrum(bare, columns=["energy", "i0", "it"])
    np.testing.assert_allclose(xas.y, mu, atol=1e-5)
    with pytest.raises(SpectrumError, match="3 columns but 2 names"):
        read_spectrum(bare, columns=["energy", "mu"])


def test_energy_units(tmp_path):
    e, mu = synthetic_edge()
    for header in ("# E(keV) mu\n", "# energy mu\n", ""):  # declared, recognised by value, no header at all
        xas, notes = _read_with_notes(_write(tmp_path / "k.dat", header, zip(e / 1000, mu)))
        np.testing.assert_allclose(xas.x, e, atol=1e-3)
        assert any("keV" in n for n in notes)
    xas, notes = _read_with_notes(_write(tmp_path / "ev.dat", "# energy mu\n", zip(e, mu)))
    assert not notes and xas.x[0] == pytest.approx(e[0])
    for header in ("# E-E0 mu\n", "# energy mu\n"):  # named relative, or recognised by its negative energies
        with pytest.raises(SpectrumError, match="relative to the edge"):
            read_spectrum(_write(tmp_path / "rel.dat", header, zip(e - 1846.0, mu)))


def test_decimal_commas_and_latin1(tmp_path):
    e, mu = synthetic_edge()
    body = "".join(f"{a:.4f};{b:.6f}\n".replace(".", ",") for a, b in zip(e, mu))
    (tmp_path / "c.csv").write_text("Energie;Absorption\n" + body)
    np.testing.assert_allclose(read_spectrum(str(tmp_path / "c.csv")).x, e, atol=1e-4)
    (tmp_path / "c2.txt").write_text(body.replace(";", "  "))
    np.testing.assert_allclose(read_spectrum(str(tmp_path / "c2.txt")).y, mu, atol=1e-6)
    latin = _write(tmp_path / "l.dat", "# quartz, \u00b5(E) at 25\u00b0C\n# energy mu\n", zip(e, mu), "latin-1")
    with pytest.raises(UnicodeDecodeError):
        open(latin, encoding="utf-8").read()  # really not UTF-8
    np.testing.assert_allclose(read_spectrum(latin).y, mu, atol=1e-6)


def test_xdi(tmp_path):
    """An XDI file as the XDI specification writes it: names and units from Column.N, element and edge read."""
    e, mu = synthetic_edge()
    i0 = 1e5 * np.ones_like(e)
    header = ("# XDI/1.0 GSE/1.0\n# Column.1: energy keV\n# Column.2: i0\n# Column.3: itrans\n"
              "# Element.symbol: Si\n# Element.edge: K\n# Mono.d_spacing: 3.13551\n# ///\n# quartz\n#----\n"
              "# energy i0 itrans\n")
    xas, notes = _read_with_notes(_write(tmp_path / "q.xdi", header, zip(e / 1000, i0, i0 * np.exp(-mu))))
    np.testing.assert_allclose(xas.x, e, atol=1e-3)
    np.testing.assert_allclose(xas.y, mu, atol=1e-5)
    assert xas.absorbing_element.symbol == "Si" and any("declared" in n for n in notes)
    other = _write(tmp_path / "fe.xdi", header.replace("Si", "Fe"), zip(e / 1000, i0, i0 * np.exp(-mu)))
    assert read_spectrum(other).absorbing_element.symbol == "Fe"  # the classifier then refuses it by name


def _athena(groups) -> str:
    out = ["# Athena project file -- Demeter version 0.9.26", "# written by the test", "", "@journal = ();", ""]
    for label, args, x, y in groups:
        out += [f"$old_group = '{label[:4]}';",
                "@args = (" + ",".join(f"'{v}'" for kv in args.items() for v in kv) + ");",
                "@x = (" + ",".join(f"'{v}'" for v in x) + ");",
                "@y = (" + ",".join(f"'{v}'" for v in y) + ");", "[record] # ", ""]
    return "\n".join([*out, "1;", ""])


def test_athena_project(tmp_path):
    e, mu = synthetic_edge()
    text = _athena([("quartz", {"label": "quartz", "datatype": "xmu", "bkg_eshift": "1.5"}, e, mu),
                    ("chi", {"label": "chi", "datatype": "chi"}, e, mu),
                    ("second", {"label": "second", "datatype": "xmu"}, e, 2 * mu)])
    with gzip.open(tmp_path / "p.prj", "wt") as f:  # Athena gzips its projects
        f.write(text)
    spectra = read_spectra(str(tmp_path / "p.prj"))
    assert [name.split(":")[-1] for name, _ in spectra] == ["quartz", "second"]  # chi(k) skipped
    np.testing.assert_allclose(spectra[0][1].x, e + 1.5)  # Athena's calibration shift applied
    np.testing.assert_allclose(spectra[1][1].y, 2 * mu)
    with pytest.raises(SpectrumError, match="holds 2 spectra"):
        read_spectrum(str(tmp_path / "p.prj"))
    (tmp_path / "x.prj").write_text("not athena")
    with pytest.raises(SpectrumError, match="not an Athena project"):
        read_athena(str(tmp_path / "x.prj"))


def test_athena_project_is_data_not_code(tmp_path):
    """Perl in a project file is never run: strings are read, nothing is evaluated."""
    e, mu = synthetic_edge()
    sentinel = tmp_path / "pwned"
    text = _athena([("q", {"label": "q"}, e, mu)]).replace(
        "@journal = ();", f"@journal = (system('touch {sentinel}'));\n$x = `touch {sentinel}`;")
    text = text.replace("@y = (", f"@y = (__import__('os').system('touch {sentinel}'),", 1)
    (tmp_path / "evil.prj").write_text(text)
    with pytest.raises(SpectrumError, match="non-numeric"):
        read_spectra(str(tmp_path / "evil.prj"))
    assert not sentinel.exists()


def test_files_written_and_read_by_larch():
    """Fixtures checked against xraylarch 2026.3.1 (test_files/measured/README.md): its Athena writer made the
    project; its XDI reader reads the XDI file to the same arrays (larch writes no XDI)."""
    from .conftest import test_file

    quartz = np.loadtxt(test_file("..", "pymatgen_xanes_nn", "data", "examples", "SiO2_quartz.csv"),
                        delimiter=",", skiprows=2)
    spectra = read_spectra(test_file("measured", "quartz_larch.prj"))
    assert [name.split(":")[-1] for name, _ in spectra] == ["quartz", "quartz_half"]
    np.testing.assert_allclose(spectra[0][1].x, quartz[:, 0])
    np.testing.assert_allclose(spectra[0][1].y, quartz[:, 1])
    np.testing.assert_allclose(spectra[1][1].y, 0.5 * quartz[:, 1])
    xas = read_spectrum(test_file("measured", "quartz_transmission.xdi"))
    np.testing.assert_allclose(xas.x, quartz[:, 0])
    np.testing.assert_allclose(xas.y, quartz[:, 1] + 0.4, atol=1e-6)  # ln(I0/It), not I0
    assert xas.absorbing_element.symbol == "Si" and xas.edge == "K"


def test_transmission_quartz_is_classified_as_quartz():
    """The issue's case: read as I0, the quartz transmission file came out Mg-O-Si; as mu it is O-Si."""
    from pymatgen_xanes_nn.classifier import XANESClassifier

    from .conftest import test_file

    clf = XANESClassifier.from_pretrained("si_k_chemsys")
    reference = clf.classify(read_spectrum(test_file("..", "pymatgen_xanes_nn", "data", "examples",
                                                     "SiO2_quartz.csv")))
    measured = clf.classify(read_spectrum(test_file("measured", "quartz_transmission.xdi")))
    assert measured["label"] == reference["label"] == "O-Si"
    assert measured["probabilities"]["O-Si"] == pytest.approx(reference["probabilities"]["O-Si"], abs=0.02)
