"""A scientist's first hour with a file (issue 34): readable verdicts, the right default model, calibration help."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pymatgen.analysis.xas.spectrum import XAS

from pymatgen_xanes_nn.cli import main
from pymatgen_xanes_nn.io.readers import read_spectrum
from pymatgen_xanes_nn.paths import data_path

from .conftest import test_file


@pytest.fixture(scope="module")
def environment():
    from pymatgen_xanes_nn.classifier import XANESClassifier

    return XANESClassifier.from_pretrained("si_k_environment")


def _quartz():
    return read_spectrum(data_path("examples/SiO2_quartz.csv"))


def test_a_classification_prints_its_verdict_and_draws_itself(environment):
    res = environment.classify(_quartz())
    text = str(res)
    assert text.startswith("si_k_environment: SiO4 (confidence") and "p-value" in text and "similar:" in text
    assert json.loads(json.dumps(res))["label"] == "SiO4"  # still a plain dict for JSON
    assert res._repr_png_().startswith(b"\x89PNG")
    assert "<img" in res._repr_html_()


def test_the_figure_says_dont_know_when_the_text_does(environment):
    res = environment.classify(_quartz(), shift=5.0)
    assert res["dont_know"]
    fig = res.figure(title="quartz")
    title = fig.axes[0].get_title()
    assert title.startswith("quartz: don't know") and res["label"] in title


def test_a_spectrum_read_from_a_file_prints(environment):
    xas = _quartz()
    assert "100 points" in repr(xas) and "Si K edge" in str(xas)
    assert xas.as_dict()["@class"] == "XAS"


def test_predict_without_a_model_gives_the_environment_and_the_chemsys_set(capsys):
    assert main(["predict", data_path("examples/SiO2_quartz.csv"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)[0]
    assert res["model"] == "si_k_environment" and res["label"] == "SiO4"
    assert res["also"][0]["model"] == "si_k_chemsys" and "O-Si" in res["also"][0]["prediction_set"]


def test_predict_refuses_an_edge_no_model_reads_and_names_it(tmp_path, capsys):
    from pymatgen_xanes_nn.io.readers import from_task_doc
    from pymatgen_xanes_nn.io.tasks import OTHER_EDGES_FILE, load_tasks

    doc = next(d for d in load_tasks(data_path(OTHER_EDGES_FILE)) if d["metadata"]["absorbing_element"] == "Al")
    xas = from_task_doc(doc, with_structure=False)
    path = tmp_path / "unknown.dat"
    np.savetxt(path, np.column_stack([xas.x, xas.y]))  # two columns: the file does not say which element
    assert main(["predict", str(path)]) == 1
    assert "looks like an Al K edge (e0 15" in capsys.readouterr().err


def test_models_lists_what_each_model_answers(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "si_k_environment (Si K edge, the default)" in out and "SiO4" in out and "out of fold" in out
    assert "s_k_oxidation" in out


def test_pre_edge_normalization_removes_a_sloped_background(environment, tmp_path, capsys):
    xas = read_spectrum(data_path("examples/Mg2SiO4_forsterite_xas.json"))
    e, mu = np.asarray(xas.x), np.asarray(xas.y)
    pre = np.arange(e[0] - 30, e[0], 0.5)  # a measured scan starts ~30 eV below the edge
    e2, mu2 = np.concatenate([pre, e]), np.concatenate([np.full(len(pre), mu[0]), mu])
    sloped = XAS(e2, mu2 + 0.005 * (e2 - e2[0]), None, "Si")  # a rising background, 0.005 edge steps per eV
    assert environment.preprocessing.normalization == "pre_edge"  # the shipped model removes the slope itself
    assert environment.classify(sloped)["label"] == "SiO4"
    assert environment.classify(sloped, normalization="pre_edge")["label"] == "SiO4"
    # the edge-step mean cannot remove it: the input itself differs (what the old default read as SiN4)
    x_step = environment.vectorize(sloped, normalization="edge_step")[0]
    x_pre = environment.vectorize(sloped)[0]
    assert abs(x_step - x_pre).max() > 0.1
    path = tmp_path / "sloped.dat"
    np.savetxt(path, np.column_stack([e2, mu2 + 0.005 * (e2 - e2[0])]))
    assert main(["predict", str(path), "--normalization", "pre_edge", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["label"] == "SiO4"


@pytest.mark.parametrize("element", ["Si", "S"])
def test_the_reference_energies_of_each_edge_match_the_shipped_spectra(element):
    from pymatgen_xanes_nn.calibration import measured_e0
    from pymatgen_xanes_nn.edges import get_edge
    from pymatgen_xanes_nn.io.readers import from_task_doc
    from pymatgen_xanes_nn.io.tasks import load_collection, load_tasks

    edge = get_edge(element)
    docs = load_tasks(derived=False) if element == "Si" else load_collection(edge.tasks_collection)
    by_id = {d["task_id"]: d for d in docs}
    for name, task_id, e0 in edge.references:
        assert measured_e0(from_task_doc(by_id[task_id], with_structure=False)) == pytest.approx(e0, abs=0.01), name


def test_calibrate_recovers_a_beamline_offset_and_predict_uses_and_records_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XANES_NN_CALIBRATION", str(tmp_path / "calibration.json"))
    quartz = _quartz()
    offset = 3.5  # a beamline whose scale sits 3.5 eV above FEFF's
    standard = tmp_path / "quartz_on_my_beamline.dat"
    np.savetxt(standard, np.column_stack([np.asarray(quartz.x) + offset, quartz.y]))
    assert main(["calibrate", "--standard", str(standard), "--compound", "SiO2", "--save"]) == 0
    assert "shift -3.50 eV" in capsys.readouterr().out
    assert main(["predict", str(standard), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)[0]
    assert res["shift"] == pytest.approx(-offset, abs=0.01) and res["calibration"]["compound"] == "SiO2"
    assert res["label"] == "SiO4" and not res["dont_know"]
    assert main(["predict", str(standard), "--shift", "0", "--json"]) == 0  # --shift overrides the saved one
    assert json.loads(capsys.readouterr().out)[0]["shift"] == 0


def test_show_says_where_the_edge_sits_on_the_models_scale(capsys):
    assert main(["show", test_file("measured", "S", "S_elemental_rt_01.xdi")]) == 0
    out = capsys.readouterr().out
    assert "S K models' energy scale (FEFF10): S8 (alpha-sulfur) 2468.2 eV" in out and "model window 2460-2530" in out
    assert "xanes-nn calibrate --standard FILE --compound S8" in out


def _rows(n: int = 60, e0: float = 1846.0, scale: float = 1.0) -> list[tuple[float, float]]:
    from .conftest import synthetic_edge

    e, mu = synthetic_edge(e0=e0, n=n)
    return [(a * scale, b) for a, b in zip(e, mu)]


def test_a_classify_of_an_al_k_edge_names_it(environment):
    from pymatgen_xanes_nn.preprocessing import SpectrumError

    with pytest.raises(SpectrumError, match="looks like an Al K edge"):
        environment.classify(XAS(*zip(*_rows(e0=1563.0, scale=1.0 - 280 / 1846)), None, "Si"))


def test_relative_energies_to_100_ev_are_named_relative(tmp_path):
    from pymatgen_xanes_nn.preprocessing import SpectrumError

    path = tmp_path / "rel.dat"
    path.write_text("".join(f"{i * 100 / 59:.2f} {0.01 * i}\n" for i in range(60)))
    with pytest.raises(SpectrumError, match="relative to the edge"):
        read_spectrum(str(path))


def test_kev_values_declared_as_ev_are_named(tmp_path):
    from pymatgen_xanes_nn.preprocessing import SpectrumError

    path = tmp_path / "kev.csv"
    path.write_text("energy (eV), mu\n" + "".join(f"{e / 1000:.5f}, {m}\n" for e, m in _rows()))
    with pytest.raises(SpectrumError, match="declared in eV but runs from 1.83 to 1.895: those are keV"):
        read_spectrum(str(path))


def test_free_text_before_the_column_names_and_a_hint(tmp_path):
    rows = "".join(f"{e} 1e5 {m * 1e3}\n" for e, m in _rows())
    path = tmp_path / "beamline.dat"
    path.write_text("# sample: unknown grey powder, pressed pellet\n# Mono Energy [eV]  Ion Chamber 0  SDD total\n"
                    + rows)
    xas = read_spectrum(str(path))  # the line naming an energy column is the header; mu = If/I0
    assert np.isclose(xas.x[0], _rows()[0][0])
    bad = tmp_path / "unnamed.dat"
    bad.write_text("# sample: unknown grey powder\n# alpha beta gamma\n" + rows)
    from pymatgen_xanes_nn.preprocessing import SpectrumError

    with pytest.raises(SpectrumError, match="--columns on the command line"):
        read_spectrum(str(bad))


def test_a_two_column_file_takes_its_only_signal_column(tmp_path):
    path = tmp_path / "two.csv"
    path.write_text("energy,intensity_norm\n" + "".join(f"{e},{m}\n" for e, m in _rows()))
    with pytest.warns(UserWarning, match="'intensity_norm' taken as mu"):
        xas = read_spectrum(str(path))
    assert len(xas.x) == 60


def test_a_file_of_a_million_lines_is_refused_before_parsing(tmp_path):
    from pymatgen_xanes_nn.preprocessing import SpectrumError

    path = tmp_path / "huge.dat"
    path.write_text("1846.0 0.5\n" * 1_020_001)
    with pytest.raises(SpectrumError, match="1020001 lines"):  # counted before parsing (it took 20 s to parse)
        read_spectrum(str(path))


def test_evidence_is_named_in_the_models_classes_and_text_shows_what_json_has(capsys):
    from pymatgen_xanes_nn.labels import environment_class

    classes = ["Si-metallic", "Si-other", "SiN4", "SiO4"]
    assert environment_class("SiSi4", classes) == "Si-metallic" and environment_class("SiO4", classes) == "SiO4"
    assert environment_class("SiN1O3", classes) == "Si-other" and environment_class("SiO4", ["O-Si", "C-Si"]) is None
    assert main(["predict", data_path("examples/Si_diamond_xmu.dat")]) == 0
    out = capsys.readouterr().out
    assert "SiSi4 = Si-metallic" in out and "out-of-distribution p-value" in out and "input quality:" in out
