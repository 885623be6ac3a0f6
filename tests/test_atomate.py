from __future__ import annotations

import json
import os
import shutil

import pymongo
import pytest
from fireworks import Firework, LaunchPad, Workflow
from fireworks.core.rocket_launcher import rapidfire
from fireworks.user_objects.firetasks.fileio_tasks import FileWriteTask
from pymatgen.core import Lattice, Structure

from pymatgen_xanes_nn.pipeline.atomate import (
    RESULT_FILE,
    ClassifyXANESTask,
    RunFeff10,
    add_xanes_classification,
    get_wf_xanes_classified,
    use_feff10,
)

from .conftest import diamond_si, task_docs, test_file


def _quartz() -> Structure:
    doc = next(d for d in task_docs() if d["task_id"] == "amcsd-789-s0")
    return Structure.from_dict(doc["structure"])


def test_workflow_structure(toy_model_file):
    wf = get_wf_xanes_classified(_quartz(), model=toy_model_file)
    assert len(wf.fws) == 1  # alpha-quartz: one symmetry-unique Si site (multiplicity 3)
    names = [t.fw_name.strip("{}").split(".")[-1] for t in wf.fws[0].tasks]
    assert names == ["WriteFeffFromIOSet", "RunFeff10", "PassCalcLocs", "SpectrumToDbTask", "ClassifyXANESTask"]
    write = wf.fws[0].tasks[0]
    assert write["radius"] == 7.0
    classify = wf.fws[0].tasks[-1]
    assert classify["model"] == toy_model_file and classify["db_file"] is None
    wf2 = Workflow.from_dict(json.loads(json.dumps(wf.to_dict(), default=str)))
    assert wf2.fws[0].tasks[-1].fw_name == classify.fw_name


def test_powerups_on_atomate_workflow(toy_model_file):
    from atomate.feff.workflows.core import get_wf_xas

    wf = get_wf_xas("Si", diamond_si(), edge="K", db_file=">>db_file<<")
    wf = add_xanes_classification(use_feff10(wf), model=toy_model_file)
    for fw in wf.fws:
        names = [t.fw_name.strip("{}").split(".")[-1] for t in fw.tasks]
        assert "RunFeffDirect" not in names and "RunFeff10" in names
        assert fw.tasks[-1]["db_file"] == ">>db_file<<"


def test_no_si_site():
    with pytest.raises(ValueError, match="has no Si site"):
        get_wf_xanes_classified(Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]))


def test_classify_task_writes_json(tmp_path, monkeypatch, toy_model_file):
    monkeypatch.chdir(tmp_path)
    shutil.copy(test_file("feff", "Si_diamond", "xmu.dat"), "xmu.dat")
    (tmp_path / "feff_task.json").write_text(json.dumps({"spectrum": [], "dir_name": str(tmp_path)}))
    action = ClassifyXANESTask(model=toy_model_file).run_task({})
    result = json.loads((tmp_path / RESULT_FILE).read_text())
    assert result["state"] == "successful" and result["label"] == action.stored_data["xanes_label"]
    assert json.loads((tmp_path / "feff_task.json").read_text())["xanes_classification"]["label"] == result["label"]


def test_classify_task_records_bad_spectrum(tmp_path, monkeypatch, toy_model_file):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "xmu.dat").write_text("# nothing here\n")
    task = {"keep": "me"}
    (tmp_path / "feff_task.json").write_text(json.dumps(task))
    action = ClassifyXANESTask(model=toy_model_file).run_task({})
    assert action.stored_data["state"] == "failed"
    result = json.loads((tmp_path / RESULT_FILE).read_text())
    assert "no data rows" in result["error"]
    assert json.loads((tmp_path / "feff_task.json").read_text())["keep"] == "me"  # task document kept


@pytest.mark.server
def test_end_to_end_fireworks(tmp_path, monkeypatch, toy_model_file):
    """LaunchPad on a MongoDB-protocol server; rapidfire runs a real (small) FEFF10 calculation."""
    from pymatgen_xanes_nn.pipeline.server import mongo_server

    with mongo_server() as uri:
        host, port = uri.split("//")[1].split("/")[0].split(":")
        lp = LaunchPad(host=host, port=int(port), name="fw_e2e")
        lp.reset("", require_password=False)
        db_file = tmp_path / "db.json"
        db_file.write_text(json.dumps({"host": host, "port": int(port), "database": "feff", "collection": "tasks"}))
        wf = get_wf_xanes_classified(diamond_si(), settings="tiny", model=toy_model_file, db_file=str(db_file))
        # and a firework whose FEFF input is broken: it must fizzle with the error
        bad = Firework([FileWriteTask(files_to_write=[{"filename": "feff.inp", "contents": "NOT A FEFF INPUT\n"}]),
                        RunFeff10()], name="broken-feff")
        lp.add_wf(wf)
        lp.add_wf(Workflow([bad]))
        launch_dir = tmp_path / "launches"
        launch_dir.mkdir()
        monkeypatch.chdir(launch_dir)
        rapidfire(lp, nlaunches=2)
        states = {fw["name"]: fw["state"] for fw in lp.fireworks.find({}, {"name": 1, "state": 1})}
        assert states["broken-feff"] == "FIZZLED"
        assert [s for n, s in states.items() if n != "broken-feff"] == ["COMPLETED"]
        db = pymongo.MongoClient(uri)["feff"]
        task = db["tasks"].find_one()
        assert task["absorbing_atom"] == 0 and len(task["spectrum"]) > 20
        cls = db["xanes_classifications"].find_one()
        assert cls["state"] == "successful" and cls["task_id"] == task["task_id"]
        assert {"label", "probabilities", "confidence", "ood", "model_version"} <= set(cls)
        assert task["xanes_classification"]["label"] == cls["label"]
        fizzled = lp.fireworks.find_one({"name": "broken-feff"})
        launch = lp.launches.find_one({"launch_id": fizzled["launches"][-1]})
        assert "FEFF failed" in json.dumps(launch["action"]["stored_data"])
        os.chdir(tmp_path)


def test_the_readme_atomate_block_runs_as_written(tmp_path, monkeypatch):
    """The README's atomate block, verbatim but for the server's port: a real FEFF10 run, classified."""
    import re

    from pymatgen_xanes_nn.pipeline.server import mongo_server

    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    block = re.search(r"\*\*atomate\*\*.*?```python\n(.*?)```", readme, flags=re.S).group(1)
    assert "port=27017" in block and "rapidfire(launchpad)" in block
    monkeypatch.chdir(tmp_path)
    with mongo_server() as uri:
        port = uri.split("//")[1].split("/")[0].split(":")[1]
        exec(compile(block.replace("27017", port), "README.md", "exec"), {})  # noqa: S102 - our own README
        db = pymongo.MongoClient(uri)["feff"]
        cls = db["xanes_classifications"].find_one()
        assert cls["state"] == "successful" and cls["label"] == "Si-metallic"
        assert db["tasks"].find_one()["xanes_classification"]["label"] == "Si-metallic"


def test_an_unresolved_db_file_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(test_file("feff", "Si_diamond", "xmu.dat"), tmp_path / "xmu.dat")
    with pytest.raises(ValueError, match="my_fworker.yaml"):
        ClassifyXANESTask(db_file=">>db_file<<").run_task({})
