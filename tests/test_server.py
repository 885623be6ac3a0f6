"""Integration: the builders and mrun against a real MongoDB-protocol server (secantusdb)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pymongo
import pytest
from maggma.stores import MongoStore

from pymatgen_xanes_nn.io.tasks import pack_tasks
from pymatgen_xanes_nn.pipeline.builders import STAGES, pipeline
from pymatgen_xanes_nn.pipeline.server import free_port, mongo_server

from .conftest import task_docs

pytestmark = pytest.mark.server
ROOT = os.path.join(os.path.dirname(__file__), "..")
MRUN = shutil.which("mrun") or os.path.join(os.path.dirname(sys.executable), "mrun")


@pytest.fixture(scope="module")
def server():
    with mongo_server() as uri:
        yield uri


@pytest.fixture
def db(server, request):
    name = f"t_{request.node.name}"[:60].replace("[", "_").replace("]", "_")
    client = pymongo.MongoClient(server)
    client.drop_database(name)
    client.drop_database(f"{name}_out")
    client[name]["tasks"].insert_many(task_docs())
    yield name
    client.drop_database(name)
    client.drop_database(f"{name}_out")


def test_builders_on_server(server, db, toy_model_file):
    tasks = MongoStore.from_uri(server, "tasks", database=db, key="task_id")
    names = {"spectra": "task_id", "materials": "structure_id", "cls": "task_id", "mcls": "structure_id"}
    out = {n: MongoStore.from_uri(server, n, database=f"{db}_out", key=k) for n, k in names.items()}
    builders = pipeline(tasks, out["spectra"], out["materials"], out["cls"], out["mcls"], model=toy_model_file)
    for b in builders:
        b.run()
    client = pymongo.MongoClient(server)
    assert client[f"{db}_out"]["spectra"].count_documents({"state": "successful"}) == len(task_docs())
    assert client[f"{db}_out"]["cls"].count_documents({}) == len(task_docs())
    assert client[f"{db}_out"]["mcls"].count_documents({}) == 3
    # indexes were made, and an unchanged rerun has nothing to do
    assert "task_id_1" in client[f"{db}_out"]["spectra"].index_information()
    for b in pipeline(tasks, out["spectra"], out["materials"], out["cls"], out["mcls"], model=toy_model_file):
        b.connect()
        assert list(b.get_items()) == []


def _mrun(args, env_extra, cwd):
    env = dict(os.environ, **env_extra)
    return subprocess.run([MRUN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("workers", [1, 2])
def test_mrun_against_server(server, db, toy_model_file, workers, tmp_path):
    args = ["builders/xanes.py"] if workers == 1 else ["-n", "2", "builders/xanes.py"]
    env = {"XANES_NN_MONGO_URI": server, "XANES_NN_TASKS_DB": db, "XANES_NN_DB": f"{db}_out",
           "XANES_NN_MODEL": toy_model_file}
    res = _mrun(args, env, ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    out = pymongo.MongoClient(server)[f"{db}_out"]
    assert out["xanes_classifications"].count_documents({"state": "successful"}) == len(task_docs())
    assert out["xanes_material_classifications"].count_documents({}) == 3


def _collections(client, database: str) -> dict:
    """What a build wrote: per collection, key -> (state, label, task_ids)."""
    keys = {"spectra": "task_id", "materials": "structure_id", "classifications": "task_id",
            "material_classifications": "structure_id"}
    return {stage: {d[key]: (d.get("state"), d.get("label"), d.get("task_ids"))
                    for d in client[database][f"xanes_{stage}"].find()} for stage, key in keys.items()}


def test_distributed_mode_matches_a_serial_run(server, db, toy_model_file):
    """maggma's manager and two workers over ZMQ, one stage per manager run, build what a serial run builds."""
    base = {"XANES_NN_MONGO_URI": server, "XANES_NN_TASKS_DB": db, "XANES_NN_MODEL": toy_model_file,
            "MAGGMA_MANAGER_TIMEOUT": "120"}
    res = _mrun(["builders/xanes.py"], {**base, "XANES_NN_DB": f"{db}_out"}, ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    client = pymongo.MongoClient(server)
    dist = f"{db}_dist"
    client.drop_database(dist)
    try:
        for stage in STAGES:
            # maggma's manager sends EXIT to every worker once a builder's chunks are out: one stage per run
            port = str(free_port())
            env = dict(os.environ, **base, XANES_NN_DB=dist, XANES_NN_STAGES=stage)
            url = ["--url", "tcp://127.0.0.1", "-p", port]
            procs = [subprocess.Popen([MRUN, "-N", "3", "-w", "2", *url, "builders/xanes.py"], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
            procs += [subprocess.Popen([MRUN, *url, "builders/xanes.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True) for _ in range(2)]
            try:
                outputs = [p.communicate(timeout=300)[0] for p in procs]
            finally:
                for p in procs:
                    p.kill()
            assert [p.returncode for p in procs] == [0, 0, 0], f"{stage}: {outputs[0][-2000:]}"
            assert "At least one worker has stopped" not in outputs[0]
            chunks = re.findall(r"Completed chunks for \w+: 100%.*?\| (\d+)/\1", outputs[0])
            assert chunks and int(chunks[-1]) >= 2, outputs[0][-2000:]  # the work was split
        serial, distributed = _collections(client, f"{db}_out"), _collections(client, dist)
        assert all(serial[stage] for stage in STAGES)
        assert distributed == serial
        assert len(serial["material_classifications"]) == 3
    finally:
        client.drop_database(dist)


def test_mrun_embedded_default(tmp_path, toy_model_file):
    pack_tasks(task_docs(), str(tmp_path / "tasks.json.gz"))
    env = {"XANES_NN_TASKS_FILE": str(tmp_path / "tasks.json.gz"), "XANES_NN_OUTPUT": str(tmp_path / "out"),
           "XANES_NN_MODEL": toy_model_file}
    env.pop("XANES_NN_MONGO_URI", None)
    res = _mrun(["builders/xanes.py"], env, ROOT)  # mrun loads builder files below the working directory
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "out" / "xanes_classifications.json").exists()


def test_load_tasks_into_a_server(server, tmp_path, capsys):
    from pymatgen_xanes_nn.cli import main

    docs = task_docs()
    pack_tasks(docs, str(tmp_path / "tasks.json.gz"))
    args = ["load-tasks", server, "--database", "t_load", "--datasets", str(tmp_path / "tasks.json.gz")]
    client = pymongo.MongoClient(server)
    client.drop_database("t_load")
    try:
        assert main(args) == 0 and main(args) == 0  # twice: an upsert, no duplicates
        coll = client["t_load"]["tasks"]
        assert coll.count_documents({}) == len(docs)
        assert sorted(coll.distinct("task_id")) == sorted(d["task_id"] for d in docs)
        assert f"{len(docs)} in the collection" in capsys.readouterr().out
        # the index that makes each upsert a lookup, not a scan (153 s -> 3.3 s for the shipped documents)
        assert any(ix["key"] == [("task_id", 1)] and ix.get("unique") for ix in coll.index_information().values())
    finally:
        client.drop_database("t_load")
    with pytest.raises(SystemExit, match="did not answer"):
        main(["load-tasks", "mongodb://127.0.0.1:1/?directConnection=true"])


@pytest.mark.parametrize("var", ["XANES_NN_TASKS_DB", "XANES_NN_TASKS_COLLECTION"])
def test_misspelt_source(server, db, toy_model_file, var):
    from pymatgen_xanes_nn.pipeline.builders import ConfigurationError, pipeline_from_env

    env = {"XANES_NN_MONGO_URI": server, "XANES_NN_TASKS_DB": db, "XANES_NN_DB": f"{db}_out",
           "XANES_NN_MODEL": toy_model_file}
    assert len(pipeline_from_env(env)) == len(STAGES)  # the right names build
    env[var] = env[var] + "x" if var in env else "taskz"
    with pytest.raises(ConfigurationError, match="holds no task documents"):
        pipeline_from_env(env)
