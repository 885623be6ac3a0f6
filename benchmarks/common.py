"""Shared by the benchmarks: where results go."""

from __future__ import annotations

import json
import os

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def stamp() -> dict:
    """What a result was measured on: dataset hash, commit, versions, machine load."""
    import hashlib
    import platform
    import subprocess
    from datetime import datetime, timezone
    from importlib.metadata import version

    from pymatgen_xanes_nn.io.tasks import TASKS_FILE
    from pymatgen_xanes_nn.paths import data_path

    with open(data_path(TASKS_FILE), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(RESULTS), check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"dataset": TASKS_FILE, "dataset_sha256": digest, "commit": commit,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "python": platform.python_version(),
            "versions": {p: version(p) for p in ("pymatgen-xanes-nn", "maggma", "numpy", "pymatgen")},
            "cpus": os.cpu_count(), "load_average_1min": os.getloadavg()[0]}


def write_results(name: str, res: dict) -> None:
    """Write ``benchmarks/results/<name>.json`` and print it."""
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, f"{name}.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res, indent=1))
