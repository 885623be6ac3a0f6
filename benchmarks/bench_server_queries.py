"""Which incremental-selection queries a MongoDB-protocol server answers from its index, and at what cost.

    python benchmarks/bench_server_queries.py [--n 2000]

On ``--n`` synthetic task documents (as in bench_builders.py) with an index on ``last_updated``, times a
projected read of every key (what an exhaustive incremental check costs: the baseline) and the fast-mode
criteria with nothing new to build. Writes ``benchmarks/results/server_queries.json``.
"""

from __future__ import annotations

import argparse
import time

from bench_builders import synthetic_tasks
from common import stamp, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()

    import pymongo

    from pymatgen_xanes_nn.pipeline.server import mongo_server

    docs = synthetic_tasks(args.n)
    newest = max(d["last_updated"] for d in docs).replace(tzinfo=None)
    lu = "last_updated"
    queries = {
        "every key, projected (baseline)": {},
        "newer than the newest built ($gt, indexed)": {lu: {"$gt": newest}},
        "$gt or not a date (the builders' fast mode)": {"$or": [{lu: {"$gt": newest}},
                                                               {lu: {"$not": {"$type": "date"}}}]},
        "$gt or null or a non-date type": {"$or": [{lu: {"$gt": newest}}, {lu: None},
                                                   {lu: {"$type": ["string", "number", "object", "array", "bool"]}}]},
    }
    res: dict = {"stamp": stamp(), "server": "secantusdb", "n": args.n, "seconds": {}, "documents": {}}
    with mongo_server() as uri:
        coll = pymongo.MongoClient(uri, connectTimeoutMS=600_000, serverSelectionTimeoutMS=600_000)["feff"]["tasks"]
        coll.insert_many(docs)
        coll.create_index(lu)
        coll.create_index("task_id")
        for name, query in queries.items():
            t = time.perf_counter()
            res["documents"][name] = len(list(coll.find(query, {"task_id": 1, lu: 1})))
            res["seconds"][name] = time.perf_counter() - t
    write_results("server_queries", res)


if __name__ == "__main__":
    main()
