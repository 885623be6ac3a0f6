"""Regression suite of the fault-injection probe (issue 35): each case ends in one clear line or a per-item failure,
never a traceback, a silent success or a lost document. The bad inputs are generated here, not committed."""

from __future__ import annotations

import copy
import gzip
import json
import subprocess
import sys

import numpy as np
import pytest

from pymatgen_xanes_nn.cli import main
from pymatgen_xanes_nn.io.tasks import load_tasks, pack_tasks
from pymatgen_xanes_nn.pipeline.builders import ConfigurationError, pipeline_from_env

from .conftest import task_docs, test_file


def _run(builders) -> None:
    for b in builders:
        b.run()


def _write_gz(path, obj) -> str:
    with gzip.open(path, "wt") as f:
        json.dump(obj, f)
    return str(path)


@pytest.mark.parametrize("content, match", [
    ([{"task_id": "a"}], "not a packed dataset"),
    ({"format": "1", "structures": {}}, "not a packed dataset"),
])
def test_a_tasks_file_of_the_wrong_shape_is_one_configuration_error(tmp_path, content, match):
    env = {"XANES_NN_OUTPUT": str(tmp_path / "out"), "XANES_NN_TASKS_FILE": _write_gz(tmp_path / "t.json.gz", content)}
    with pytest.raises(ConfigurationError, match=match):
        pipeline_from_env(env)


def test_one_bad_document_in_a_tasks_file_fails_alone(tmp_path, toy_model_file):
    path = str(tmp_path / "tasks.json.gz")
    pack_tasks(task_docs(), path)
    with gzip.open(path, "rt") as f:
        packed = json.load(f)
    good = len(packed["tasks"])
    marker = copy.deepcopy(packed["tasks"][0])
    marker.update(task_id="marker", metadata={"x": {"@module": "os", "@class": "system"}})
    dangling = copy.deepcopy(packed["tasks"][0])
    dangling.update(task_id="dangling", structure_ref="no-such-structure")
    missing = copy.deepcopy(packed["tasks"][0])
    missing["task_id"] = "missing-ref"
    del missing["structure_ref"]
    packed["tasks"] += [marker, dangling, missing]
    _write_gz(path, packed)
    docs = {d["task_id"]: d for d in load_tasks(path, include_failed=True)}
    assert {t for t, d in docs.items() if d.get("state") == "failed"} == {"marker", "dangling", "missing-ref"}
    env = {"XANES_NN_OUTPUT": str(tmp_path / "out"), "XANES_NN_MODEL": toy_model_file, "XANES_NN_TASKS_FILE": path}
    _run(pipeline_from_env(env))
    spectra = {d["task_id"]: d for d in json.loads((tmp_path / "out" / "xanes_spectra.json").read_text())}
    assert sum(d["state"] == "successful" for d in spectra.values()) == good
    assert "os" in spectra["marker"]["error"] and "no-such-structure" in spectra["dangling"]["error"]
    assert spectra["marker"]["error"].startswith("malformed task document")


def test_a_damaged_output_file_names_itself_and_the_fix(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "xanes_spectra.json").write_text('[{"task_id": "a", "x": ')
    with pytest.raises(ConfigurationError, match="xanes_spectra.json cannot be read.*move it away"):
        pipeline_from_env({"XANES_NN_OUTPUT": str(tmp_path / "out")})


@pytest.mark.parametrize("env, match", [
    ({"XANES_NN_MONGO_URI": "not a uri"}, "is not a MongoDB URI"),
])
def test_mongo_settings_are_named(env, match):
    with pytest.raises(ConfigurationError, match=match):
        pipeline_from_env(env)


@pytest.mark.parametrize("var, name", [("XANES_NN_DB", "bad.db$name/x"), ("XANES_NN_TASKS_DB", "a b"),
                                       ("XANES_NN_TASKS_COLLECTION", "ta$ks")])
def test_invalid_mongo_names_are_refused_by_setting(var, name):
    from pymatgen_xanes_nn.pipeline.builders import check_mongo_name

    with pytest.raises(ConfigurationError, match=var):
        check_mongo_name(var, name)


def test_pack_names_documents_without_task_id(tmp_path):
    from pymatgen_xanes_nn.jsonio import write_json

    (tmp_path / "run").mkdir()
    doc = copy.deepcopy(task_docs()[0])
    del doc["task_id"]
    write_json(doc, str(tmp_path / "run" / "x.json.gz"))
    assert main(["pack", str(tmp_path / "run"), "--collection", "c", "--data-dir", str(tmp_path / "data")]) == 2


def test_png_into_a_missing_folder_is_refused_before_any_work(capsys):
    with pytest.raises(SystemExit):
        main(["predict", test_file("feff", "Si_diamond", "xmu.dat"), "--png", "/nonexistent/x.png"])
    assert "folder '/nonexistent' is missing" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly(toy_model_file):
    files = [test_file("feff", "Si_diamond", "xmu.dat")] * 200
    cmd = f"{sys.executable} -m pymatgen_xanes_nn.cli predict --model {toy_model_file} {' '.join(files)} | head -1"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=300)
    assert proc.stdout.count("\n") == 1 and "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


@pytest.mark.parametrize("kwargs, match", [
    ({"smooth": float("nan")}, "smooth"), ({"shift": "1.5"}, "shift"), ({"shift": float("inf")}, "shift"),
])
def test_classify_refuses_bad_arguments_by_name(toy_model, kwargs, match):
    from pymatgen_xanes_nn.io.readers import read_spectrum

    xas = read_spectrum(test_file("feff", "Si_diamond", "xmu.dat"))
    with pytest.raises(ValueError, match=match):
        toy_model.classify(xas, **kwargs)


def test_classify_refuses_an_empty_matrix(toy_model):
    from pymatgen_xanes_nn.preprocessing import SpectrumError

    with pytest.raises(SpectrumError, match="0 rows"):
        toy_model.classify(np.zeros((0, toy_model.preprocessing.n_points)))


def test_an_empty_tasks_file_is_an_error_not_an_empty_build(tmp_path):
    path = str(tmp_path / "empty.json.gz")
    pack_tasks([], path)
    with pytest.raises(ConfigurationError, match="holds no task documents"):
        pipeline_from_env({"XANES_NN_OUTPUT": str(tmp_path / "out"), "XANES_NN_TASKS_FILE": path})


def test_every_builder_says_what_it_did_and_a_rerun_says_nothing_to_rebuild(tmp_path, toy_model_file, capsys):
    path = str(tmp_path / "tasks.json.gz")
    pack_tasks(task_docs(), path)
    env = {"XANES_NN_OUTPUT": str(tmp_path / "out"), "XANES_NN_MODEL": toy_model_file, "XANES_NN_TASKS_FILE": path}
    _run(pipeline_from_env(env))
    first = capsys.readouterr().out
    assert f"SpectrumBuilder -> xanes_spectra.json: {len(task_docs())} built, 0 failed" in first
    _run(pipeline_from_env(env))
    again = capsys.readouterr().out
    assert again.count("nothing to rebuild") == 4, again
