"""``xanes-nn load-tasks`` into secantusdb: the shipped 1,014 task documents, upserted, against ``insert_many``.

    python benchmarks/bench_load_tasks.py

Baseline: ``insert_many`` of the same documents into an empty collection in the same run (no upsert possible).
Writes ``benchmarks/results/load_tasks.json``.
"""

from __future__ import annotations

import time

from common import stamp, write_results


def main() -> None:
    import pymongo

    from pymatgen_xanes_nn.io.tasks import load_tasks
    from pymatgen_xanes_nn.pipeline.server import mongo_server
    from pymatgen_xanes_nn.pipeline.stores import upsert_tasks

    docs = load_tasks(include_failed=True, derived=False)
    res: dict = {"stamp": stamp(), "server": "secantusdb", "n": len(docs), "seconds": {}}
    with mongo_server() as uri:
        coll = pymongo.MongoClient(uri)["bench"]["tasks"]
        t = time.perf_counter()
        coll.insert_many([dict(d) for d in docs], ordered=False)
        res["seconds"]["insert_many (baseline)"] = time.perf_counter() - t
        coll.drop()
        t = time.perf_counter()
        upsert_tasks(uri, "bench", "tasks", docs, progress=False)
        res["seconds"]["load-tasks (indexed upserts), first load"] = time.perf_counter() - t
        t = time.perf_counter()
        upsert_tasks(uri, "bench", "tasks", docs, progress=False)
        res["seconds"]["load-tasks again (every document replaced)"] = time.perf_counter() - t
    base = res["seconds"]["insert_many (baseline)"]
    res["ratio_to_baseline"] = {k: v / base for k, v in res["seconds"].items()}
    write_results("load_tasks", res)


if __name__ == "__main__":
    main()
