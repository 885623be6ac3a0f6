"""maggma builders: FEFF task documents -> interpolated spectra -> classifications (+ material spectra).

The pipeline (``mrun builders/xanes.py``):

    tasks (atomate FEFF schema)
      --SpectrumBuilder-->        xanes_spectra        one doc per task: 500-point spectrum, e0, provenance
      --MaterialSpectrumBuilder-> xanes_materials      multiplicity-weighted average per structure
      --ClassificationBuilder-->  xanes_classifications label, probabilities, confidence, OOD, latent

All builders are incremental on ``last_updated`` (maggma ``newer_in``), chunked, and never touch
the database inside the per-item function. A bad document becomes a ``state: "failed"`` document
with the error and the build goes on; ``retry_failed=True`` retries those.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
from maggma.builders import MapBuilder
from maggma.core import Builder
from maggma.stores import JSONStore, MemoryStore

from pymatgen_xanes_nn.preprocessing import DEFAULT_PREPROCESSING, Preprocessing, find_e0, resample_uniform

if TYPE_CHECKING:
    from collections.abc import Iterator

    from maggma.core import Store

#: Task-document metadata copied into every spectrum document (provenance).
PROVENANCE_FIELDS = (
    "structure_id", "source", "source_id", "mineral", "formula", "chemsys", "group_id", "multiplicity", "cn",
    "environment",
)


class _FastIncremental:
    """Opt-in cheap incremental runs for ``MapBuilder`` subclasses (``exhaustive=False``).

    maggma's ``MapBuilder`` compares every source key's ``last_updated`` with the target's
    (``newer_in(exhaustive=True)``): correct for any history, but it reads the whole source. With
    ``exhaustive=False`` only source documents newer than the newest target document are taken, an
    indexed range query. Documents inserted later with *older* timestamps are then missed: use it for
    collections that only grow with fresh timestamps (atomate's), and a periodic exhaustive run.
    """

    exhaustive: bool = True

    def get_items(self):
        """``MapBuilder.get_items`` with ``newer_in(exhaustive=self.exhaustive)``."""
        if self.exhaustive:
            yield from super().get_items()
            return
        target = self.target
        newer_in = target.newer_in
        target.newer_in = lambda other, criteria=None, exhaustive=True: newer_in(other, criteria=criteria,
                                                                                 exhaustive=False)
        try:
            yield from super().get_items()
        finally:
            del target.newer_in


class SpectrumBuilder(_FastIncremental, MapBuilder):
    """FEFF task documents -> one preprocessed 500-point spectrum document per task.

    Args:
        tasks: source store of FEFF task documents (key ``task_id``).
        spectra: target store (key ``task_id``).
        preprocessing: the preprocessing definition (default: the package's).
        exhaustive: compare every task's ``last_updated`` (default) or only take tasks newer than the
            newest spectrum (fast on huge collections; see :class:`_FastIncremental`).
        **kwargs: passed to ``MapBuilder`` (``query``, ``retry_failed``, ``chunk_size``, ...).
    """

    def __init__(self, tasks: Store, spectra: Store, preprocessing: Preprocessing | dict | None = None,
                 exhaustive: bool = True, **kwargs):
        self.tasks = tasks
        self.spectra = spectra
        self.preprocessing = preprocessing
        self.exhaustive = exhaustive
        self._pre = (
            DEFAULT_PREPROCESSING if preprocessing is None
            else preprocessing if isinstance(preprocessing, Preprocessing) else Preprocessing.from_dict(preprocessing)
        )
        kwargs.setdefault("projection", ["spectrum", "absorbing_atom", "structure", "edge", "spectrum_type",
                                         "metadata", "state", "error"])
        super().__init__(source=tasks, target=spectra, **kwargs)

    def process_item(self, item: dict) -> dict[str, Any]:
        """As MapBuilder's, but a task whose FEFF run failed is recorded with one warning, not a traceback.

        A failed calculation is an expected outcome with its reason already in the task document;
        tracebacks stay for real errors in preprocessing.
        """
        if item.get("state") != "failed":
            return super().process_item(item)
        key, lu = self.source.key, self.source.last_updated_field
        error = f"FEFF calculation failed: {item.get('error') or 'no error recorded'}"
        self.logger.warning(f"{item[key]}: {error[:200]}")
        out = {self.target.key: item[key],
               self.target.last_updated_field: self.source._lu_func[0](item.get(lu, datetime.now(timezone.utc))),
               "error": error, "state": "failed"}
        if self.store_process_time:
            out["_process_time"] = 0.0
        return out

    def unary_function(self, item: dict) -> dict[str, Any]:
        """Preprocess one task document; raises on bad input (MapBuilder records it as failed)."""
        from pymatgen_xanes_nn.io import from_task_doc

        if item.get("state") == "failed":
            raise ValueError(f"FEFF calculation failed: {item.get('error', 'no error recorded')}")
        xas = from_task_doc(item)
        vector = self._pre.transform(xas)
        fine_e, fine_mu = resample_uniform(np.asarray(xas.x, float), np.asarray(xas.y, float))
        meta = item.get("metadata") or {}
        doc = {k: meta.get(k) for k in PROVENANCE_FIELDS}
        if doc["chemsys"] is None and xas.structure is not None:
            doc["chemsys"] = xas.structure.composition.chemical_system
        doc.update(
            {
                "absorbing_atom": item.get("absorbing_atom"),
                "spectrum": [round(float(v), 6) for v in vector],
                "e0": find_e0(fine_e, fine_mu),
                "energy_range": [float(xas.x[0]), float(xas.x[-1])],
                "preprocessing": self._pre.as_dict(),
                "preprocessing_version": self._pre.version,
            }
        )
        doc["structure_id"] = doc["structure_id"] or item.get("task_id")
        doc["multiplicity"] = int(doc["multiplicity"] or 1)
        return doc


class MaterialSpectrumBuilder(Builder):
    """Site spectra -> the multiplicity-weighted average spectrum of each material (``structure_id``).

    As emmet's ``site_weighted_spectrum``: comparable to a measured spectrum of the whole material.
    A material is rebuilt when any of its site spectra is newer than its document.

    Args:
        spectra: source store (output of :class:`SpectrumBuilder`).
        materials: target store (key ``structure_id``).
        retry_failed: rebuild materials whose document failed.
        **kwargs: passed to ``Builder`` (``chunk_size``).
    """

    def __init__(self, spectra: Store, materials: Store, retry_failed: bool = False, **kwargs):
        self.spectra = spectra
        self.materials = materials
        self.retry_failed = retry_failed
        self.kwargs = kwargs
        super().__init__(sources=[spectra], targets=[materials], **kwargs)

    def ensure_indexes(self) -> None:
        """Index the fields the incremental query uses."""
        for field in ("structure_id", self.spectra.last_updated_field):
            self.spectra.ensure_index(field)
        for field in ("structure_id", self.materials.last_updated_field, "state"):
            self.materials.ensure_index(field)

    def _structures_to_build(self) -> list[str]:
        lu = self.spectra.last_updated_field
        newest: dict[str, datetime] = {}
        for d in self.spectra.query(criteria={"state": "successful"}, properties=["structure_id", lu]):
            t = self.spectra._lu_func[0](d[lu])
            if d["structure_id"] not in newest or t > newest[d["structure_id"]]:
                newest[d["structure_id"]] = t
        built = {
            d["structure_id"]: (self.materials._lu_func[0](d[self.materials.last_updated_field]), d.get("state"))
            for d in self.materials.query(properties=["structure_id", self.materials.last_updated_field, "state"])
        }
        todo = []
        for sid, t in newest.items():
            if sid not in built or built[sid][0] < t or (self.retry_failed and built[sid][1] == "failed"):
                todo.append(sid)
        return sorted(todo)

    def get_items(self) -> Iterator[list[dict]]:
        """Yield the site-spectrum documents of each material that needs (re)building."""
        self.ensure_indexes()
        todo = self._structures_to_build()
        self.total = len(todo)
        self.logger.info(f"Building {len(todo)} material spectra")
        for start in range(0, len(todo), self.chunk_size):
            chunk = todo[start : start + self.chunk_size]
            groups: dict[str, list[dict]] = {sid: [] for sid in chunk}
            for d in self.spectra.query(criteria={"structure_id": {"$in": chunk}, "state": "successful"}):
                groups[d["structure_id"]].append(d)
            yield from groups.values()

    def process_item(self, item: list[dict]) -> dict[str, Any]:
        """Average the site spectra weighted by multiplicity (a failed document on bad input)."""
        first = item[0]
        lu = self.spectra.last_updated_field
        out: dict[str, Any] = {
            "structure_id": first["structure_id"],
            "task_ids": sorted(d["task_id"] for d in item),
            self.materials.last_updated_field: max(self.spectra._lu_func[0](d[lu]) for d in item),
        }
        try:
            versions = {d["preprocessing_version"] for d in item}
            if len(versions) > 1:
                raise ValueError(f"Site spectra of {first['structure_id']} use preprocessing versions {versions}")
            weights = np.array([d.get("multiplicity") or 1 for d in item], float)
            spectra = np.array([d["spectrum"] for d in item], float)
            avg = weights @ spectra / weights.sum()
            out.update({k: first.get(k) for k in ("formula", "chemsys", "group_id", "source", "source_id",
                                                   "mineral", "preprocessing", "preprocessing_version")})
            out.update({
                "spectrum": [round(float(v), 6) for v in avg],
                "site_weights": {d["task_id"]: float(w) for d, w in zip(item, weights)},
                "n_sites": len(item),
                "state": "successful",
            })
        except Exception as exc:  # recorded, never fatal
            out.update({"state": "failed", "error": f"{type(exc).__name__}: {exc}"})
        return out

    def update_targets(self, items: list[dict]) -> None:
        """Upsert material documents by ``structure_id``."""
        for d in items:
            d.pop("_id", None)
            d["_bt"] = datetime.now(timezone.utc)
        if items:
            self.materials.update(items, key="structure_id")


class ClassificationBuilder(_FastIncremental, MapBuilder):
    """Interpolated spectra -> classification documents from a :class:`XANESClassifier`.

    Documents whose ``model_version`` differs from the current model are reclassified; an
    unchanged rerun does nothing.

    Args:
        spectra: source store (output of :class:`SpectrumBuilder` or :class:`MaterialSpectrumBuilder`).
        classifications: target store (same key as ``spectra``).
        model: a pretrained model name or a model file path.
        exhaustive: see :class:`SpectrumBuilder`.
        **kwargs: passed to ``MapBuilder``.
    """

    def __init__(self, spectra: Store, classifications: Store, model: str = "si_k_chemsys",
                 exhaustive: bool = True, **kwargs):
        self.spectra = spectra
        self.classifications = classifications
        self.model = model
        self.exhaustive = exhaustive
        self._clf = None
        kwargs.setdefault("projection", ["spectrum", "preprocessing_version", "chemsys", "structure_id",
                                         "environment", "state"])
        kwargs.setdefault("query", {"state": "successful"})
        super().__init__(source=spectra, target=classifications, **kwargs)

    @property
    def classifier(self):
        """The model, loaded once per process."""
        if self._clf is None:
            from pymatgen_xanes_nn.classifier import PRETRAINED, XANESClassifier

            self._clf = (XANESClassifier.from_pretrained(self.model) if self.model in PRETRAINED
                         else XANESClassifier.from_file(self.model))
        return self._clf

    def get_items(self):
        """Newer or missing spectra, plus those classified by another model version."""
        stale = set(self.target.distinct(self.target.key, {"model_version": {"$ne": self.classifier.model_version},
                                                           "state": "successful"}))
        if not stale:
            yield from super().get_items()
            return
        seen = set()
        for item in super().get_items():
            seen.add(item[self.source.key])
            yield item
        stale -= seen
        self.total = getattr(self, "total", 0) + len(stale)
        keys = sorted(stale)
        for start in range(0, len(keys), self.chunk_size):
            yield from self.source.query(
                criteria={self.source.key: {"$in": keys[start : start + self.chunk_size]}},
                properties=[*self.projection, self.source.key, self.source.last_updated_field],
            )

    def unary_function(self, item: dict) -> dict[str, Any]:
        """Classify one preprocessed spectrum."""
        clf = self.classifier
        if item.get("preprocessing_version") != clf.preprocessing.version:
            raise ValueError(f"Spectrum preprocessing {item.get('preprocessing_version')} != model's "
                             f"{clf.preprocessing.version}: rebuild the spectra")
        result = clf.classify(np.asarray(item["spectrum"], np.float32))
        result.update({k: item.get(k) for k in ("structure_id", "chemsys", "environment")})
        return result


# ---------------------------------------------------------------------------- stores and pipelines
class EmbeddedMemoryStore(MemoryStore):
    """A ``MemoryStore`` that survives ``close()``.

    maggma closes every store when a builder finishes; a closed mongomock client cannot be
    reopened, so a store shared by two builders of one ``mrun`` (the target of one, the source of
    the next) would be lost. Here ``close`` keeps the data until the process ends.
    """

    def close(self) -> None:
        """Keep the in-memory collection open."""


class SafeJSONStore(JSONStore):
    """A writable ``JSONStore`` that replaces its file atomically.

    Like :class:`EmbeddedMemoryStore` it survives ``close()``; every update is already on disk.
    """

    def close(self) -> None:
        """Keep the in-memory collection open; the file is written on every update."""

    def update_json_file(self) -> None:
        """Write to a temporary file, then rename it over the old one."""
        path = self.paths[0]
        tmp = f"{path}.tmp"
        self.paths[0] = tmp
        try:
            super().update_json_file()
        finally:
            self.paths[0] = path
        os.replace(tmp, path)


def shipped_task_store(filename: str | None = None) -> MemoryStore:
    """An in-memory store holding packed FEFF task documents (default: the shipped dataset)."""
    from pymatgen_xanes_nn.dataset import load_tasks

    store = EmbeddedMemoryStore(collection_name="tasks", key="task_id")
    store.connect()
    docs = load_tasks(filename, include_failed=True)
    if docs:
        store.update(docs)
    return store


def file_store(directory: str, name: str, key: str) -> SafeJSONStore:
    """A writable JSON-file store ``directory/name.json`` (created if missing)."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{name}.json")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write("[]")
    return SafeJSONStore(path, read_only=False, key=key)


def mongo_store(uri: str, collection: str, database: str, key: str = "task_id") -> Store:
    """A maggma ``MongoStore`` from a URI (round-trips through ``as_dict``, so ``mrun -n`` workers get it)."""
    from maggma.stores import MongoStore

    return MongoStore.from_uri(uri, collection, database=database, key=key)


def pipeline(
    tasks: Store, spectra: Store, materials: Store, classifications: Store, material_classifications: Store,
    model: str = "si_k_chemsys", exhaustive: bool = True, **kwargs,
) -> list[Builder]:
    """The four builders of the pipeline, in run order (``exhaustive``: see :class:`SpectrumBuilder`)."""
    return [
        SpectrumBuilder(tasks, spectra, exhaustive=exhaustive, **kwargs),
        MaterialSpectrumBuilder(spectra, materials, **kwargs),
        ClassificationBuilder(spectra, classifications, model=model, exhaustive=exhaustive, **kwargs),
        ClassificationBuilder(materials, material_classifications, model=model, exhaustive=exhaustive, **kwargs),
    ]


#: Environment variables read by :func:`pipeline_from_env`, listed once.
ENV_VARS = {
    "XANES_NN_MONGO_URI": "MongoDB URI (unset: the embedded default)",
    "XANES_NN_TASKS_DB": "database of the FEFF task documents (default 'feff', as atomate's FeffCalcDb)",
    "XANES_NN_TASKS_COLLECTION": "collection of the FEFF task documents (default 'tasks')",
    "XANES_NN_DB": "database the builders write to (default 'xanes_nn')",
    "XANES_NN_MODEL": "pretrained model name or model file (default 'si_k_chemsys')",
    "XANES_NN_OUTPUT": "folder of the embedded default's JSON collections (default 'xanes_nn_output')",
    "XANES_NN_TASKS_FILE": "packed task documents of the embedded default (default: the shipped dataset)",
    "XANES_NN_EXHAUSTIVE": "'0': incremental runs only take documents newer than the newest built one (fast)",
}


def pipeline_from_env(env: dict[str, str] | None = None, **kwargs) -> list[Builder]:
    """Builders configured from the environment (see :data:`ENV_VARS`).

    With ``XANES_NN_MONGO_URI`` set, every store is a ``MongoStore`` on that server; otherwise
    the tasks are the shipped dataset in memory and the outputs are JSON files in
    ``XANES_NN_OUTPUT``.
    """
    env = dict(os.environ if env is None else env)
    model = env.get("XANES_NN_MODEL", "si_k_chemsys")
    uri = env.get("XANES_NN_MONGO_URI")
    names = {"spectra": "task_id", "materials": "structure_id", "classifications": "task_id",
             "material_classifications": "structure_id"}
    if uri:
        tasks = mongo_store(uri, env.get("XANES_NN_TASKS_COLLECTION", "tasks"), env.get("XANES_NN_TASKS_DB", "feff"))
        out = {n: mongo_store(uri, f"xanes_{n}", env.get("XANES_NN_DB", "xanes_nn"), k) for n, k in names.items()}
    else:
        directory = env.get("XANES_NN_OUTPUT", "xanes_nn_output")
        tasks = shipped_task_store(env.get("XANES_NN_TASKS_FILE"))
        out = {n: file_store(directory, f"xanes_{n}", k) for n, k in names.items()}
    exhaustive = env.get("XANES_NN_EXHAUSTIVE", "1").lower() not in ("0", "false", "no")
    return pipeline(tasks, out["spectra"], out["materials"], out["classifications"],
                    out["material_classifications"], model=model, exhaustive=exhaustive, **kwargs)
