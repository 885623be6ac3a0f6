"""Read Si K-edge spectra from files and documents into pymatgen ``XAS`` objects.

Supported inputs:
    * FEFF ``xmu.dat`` (energy = column 0, mu = column 3), with its ``feff.inp`` if present;
    * two-column text/CSV files (energy in eV, intensity);
    * pymatgen ``XAS`` JSON (MSON), optionally gzipped;
    * atomate FEFF task documents (``spectrum`` = xmu.dat rows), as dicts or JSON files.

Every reader raises :class:`~pymatgen_xanes_nn.preprocessing.SpectrumError` naming the problem
for empty, unparseable or inconsistent input.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from pymatgen_xanes_nn.preprocessing import SpectrumError, validate_arrays, xas_from_dict

if TYPE_CHECKING:
    from pymatgen.analysis.xas.spectrum import XAS

_XMU_COLUMNS_RE = re.compile(r"#\s+omega\s+e\s+k\s+mu\s+mu0\s+chi")
_ABS_RE = re.compile(r"Abs\s+Z=\s*(\d+).*?\b(K|L1|L2|L3|M1|M2|M3|M4|M5)\s+shell")


def _make_xas(energy, mu, structure=None, element: str = "Si", edge: str = "K", spectrum_type: str = "XANES",
              absorbing_index: int | None = None) -> XAS:
    from pymatgen.analysis.xas.spectrum import XAS

    energy, mu = validate_arrays(energy, mu)
    return XAS(energy, mu, structure, element, edge=edge, spectrum_type=spectrum_type,
               absorbing_index=absorbing_index)


#: Largest spectrum file read (bytes, decompressed): a measured spectrum is a few hundred kB.
MAX_SPECTRUM_BYTES = 64 * 1024 * 1024


def _read_text(filename: str) -> str:
    from pymatgen_xanes_nn.jsonio import UnsafeDocumentError, read_bytes

    if not os.path.exists(filename):
        raise FileNotFoundError(f"No such spectrum file: {filename}")
    try:
        text = read_bytes(filename, MAX_SPECTRUM_BYTES).decode()
    except (OSError, UnicodeDecodeError, UnsafeDocumentError) as exc:
        raise SpectrumError(f"Cannot read {filename}: {exc}") from exc
    if not text.strip():
        raise SpectrumError(f"Empty file: {filename}")
    return text


def read_xmu(filename: str, feff_inp: str | None = None) -> XAS:
    """Read a FEFF ``xmu.dat`` (energy column 0, mu column 3) into an ``XAS``.

    The absorbing element and edge come from the ``Abs Z=.. K shell`` header line; when a
    ``feff.inp`` written by pymatgen sits next to the file (or is given), its structure is attached
    through pymatgen's ``Xmu``.
    """
    from pymatgen.core import Element

    text = _read_text(filename)
    try:
        rows = np.loadtxt(text.splitlines(), comments="#", ndmin=2)
    except ValueError as exc:
        raise SpectrumError(f"Corrupt FEFF output {filename}: {exc}") from exc
    if rows.size == 0:
        raise SpectrumError(f"Corrupt FEFF output {filename}: no data rows")
    if rows.shape[1] < 4:
        raise SpectrumError(f"Corrupt FEFF output {filename}: {rows.shape[1]} columns, expected 6")
    match = _ABS_RE.search(text)
    element = Element.from_Z(int(match.group(1))).symbol if match else "Si"
    edge = match.group(2) if match else "K"
    structure, index = None, None
    feff_inp = feff_inp or os.path.join(os.path.dirname(os.path.abspath(filename)), "feff.inp")
    if os.path.exists(feff_inp):
        try:
            from pymatgen.io.feff.outputs import Xmu

            xmu = Xmu.from_file(filename, feff_inp)
            structure = xmu.header.struct
        except Exception:  # feff.inp without pymatgen's header: the spectrum alone is still valid
            structure = None
    return _make_xas(rows[:, 0], rows[:, 3], structure, element, edge, "XANES", index)


def read_two_column(filename: str, element: str = "Si", edge: str = "K") -> XAS:
    """Read a text/CSV file of energy (eV) and intensity columns; header and ``#`` lines are skipped."""
    text = _read_text(filename)
    data = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#")[0].strip()
        if not line:
            continue
        parts = re.split(r"[,;\s]+", line)
        try:
            values = [float(p) for p in parts if p]
        except ValueError:
            if data:  # text after numbers: not a header
                raise SpectrumError(f"Unparseable line {n} of {filename}: {line[:60]!r}") from None
            continue
        if len(values) < 2:
            raise SpectrumError(f"Line {n} of {filename} has {len(values)} column(s); need energy and intensity")
        data.append(values[:2])
    if not data:
        raise SpectrumError(f"No numeric data in {filename}")
    arr = np.array(data)
    return _make_xas(arr[:, 0], arr[:, 1], None, element, edge)


def from_task_doc(doc: dict[str, Any]) -> XAS:
    """Build an ``XAS`` from an atomate FEFF task document (``spectrum`` rows: column 0 energy, 3 mu)."""
    from pymatgen.core import Structure

    from pymatgen_xanes_nn.jsonio import PYMATGEN_CLASSES, UnsafeDocumentError, check_classes

    if not isinstance(doc, dict):
        raise SpectrumError(f"A task document must be a dict, got {type(doc).__name__}")
    try:  # pymatgen's Structure.from_dict decodes site properties with monty: refuse foreign classes first
        check_classes(doc, PYMATGEN_CLASSES, where=f"task {doc.get('task_id')}")
    except UnsafeDocumentError as exc:
        raise SpectrumError(str(exc)) from exc
    rows = doc.get("spectrum")
    if rows is None or len(rows) == 0:
        raise SpectrumError(f"Task {doc.get('task_id')} has no spectrum")
    try:
        arr = np.asarray(rows, dtype=float)
    except (TypeError, ValueError) as exc:
        raise SpectrumError(f"Task {doc.get('task_id')} has a malformed spectrum: {exc}") from exc
    if arr.ndim != 2 or arr.shape[1] < 4:
        raise SpectrumError(f"Task {doc.get('task_id')}: spectrum rows need >= 4 columns, got shape {arr.shape}")
    structure = doc.get("structure")
    if isinstance(structure, dict):
        try:
            structure = Structure.from_dict(structure)
        except Exception as exc:  # pymatgen raises many types on malformed structures
            raise SpectrumError(f"Task {doc.get('task_id')}: invalid structure: {type(exc).__name__}: {exc}") from exc
    absorbing = doc.get("absorbing_atom")
    index = None
    if isinstance(absorbing, (int, np.integer)) and not isinstance(absorbing, bool):
        index = int(absorbing)
        if structure is None or not 0 <= index < len(structure):
            raise SpectrumError(f"Task {doc.get('task_id')}: absorbing_atom index {index} not in structure")
        element = structure[index].specie.symbol
    elif isinstance(absorbing, str):
        element = absorbing
    else:
        raise SpectrumError(f"Task {doc.get('task_id')}: absorbing_atom missing or invalid ({absorbing!r})")
    return _make_xas(arr[:, 0], arr[:, 3], structure, element, doc.get("edge") or "K",
                     doc.get("spectrum_type") or "XANES", index)


def read_json(filename: str) -> XAS:
    """Read a pymatgen ``XAS`` JSON (MSON) or an atomate task document JSON file."""
    from pymatgen_xanes_nn.jsonio import UnsafeDocumentError, loads

    text = _read_text(filename)
    try:
        doc = loads(text, where=filename)
    except UnsafeDocumentError as exc:
        raise SpectrumError(f"Unparseable JSON: {exc}") from exc
    if isinstance(doc, dict) and "spectrum" in doc:
        return from_task_doc(doc)
    if isinstance(doc, dict) and doc.get("@class") == "XAS":
        xas = xas_from_dict(doc, where=filename)
        validate_arrays(xas.x, xas.y)
        return xas
    raise SpectrumError(f"{filename} is neither a pymatgen XAS JSON nor an atomate FEFF task document")


def read_spectrum(filename: str) -> XAS:
    """Read any supported spectrum file, choosing the reader from its name and content."""
    name = os.path.basename(filename).lower().removesuffix(".gz")
    if name.endswith(".json"):
        return read_json(filename)
    head = _read_text(filename)[:4000]
    if name.startswith("xmu") or name.endswith("xmu.dat") or _XMU_COLUMNS_RE.search(head):
        return read_xmu(filename)
    return read_two_column(filename)
