"""Training throughput: one job on every TensorFlow thread vs concurrent jobs on one thread each.

    python benchmarks/bench_training_threads.py [--epochs 4] [--spectra 600]

The Table I/II networks are small dense nets trained with batch 16: a step is dominated by per-step overhead,
not by arithmetic a second thread could share. The benchmark trains the same recipe (AE NN2 + FNN4, no calibration
folds) on the first ``--spectra`` environment spectra three ways, each in a fresh process:

* baseline: one job, TensorFlow's default threads (all cores);
* one job with ``TF_NUM_INTRAOP_THREADS=1``;
* as many concurrent one-thread jobs as there are cores.

Reports wall times and the throughput of each way as a ratio to the baseline (jobs per second). Run it on an
otherwise idle machine: the stamp records the load average. Writes ``benchmarks/results/training_threads.json``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from common import stamp, write_results

ONE_THREAD = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}


def child(epochs: int, n_spectra: int) -> None:
    """One training job (run in its own process so its thread settings take effect)."""
    from pymatgen_xanes_nn.training.fit import TrainingConfig, dataset_for_scheme, train

    data = dataset_for_scheme("environment")[0].labelled().subset(range(n_spectra))
    config = TrainingConfig(ae_epochs=epochs, fnn_epochs=epochs, calibration_folds=0, augment_copies=0)
    train(data.x, data.labels, data.groups, config)


def run(n_jobs: int, env: dict[str, str], epochs: int, n_spectra: int) -> float:
    """Wall time (s) of ``n_jobs`` concurrent training jobs."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--epochs", str(epochs), "--spectra", str(n_spectra)]
    defaults = {k: v for k, v in os.environ.items() if k not in ONE_THREAD}  # the baseline: TensorFlow's defaults
    t = time.perf_counter()
    procs = [subprocess.Popen(cmd, env={**defaults, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(n_jobs)]
    if any(p.wait() for p in procs):
        raise RuntimeError("a training job failed; run it with --child to see why")
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--spectra", type=int, default=600)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.epochs, args.spectra)
        return
    cores = os.cpu_count() or 1
    res: dict = {"stamp": stamp(), "epochs": args.epochs, "spectra": args.spectra, "cores": cores}
    res["wall_s_one_job_default_threads"] = run(1, {}, args.epochs, args.spectra)
    res["wall_s_one_job_one_thread"] = run(1, ONE_THREAD, args.epochs, args.spectra)
    res[f"wall_s_{cores}_jobs_one_thread"] = run(cores, ONE_THREAD, args.epochs, args.spectra)
    baseline_rate = 1 / res["wall_s_one_job_default_threads"]  # jobs per second
    res["throughput_ratio_one_thread"] = (1 / res["wall_s_one_job_one_thread"]) / baseline_rate
    res[f"throughput_ratio_{cores}_jobs_one_thread"] = (cores / res[f"wall_s_{cores}_jobs_one_thread"]) / baseline_rate
    write_results("training_threads", res)


if __name__ == "__main__":
    main()
