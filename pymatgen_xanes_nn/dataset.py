"""The shipped dataset: FEFF10 Si K-edge task documents and the structure corpus."""

from __future__ import annotations

import os

DATA_DIR = os.path.join(os.path.dirname(__file__), "data")


def data_path(name: str) -> str:
    """Return the path of a file shipped in ``pymatgen_xanes_nn/data``."""
    return os.path.join(DATA_DIR, name)


def _decode_datetimes(d: dict):
    """json object_hook: restore monty-encoded datetimes only (structures stay dicts)."""
    if d.get("@module") == "datetime" and d.get("@class") == "datetime":
        from monty.json import MontyDecoder

        return MontyDecoder().process_decoded(d)
    return d


def write_json_gz(obj, filename: str) -> None:
    """Write ``obj`` as gzipped JSON (datetimes and numpy arrays via monty's encoder)."""
    import gzip
    import json

    from monty.json import MontyEncoder

    with gzip.open(filename, "wt") as f:
        json.dump(obj, f, cls=MontyEncoder)


def read_json_gz(filename: str):
    """Read gzipped JSON written by :func:`write_json_gz`."""
    import gzip
    import json

    with gzip.open(filename, "rt") as f:
        return json.load(f, object_hook=_decode_datetimes)


#: The shipped FEFF10 task documents (atomate schema), structures stored once per material.
TASKS_FILE = "si_k_tasks.json.gz"
DATASET_FORMAT = "1"


def pack_tasks(docs: list[dict], filename: str) -> None:
    """Write task documents compactly: each structure once, documents sorted by ``task_id``."""
    structures: dict[str, dict] = {}
    tasks = []
    for doc in sorted(docs, key=lambda d: d["task_id"]):
        doc = dict(doc)
        sid = doc.get("metadata", {}).get("structure_id", doc["task_id"])
        structures.setdefault(sid, doc.pop("structure"))
        doc["structure_ref"] = sid
        tasks.append(doc)
    write_json_gz({"format": DATASET_FORMAT, "structures": structures, "tasks": tasks}, filename)


def load_tasks(filename: str | None = None, include_failed: bool = False) -> list[dict]:
    """Load task documents (default: the shipped dataset), with their structures restored.

    Args:
        filename: a file written by :func:`pack_tasks`.
        include_failed: also return documents of failed FEFF runs.
    """
    path = filename or data_path(TASKS_FILE)
    if not os.path.exists(path):
        return []
    packed = read_json_gz(path)
    if packed.get("format") != DATASET_FORMAT:
        raise ValueError(f"{path}: dataset format {packed.get('format')!r}, expected {DATASET_FORMAT!r}")
    docs = []
    for doc in packed["tasks"]:
        if not include_failed and doc.get("state") == "failed":
            continue
        doc = dict(doc)
        doc["structure"] = packed["structures"][doc.pop("structure_ref")]
        docs.append(doc)
    return docs
