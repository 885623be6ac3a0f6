"""FEFF throughput with one and with two concurrent FEFF processes (FEFF10 is serial).

    python benchmarks/bench_feff_workers.py [--sites 8] [--settings dataset]

Runs the same ``--sites`` smallest corpus sites with ``n_workers=1`` and ``n_workers=2`` and reports
the wall times, sites per hour and the speed-up (the baseline: one worker, same sites, same run). Run it
on an otherwise idle machine: the stamp records the load average.
Writes ``benchmarks/results/feff_workers.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from common import stamp, write_results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sites", type=int, default=8)
    parser.add_argument("--settings", default="dataset")
    args = parser.parse_args()

    from pymatgen_xanes_nn.datagen.corpus import load_corpus
    from pymatgen_xanes_nn.datagen.simulate import DirectorySink, jobs_from_corpus, simulate

    jobs = sorted(jobs_from_corpus(load_corpus()), key=lambda j: (len(j.structure["sites"]), j.task_id))
    jobs = jobs[: args.sites]
    res: dict = {"stamp": stamp(), "sites": [j.task_id for j in jobs], "settings": args.settings,
                 "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            sink = DirectorySink(os.path.join(tmp, f"w{workers}"))
            t = time.perf_counter()
            counts = simulate(jobs, sink, settings=args.settings, n_workers=workers, scratch=tmp, progress=False)
            res[f"wall_s_{workers}_workers"] = time.perf_counter() - t
            res[f"counts_{workers}_workers"] = counts
    res["speedup"] = res["wall_s_1_workers"] / res["wall_s_2_workers"]
    for workers in (1, 2):
        res[f"sites_per_hour_{workers}_workers"] = len(jobs) * 3600 / res[f"wall_s_{workers}_workers"]
    write_results("feff_workers", res)


if __name__ == "__main__":
    main()
