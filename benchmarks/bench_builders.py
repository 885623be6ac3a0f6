"""Builder speed, each figure next to a baseline measured in the same run.

    python benchmarks/bench_builders.py [--n 10000] [--model si_k_chemsys] [--parts embedded stores server]

1. The embedded default as a user runs it (``mrun builders/xanes.py``, no server, shipped dataset): a fresh
   process for the first run and one for an unchanged rerun. Baseline: plain reading of the tasks file
   (``json.load`` of the gzipped dataset). Targets: first run <= 15 s, unchanged rerun <= 2 s.
2. The store behind the embedded default, chosen by measurement: the four builders in one process on the
   shipped dataset, first run (tasks loaded included) and unchanged rerun, for our ``JSONFileStore`` /
   ``PackedTaskStore``, maggma's ``MemoryStore`` (mongomock, bulk ``insert_many``), maggma's ``MontyStore``
   (montydb, sqlite; only if montydb is installed) and secantusdb started as a child process.
3. ``--n`` task documents (shipped spectra with energy jitter and new ids) on secantusdb: spectrum +
   classification builders against ``insert_many`` of the same documents (target <= 1.3x); unchanged reruns,
   exhaustive and ``exhaustive=False`` (target <= 2 s).
Writes ``benchmarks/results/builders.json``, stamped with the dataset hash.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import logging
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from common import stamp, write_results

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def synthetic_tasks(n: int, seed: int = 0) -> list[dict]:
    from pymatgen_xanes_nn.io.tasks import load_tasks

    base = load_tasks()
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        d = copy.deepcopy(base[i % len(base)])
        rows = np.asarray(d["spectrum"])
        rows[:, 0] += rng.normal(0, 0.2)
        d["spectrum"] = rows.tolist()
        d["task_id"] = f"bench-{i:06d}"
        d["metadata"] = dict(d["metadata"], structure_id=f"{d['metadata']['structure_id']}-b{i // len(base)}")
        docs.append(d)
    return docs


def plain_read_s() -> float:
    from pymatgen_xanes_nn.io.tasks import TASKS_FILE
    from pymatgen_xanes_nn.paths import data_path

    t = time.perf_counter()
    with gzip.open(data_path(TASKS_FILE), "rt") as f:
        json.load(f)
    return time.perf_counter() - t


def embedded_default(model: str) -> dict:
    """Wall times of ``mrun builders/xanes.py`` in fresh processes, as a user sees them."""
    mrun = os.path.join(os.path.dirname(sys.executable), "mrun")
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, XANES_NN_OUTPUT=os.path.join(tmp, "out"), XANES_NN_MODEL=model)
        for label in ("first_run_s", "unchanged_rerun_s"):
            t = time.perf_counter()
            subprocess.run([mrun, "--no_bars", "builders/xanes.py"], cwd=ROOT, env=env, check=True,
                           capture_output=True)
            res[label] = time.perf_counter() - t
        res["classified"] = len(json.load(open(os.path.join(tmp, "out", "xanes_classifications.json"))))
    return res


def _pipeline_times(tasks_factory, out_factory, model: str) -> dict:
    """First run (tasks loaded included) and unchanged rerun of the four builders, in this process."""
    from pymatgen_xanes_nn.pipeline.builders import pipeline

    t = time.perf_counter()
    tasks = tasks_factory()
    out = {n: out_factory(n, k) for n, k in (("spectra", "task_id"), ("materials", "structure_id"),
                                            ("classifications", "task_id"), ("mclass", "structure_id"))}
    times = {}
    for label in ("first_run_s", "unchanged_rerun_s"):
        for b in pipeline(tasks, out["spectra"], out["materials"], out["classifications"], out["mclass"],
                          model=model):
            b.run(log_level=logging.WARNING)
        times[label] = time.perf_counter() - t
        t = time.perf_counter()
    out["classifications"].connect()
    times["classified"] = out["classifications"].count({"state": "successful"})
    return times


def store_choice(model: str) -> dict:
    from maggma.stores import MemoryStore, MongoStore

    from pymatgen_xanes_nn.io.tasks import load_tasks
    from pymatgen_xanes_nn.pipeline.server import mongo_server
    from pymatgen_xanes_nn.pipeline.stores import JSONFileStore, PackedTaskStore

    def loaded(store):
        store.connect()
        store._collection.insert_many(load_tasks(include_failed=True, derived=False))
        return store

    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        res["dict_json_files (ours)"] = _pipeline_times(
            lambda: PackedTaskStore(index_dir=tmp), lambda n, k: JSONFileStore(os.path.join(tmp, f"{n}.json"), key=k),
            model)
        res["maggma MemoryStore (mongomock)"] = _pipeline_times(
            lambda: loaded(MemoryStore("tasks", key="task_id")), lambda n, k: MemoryStore(n, key=k), model)
        try:
            import montydb  # noqa: F401
            from maggma.stores import MontyStore

            monty_dir = os.path.join(tmp, "monty")
            os.makedirs(monty_dir)
            res["maggma MontyStore (montydb sqlite)"] = _pipeline_times(
                lambda: loaded(MontyStore("tasks", database_path=monty_dir, key="task_id")),
                lambda n, k: MontyStore(n, database_path=monty_dir, key=k), model)
        except ImportError:
            res["maggma MontyStore (montydb sqlite)"] = "montydb not installed"
        except NotImplementedError as exc:  # a store the builders cannot run on at all is a result too
            res["maggma MontyStore (montydb sqlite)"] = f"fails: NotImplementedError: {exc}"
        t = time.perf_counter()
        with mongo_server() as uri:
            started = time.perf_counter() - t

            def mongo(n, k):
                return MongoStore.from_uri(uri, n, database="bench", key=k)

            times = _pipeline_times(lambda: loaded(mongo("tasks", "task_id")), mongo, model)
        times["first_run_s"] += started
        times["server_start_s"] = started
        res["secantusdb child process"] = times
    return res


def on_server(n: int, model: str) -> dict:
    import pymongo
    from maggma.stores import MongoStore

    from pymatgen_xanes_nn.pipeline.builders import ClassificationBuilder, SpectrumBuilder
    from pymatgen_xanes_nn.pipeline.server import mongo_server

    def mongo_store(uri: str, collection: str, database: str) -> MongoStore:
        # secantusdb answers no heartbeat while it serves a long query on a loaded machine: pymongo's default
        # 20 s monitor timeout then cancels the query, so the benchmark waits longer than users need to
        patient = {"serverSelectionTimeoutMS": 600_000, "connectTimeoutMS": 600_000}
        return MongoStore.from_uri(uri, collection, database=database, key="task_id", mongoclient_kwargs=patient)

    res: dict = {"n": n}
    docs = synthetic_tasks(n)
    with mongo_server() as uri:
        client = pymongo.MongoClient(uri, connectTimeoutMS=600_000, serverSelectionTimeoutMS=600_000)
        t = time.perf_counter()
        client["raw"]["tasks"].insert_many(copy.deepcopy(docs))
        res["insert_many_s"] = time.perf_counter() - t
        client["feff"]["tasks"].insert_many(docs)
        tasks = mongo_store(uri, "tasks", "feff")
        spectra = mongo_store(uri, "xanes_spectra", "xanes_nn")
        classes = mongo_store(uri, "xanes_classifications", "xanes_nn")
        for label, exhaustive in (("builders_s", True), ("unchanged_rerun_s", True),
                                  ("unchanged_rerun_fast_s", False)):
            t = time.perf_counter()
            for b in (SpectrumBuilder(tasks, spectra, exhaustive=exhaustive),
                      ClassificationBuilder(spectra, classes, model=model, exhaustive=exhaustive)):
                b.run(log_level=logging.WARNING)
                res[f"{label}_{type(b).__name__}"] = time.perf_counter() - t
            res[label] = time.perf_counter() - t
        res["classified"] = client["xanes_nn"]["xanes_classifications"].count_documents({"state": "successful"})
    res["builders_over_insert_many"] = res["builders_s"] / res["insert_many_s"]
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--model", default="si_k_chemsys")
    parser.add_argument("--parts", nargs="+", default=["embedded", "stores", "server"],
                        choices=["embedded", "stores", "server"],
                        help="what to measure; other parts keep their earlier (stamped) results")
    args = parser.parse_args()

    path = os.path.join(HERE, "results", "builders.json")
    old = json.load(open(path)) if os.path.exists(path) else {}
    res: dict = {part: old[part] for part in ("embedded_default", "store_choice", "server")
                 if part in old and isinstance(old[part], dict) and "stamp" in old[part]}
    if "embedded" in args.parts:
        emb = res["embedded_default"] = {"stamp": stamp(), "plain_read_of_tasks_file_s": plain_read_s(),
                                         **embedded_default(args.model)}
        emb["first_run_over_plain_read"] = emb["first_run_s"] / emb["plain_read_of_tasks_file_s"]
        emb["unchanged_rerun_over_plain_read"] = emb["unchanged_rerun_s"] / emb["plain_read_of_tasks_file_s"]
        emb["targets_met"] = {"first run <= 15 s": emb["first_run_s"] <= 15,
                              "unchanged rerun <= 2 s": emb["unchanged_rerun_s"] <= 2}
    if "stores" in args.parts:
        res["store_choice"] = {"stamp": stamp(), **store_choice(args.model)}
    if "server" in args.parts:
        srv = res["server"] = {"stamp": stamp(), **on_server(args.n, args.model)}
        srv["targets_met"] = {
            f"builders on {args.n} tasks <= 1.3x insert_many": srv["builders_over_insert_many"] <= 1.3,
            f"unchanged rerun on {args.n} tasks <= 2 s (exhaustive)": srv["unchanged_rerun_s"] <= 2,
            f"unchanged rerun on {args.n} tasks <= 2 s (exhaustive=False)": srv["unchanged_rerun_fast_s"] <= 2}
    write_results("builders", res)


if __name__ == "__main__":
    main()
