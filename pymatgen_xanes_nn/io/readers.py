"""Read Si K-edge spectra from files and documents into pymatgen ``XAS`` objects.

Supported inputs:
    * FEFF ``xmu.dat`` (energy = column 0, mu = column 3), with its ``feff.inp`` if present;
    * text/CSV columns as beamlines write them: XDI, or a header naming the columns (energy, i0, it, if, mu, ...;
      mu computed from transmission or fluorescence channels), or two unnamed columns (energy, mu);
      keV, decimal commas and Latin-1 are handled;
    * Athena project files (``.prj``);
    * pymatgen ``XAS`` JSON (MSON), optionally gzipped;
    * atomate FEFF task documents (``spectrum`` = xmu.dat rows), as dicts or JSON files.

Every reader raises :class:`~pymatgen_xanes_nn.preprocessing.SpectrumError` naming the problem
for empty, unparseable or inconsistent input.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from pymatgen.analysis.xas.spectrum import XAS

from pymatgen_xanes_nn.edges import DEFAULT_ELEMENT
from pymatgen_xanes_nn.preprocessing import MAX_POINTS, SpectrumError, validate_arrays, xas_from_dict

if TYPE_CHECKING:
    from collections.abc import Sequence

_XMU_COLUMNS_RE = re.compile(r"#\s+omega\s+e\s+k\s+mu\s+mu0\s+chi")
_ABS_RE = re.compile(r"Abs\s+Z=\s*(\d+).*?\b(K|L1|L2|L3|M1|M2|M3|M4|M5)\s+shell")


class ReadXAS(XAS):
    """A pymatgen ``XAS`` that prints without a structure (a file holds none); serialized as a plain ``XAS``.

    pymatgen's ``XAS.__str__`` reads ``structure.reduced_formula``: a spectrum read from a file crashed at the
    prompt and in ``print``.
    """

    def __str__(self) -> str:
        formula = self.structure.reduced_formula if self.structure is not None else "no structure attached"
        return (f"{self.absorbing_element} {self.edge} edge {self.spectrum_type} ({formula}): {len(self.x)} points, "
                f"{self.x[0]:.1f}-{self.x[-1]:.1f} eV")

    def __repr__(self) -> str:
        return str(self)

    def as_dict(self) -> dict:
        """``XAS.as_dict`` under XAS's own class marker: a file written from it reads back anywhere as an XAS."""
        d = super().as_dict()
        d["@module"], d["@class"] = XAS.__module__, XAS.__name__
        return d


def _make_xas(energy, mu, structure=None, element: str = DEFAULT_ELEMENT, edge: str = "K", spectrum_type: str = "XANES",
              absorbing_index: int | None = None) -> XAS:
    from pymatgen.core import Element

    energy, mu = validate_arrays(energy, mu)
    symbol = str(element).strip().capitalize()  # "si" in a hand-written XDI header means Si
    if not Element.is_valid_symbol(symbol):
        raise SpectrumError(f"Absorbing element {element!r} is not an element symbol")
    return ReadXAS(energy, mu, structure, symbol, edge=str(edge).strip(), spectrum_type=spectrum_type,
                   absorbing_index=absorbing_index)


#: Largest spectrum file read (bytes, decompressed): a measured spectrum is a few hundred kB.
MAX_SPECTRUM_BYTES = 64 * 1024 * 1024
#: Energies that end below this (eV) are relative to an edge (E - E0): no edge a model reads lies below 1 keV, and a
#: XANES scan relative to its edge ends at most a few hundred eV above it.
MIN_ABSOLUTE_EV = 500.0
#: Largest ``feff.inp`` read beside an ``xmu.dat`` for its structure (bytes); a bigger one is ignored.
MAX_FEFF_INP_BYTES = 1024 * 1024


def _read_text(filename: str) -> str:
    from pymatgen_xanes_nn.jsonio import UnsafeDocumentError, read_bytes

    if not os.path.exists(filename):
        raise FileNotFoundError(f"No such spectrum file: {filename}")
    try:
        data = read_bytes(filename, MAX_SPECTRUM_BYTES)
    except (OSError, UnsafeDocumentError) as exc:
        raise SpectrumError(f"Cannot read {filename}: {exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:  # a Latin-1 header ("µ", "°") from older beamline software; every byte decodes
        text = data.decode("latin-1")
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
    element = Element.from_Z(int(match.group(1))).symbol if match else DEFAULT_ELEMENT
    edge = match.group(2) if match else "K"
    structure, index = None, None
    feff_inp = feff_inp or os.path.join(os.path.dirname(os.path.abspath(filename)), "feff.inp")
    # only pymatgen's header comment (the structure) is read: its Tags parser expands "N*x" values in memory
    # (S02 100000000*0 took 1.66 GB), and a FEFF input of a 10 A cluster is ~20 kB
    if os.path.exists(feff_inp) and os.path.getsize(feff_inp) <= MAX_FEFF_INP_BYTES:
        try:
            from pymatgen.io.feff.inputs import Header

            structure = Header.from_file(feff_inp).struct
        except Exception:  # feff.inp without pymatgen's header: the spectrum alone is still valid
            structure = None
    return _make_xas(rows[:, 0], rows[:, 3], structure, element, edge, "XANES", index)


class SpectrumNote(UserWarning):
    """Something a reader did to the data that the user should know (units converted, mu computed)."""


def _note(message: str) -> None:
    warnings.warn(message, SpectrumNote, stacklevel=3)


#: Column names as beamlines and XAS programs write them (lower case, units stripped) -> role. Columns with
#: other names (index, time, reference channels such as ``irefer``/``murefer``) are ignored.
COLUMN_ROLES: dict[str, tuple[str, ...]] = {
    "energy": ("energy", "e", "en", "ener", "ev", "energyev", "enc", "mono", "monoenergy", "energie", "énergie"),
    "relative energy": ("e-e0", "e_e0", "erel", "e_rel", "relative_energy", "de"),
    "i0": ("i0", "io", "izero", "i_0", "mon", "monitor", "ionchamber0", "ionchamber"),
    "it": ("it", "i1", "itrans", "i_t", "trans", "itr", "ionchamber1"),
    "if": ("if", "ifl", "ifluor", "fluor", "fl", "ff", "pips", "ipips", "sdd", "sddtotal", "fy", "tfy", "pfy"),
    "mu": ("mu", "xmu", "mu_e", "mut", "mutrans", "mu_trans", "muf", "mufluor", "mu_fluor", "norm", "flat",
           "normtrans", "normfluor", "nmu", "normalized", "absorption", "abs", "intensity", "tey"),
}
_ROLE_OF = {alias: role for role, aliases in COLUMN_ROLES.items() for alias in aliases}
_UNIT_RE = re.compile(r"^[(\[]?(k?ev)[)\]]?$", re.IGNORECASE)
_DECIMAL_COMMA_RE = re.compile(r"^[-+]?\d+(,\d+)?([eE][-+]?\d+)?$")
_NUMERIC_START_RE = re.compile(r"^\s*[-+]?(\d|\.\d)")


def _column_name(token: str) -> tuple[str, str | None]:
    """``"Energy(eV)"`` -> ``("energy", "ev")``: a header token's name and unit, lower case."""
    token = token.strip().lower()
    unit = None
    match = re.match(r"^(.*?)\s*[(\[/]\s*(k?ev|[^)\]]*)\s*[)\]]?$", token)
    if match and match.group(1):
        token, unit = match.group(1), match.group(2) or None
    for suffix in ("_kev", "_ev"):
        if token.endswith(suffix) and len(token) > len(suffix):
            token, unit = token[: -len(suffix)], suffix[1:]
    token = token.strip()
    # "Mono Energy" or "Ion Chamber 0", written with spaces: the name without them, when that is a known one
    return (token.replace(" ", "") if " " in token and token.replace(" ", "") in _ROLE_OF else token), unit


def _header_names(line: str, n_columns: int) -> list[tuple[str, str | None]] | None:
    """Column names (and units) of a header line, if it names exactly ``n_columns`` columns."""
    text = line.lstrip("#!%; \t")
    for splitter in (r"[,;\t]+", r"\s{2,}", r"\s+"):  # two or more spaces: names written with one inside
        tokens = [t for t in re.split(splitter, text.strip()) if t]
        merged: list[str] = []
        for t in tokens:  # "energy (eV)" split at the space: the unit joins its column
            if merged and _UNIT_RE.match(t) and not _UNIT_RE.match(merged[-1]):
                merged[-1] += f"({_UNIT_RE.match(t).group(1)})"
            else:
                merged.append(t)
        if len(merged) == n_columns:
            return [_column_name(t) for t in merged]
    return None


def _split_numbers(line: str, decimal_comma: bool) -> list[float]:
    if decimal_comma:
        return [float(t.replace(",", ".")) for t in re.split(r"[;\s]+", line.strip()) if t]
    return [float(t) for t in re.split(r"[,;\s]+", line.strip()) if t]


def _uses_decimal_comma(line: str) -> bool:
    """``1838,5  0,041`` or ``1838,5;0,041``: commas as decimal marks (never with a dot in the line)."""
    tokens = [t for t in re.split(r"[;\s]+", line.strip()) if t]
    return "." not in line and "," in line and len(tokens) >= 2 and all(_DECIMAL_COMMA_RE.match(t) for t in tokens)


def energies_in_ev(energy: np.ndarray, unit: str | None = None, where: str = "spectrum") -> np.ndarray:
    """Energies in eV: keV (declared or recognised) converted with a note; relative energies refused.

    Args:
        energy: energies as read.
        unit: the unit the file declares (``"ev"``/``"kev"``), if any.
        where: the file, for messages.

    Raises:
        SpectrumError: for energies relative to the edge (E - E0), which the models cannot place.
    """
    energy = np.asarray(energy, float)
    if energy.size == 0:
        return energy
    lo, hi = float(np.min(energy)), float(np.max(energy))
    kev_like = 0.1 <= np.median(energy) <= 40.0 and hi - lo < 5.0
    if unit == "ev" and kev_like:
        raise SpectrumError(f"{where}: the energy column is declared in eV but runs from {lo:g} to {hi:g}: those are "
                            "keV; correct the unit in the header (eV -> keV) and it is converted")
    if unit == "kev" or (unit is None and kev_like):
        # every K edge from B to Sb lies at 0.1-40 keV, and no XANES scan spans 5 keV
        _note(f"{where}: energies {lo:g}-{hi:g} read as keV ({'declared' if unit else 'recognised'}) "
              "and converted to eV")
        return energy * 1000.0
    if lo < 0 or hi < MIN_ABSOLUTE_EV:
        raise SpectrumError(
            f"{where}: energies run from {lo:g} to {hi:g} eV: they look relative to the edge (E - E0); the models "
            "need absolute energies (K edges: Si ~1839 eV, S ~2472 eV); add the edge energy to the energy column")
    return energy


def _pick_mu(names: list[str], columns: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    """Mu from named columns: a mu column, else ln(I0/It) (transmission), else If/I0 (fluorescence)."""
    roles = [_ROLE_OF.get(n) for n in names]

    def col(role: str) -> np.ndarray | None:
        return columns[:, roles.index(role)] if role in roles else None

    i0, it, fl, mu = col("i0"), col("it"), col("if"), col("mu")
    if mu is not None:
        return mu, f"column {names[roles.index('mu')]!r}"
    if i0 is not None and it is not None:
        if (i0 <= 0).any() or (it <= 0).any():
            raise SpectrumError(f"{where}: transmission needs positive I0 and It; found zero or negative counts")
        return np.log(i0 / it), "transmission, mu = ln(I0/It)"
    if i0 is not None and fl is not None:
        if (i0 <= 0).any():
            raise SpectrumError(f"{where}: fluorescence needs positive I0; found zero or negative counts")
        return fl / i0, "fluorescence, mu = If/I0"
    unknown = [k for k, r in enumerate(roles) if r is None]
    if len(names) == 2 and roles.count("energy") == 1 and len(unknown) == 1:  # energy and one signal, whatever its name
        return columns[:, unknown[0]], f"column {names[unknown[0]]!r} taken as mu (the only other column)"
    raise SpectrumError(
        f"{where}: no column gives mu (columns: {', '.join(names)}); expected one of mu/xmu/norm/flat, or i0 with "
        "it (transmission) or if (fluorescence): name them in the header or with columns=, e.g. 'energy,i0,it'")


def read_columns(filename: str, columns: Sequence[str] | None = None, element: str = DEFAULT_ELEMENT,
                 edge: str = "K") -> XAS:
    """Read a text spectrum whose columns a header names (or ``columns`` does), XDI files included.

    Two unnamed columns are energy and mu. Named columns (see :data:`COLUMN_ROLES`): a mu column is used as
    is; otherwise mu is computed from I0 and It (transmission, ``ln(I0/It)``) or from I0 and If (fluorescence,
    ``If/I0``), with a :class:`SpectrumNote`. Energies in keV are converted (note); decimal commas and Latin-1
    files are read.

    Args:
        filename: the file.
        columns: a name per column (e.g. ``["index", "energy", "mu"]``), overriding the header.
        element: absorbing element when the file does not say (XDI's ``Element.symbol`` does).
        edge: absorption edge when the file does not say (XDI's ``Element.edge``).
    """
    text = _read_text(filename)
    n_lines = text.count("\n")
    if n_lines > MAX_POINTS + 10_000:  # refused before parsing a million lines, not after
        raise SpectrumError(f"{filename} has {n_lines} lines; a spectrum may have at most {MAX_POINTS} points")
    xdi: dict[str, str] = {}
    header: list[str] = []
    rows: list[list[float]] = []
    decimal_comma = None
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped[0] in "#!%" or (not rows and not _NUMERIC_START_RE.match(stripped)):
            if rows and stripped[0] not in "#!%":
                raise SpectrumError(f"Unparseable line {n} of {filename}: {stripped[:60]!r}")
            if not rows:
                header.append(stripped)
                field = re.match(r"^#\s*([\w.]+)\s*:\s*(.*)$", stripped)
                if field:
                    xdi[field.group(1).lower()] = field.group(2).strip()
            continue
        if decimal_comma is None:
            decimal_comma = _uses_decimal_comma(stripped)
        try:
            values = _split_numbers(stripped, decimal_comma)
        except ValueError:
            raise SpectrumError(f"Unparseable line {n} of {filename}: {stripped[:60]!r}") from None
        if rows and len(values) != len(rows[0]):
            raise SpectrumError(f"Line {n} of {filename} has {len(values)} columns, earlier lines {len(rows[0])}")
        rows.append(values)
    if not rows:
        raise SpectrumError(f"No numeric data in {filename}")
    data = np.array(rows)
    n_cols = data.shape[1]
    if n_cols < 2:
        raise SpectrumError(f"{filename} has {n_cols} column; need energy and intensity")
    named: list[tuple[str, str | None]] | None
    header_line = None
    if columns is not None:
        if len(columns) != n_cols:
            raise SpectrumError(f"{filename} has {n_cols} columns but {len(columns)} names were given: "
                                f"{', '.join(columns)}")
        named = [_column_name(c) for c in columns]
    elif any(k.startswith("column.") for k in xdi):  # XDI: "# Column.1: energy eV"
        named = []
        for i in range(1, n_cols + 1):
            words = xdi.get(f"column.{i}", f"column{i}").split()
            if not words:
                raise SpectrumError(f"{filename}: the XDI header 'Column.{i}:' names no column; name it (e.g. "
                                    "'# Column.1: energy eV') or give the names with columns= (--columns)")
            named.append((words[0].lower(), words[1].lower() if len(words) > 1 else None))
    else:  # the header line nearest the data that names every column, one naming an energy column first
        candidates = [(line, names) for line in reversed(header) if (names := _header_names(line, n_cols))]
        energetic = [c for c in candidates if any(_ROLE_OF.get(n) == "energy" for n, _ in c[1])]
        header_line, named = (energetic or candidates or [(None, None)])[0]
    element = xdi.get("element.symbol", element)
    edge = xdi.get("element.edge", edge)
    if named is None:
        if n_cols > 2:
            raise SpectrumError(f"{filename} has {n_cols} columns and no header naming them: give the names, "
                                "e.g. columns='energy,i0,it' (--columns on the command line)")
        named = [("energy", None), ("mu", None)]
    names = [name for name, _ in named]
    roles = [_ROLE_OF.get(name) for name in names]
    if "energy" not in roles and "relative energy" in roles:
        raise SpectrumError(f"{filename}: the energy column {names[roles.index('relative energy')]!r} is relative to "
                            "the edge (E - E0); the model needs absolute energies (the Si K edge is at ~1839 eV)")
    if "energy" not in roles:
        raise SpectrumError(f"{filename}: no energy column among {', '.join(names)} (expected energy/e/ev, ...)"
                            + (f", read from the header line {header_line[:60]!r}" if columns is None and
                               header_line else "")
                            + f"; name the {n_cols} columns: columns=[...] in Python, --columns on the command line, "
                            "e.g. energy,i0,if")
    k = roles.index("energy")
    energy = energies_in_ev(data[:, k], named[k][1], where=filename)
    mu, how = _pick_mu(names, data, filename)
    if how.startswith(("transmission", "fluorescence")) or "taken as mu" in how:
        _note(f"{filename}: {how}")
    return _make_xas(energy, mu, None, element, edge)


def _site_element(structure: dict, index: int, task_id: Any) -> str:
    """The element of site ``index`` of a structure dict, read without building the ``Structure``."""
    try:
        species = structure["sites"][index]["species"]
        (only,) = species  # an ordered site: one species
        return str(only["element"])
    except (KeyError, IndexError, TypeError, ValueError):
        raise SpectrumError(f"Task {task_id}: absorbing_atom {index} is not an ordered site of the structure") from None


def from_task_doc(doc: dict[str, Any], with_structure: bool = True) -> XAS:
    """Build an ``XAS`` from an atomate FEFF task document (``spectrum`` rows: column 0 energy, 3 mu).

    Args:
        doc: the task document.
        with_structure: attach the pymatgen ``Structure`` (``False``: read only the absorbing element from the
            structure dict, ~3 ms faster per document; the spectrum builder needs no more when the document's
            metadata names its chemical system).
    """
    from pymatgen.core import Structure

    from pymatgen_xanes_nn.jsonio import PYMATGEN_CLASSES, UnsafeDocumentError, check_classes

    if not isinstance(doc, dict):
        raise SpectrumError(f"A task document must be a dict, got {type(doc).__name__}")
    if with_structure:
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
    if isinstance(structure, dict) and with_structure:
        try:
            structure = Structure.from_dict(structure)
        except Exception as exc:  # pymatgen raises many types on malformed structures
            raise SpectrumError(f"Task {doc.get('task_id')}: invalid structure: {type(exc).__name__}: {exc}") from exc
    absorbing = doc.get("absorbing_atom")
    index = None
    if isinstance(absorbing, (int, np.integer)) and not isinstance(absorbing, bool):
        index = int(absorbing)
        n_sites = len(structure.get("sites") or []) if isinstance(structure, dict) else len(structure or [])
        if structure is None or not 0 <= index < n_sites:
            raise SpectrumError(f"Task {doc.get('task_id')}: absorbing_atom index {index} not in structure")
        if isinstance(structure, dict):
            element, structure = _site_element(structure, index, doc.get("task_id")), None
        else:
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


_ATHENA_LINE_RE = re.compile(r"^\s*([$@])(\w+)\s*=\s*(.*?);\s*$")
_PERL_TOKEN_RE = re.compile(r"'((?:[^'\\]|\\.)*)'|(\[)|(\])|([^,\s\[\]()]+)")


def _perl_list(text: str) -> list:
    """The items of a Perl list literal ``('a', 'b', ['c'], 3)`` as strings and nested lists (never evaluated)."""
    stack: list[list] = [[]]
    for quoted, opening, closing, bare in _PERL_TOKEN_RE.findall(text.strip().removeprefix("(").removesuffix(")")):
        if opening:
            stack.append([])
        elif closing and len(stack) > 1:
            inner = stack.pop()
            stack[-1].append(inner)
        elif not closing:
            stack[-1].append(quoted if not bare else bare)
    return stack[0]


def read_athena(filename: str, element: str = DEFAULT_ELEMENT, edge: str = "K") -> list[tuple[str, XAS]]:
    """Read every mu(E) group of an Athena project file (``.prj``, gzipped or not) as ``(label, XAS)``.

    The file is Perl data; only its quoted strings are read (never evaluated). A calibration shift stored by
    Athena (``bkg_eshift``) is applied, with a :class:`SpectrumNote`. Groups of other data types (chi(k), ...)
    are skipped with a note.
    """
    text = _read_text(filename)
    if not text.lstrip().startswith("# Athena project file"):
        raise SpectrumError(f"{filename} is not an Athena project file (no '# Athena project file' header)")
    groups: list[dict[str, Any]] = []
    for line in text.splitlines():
        match = _ATHENA_LINE_RE.match(line)
        if not match:
            continue
        sigil, name, value = match.groups()
        items = _perl_list(value)
        if sigil == "$" and name == "old_group":
            groups.append({"group": str(items[0]) if items else f"group{len(groups) + 1}"})
        elif sigil == "@" and groups and name in ("args", "x", "y"):
            groups[-1][name] = items
    out = []
    for g in groups:
        args = {k: v for k, v in zip(g.get("args", [])[::2], g.get("args", [])[1::2]) if isinstance(k, str)}
        label = str(args.get("label") or g["group"])
        where = f"{filename} [{label}]"
        datatype = str(args.get("datatype", "xmu")).lower()
        if datatype not in ("xmu", "xanes") or args.get("is_chi") == "1":
            _note(f"{where}: datatype {datatype!r} is not mu(E); skipped")
            continue
        try:
            energy = np.array(g.get("x", []), float)
            mu = np.array(g.get("y", []), float)
            shift = float(args.get("bkg_eshift", 0) or 0)
        except (TypeError, ValueError) as exc:
            raise SpectrumError(f"{where}: non-numeric data ({exc})") from exc
        if shift:
            _note(f"{where}: Athena's calibration shift bkg_eshift = {shift:+g} eV applied")
        try:
            out.append((label, _make_xas(energies_in_ev(energy, "ev", where) + shift, mu, None, element, edge)))
        except SpectrumError as exc:
            raise SpectrumError(f"{where}: {exc}") from exc
    if not out:
        raise SpectrumError(f"{filename}: no mu(E) group in this Athena project")
    return out


def read_spectra(filename: str, columns: Sequence[str] | None = None) -> list[tuple[str, XAS]]:
    """Every spectrum of a file as ``(name, XAS)``: one for most formats, one per group of an Athena project."""
    name = os.path.basename(filename).lower().removesuffix(".gz")
    try:
        if not name.endswith(".json") and _is_athena(name, _read_text(filename)):
            return [(f"{filename}:{label}", xas) for label, xas in read_athena(filename)]
        return [(filename, read_spectrum(filename, columns))]
    except SpectrumError:
        raise
    except (ValueError, IndexError, KeyError) as exc:  # a parser's complaint about a file is a bad file
        raise SpectrumError(f"{filename} could not be read: {type(exc).__name__}: {exc}") from exc


def _is_athena(name: str, text: str) -> bool:
    """An Athena project, by its (lower-case, unzipped) file name or its first line."""
    return name.endswith(".prj") or text[:200].lstrip().startswith("# Athena project file")


def read_spectrum(filename: str, columns: Sequence[str] | None = None) -> XAS:
    """Read any supported spectrum file, choosing the reader from its name and content.

    Args:
        filename: FEFF ``xmu.dat``, XDI, column text/CSV, Athena project (one group), XAS or task JSON.
        columns: names of the columns of a text file whose header does not name them (see :func:`read_columns`).
    """
    name = os.path.basename(filename).lower().removesuffix(".gz")
    if name.endswith(".json"):
        return read_json(filename)
    head = _read_text(filename)[:4000]  # read once for every content check below
    if _is_athena(name, head):
        spectra = read_athena(filename)
        if len(spectra) > 1:
            raise SpectrumError(f"{filename} holds {len(spectra)} spectra ({', '.join(lab for lab, _ in spectra)}); "
                                "read them with read_spectra (the command line classifies each)")
        return spectra[0][1]
    if columns is None and (name.startswith("xmu") or name.endswith("xmu.dat") or _XMU_COLUMNS_RE.search(head)):
        return read_xmu(filename)
    return read_columns(filename, columns)
