"""JSON files as data: read and write (gzipped or not) without ever letting a file choose code to run.

Model files, spectra and task documents come from other people. monty's decoder imports the module
named by any nested ``{"@module": ..., "@class": ...}`` and builds that object; pymatgen's
``Site.from_dict`` runs the same decoder on site properties. Everything read here is therefore plain
JSON; :func:`check_classes` refuses any ``@module`` / ``@class`` marker outside an explicit allow-list
before a dict reaches pymatgen, and datetimes are restored from monty's datetime encoding by parsing
the string, never by import.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
import zlib
from datetime import datetime
from typing import Any

from pymatgen_xanes_nn.errors import XANESError

#: Deepest nesting accepted in a document (a structure is ~6 levels deep; json recurses per level).
MAX_DEPTH = 64
#: Largest decompressed file read (bytes): the largest shipped file is 55 MB.
MAX_BYTES = 256 * 1024 * 1024
#: Largest estimated memory (bytes) that parsing one document may take (:func:`parse_cost`): with the bytes
#: themselves, any single file stays under ~1 GB. The largest shipped file (55 MB of task documents) costs
#: ~720 MB by the estimate and 400 MB measured.
PARSE_BUDGET = 768 * 1024 * 1024


def parse_cost(text: str | bytes) -> int:
    """An upper estimate of the memory (bytes) that parsing ``text`` into Python objects takes.

    Counted before parsing, at C speed: ~64 bytes per value (commas), 100 per list, 260 per object and 90 per string
    (two quotes). Measured with orjson: 2-byte ``0,`` items cost 25, ``[],`` 89, ``{"a":1},`` 250, ``"a",`` 90 and
    floats 62 bytes each; a small file can otherwise expand 30-fold (480 MB of ``0,`` took 6.7 GB).
    """
    if isinstance(text, str):
        return 64 * text.count(",") + 100 * text.count("[") + 260 * text.count("{") + 45 * text.count('"')
    return 64 * text.count(b",") + 100 * text.count(b"[") + 260 * text.count(b"{") + 45 * text.count(b'"')

#: (module, class) markers that a pymatgen structure or spectrum legitimately contains.
PYMATGEN_CLASSES = frozenset({
    ("pymatgen.core.structure", "Structure"),
    ("pymatgen.core.structure", "Molecule"),
    ("pymatgen.core.lattice", "Lattice"),
    ("pymatgen.core.sites", "PeriodicSite"),
    ("pymatgen.core.sites", "Site"),
    ("pymatgen.core.periodic_table", "Element"),
    ("pymatgen.core.periodic_table", "Species"),
    ("pymatgen.core.periodic_table", "DummySpecies"),
    ("pymatgen.core.composition", "Composition"),
    ("pymatgen.analysis.xas.spectrum", "XAS"),
    ("pymatgen.io.feff.inputs", "Tags"),  # atomate's input_parameters
    ("numpy", "array"),  # monty's encoding of XAS.x / XAS.y (dumpfn): decoded as np.array(data, dtype)
    ("datetime", "datetime"),
})


class UnsafeDocumentError(XANESError):
    """A document that names a class outside the allow-list, nests too deep or cannot be parsed."""


def _restore_datetime(d: dict) -> Any:
    # monty writes {"@module": "datetime", "@class": "datetime", "string": "2026-01-01 00:00:00.000000+00:00"}
    if d.get("@module") == "datetime" and d.get("@class") == "datetime" and isinstance(d.get("string"), str):
        try:
            return datetime.fromisoformat(d["string"])
        except ValueError:
            return d
    return d


def _numeric_depth(items: list) -> int | None:
    """Nesting depth of a rectangular list of numbers (checked at C speed by numpy), else None."""
    import numpy as np

    try:
        return np.asarray(items, dtype=float).ndim
    except (TypeError, ValueError):
        return None


_DATETIME = ("datetime", "datetime")


def _scan(obj: Any, allowed: frozenset | None, where: str, restore: bool) -> Any:
    """One pass over decoded JSON: depth limit, class markers (unless ``allowed`` is None), datetimes.

    Only containers are visited one by one; a long list of numbers (spectrum rows, coordinates) is checked
    by numpy at once. With ``restore``, monty's datetime dicts are replaced in place by datetimes.
    """

    def check(d: dict) -> bool:  # True: a datetime marker to restore
        pair = (d.get("@module"), d.get("@class"))
        if allowed is not None and (not all(isinstance(v, str) for v in pair) or pair not in allowed):
            raise UnsafeDocumentError(
                f"{where}: refuses to load class {pair[1]!r} from module {pair[0]!r}; "
                "files are read as data and may not choose code to import"
            )
        return restore and pair == _DATETIME

    if isinstance(obj, dict) and ("@module" in obj or "@class" in obj) and check(obj):
        return _restore_datetime(obj)
    stack = [(obj, 0)]
    while stack:
        item, level = stack.pop()
        if level > MAX_DEPTH:
            raise UnsafeDocumentError(f"{where}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            pairs = item.items()
        elif len(item) > 8 and (depth := _numeric_depth(item)) is not None:  # no dict inside
            if level + depth > MAX_DEPTH:
                raise UnsafeDocumentError(f"{where}: nested deeper than {MAX_DEPTH} levels")
            continue
        else:
            pairs = enumerate(item)
        for k, v in pairs:
            if isinstance(v, dict):
                if ("@module" in v or "@class" in v) and check(v):
                    item[k] = _restore_datetime(v)  # replaces a value, never adds a key: safe while iterating
                    continue
                stack.append((v, level + 1))
            elif isinstance(v, list):
                stack.append((v, level + 1))
    return obj


def check_classes(obj: Any, allowed: frozenset = frozenset(), where: str = "document") -> None:
    """Raise :class:`UnsafeDocumentError` if ``obj`` names a class outside ``allowed`` or nests too deep.

    Args:
        obj: decoded JSON.
        allowed: permitted ``(module, class)`` pairs.
        where: what the document is, for the message (e.g. a file name).
    """
    _scan(obj, frozenset(allowed), where, restore=False)


def loads(text: str | bytes, where: str = "document", allowed: frozenset | None = None) -> Any:
    """Parse JSON text as plain data (datetimes restored); errors name ``where``.

    Args:
        text: JSON.
        where: what the text is, for messages.
        allowed: if given, the ``(module, class)`` markers permitted (others raise :class:`UnsafeDocumentError`).
    """
    import orjson

    cost = parse_cost(text)
    if cost > PARSE_BUDGET:
        raise UnsafeDocumentError(f"{where}: parsing it would take ~{cost / 2**20:.0f} MB of memory (at most "
                                  f"{PARSE_BUDGET // 2**20} MB per document); split it into smaller files")
    try:
        obj = orjson.loads(text)  # ~2x the standard library's speed on the 30 MB dataset
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):
            raise UnsafeDocumentError(f"{where}: JSON nested too deeply to parse") from None
        try:  # NaN, Infinity, a byte-order mark: what Python's json writes or accepts
            obj = json.loads(text)
        except RecursionError:
            raise UnsafeDocumentError(f"{where}: JSON nested too deeply to parse") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc2:
            raise UnsafeDocumentError(f"{where}: not valid JSON ({exc2})") from exc2
    return _scan(obj, None if allowed is None else frozenset(allowed) | {_DATETIME}, where, restore=True)


def read_bytes(filename: str, max_bytes: int = MAX_BYTES) -> bytes:
    """The (decompressed) bytes of a file; a truncated or corrupt ``.gz`` gives an error naming the file."""
    if not os.path.exists(filename):
        raise FileNotFoundError(f"No such file: {filename}")
    if os.path.isdir(filename):
        raise IsADirectoryError(f"{filename} is a directory, not a file")
    try:
        with open(filename, "rb") as raw:
            head = raw.read(2)
            raw.seek(0)
            if head == b"\x1f\x8b":
                with gzip.GzipFile(fileobj=raw) as f:
                    data = f.read(max_bytes + 1)
            else:
                data = raw.read(max_bytes + 1)
    except (EOFError, OSError, zlib.error) as exc:
        raise UnsafeDocumentError(f"{filename}: truncated or corrupt compressed file ({exc})") from exc
    if len(data) > max_bytes:
        raise UnsafeDocumentError(f"{filename}: larger than {max_bytes // 2**20} MB decompressed")
    return data


def read_json(filename: str, allowed: frozenset | None = frozenset()) -> Any:
    """Read a JSON file (gzipped or not) as plain data, refusing class markers outside ``allowed``.

    With ``allowed=None`` nothing is refused here: the caller checks the markers, document by document, before
    anything reaches pymatgen.
    """
    return loads(read_bytes(filename), where=filename, allowed=allowed)


def write_json(obj: Any, filename: str) -> None:
    """Write ``obj`` as JSON (gzipped if the name ends in ``.gz``), atomically; datetimes and arrays via monty."""
    from monty.json import MontyEncoder

    tmp = f"{filename}.{os.getpid()}.{threading.get_ident()}.tmp"  # two writers (processes or threads) never share it
    opener = gzip.open if filename.endswith(".gz") else open
    with opener(tmp, "wt") as f:
        json.dump(obj, f, cls=MontyEncoder)
    os.replace(tmp, filename)


def iter_directory(directory: str, allowed: frozenset = frozenset(), suffix: str = ".json.gz"):
    """Yield ``(path, document)`` for the JSON files of a folder, in name order.

    A truncated or corrupt file (a run killed mid-write before atomic writes, a disk error) is logged
    with its name and skipped, so it never blocks a resumed run: its task simply counts as not done.
    """
    import logging

    for name in sorted(os.listdir(directory)):
        if not name.endswith(suffix):
            continue
        path = os.path.join(directory, name)
        try:
            yield path, read_json(path, allowed)
        except UnsafeDocumentError as exc:
            logging.getLogger(__name__).warning("skipping %s", exc)


def read_checkpoint(path: str | None, key: str) -> list[dict[str, Any]]:
    """Finished fold results of a run with this key (lines of other runs or a torn last line are ignored)."""
    done = []
    if not path or not os.path.exists(path):
        return done
    with open(path) as fh:
        for line in fh:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if entry.get("key") == key:
                done.append(entry["result"])
    return done


def append_checkpoint(path: str | None, key: str, result: dict[str, Any]) -> None:
    """Keep one finished fold result (a JSON line) so that a rerun with the same key skips it."""
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"key": key, "result": result}) + "\n")
