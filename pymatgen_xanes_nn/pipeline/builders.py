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

import logging
import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
from maggma.builders import GroupBuilder, MapBuilder
from maggma.core import Builder

from pymatgen_xanes_nn.classifier import DEFAULT_MODEL
from pymatgen_xanes_nn.io.documents import ClassificationDoc, MaterialSpectrumDoc, SpectrumDoc, validated

# the settings live in pipeline.settings; ENV_VARS and ConfigurationError are also read from here
from pymatgen_xanes_nn.pipeline.settings import ENV_VARS, STAGES, ConfigurationError, PipelineSettings  # noqa: F401
from pymatgen_xanes_nn.pipeline.stores import DEFAULT_MONGO_TIMEOUT_MS, JSONFileStore, PackedTaskStore, mongo_store
from pymatgen_xanes_nn.preprocessing import DEFAULT_PREPROCESSING, Preprocessing, check_xas

if TYPE_CHECKING:

    from maggma.core import Store

class QuietRun:
    """``run()`` as maggma's serial ``Builder.run``, without its logging side effects.

    maggma's ``run`` sets the root logger to DEBUG and adds a handler on every call: a test session or a script
    that runs builders a few times then prints each pymongo heartbeat many times over. Here only the builder's
    own logger gets the level, and no handler is added (``mrun`` configures logging itself).
    """

    def run(self, log_level: int = logging.WARNING) -> None:
        """Run the builder serially in this process."""
        from maggma.utils import grouper

        self.logger.setLevel(log_level)
        self.connect()
        for chunk in grouper(self.get_items(), self.chunk_size):
            processed = [self.process_item(item) for item in chunk]
            self.update_targets([item for item in processed if item is not None])
        self.finalize()

    def update_targets(self, items: list[dict]) -> None:
        """The base class's ``update_targets``, counting what was built and what failed for :meth:`summary`."""
        counts = self.__dict__.setdefault("_built", {"successful": 0, "failed": 0})
        for item in items:
            counts["failed" if item.get("state") == "failed" else "successful"] += 1
        super().update_targets(items)

    def summary(self) -> str:
        """One line: what this run built, what failed, and how much was already up to date."""
        counts = self.__dict__.get("_built", {"successful": 0, "failed": 0})
        target = self.targets[0]
        where = os.path.basename(target.path) if hasattr(target, "path") else target.collection_name
        total = target.count()
        built, failed = counts["successful"], counts["failed"]
        if not built and not failed:
            return f"{type(self).__name__} -> {where}: nothing to rebuild ({total} documents up to date)"
        return (f"{type(self).__name__} -> {where}: {built} built, {failed} failed, "
                f"{total - built - failed} already up to date")

    def finalize(self) -> None:
        """Print :meth:`summary` (``mrun`` shows no INFO logs by default), then close the stores."""
        print(self.summary(), flush=True)
        self.__dict__.pop("_built", None)
        super().finalize()


#: Task-document metadata copied into every spectrum document (provenance).
PROVENANCE_FIELDS = (
    "structure_id", "source", "source_id", "mineral", "formula", "chemsys", "group_id", "multiplicity", "cn",
    "environment",
)


def _as_utc(value: Any) -> datetime | None:
    """A ``last_updated`` value as a naive UTC datetime, or None if it is not a date ("yesterday", 5, None)."""
    from maggma.utils import to_dt

    if isinstance(value, str):
        try:
            value = to_dt(value)
        except (ValueError, TypeError):
            return None
    if not isinstance(value, datetime):
        return None
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def _future_horizon() -> datetime:
    """Latest ``last_updated`` (naive UTC) taken as real: now plus a day of clock skew."""
    from datetime import timedelta

    return datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(days=1)


#: Largest site multiplicity accepted: a unique site of a cell of at most this many atoms (FEFF clusters of
#: bigger cells are not computed).
MAX_MULTIPLICITY = 10_000


def site_multiplicity(value: Any) -> int:
    """A task's ``metadata.multiplicity`` as the weight of its site (None: not recorded, weight 1).

    Raises:
        ValueError: if it is not a whole number from 1 to :data:`MAX_MULTIPLICITY` (0, 2.5, 1e30, "4", NaN).
    """
    if value is None:
        return 1
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
    if not (ok and value == int(value) and 1 <= value <= MAX_MULTIPLICITY):
        raise ValueError(f"metadata.multiplicity {value!r} is not a site multiplicity (a whole number from 1 to "
                         f"{MAX_MULTIPLICITY})")
    return int(value)


def structure_fingerprint(structure: Any) -> str | None:
    """16 hex digits of a structure dict's species and lattice: every site spectrum of one material shares them.

    Read from the dict without building a ``Structure`` (None when the document holds no usable structure).
    """
    import hashlib
    import json

    try:
        matrix = np.round(np.asarray(structure["lattice"]["matrix"], float), 3).tolist()
        species = sorted(sp["element"] for site in structure["sites"] for sp in site["species"])
    except (KeyError, TypeError, ValueError):
        return None
    return hashlib.sha256(json.dumps([matrix, species]).encode()).hexdigest()[:16]


def _usable_key(value: Any) -> bool:
    """Task ids may be strings or integers (atomate numbers its tasks); nothing else identifies a document."""
    return (isinstance(value, str) and bool(value)) or (isinstance(value, int) and not isinstance(value, bool))


def _sort_keys(keys) -> list:
    # integer and string ids side by side cannot be compared directly
    return sorted(keys, key=lambda k: (isinstance(k, str), k))


class CheckedMapBuilder(QuietRun, MapBuilder):
    """A ``MapBuilder`` whose incremental selection survives any source document.

    maggma's selection reads every source ``last_updated`` and stops the whole build on one document
    without a key, with ``last_updated: "yesterday"`` or with integer ids among strings. Here one pass over
    ``(key, last_updated)`` pairs (a projection) classifies every document: malformed ones with a usable
    key become ``state: "failed"`` records that say why (duplicate keys included), ones without a key are
    logged and counted in ``n_skipped``; the rest build incrementally as usual.

    ``exhaustive=False`` only reads source documents newer than the newest target document, plus every
    document whose ``last_updated`` is not a date (they cannot be ordered, so they are never skipped).
    """

    exhaustive: bool = True

    def ensure_indexes(self) -> None:
        """The indexes of ``MapBuilder``, with the target key unique (a duplicate can never be stored twice)."""
        self.target.ensure_index(self.target.key, unique=True)  # first: maggma's would make it non-unique
        super().ensure_indexes()

    def _source_criteria(self) -> dict:
        criteria = dict(self.query or {})
        if self.exhaustive:
            return criteria
        lu = self.source.last_updated_field
        tlu = self.target.last_updated_field
        newest = next(iter(self.target.query(criteria={tlu: {"$lte": _future_horizon()}}, properties=[tlu],
                                             sort={tlu: -1}, limit=1)), None)
        newest_dt = _as_utc(newest.get(self.target.last_updated_field)) if newest else None
        if newest_dt is None:
            return criteria
        recent = {"$or": [{lu: {"$gt": newest_dt}}, {lu: {"$not": {"$type": "date"}}}]}
        return {"$and": [criteria, recent]} if criteria else recent

    def select(self) -> tuple[list, dict[Any, str]]:
        """Keys to build and malformed keys with their reason; documents without a usable key are logged."""
        key, lu = self.source.key, self.source.last_updated_field
        horizon = _future_horizon()
        newest: dict[Any, datetime] = {}
        invalid: dict[Any, str] = {}
        seen: dict[Any, int] = {}
        no_key = []
        for d in self.source.query(criteria=self._source_criteria(), properties=[key, lu]):
            k = d.get(key)
            if not _usable_key(k):
                no_key.append(str(d.get("_id")))
                continue
            seen[k] = seen.get(k, 0) + 1
            # an undated document cannot announce a change: built once, like a document dated at the epoch
            t = _as_utc(d[lu]) if lu in d else datetime(1970, 1, 1)
            if t is None:
                invalid[k] = f"{lu} is not a date: {d.get(lu)!r}"
            elif t > horizon:  # stored, it would hide every later update from the fast incremental mode
                invalid[k] = f"{lu} {t.isoformat()} lies in the future"
            else:
                newest[k] = max(t, newest.get(k, t))
        for k, n in seen.items():
            if n > 1:
                invalid[k] = f"{n} source documents share {key} {k!r}; none is built until the duplicates are removed"
        self.n_skipped = len(no_key)
        if no_key:
            self.logger.warning(f"{len(no_key)} source documents have no usable {key} and were skipped "
                                f"(_id {', '.join(no_key[:5])}{' ...' if len(no_key) > 5 else ''})")
        tkey, tlu = self.target.key, self.target.last_updated_field
        built = {d.get(tkey): (_as_utc(d.get(tlu)), d.get("state"))
                 for d in self.target.query(properties=[tkey, tlu, "state"])}
        todo = [k for k, t in newest.items() if k not in invalid and (
            k not in built or built[k][0] is None or built[k][0] < t
            or (self.retry_failed and built[k][1] == "failed"))]
        invalid = {k: r for k, r in invalid.items() if built.get(k, (None, None))[1] != "failed" or self.retry_failed
                   or k not in built}
        return _sort_keys(todo), invalid

    def prechunk(self, number_splits: int):
        """Split the work by key for maggma's distributed manager; each chunk keeps this builder's query."""
        from math import ceil

        self.ensure_indexes()
        keys, invalid = self.select()
        keys = keys + _sort_keys(invalid)
        n = max(1, ceil(len(keys) / max(number_splits, 1)))
        for start in range(0, len(keys), n):
            part = {self.source.key: {"$in": keys[start : start + n]}}
            yield {"query": {"$and": [self.query, part]} if self.query else part}

    def get_items(self):
        """Source documents to (re)build, then one placeholder per malformed key (recorded as failed)."""
        self.ensure_indexes()
        keys, invalid = self.select()
        self.total = len(keys) + len(invalid)
        self.logger.info(f"Processing {len(keys)} items ({len(invalid)} malformed, {self.n_skipped} without key)")
        projection = list({*self.projection, self.source.key, self.source.last_updated_field}) \
            if self.projection else None
        for start in range(0, len(keys), self.chunk_size):
            yield from self.source.query(criteria={self.source.key: {"$in": keys[start : start + self.chunk_size]}},
                                         properties=projection)
        for k in _sort_keys(invalid):
            yield {self.source.key: k, "_invalid": invalid[k]}

    def process_item(self, item: dict) -> dict[str, Any]:
        """``MapBuilder.process_item``; a malformed or FEFF-failed source is recorded with one warning line.

        Expected failures (a FEFF run that failed, a malformed document) carry their reason; tracebacks are
        kept for real errors in processing.
        """
        key = self.source.key
        if "_invalid" in item:
            error = f"malformed source document: {item['_invalid']}"
            # dated at the epoch: the repaired document, whatever its date, is rebuilt
            stamp = datetime(1970, 1, 1)
        elif item.get("state") == "failed" and isinstance(self, SpectrumBuilder):
            error = item.get("error") or "no error recorded"
            if not error.startswith("malformed"):  # the dataset reader's own verdict on a document
                error = f"FEFF calculation failed: {error}"
            stamp = _as_utc(item.get(self.source.last_updated_field)) or datetime.now(timezone.utc)
        else:
            return super().process_item(item)
        self.logger.warning(f"{item[key]}: {error[:200]}")
        out = {self.target.key: item[key], self.target.last_updated_field: stamp, "error": error, "state": "failed"}
        if self.store_process_time:
            out["_process_time"] = 0.0
        return out


class SpectrumBuilder(CheckedMapBuilder):
    """FEFF task documents -> one preprocessed 500-point spectrum document per task.

    Args:
        tasks: source store of FEFF task documents (key ``task_id``).
        spectra: target store (key ``task_id``).
        preprocessing: the preprocessing definition (default: the package's).
        exhaustive: compare every task's ``last_updated`` (default) or only take tasks newer than the
            newest spectrum (fast on huge collections; see :class:`CheckedMapBuilder`).
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
        self.kwargs = kwargs  # query and projection included, so a chunk sent to a worker keeps them

    def unary_function(self, item: dict) -> dict[str, Any]:
        """Preprocess one task document; raises on bad input (MapBuilder records it as failed)."""
        from pymatgen_xanes_nn.io.readers import from_task_doc

        if item.get("state") == "failed":
            raise ValueError(f"FEFF calculation failed: {item.get('error', 'no error recorded')}")
        meta = item.get("metadata") or {}
        # the Structure object is only needed for a chemical system the metadata does not name
        xas = from_task_doc(item, with_structure=not meta.get("chemsys"))
        xas = check_xas(xas)  # the right element and edge before anything is computed
        vector, edge = self._pre.transform_with_edge(xas.x, xas.y)
        doc = {k: meta.get(k) for k in PROVENANCE_FIELDS}
        if doc["chemsys"] is None and xas.structure is not None:
            doc["chemsys"] = xas.structure.composition.chemical_system
        doc.update(
            {
                "absorbing_atom": item.get("absorbing_atom"),
                "spectrum": [round(float(v), 6) for v in vector],
                "e0": edge.e0,
                "edge_step": edge.step,
                "energy_range": [float(xas.x[0]), float(xas.x[-1])],
                "preprocessing": self._pre.as_dict(),
                "preprocessing_version": self._pre.version,
                "preprocessing_fingerprint": self._pre.fingerprint,
            }
        )
        doc["structure_id"] = doc["structure_id"] or item.get("task_id")
        doc["multiplicity"] = site_multiplicity(doc["multiplicity"])
        doc["structure_fingerprint"] = structure_fingerprint(item.get("structure"))
        doc["task_id"] = item[self.source.key]
        return validated(SpectrumDoc, doc)


class MaterialSpectrumBuilder(QuietRun, GroupBuilder):
    """Site spectra -> the multiplicity-weighted average spectrum of each material (``structure_id``).

    As emmet's ``site_weighted_spectrum``: comparable to a measured spectrum of the whole material.
    A maggma ``GroupBuilder`` grouping successful site spectra by ``structure_id``; a material is rebuilt
    when any of its site spectra is newer than its document (every material compared, not only the
    documents newer than the newest material as maggma's default selection does).

    Args:
        spectra: source store (output of :class:`SpectrumBuilder`).
        materials: target store (key ``structure_id``).
        retry_failed: rebuild materials whose document failed.
        **kwargs: passed to ``GroupBuilder`` (``query``, ``chunk_size``, ...).
    """

    #: Site-spectrum fields a material document is made from.
    PROJECTION = ("structure_id", "task_id", "spectrum", "multiplicity", "formula", "chemsys", "group_id", "source",
                  "source_id", "mineral", "preprocessing", "preprocessing_version", "preprocessing_fingerprint",
                  "structure_fingerprint")

    def __init__(self, spectra: Store, materials: Store, retry_failed: bool = False, **kwargs):
        self.spectra = spectra
        self.materials = materials
        kwargs.setdefault("query", {"state": "successful"})
        kwargs.setdefault("projection", list(self.PROJECTION))
        super().__init__(source=spectra, target=materials, grouping_keys=["structure_id"], retry_failed=retry_failed,
                         **kwargs)
        self.kwargs = kwargs  # query and projection included, so a chunk sent to a worker keeps them

    def ensure_indexes(self) -> None:
        """Index the fields the incremental query uses."""
        for field in ("structure_id", self.spectra.key, self.spectra.last_updated_field):
            self.spectra.ensure_index(field)
        for field in ("structure_id", self.materials.last_updated_field, "state"):
            self.materials.ensure_index(field)

    def get_ids_to_process(self) -> list:
        """Site-spectrum keys of every material with a site spectrum newer than its document (or none)."""
        lu, key = self.spectra.last_updated_field, self.spectra.key
        newest: dict[str, datetime] = {}
        members: dict[str, list] = {}
        for d in self.spectra.query(criteria=self.query, properties=["structure_id", key, lu]):
            sid, t = d.get("structure_id"), self.spectra._lu_func[0](d[lu])
            members.setdefault(sid, []).append(d[key])
            newest[sid] = max(t, newest.get(sid, t))
        tlu = self.materials.last_updated_field
        built = {d["structure_id"]: (self.materials._lu_func[0](d[tlu]), d.get("state"))
                 for d in self.materials.query(properties=["structure_id", tlu, "state"])}
        todo = [sid for sid, t in newest.items() if sid not in built or built[sid][0] < t
                or (self.retry_failed and built[sid][1] == "failed")]
        return [k for sid in sorted(todo, key=str) for k in members[sid]]

    def prechunk(self, number_splits: int):
        """Split the materials to build into ``number_splits`` queries, each keeping this builder's query.

        (maggma's ``GroupBuilder.prechunk`` zips the grouping keys with task ids and so splits nothing.)
        """
        from math import ceil

        self.ensure_indexes()
        sids = sorted({g[0] for g in self.get_groups_from_keys(self.get_ids_to_process())}, key=str)
        n = max(1, ceil(len(sids) / max(number_splits, 1)))
        for start in range(0, len(sids), n):
            yield {"query": {"$and": [self.query, {"structure_id": {"$in": sids[start : start + n]}}]}}

    def unary_function(self, items: list[dict]) -> dict[str, Any]:
        """Average the site spectra weighted by multiplicity; raises on inconsistent or bad input."""
        first = items[0]
        prints = {d.get("preprocessing_fingerprint") for d in items}
        if len(prints) > 1:
            raise ValueError(f"Site spectra of {first['structure_id']} were preprocessed differently "
                             f"(fingerprints {sorted(map(str, prints))}): rebuild the spectra")
        structures: dict[str, list] = {}
        for d in items:
            if d.get("structure_fingerprint"):
                structures.setdefault(d["structure_fingerprint"], []).append(d[self.spectra.key])
        if len(structures) > 1:  # a task claiming another material's structure_id: never average it in
            raise ValueError(f"Site spectra of {first['structure_id']} come from {len(structures)} different "
                             "structures: " + "; ".join(f"{', '.join(map(str, ids[:3]))}" for ids in
                                                         structures.values()) + " (fix their structure_id)")
        weights = np.array([d.get("multiplicity") or 1 for d in items], float)
        if not (np.isfinite(weights).all() and (weights > 0).all()):
            raise ValueError(f"site multiplicities must be positive numbers, got {weights.tolist()}")
        spectra = np.array([d["spectrum"] for d in items], float)
        avg = weights @ spectra / weights.sum()
        if not np.isfinite(avg).all():
            raise ValueError("the averaged spectrum is not finite")
        doc = {k: first.get(k) for k in ("structure_id", "formula", "chemsys", "group_id", "source", "source_id",
                                         "mineral", "preprocessing", "preprocessing_version",
                                         "preprocessing_fingerprint")}
        doc.update({
            "task_ids": sorted((d[self.spectra.key] for d in items), key=str),
            "spectrum": [round(float(v), 6) for v in avg],
            "site_weights": {str(d[self.spectra.key]): float(w) for d, w in zip(items, weights)},  # BSON: str keys
            "n_sites": len(items),
        })
        return validated(MaterialSpectrumDoc, doc)

    def process_item(self, item: list[dict]) -> dict[str, Any]:
        """``GroupBuilder.process_item``, keyed by the material (a failed document too)."""
        doc = super().process_item(item)
        doc["structure_id"] = item[0]["structure_id"]
        return doc


class ClassificationBuilder(CheckedMapBuilder):
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

    def __init__(self, spectra: Store, classifications: Store, model: str = DEFAULT_MODEL,
                 exhaustive: bool = True, **kwargs):
        self.spectra = spectra
        self.classifications = classifications
        self.model = model
        self.exhaustive = exhaustive
        self._clf = None
        kwargs.setdefault("projection", ["spectrum", "preprocessing", "preprocessing_fingerprint", "chemsys",
                                         "structure_id", "environment", "state"])
        kwargs.setdefault("query", {"state": "successful"})
        super().__init__(source=spectra, target=classifications, **kwargs)
        self.kwargs = kwargs  # query and projection included, so a chunk sent to a worker keeps them

    @property
    def classifier(self):
        """The model, loaded once per process."""
        if self._clf is None:
            from pymatgen_xanes_nn.classifier import XANESClassifier

            self._clf = XANESClassifier.load(self.model)
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
        if item.get("preprocessing_fingerprint") != clf.preprocessing.fingerprint:
            # any parameter, not only the version: a grid or alignment the model was not trained on is refused
            diff = clf.preprocessing.differences(item.get("preprocessing") or {})
            raise ValueError(
                f"Spectrum preprocessed with fingerprint {item.get('preprocessing_fingerprint')}, the model "
                f"expects {clf.preprocessing.fingerprint} (model vs spectrum: "
                f"{', '.join(f'{k} {a!r} vs {b!r}' for k, (a, b) in diff.items()) or 'unknown'}): "
                "rebuild the spectra with the model's preprocessing")
        result = clf.classify(np.asarray(item["spectrum"], np.float32))
        result.update({k: item.get(k) for k in ("structure_id", "chemsys", "environment")})
        if self.source.key == "task_id":
            result["task_id"] = item["task_id"]
        return validated(ClassificationDoc, result)


# ---------------------------------------------------------------------------- stores and pipelines
def check_mongo(uri: str, timeout_ms: int = DEFAULT_MONGO_TIMEOUT_MS) -> None:
    """Ping MongoDB at ``uri``.

    Raises:
        ConfigurationError: if the server does not answer within ``timeout_ms``.
    """
    import pymongo
    from pymongo.uri_parser import parse_uri

    try:  # a malformed URI is named as such, not as a server that did not answer
        parse_uri(uri)
    except (pymongo.errors.InvalidURI, pymongo.errors.ConfigurationError, ValueError) as exc:
        raise ConfigurationError(f"XANES_NN_MONGO_URI={uri!r} is not a MongoDB URI: {exc}") from exc
    try:
        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)
        try:
            client.admin.command("ping")
        finally:
            client.close()
    except pymongo.errors.PyMongoError as exc:
        raise ConfigurationError(f"MongoDB at XANES_NN_MONGO_URI={uri!r} did not answer within {timeout_ms} ms: "
                                 f"{type(exc).__name__}") from exc
    except (ValueError, TypeError) as exc:  # a malformed URI
        raise ConfigurationError(f"XANES_NN_MONGO_URI={uri!r} is not a MongoDB URI: {exc}") from exc


def check_mongo_name(var: str, name: str) -> None:
    """Refuse a database or collection name MongoDB would refuse (e.g. ``bad.db$name/x``), naming the setting.

    Raises:
        ConfigurationError: naming the setting and the rule.
    """
    database = not var.endswith("_COLLECTION")
    forbidden = '/\\. "$\x00' if database else "$\x00"
    if not name or any(c in name for c in forbidden) or (database and len(name) > 63):
        what = ("database names have at most 63 characters and none of / \\ . space \" $" if database
                else "collection names may not hold $")
        raise ConfigurationError(f"{var}={name!r} is not a valid MongoDB name ({what})")


def check_source(uri: str, database: str, collection: str, timeout_ms: int = DEFAULT_MONGO_TIMEOUT_MS) -> None:
    """Refuse a task source that holds no documents: a misspelt database or collection would build nothing.

    Raises:
        ConfigurationError: naming the database, the collection and what the server does hold.
    """
    import pymongo

    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)
    try:
        if client[database][collection].estimated_document_count() > 0:
            return
        held = sorted(client[database].list_collection_names()) if database in client.list_database_names() else []
        where = (f"database {database!r} has collections {', '.join(held)}" if held
                 else f"the server has databases {', '.join(sorted(client.list_database_names()))}")
    finally:
        client.close()
    raise ConfigurationError(f"XANES_NN_TASKS_DB={database!r} / XANES_NN_TASKS_COLLECTION={collection!r} holds no "
                             f"task documents ({where}); load them with `xanes-nn load-tasks URI`")


def check_model(model: str) -> None:
    """Load ``model`` once so a wrong name or a broken file fails before any building.

    Raises:
        ConfigurationError: naming the model and the problem.
    """
    from pymatgen_xanes_nn.classifier import XANESClassifier

    try:
        XANESClassifier.load(model)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"XANES_NN_MODEL={model!r}: {exc}") from exc


def pipeline(
    tasks: Store, spectra: Store, materials: Store, classifications: Store, material_classifications: Store,
    model: str = DEFAULT_MODEL, exhaustive: bool = True, **kwargs,
) -> list[Builder]:
    """The four builders of the pipeline, in run order (``exhaustive``: see :class:`SpectrumBuilder`).

    The spectra are preprocessed as the model reads them (its grid, normalization, alignment), so the
    classification builders never meet a spectrum of another preprocessing.
    """
    from pymatgen_xanes_nn.classifier import XANESClassifier

    clf = XANESClassifier.load(model)
    return [
        SpectrumBuilder(tasks, spectra, preprocessing=clf.preprocessing, exhaustive=exhaustive, **kwargs),
        MaterialSpectrumBuilder(spectra, materials, **kwargs),
        ClassificationBuilder(spectra, classifications, model=model, exhaustive=exhaustive, **kwargs),
        ClassificationBuilder(materials, material_classifications, model=model, exhaustive=exhaustive, **kwargs),
    ]


def pipeline_from_env(env: dict[str, str] | None = None, **kwargs) -> list[Builder]:
    """Builders configured from the environment (see :data:`ENV_VARS`).

    With ``XANES_NN_MONGO_URI`` set, every store is a ``MongoStore`` on that server; otherwise
    the tasks are the shipped dataset in memory and the outputs are JSON files in
    ``XANES_NN_OUTPUT``.
    """
    settings = PipelineSettings.from_env(env)
    exhaustive, stages, model = settings.exhaustive, settings.stages, settings.model
    check_model(model)
    uri = settings.mongo_uri
    names = {"spectra": "task_id", "materials": "structure_id", "classifications": "task_id",
             "material_classifications": "structure_id"}
    if uri:
        timeout = settings.mongo_timeout_ms
        check_mongo(uri, timeout)
        for var, value in (("XANES_NN_DB", settings.db), ("XANES_NN_TASKS_DB", settings.tasks_db),
                           ("XANES_NN_TASKS_COLLECTION", settings.tasks_collection)):
            check_mongo_name(var, value)
        check_source(uri, settings.tasks_db, settings.tasks_collection, timeout)
        tasks = mongo_store(uri, settings.tasks_collection, settings.tasks_db, timeout_ms=timeout)
        out = {n: mongo_store(uri, f"xanes_{n}", settings.db, k, timeout) for n, k in names.items()}
    else:
        directory, tasks_file = settings.output, settings.tasks_file
        if tasks_file is not None and not os.path.isfile(tasks_file):
            raise ConfigurationError(f"XANES_NN_TASKS_FILE={tasks_file!r}: no such file")
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"XANES_NN_OUTPUT={directory!r}: cannot create it ({exc})") from exc
        if not os.access(directory, os.W_OK):
            raise ConfigurationError(f"XANES_NN_OUTPUT={directory!r}: not writable")
        tasks = PackedTaskStore(tasks_file, index_dir=directory)
        try:
            tasks.connect()
        except ValueError as exc:  # a truncated or corrupt file names itself
            raise ConfigurationError(f"XANES_NN_TASKS_FILE: {exc}") from exc
        if not tasks.count():  # an empty source would build nothing and look like success
            raise ConfigurationError(f"XANES_NN_TASKS_FILE={tasks_file!r} holds no task documents")
        out = {n: JSONFileStore(os.path.join(directory, f"xanes_{n}.json"), key=k) for n, k in names.items()}
        for store in out.values():
            try:
                store.connect()
            except ValueError as exc:  # e.g. a file damaged by a full disk or an editor
                raise ConfigurationError(f"XANES_NN_OUTPUT: {store.path} cannot be read ({exc}); move it away and "
                                         "the next run rebuilds it") from exc
    builders = pipeline(tasks, out["spectra"], out["materials"], out["classifications"],
                        out["material_classifications"], model=model, exhaustive=exhaustive, **kwargs)
    return [b for stage, b in zip(STAGES, builders) if stage in stages]
