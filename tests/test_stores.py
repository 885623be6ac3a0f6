"""The embedded stores answer as maggma's MemoryStore (mongomock) does, and the packed task store reads lazily."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta

import pytest
from maggma.stores import MemoryStore
from pymongo.errors import DuplicateKeyError

from pymatgen_xanes_nn.io.tasks import pack_tasks
from pymatgen_xanes_nn.pipeline.stores import DictStore, JSONFileStore, PackedTaskStore

from .conftest import task_docs

T0 = datetime(2026, 1, 1)


def _docs() -> list[dict]:
    docs = []
    for i in range(40):
        d = {"task_id": f"t{i:02d}" if i % 7 else i, "last_updated": T0 + timedelta(hours=i % 5),
             "state": "failed" if i % 6 == 0 else "successful", "structure_id": f"s{i // 3}",
             "n": i % 4, "tags": [f"g{i % 3}", "all"], "meta": {"cn": i % 3 + 4}}
        if i % 9 == 0:
            d["flag"] = i % 2 == 0  # booleans next to integers: True must not match 1
            d["n"] = True
        if i % 11 == 0:
            del d["structure_id"]
        docs.append(d)
    return docs


QUERIES = [
    {},
    {"task_id": "t05"},
    {"task_id": {"$in": ["t01", "t02", 7, "nope"]}},
    {"$and": [{"state": "successful"}, {"task_id": {"$in": ["t01", "t06", "t12", 14]}}]},
    {"state": "successful", "structure_id": {"$in": ["s1", "s2"]}},
    {"structure_id": None},
    {"n": 1},
    {"n": True},
    {"tags": "g1"},
    {"meta.cn": {"$gte": 5}},
    {"last_updated": {"$gt": T0 + timedelta(hours=2)}},
    {"$or": [{"n": 0}, {"last_updated": {"$not": {"$type": "date"}}}]},
    {"structure_id": {"$exists": False}},
]


@pytest.fixture
def both():
    ours, ref = DictStore("ours", key="task_id"), MemoryStore("ref", key="task_id")
    for s in (ours, ref):
        s.connect()
        s.ensure_index("structure_id")
        s.ensure_index("n")
    ours.load(_docs())
    ref._collection.insert_many(_docs())
    return ours, ref


def _ids(docs) -> list:
    return sorted(str(d["task_id"]) for d in docs)


@pytest.mark.parametrize("criteria", QUERIES, ids=[json.dumps(q, default=str)[:40] for q in QUERIES])
def test_queries_match_maggma_memory_store(both, criteria):
    ours, ref = both
    assert _ids(ours.query(criteria)) == _ids(ref.query(criteria))
    assert ours.count(criteria) == ref.count(criteria)


def test_projection_sort_limit_and_distinct_match(both):
    ours, ref = both
    kw = {"criteria": {"state": "successful"}, "properties": ["task_id", "meta.cn"], "sort": {"last_updated": -1},
          "limit": 5}
    strip = [{k: v for k, v in d.items() if k != "_id"} for d in ours.query(**kw)]
    assert strip == [{k: v for k, v in d.items() if k != "_id"} for d in ref.query(**kw)]
    assert sorted(ours.distinct("tags")) == sorted(ref.distinct("tags"))
    assert sorted(ours.distinct("structure_id", {"n": 2})) == sorted(ref.distinct("structure_id", {"n": 2}))


def test_update_upserts_and_copies(both):
    ours, _ = both
    doc = ours.query_one({"task_id": "t05"})
    doc["n"] = 99
    assert ours.query_one({"task_id": "t05"})["n"] != 99  # a query result is the caller's to edit
    ours.update([doc, dict(doc, n=100)])  # duplicates in one call: the last wins
    assert ours.count({"task_id": "t05"}) == 1 and ours.query_one({"task_id": "t05"})["n"] == 100
    assert ours.count({"n": 100}) == 1  # the secondary index followed the change
    ours.remove_docs({"n": 100})
    assert ours.count({"task_id": "t05"}) == 0
    with pytest.raises(KeyError, match="task_id"):
        ours.update([{"x": 1}])


def test_unique_index_refuses_a_second_document():
    store = DictStore(key="task_id")
    store.connect()
    store.load([{"task_id": "a"}])
    assert store.ensure_index("task_id", unique=True)
    with pytest.raises(DuplicateKeyError, match="'a'"):
        store.load([{"task_id": "a"}])
    store.update([{"task_id": "a", "x": 2}])  # an upsert replaces
    assert store.query_one({"task_id": "a"})["x"] == 2


def test_json_file_store_persists_dates_and_never_rewrites_on_connect(tmp_path):
    path = str(tmp_path / "out.json")
    store = JSONFileStore(path, key="task_id")
    store.connect()
    store.update([{"task_id": "a", "last_updated": T0, "x": [1.5, 2.5]}])
    mtime = os.stat(path).st_mtime_ns
    again = JSONFileStore(path, key="task_id")
    again.connect()
    assert os.stat(path).st_mtime_ns == mtime
    doc = again.query_one({"task_id": "a"})
    assert doc["last_updated"] == T0 and doc["x"] == [1.5, 2.5]
    assert again.count({"last_updated": {"$gte": T0}}) == 1


def test_packed_store_answers_keys_from_its_index_and_notices_a_new_file(tmp_path):
    docs = task_docs()
    path = str(tmp_path / "tasks.json.gz")
    pack_tasks(docs, path)
    first = PackedTaskStore(path, index_dir=str(tmp_path / "out"))
    first.connect()
    assert first._loaded and (tmp_path / "out" / "tasks_index.json").exists()
    second = PackedTaskStore(path, index_dir=str(tmp_path / "out"))
    second.connect()
    keys = sorted(d["task_id"] for d in second.query({}, properties=["task_id", "last_updated"]))
    assert keys == sorted(d["task_id"] for d in docs) and not second._loaded  # the file was not parsed
    assert second.query_one({"task_id": keys[0]})["spectrum"]  # a full query loads the documents
    assert second._loaded
    pack_tasks(docs[:2], path)  # another dataset under the same name: the index is stale
    third = PackedTaskStore(path, index_dir=str(tmp_path / "out"))
    third.connect()
    assert third._loaded and third.count() == 2
    with pytest.raises(TypeError, match="read-only"):
        third.update([{"task_id": "x"}])


def _write_many(path: str, prefix: str, n: int) -> None:
    store = JSONFileStore(path)
    store.connect()
    for i in range(n):
        store.update([{"task_id": f"{prefix}-{i}", "value": i}])


def test_two_writers_of_one_file_lose_nothing(tmp_path):
    path = str(tmp_path / "out" / "spectra.json")
    first, second = JSONFileStore(path), JSONFileStore(path)
    first.connect()
    second.connect()  # both read the (empty) folder before either writes, as two runs started together do
    first.update([{"task_id": f"a{i}", "run": 1} for i in range(3)])
    second.update([{"task_id": f"b{i}", "run": 2} for i in range(3)])
    first.update([{"task_id": "a0", "run": 1, "again": True}])
    second.remove_docs({"task_id": "b2"})
    again = JSONFileStore(path)
    again.connect()
    assert {d["task_id"] for d in again.query()} == {"a0", "a1", "a2", "b0", "b1"}
    assert again.query_one({"task_id": "a0"})["again"] is True


def test_concurrent_processes_writing_one_file_lose_nothing(tmp_path):
    import multiprocessing

    path = str(tmp_path / "spectra.json")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_many, args=(path, p, 40)) for p in ("x", "y", "z")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = JSONFileStore(path)
    store.connect()
    assert store.count() == 120
