"""Packed FEFF task documents: one file per collection or its shards (written once, never rewritten)."""

from __future__ import annotations

import os
from typing import Any

from pymatgen_xanes_nn.errors import InputError
from pymatgen_xanes_nn.jsonio import PYMATGEN_CLASSES, iter_directory, read_json, write_json
from pymatgen_xanes_nn.paths import DATA_DIR, data_path

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
    write_json({"format": DATASET_FORMAT, "structures": structures, "tasks": tasks}, filename)


def load_tasks(filename: str | None = None, include_failed: bool = False, derived: bool | None = None) -> list[dict]:
    """Load task documents (default: the whole shipped dataset, real and derived), with their structures restored.

    Args:
        filename: a file written by :func:`pack_tasks` (default: the shipped real crystals, :data:`TASKS_FILE`).
        include_failed: also return documents of failed FEFF runs.
        derived: also the spectra of the relaxed substitution-derived structures (:data:`DERIVED_RELAXED_TASKS_FILE`,
            ``metadata.source = "derived"``), after the others: training data only, never in a test fold
            (:func:`~pymatgen_xanes_nn.labels.training_only`). Default: yes for the shipped dataset, no for a file.
    """
    if derived is None:
        derived = filename is None
    if derived:
        return (load_tasks(filename, include_failed, derived=False)
                + load_tasks(data_path(DERIVED_RELAXED_TASKS_FILE), include_failed, derived=False))
    path = filename or data_path(TASKS_FILE)
    if not os.path.exists(path):
        return []
    packed = read_json(path, allowed=None)  # plain data; class markers are checked per document below
    if not (isinstance(packed, dict) and isinstance(packed.get("tasks"), list)
            and isinstance(packed.get("structures"), dict)):
        raise InputError(f"{path}: not a packed dataset (a JSON object with 'format', 'structures' and 'tasks', "
                         "as `xanes-nn pack` writes)")
    if packed.get("format") != DATASET_FORMAT:
        raise InputError(f"{path}: dataset format {packed.get('format')!r}, expected {DATASET_FORMAT!r}")
    structures, docs = packed["structures"], []
    safe_structures: dict[str, str | None] = {}  # structure id -> why it is unusable (None: usable)
    for doc in packed["tasks"]:
        if not isinstance(doc, dict) or not isinstance(doc.get("task_id"), (str, int)):
            continue  # nothing identifies it: it cannot even be recorded as failed
        doc = dict(doc)
        ref = doc.pop("structure_ref", None)
        problem = _unsafe(doc, f"task {doc['task_id']}")
        if problem is None:
            if not isinstance(ref, str) or ref not in structures:
                problem = f"structure_ref {ref!r} names no structure in the file"
            else:
                if ref not in safe_structures:
                    safe_structures[ref] = _unsafe(structures[ref], f"structure {ref}")
                problem = safe_structures[ref]
        if problem is not None:  # one bad document is recorded as failed; the others still build
            failed = {"task_id": doc["task_id"], "state": "failed", "error": f"malformed task document: {problem}"}
            if "last_updated" in doc and not isinstance(doc["last_updated"], dict):
                failed["last_updated"] = doc["last_updated"]
            doc = failed
        else:
            doc["structure"] = structures[ref]
        if include_failed or doc.get("state") != "failed":
            docs.append(doc)
    return docs


def _unsafe(obj: dict, where: str) -> str | None:
    """Why a document may not reach pymatgen (a class marker outside the allow-list), or None."""
    from pymatgen_xanes_nn.jsonio import UnsafeDocumentError, check_classes

    try:
        check_classes(obj, PYMATGEN_CLASSES, where=where)
    except UnsafeDocumentError as exc:
        return str(exc)
    return None


#: Data grows in shard files, each written once and never rewritten (the repository's history must stay small):
#: a collection is its base file ``data/<name>.json.gz`` (if any) plus ``data/shards/<name>/NNNN.json.gz``.
SHARDS_DIR = "shards"


def shard_files(collection: str, data_dir: str = DATA_DIR) -> list[str]:
    """The shard files of ``collection`` in the order they were written."""
    folder = os.path.join(data_dir, SHARDS_DIR, collection)
    if not os.path.isdir(folder):
        return []
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".json.gz")]


def _merge(docs: dict[str, dict], new: list[dict]) -> None:
    """Add ``new`` to ``docs`` by task id; a failed document never replaces a successful one."""
    for doc in new:
        if doc.get("state") == "failed" and docs.get(doc["task_id"], {}).get("state", "failed") != "failed":
            continue
        docs[doc["task_id"]] = doc


def load_collection(collection: str, include_failed: bool = False, data_dir: str = DATA_DIR) -> list[dict]:
    """Task documents of a collection: its base file, then its shards (later successful documents win).

    Args:
        collection: the collection's name, e.g. ``"si_k_tasks_physics"``.
        include_failed: also return documents of failed FEFF runs.
        data_dir: where the base file and ``shards/`` live (default: the package's data).
    """
    docs: dict[str, dict] = {}
    base = os.path.join(data_dir, f"{collection}.json.gz")
    for path in ([base] if os.path.exists(base) else []) + shard_files(collection, data_dir):
        _merge(docs, load_tasks(path, include_failed=True, derived=False))
    return [d for d in docs.values() if include_failed or d.get("state") != "failed"]


def write_shard(directories: list[str], collection: str, data_dir: str = DATA_DIR) -> dict[str, Any]:
    """Pack the finished documents of ``directories`` that ``collection`` lacks into its next shard file.

    A document is new when its task id is not in the collection, or is stored failed and now succeeded. Existing
    files are never touched (the new shard is created exclusively).

    Returns:
        ``shard`` (the file written, or None when nothing was new), ``documents`` and ``successful`` in it.
    """
    stored = {d["task_id"]: d.get("state") for d in load_collection(collection, include_failed=True,
                                                                     data_dir=data_dir)}
    new: dict[str, dict] = {}
    for directory in directories:
        docs = [doc for _, doc in iter_directory(directory, PYMATGEN_CLASSES)]
        keyless = [doc for doc in docs if not isinstance(doc, dict) or not isinstance(doc.get("task_id"), str)]
        if keyless:
            raise InputError(f"{directory}: {len(keyless)} documents have no task_id string; a shard needs one per "
                             "document")
        _merge(new, docs)
    new = {k: d for k, d in new.items()
           if k not in stored or (stored[k] == "failed" and d.get("state") != "failed")}
    out: dict[str, Any] = {"shard": None, "documents": len(new),
                           "successful": sum(d.get("state") != "failed" for d in new.values())}
    if not new:
        return out
    existing = shard_files(collection, data_dir)
    index = int(os.path.basename(existing[-1]).split(".")[0]) + 1 if existing else 1
    path = os.path.join(data_dir, SHARDS_DIR, collection, f"{index:04d}.json.gz")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "x"):  # claim the name: a shard is never overwritten
        pass
    pack_tasks(list(new.values()), path)
    out["shard"] = path
    return out


#: Task documents of the substitution-derived structures (pymatgen_xanes_nn.datagen.derive), packed like the real ones.
DERIVED_TASKS_FILE = "si_k_tasks_derived.json.gz"
#: The same structures relaxed with CHGNet first (``xanes-nn relax-corpus``; the relaxation study chose it): the
#: derived spectra that training uses.
DERIVED_RELAXED_TASKS_FILE = "si_k_tasks_derived_relaxed.json.gz"
#: Al, P and S K edges of a few corpus structures (``xanes-nn simulate --absorber``): far OOD test spectra.
OTHER_EDGES_FILE = "other_k_edges.json.gz"
