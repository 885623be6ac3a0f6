"""maggma stores for the pipeline: an embedded in-memory store, its JSON-file form, the shipped tasks, MongoDB.

The embedded default (``mrun builders/xanes.py`` with no server) was built on maggma's ``MemoryStore``, i.e.
mongomock. Measured on the shipped 1,013 tasks (``benchmarks/bench_builders.py``), mongomock deep-copies and
walks every document on each insert and query, which made a first run ~60 s and an unchanged rerun ~30 s.
:class:`DictStore` keeps plain dicts, answers MongoDB filters with mongomock's own matcher (the same query
semantics) and looks up equality / ``$in`` criteria in hash indexes; :class:`PackedTaskStore` reads the packed
dataset only when a builder asks for more than keys and dates, which an unchanged rerun never does.
"""

from __future__ import annotations

import hashlib
import os
import threading
from datetime import datetime, timezone
from itertools import count
from typing import TYPE_CHECKING, Any

from maggma.core import Store

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

#: Class markers our own output documents hold (read as data, never imported).
OUTPUT_CLASSES = frozenset({("pymatgen_xanes_nn.preprocessing", "Preprocessing")})

_SCALARS = (str, int, float, bool, type(None))
_MISSING = object()


def _plain(value: Any) -> Any:
    """``value`` as plain JSON-able data; datetimes become naive UTC (as MongoDB stores them).

    Lists of scalars, which are most of a spectrum document, are passed through after one type check per
    element; anything exotic (numpy, MSONable) goes through monty's ``jsanitize``.
    """
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, _SCALARS) for v in value):
            return list(value)
        return [_plain(v) for v in value]
    from monty.json import jsanitize

    return jsanitize(value, allow_bson=True, recursive_msonable=True)


def _get(doc: dict, field: str) -> Any:
    """``doc[field]`` with dotted paths; ``_MISSING`` if absent."""
    for part in field.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


def _sort_key(value: Any) -> tuple:
    # MongoDB's cross-type order (null < numbers < strings < objects < arrays < booleans < dates)
    if value is _MISSING or value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (5, value)
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, datetime):
        return (6, value.replace(tzinfo=None))
    return (3, repr(value))


def _to_datetime(text: str) -> datetime | str:
    """A date written by this module (ISO 8601) or by maggma (``to_dt`` formats); other strings unchanged."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        from maggma.utils import to_dt

        try:
            return to_dt(text)
        except (ValueError, TypeError):
            return text  # "yesterday": the builders record such a document as malformed


def _replace_file(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, through a temporary file no other process or thread uses."""
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


class DictStore(Store):
    """An in-memory maggma store of plain dicts with MongoDB query semantics.

    Filters are evaluated by mongomock's matcher (the one maggma's ``MemoryStore`` uses), so ``$in``, ``$and``,
    ``$type``, date comparisons ... behave as in MongoDB; equality and ``$in`` on an indexed field (the key
    always, others after ``ensure_index``) are looked up in a hash index instead of scanning. Documents are
    held, not deep-copied: queries return new top-level dicts and ``update`` copies the top level, so callers
    may edit what they get back. ``close()`` keeps the data (maggma closes every store after each builder,
    and one store is the target of one builder and the source of the next).

    Args:
        collection_name: a name for logs and equality.
        key: the document key (``update`` upserts on it).
        last_updated_field: the field maggma's incremental building compares.
    """

    def __init__(self, collection_name: str = "memory", key: str = "task_id", last_updated_field: str = "last_updated",
                 **kwargs):
        self.collection_name = collection_name
        self.kwargs = kwargs
        super().__init__(key=key, last_updated_field=last_updated_field, **kwargs)
        self._docs: dict[int, dict] | None = None
        self._indexes: dict[str, dict[Any, set[int]]] = {}
        self._unindexed: dict[str, set[int]] = {}  # documents whose value of an indexed field is unhashable
        self._unique: set[str] = set()
        self._ids = count()
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ maggma Store interface
    @property
    def name(self) -> str:
        """``dict://<collection_name>``."""
        return f"dict://{self.collection_name}"

    @property
    def _collection(self):
        raise AttributeError(f"{type(self).__name__} has no MongoDB collection; use query/update/load")

    def connect(self, force_reset: bool = False) -> None:
        """Create the empty store (once, unless ``force_reset``)."""
        if self._docs is None or force_reset:
            self._docs = {}
            self._indexes, self._unindexed, self._unique = {}, {}, set()
            self.ensure_index(self.key)

    def close(self) -> None:
        """Keep the data: the store lives as long as the process."""

    def _ensure_connected(self) -> dict[int, dict]:
        if self._docs is None:
            from maggma.core import StoreError

            raise StoreError(f"{self.name} is not connected: call connect() first")
        return self._docs

    def ensure_index(self, key: str, unique: bool = False) -> bool:
        """Build a hash index on a top-level field.

        With ``unique``, ``load`` then refuses a second document with the same value (returns ``False`` if
        the documents already repeat one).
        """
        docs = self._ensure_connected()
        if "." in key:
            return False
        if key not in self._indexes:
            self._indexes[key], self._unindexed[key] = {}, set()
            for i, d in docs.items():
                self._index_doc(key, i, d)
        if unique:
            if any(len(ids) > 1 for ids in self._indexes[key].values()) or len(self._unindexed[key]) > 1:
                return False
            self._unique.add(key)
        return True

    def _index_doc(self, field: str, i: int, doc: dict) -> None:
        value = doc.get(field, _MISSING)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            self._indexes[field].setdefault(value, set()).add(i)
        else:  # lists (MongoDB matches their elements), booleans (True == 1 in Python), missing, None ...
            self._unindexed[field].add(i)

    def _unindex_doc(self, i: int, doc: dict) -> None:
        for field, index in self._indexes.items():
            value = doc.get(field, _MISSING)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and value in index:
                index[value].discard(i)
                if not index[value]:
                    del index[value]
            self._unindexed[field].discard(i)

    def _lookup(self, criteria: dict) -> tuple[set[int], set[int], dict] | None:
        """Use an index for one equality or ``$in`` clause on strings / integers.

        Returns:
            ``(hits, others, rest)``: documents whose indexed value matches the clause (they need only ``rest``,
            the criteria without that clause), documents the index cannot answer for (unhashable or missing
            values: they need the full criteria); None if no clause can use an index.
        """

        def values_of(cond: Any) -> list | None:
            if isinstance(cond, dict):
                cond = cond.get("$in") if set(cond) == {"$in"} else None
                values = list(cond) if isinstance(cond, (list, tuple)) else None
            else:
                values = [cond]
            if values is None or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in values):
                return None
            return values

        clauses = [(None, criteria)] + [(n, c) for n, c in enumerate(criteria.get("$and", [])) if isinstance(c, dict)]
        for position, clause in clauses:
            for field, cond in clause.items():
                if field not in self._indexes or (values := values_of(cond)) is None:
                    continue
                index = self._indexes[field]
                hits = set().union(*(index.get(v, set()) for v in values)) if values else set()
                reduced = {k: v for k, v in clause.items() if k != field}
                if position is None:
                    rest = reduced
                else:
                    others = [c for n, c in enumerate(criteria["$and"]) if n != position] + ([reduced] if reduced
                                                                                             else [])
                    rest = {k: v for k, v in criteria.items() if k != "$and"}
                    if others:
                        rest["$and"] = others
                return hits, set(self._unindexed[field]), rest
        return None

    def _matching(self, criteria: dict | None) -> list[int]:
        from mongomock_ng.filtering import filter_applies  # the matcher of maggma's own MemoryStore

        docs = self._ensure_connected()
        if not criteria:
            return list(docs)
        looked_up = self._lookup(criteria)
        if looked_up is None:
            return [i for i in docs if filter_applies(criteria, docs[i])]
        hits, others, rest = looked_up
        found = [i for i in hits if not rest or filter_applies(rest, docs[i])]
        found += [i for i in others if filter_applies(criteria, docs[i])]
        return sorted(found)  # insertion order, as a scan would give

    def count(self, criteria: dict | None = None, **kwargs) -> int:
        """Number of documents matching ``criteria``."""
        with self._lock:
            return len(self._matching(criteria))

    def query(self, criteria: dict | None = None, properties: dict | list | None = None,
              sort: dict | None = None, skip: int = 0, limit: int = 0, **kwargs) -> Iterator[dict]:
        """Documents matching ``criteria`` (MongoDB filter), projected on ``properties``, sorted, sliced."""
        with self._lock:
            docs = self._docs
            ids = self._matching(criteria)
            if sort:
                for field, direction in reversed(list(sort.items())):
                    direction = getattr(direction, "value", direction)
                    ids.sort(key=lambda i, f=field: _sort_key(_get(docs[i], f)), reverse=direction == -1)
            ids = ids[skip : skip + limit if limit else None]
            found = [docs[i] for i in ids]
        with_id = not (isinstance(properties, dict) and not properties.get("_id", 1))
        if isinstance(properties, dict):
            properties = [p for p, on in properties.items() if on and p != "_id"]
        for i, d in zip(ids, found):
            if not properties:
                out = dict(d)
                if with_id:
                    out["_id"] = i
                yield out
                continue
            out = {"_id": i} if with_id else {}
            for p in properties:
                value = _get(d, p)
                if value is _MISSING:
                    continue
                *parents, last = p.split(".")
                node = out
                for part in parents:
                    node = node.setdefault(part, {})
                node[last] = value
            yield out

    def distinct(self, field: str, criteria: dict | None = None, all_exist: bool = False) -> list:
        """Distinct values of ``field`` (array values unwound, as MongoDB does)."""
        seen: list = []
        hashed: set = set()
        for d in self.query(criteria, properties=[field]):
            value = _get(d, field)
            if value is _MISSING:
                continue
            for v in value if isinstance(value, list) else [value]:
                if _hashable(v):
                    if v not in hashed:
                        hashed.add(v)
                        seen.append(v)
                elif v not in seen:
                    seen.append(v)
        return seen

    def groupby(self, keys: list[str] | str, criteria: dict | None = None, properties: dict | list | None = None,
                sort: dict | None = None, skip: int = 0, limit: int = 0) -> Iterator[tuple[dict, list[dict]]]:
        """Documents grouped by the values of ``keys``: ``(values, documents)`` pairs."""
        keys = [keys] if isinstance(keys, str) else list(keys)
        props = None if not properties else list({*(properties if isinstance(properties, list) else
                                                   [p for p, on in properties.items() if on]), *keys})
        groups: dict[str, tuple[dict, list[dict]]] = {}
        for d in self.query(criteria, properties=props, sort=sort, skip=skip, limit=limit):
            values = {k: (None if _get(d, k) is _MISSING else _get(d, k)) for k in keys}
            groups.setdefault(repr(sorted(values.items())), (values, []))[1].append(d)
        yield from groups.values()

    def load(self, docs: Iterable[dict], plain: bool = False) -> None:
        """Add documents as they are: no upsert, no key required (bulk loading, and tests of malformed data).

        Args:
            docs: the documents.
            plain: they are JSON data already (from a file): only their top-level dates are made naive UTC,
                instead of a walk through every value.
        """
        with self._lock:
            store = self._ensure_connected()
            for d in docs:
                d = {k: _plain(v) if isinstance(v, datetime) else v for k, v in d.items()} if plain else _plain(d)
                d.pop("_id", None)
                for field in self._unique:
                    value = d.get(field, _MISSING)
                    indexed = isinstance(value, (str, int)) and not isinstance(value, bool)
                    if indexed and self._indexes[field].get(value):
                        from pymongo.errors import DuplicateKeyError

                        raise DuplicateKeyError(f"{self.name}: a document with {field} {d.get(field)!r} exists")
                i = next(self._ids)
                store[i] = d
                for field in self._indexes:
                    self._index_doc(field, i, d)

    def update(self, docs: list[dict] | dict, key: list | str | None = None) -> None:
        """Insert or replace ``docs`` by ``key`` (default: the store's key); the last of duplicates wins."""
        key = key or self.key
        keys = [key] if isinstance(key, str) else list(key)
        docs = [docs] if isinstance(docs, dict) else list(docs)
        with self._lock:
            self._ensure_connected()
            latest: dict[tuple, dict] = {}
            for d in docs:
                values = tuple(_get(d, k) for k in keys)
                if any(v is _MISSING for v in values):
                    raise KeyError(f"{self.name}: document without {key!r} cannot be upserted")
                latest[repr(values)] = d
            for d in latest.values():
                self._remove({k: _get(d, k) for k in keys})
            self.load(latest.values())
        self._changed()

    def _remove(self, criteria: dict) -> int:
        ids = self._matching(criteria)
        for i in ids:
            self._unindex_doc(i, self._docs.pop(i))
        return len(ids)

    def remove_docs(self, criteria: dict) -> None:
        """Delete the documents matching ``criteria``."""
        with self._lock:
            n = self._remove(criteria)
        if n:
            self._changed()

    def _changed(self) -> None:
        """Called after every write (a persistent subclass saves here)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DictStore) and (self.name, self.key) == (other.name, other.key)

    def __hash__(self) -> int:
        return hash((self.name, self.key))


class JSONFileStore(DictStore):
    """A :class:`DictStore` kept in a JSON file (a list of documents), read as data and replaced atomically.

    The file is read once on ``connect`` (never rewritten then: an unchanged rerun writes nothing) through
    :mod:`pymatgen_xanes_nn.jsonio`, so a ``{"@module": ...}`` in it is refused, never imported (maggma's
    ``JSONStore`` hands ``last_updated`` dicts to monty's decoder). Every write replaces the file through a
    temporary file named by process and thread, so two runs at once never tear it.

    Args:
        path: the JSON file (created on the first write if missing).
        key: document key.
        read_only: never write the file.
        last_updated_field: see :class:`DictStore`.
    """

    def __init__(self, path: str, key: str = "task_id", read_only: bool = False,
                 last_updated_field: str = "last_updated", **kwargs):
        self.path = path
        self.read_only = read_only
        super().__init__(collection_name=os.path.basename(path), key=key, last_updated_field=last_updated_field,
                         **kwargs)

    @property
    def name(self) -> str:
        """``file://<path>``."""
        return f"file://{self.path}"

    def connect(self, force_reset: bool = False) -> None:
        """Load the file (once, unless ``force_reset``); the last document of a duplicated key wins."""
        from pymatgen_xanes_nn.jsonio import read_json

        if self._docs is not None and not force_reset:
            return
        super().connect(force_reset=True)
        self._mine: set = set()  # keys this process wrote or removed: on disk, only others' keys are merged in
        self._seen: tuple[int, int] | None = None  # (mtime, size) of the file as last read or written
        if not os.path.exists(self.path):
            return
        stat = os.stat(self.path)
        objects = read_json(self.path, OUTPUT_CLASSES)
        objects = objects if isinstance(objects, list) else [objects]
        latest: dict = {}
        for d in objects:
            if isinstance(d, dict) and _hashable(d.get(self.key)):
                if isinstance(d.get(self.last_updated_field), str):
                    d[self.last_updated_field] = _to_datetime(d[self.last_updated_field])
                latest[d[self.key]] = d
        self.load(latest.values(), plain=True)
        self._seen = (stat.st_mtime_ns, stat.st_size)

    def update(self, docs: list[dict] | dict, key: list | str | None = None) -> None:
        """:meth:`DictStore.update`, remembering the keys this process wrote (see :meth:`_changed`)."""
        docs = [docs] if isinstance(docs, dict) else list(docs)
        with self._lock:
            self._mine.update(d.get(self.key) for d in docs if _hashable(d.get(self.key)))
        super().update(docs, key)

    def remove_docs(self, criteria: dict) -> None:
        """:meth:`DictStore.remove_docs`, remembering the keys this process removed."""
        with self._lock:
            self._mine.update(d.get(self.key) for d in self.query(criteria, properties=[self.key]))
        super().remove_docs(criteria)

    def _changed(self) -> None:
        """Write the file, merged with what other processes wrote since this one read it.

        Two runs sharing an output folder each hold their own copy; writing that copy whole would drop the
        other's documents. Under an exclusive lock of the file's folder, documents on disk whose keys this process
        never wrote are taken in first, so every run's updates survive (per key, the last writer wins).
        """
        if self.read_only:
            return
        import fcntl

        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        lock = os.open(folder, os.O_RDONLY)  # the folder itself is the lock: no lock file is left behind
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the descriptor closes
            self._merge_and_write()
        finally:
            os.close(lock)

    def _merge_and_write(self) -> None:
        import orjson

        from pymatgen_xanes_nn.jsonio import read_json

        with self._lock:
            stat = os.stat(self.path) if os.path.exists(self.path) else None
            if stat is not None and (stat.st_mtime_ns, stat.st_size) != self._seen:
                objects = read_json(self.path, OUTPUT_CLASSES)
                theirs = [d for d in (objects if isinstance(objects, list) else [objects])
                          if isinstance(d, dict) and _hashable(d.get(self.key)) and d[self.key] not in self._mine]
                for d in theirs:
                    if isinstance(d.get(self.last_updated_field), str):
                        d[self.last_updated_field] = _to_datetime(d[self.last_updated_field])
                    self._remove({self.key: d[self.key]})
                self.load(theirs, plain=True)
            data = orjson.dumps(list(self._docs.values()), option=orjson.OPT_SERIALIZE_NUMPY)
            _replace_file(self.path, data)
            stat = os.stat(self.path)
            self._seen = (stat.st_mtime_ns, stat.st_size)


class PackedTaskStore(DictStore):
    """The task documents of a packed dataset file (:func:`~pymatgen_xanes_nn.io.tasks.pack_tasks`), read-only.

    A builder's incremental check asks only for keys, dates and states; those come from a small index kept
    next to the outputs (``<index_dir>/tasks_index.json``, tied to the file's SHA-256), so an unchanged rerun
    does not parse the 6 MB dataset. Any other query loads the documents once.

    Args:
        filename: a packed dataset (default: the shipped one).
        index_dir: folder for the index (default: none kept; every run reads the file).
    """

    #: Fields the index answers queries on.
    INDEX_FIELDS = ("task_id", "last_updated", "state")

    def __init__(self, filename: str | None = None, index_dir: str | None = None, **kwargs):
        self.filename = filename
        self.index_dir = index_dir
        kwargs.setdefault("collection_name", "tasks")
        super().__init__(key="task_id", **kwargs)
        self._index_docs: DictStore | None = None
        self._loaded = False

    @property
    def name(self) -> str:
        """``packed://<file>``."""
        return f"packed://{self._path()}"

    def _path(self) -> str:
        from pymatgen_xanes_nn.io.tasks import TASKS_FILE
        from pymatgen_xanes_nn.paths import data_path

        return self.filename or data_path(TASKS_FILE)

    def connect(self, force_reset: bool = False) -> None:
        """Read the index (or the file, if there is no valid index)."""
        if (self._loaded or self._index_docs is not None) and not force_reset:
            return
        super().connect(force_reset=True)
        self._loaded = False
        index = self._read_index()
        if index is None:
            self._load_documents()
            return
        self._index_docs = DictStore(f"{self.collection_name}-index", key="task_id")
        self._index_docs.connect()
        self._index_docs.load(index, plain=True)

    def _digest(self) -> str:
        with open(self._path(), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    def _index_path(self) -> str | None:
        return os.path.join(self.index_dir, "tasks_index.json") if self.index_dir else None

    def _read_index(self) -> list[dict] | None:
        from pymatgen_xanes_nn.jsonio import UnsafeDocumentError, read_json

        path = self._index_path()
        if path is None or not os.path.exists(path):
            return None
        try:
            index = read_json(path)
        except UnsafeDocumentError:
            return None  # rebuilt from the dataset below
        if not isinstance(index, dict) or index.get("sha256") != self._digest() or not isinstance(
                index.get("documents"), list):
            return None
        docs = [d for d in index["documents"] if isinstance(d, dict)]
        for d in docs:
            if isinstance(d.get("last_updated"), str):
                d["last_updated"] = _to_datetime(d["last_updated"])
        return docs

    def _load_documents(self) -> None:
        import orjson

        from pymatgen_xanes_nn.io.tasks import load_tasks

        docs = load_tasks(self._path(), include_failed=True)
        super().connect(force_reset=True)
        self.load(docs, plain=True)
        self._loaded, self._index_docs = True, None
        path = self._index_path()
        if path is not None:
            fields = self.INDEX_FIELDS
            index = {"sha256": self._digest(), "file": self._path(),
                     "documents": [{f: d[f] for f in fields if f in d} for d in self._docs.values()]}
            os.makedirs(self.index_dir, exist_ok=True)
            _replace_file(path, orjson.dumps(index))

    def _answered_by_index(self, criteria: dict | None, properties) -> bool:
        if self._loaded or self._index_docs is None or not properties:
            return False
        fields = set(properties if not isinstance(properties, dict) else [p for p, on in properties.items() if on])

        def collect(c: Any) -> None:
            if isinstance(c, dict):
                for k, v in c.items():
                    if not k.startswith("$"):
                        fields.add(k)
                    collect(v)
            elif isinstance(c, list):
                for v in c:
                    collect(v)

        collect(criteria or {})
        return fields <= set(self.INDEX_FIELDS)

    def query(self, criteria: dict | None = None, properties: dict | list | None = None, **kwargs) -> Iterator[dict]:
        """As :meth:`DictStore.query`; key/date/state-only queries are answered from the index."""
        if self._answered_by_index(criteria, properties):
            return self._index_docs.query(criteria, properties, **kwargs)
        if not self._loaded:
            self._load_documents()
        return super().query(criteria, properties, **kwargs)

    def count(self, criteria: dict | None = None, **kwargs) -> int:
        """Number of documents matching ``criteria``."""
        if self._answered_by_index(criteria, [self.key]):
            return self._index_docs.count(criteria)
        if not self._loaded:
            self._load_documents()
        return super().count(criteria)

    def update(self, docs, key=None) -> None:
        """Refused: the packed dataset is read-only (load it into MongoDB with ``xanes-nn load-tasks``)."""
        raise TypeError(f"{self.name} is read-only")

    def remove_docs(self, criteria: dict) -> None:
        """Refused: the packed dataset is read-only."""
        raise TypeError(f"{self.name} is read-only")


#: Milliseconds to wait for MongoDB before an error (pymongo's default of 30 s hides a typo for half a minute).
DEFAULT_MONGO_TIMEOUT_MS = 1500


def upsert_tasks(uri: str, database: str, collection: str, docs: list[dict], batch: int = 200,
                 progress: bool = True) -> int:
    """Upsert task documents by ``task_id`` into a MongoDB collection, in batches, with a progress bar.

    A unique index on ``task_id`` comes first: without it every upsert scans the collection (1,014 shipped documents
    into secantusdb: 153 s without, 3.3 s with; ``python benchmarks/bench_load_tasks.py``).

    Returns:
        The number of documents in the collection afterwards.
    """
    import pymongo
    from tqdm import tqdm

    client = pymongo.MongoClient(uri)
    try:
        coll = client[database][collection]
        coll.create_index("task_id", unique=True)
        with tqdm(total=len(docs), disable=not progress, desc="task documents", unit="doc") as bar:
            for start in range(0, len(docs), batch):
                part = docs[start:start + batch]
                coll.bulk_write([pymongo.ReplaceOne({"task_id": d["task_id"]}, d, upsert=True) for d in part],
                                ordered=False)
                bar.update(len(part))
        return coll.count_documents({})
    finally:
        client.close()


def mongo_store(uri: str, collection: str, database: str, key: str = "task_id",
                timeout_ms: int = DEFAULT_MONGO_TIMEOUT_MS) -> Store:
    """A maggma ``MongoStore`` from a URI (round-trips through ``as_dict``, so ``mrun -n`` workers get it)."""
    from maggma.stores import MongoStore

    return MongoStore.from_uri(uri, collection, database=database, key=key,
                               mongoclient_kwargs={"serverSelectionTimeoutMS": timeout_ms})
