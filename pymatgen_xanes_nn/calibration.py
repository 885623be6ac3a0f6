"""Energy calibration: put a measured spectrum on the models' (FEFF's) energy scale with a standard.

A beamline calibrates its monochromator on its own standard; FEFF's absolute energies differ from any beamline's.
Measuring a reference compound of the edge (:attr:`~pymatgen_xanes_nn.edges.Edge.references`) gives the shift
that moves that beamline's spectra onto the models' scale: ``reference e0 - measured e0``. ``xanes-nn calibrate``
computes it and can save it per edge; ``predict`` then uses and records it.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pymatgen_xanes_nn.errors import InputError

if TYPE_CHECKING:
    from pymatgen.analysis.xas.spectrum import XAS

    from pymatgen_xanes_nn.edges import Edge

#: Where saved calibrations live unless ``XANES_NN_CALIBRATION`` names a file (never inside the installed package).
DEFAULT_CALIBRATION_FILE = os.path.join("~", ".config", "pymatgen-xanes-nn", "calibration.json")


def calibration_file() -> str:
    """The calibration file: ``$XANES_NN_CALIBRATION`` or :data:`DEFAULT_CALIBRATION_FILE`."""
    return os.path.expanduser(os.environ.get("XANES_NN_CALIBRATION", DEFAULT_CALIBRATION_FILE))


def measured_e0(xas: XAS) -> float:
    """e0 of a spectrum as the models find it (maximum of the smoothed derivative), in eV."""
    from pymatgen_xanes_nn.preprocessing import DEFAULT_PREPROCESSING

    return float(DEFAULT_PREPROCESSING.edge(xas.x, xas.y).e0)


def calibrate(standard: XAS, compound: str, source: str = "") -> dict[str, Any]:
    """The shift that puts spectra measured with ``standard`` on the models' scale.

    Args:
        standard: the measured standard.
        compound: which reference it is (e.g. ``"S8"``, ``"Si"``; see the edge's references).
        source: where the standard came from (recorded).

    Returns:
        ``{"edge", "compound", "reference_task", "reference_e0", "measured_e0", "shift", "standard", "date"}``.

    Raises:
        ValueError: if the standard's edge has no definition or no such reference.
    """
    from pymatgen_xanes_nn.edges import edge_for

    e0 = measured_e0(standard)
    element = getattr(standard.absorbing_element, "symbol", str(standard.absorbing_element))
    edge = edge_for(e0, element)
    task_id, reference = edge.reference(compound)
    return {"edge": edge.element, "compound": compound, "reference_task": task_id, "reference_e0": reference,
            "measured_e0": round(e0, 3), "shift": round(reference - e0, 3), "standard": source,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def save_calibration(record: dict[str, Any], path: str | None = None) -> str:
    """Store ``record`` as the calibration of its edge (replacing an earlier one); return the file written."""
    from pymatgen_xanes_nn.jsonio import read_json

    path = path or calibration_file()
    saved = read_json(path) if os.path.exists(path) else {}
    saved[record["edge"]] = record
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(saved, f, indent=1)
    os.replace(tmp, path)
    return path


def saved_shift(edge: Edge, path: str | None = None) -> tuple[float, dict[str, Any] | None]:
    """The saved shift of ``edge`` and its record, or ``(0.0, None)`` when none is saved.

    Raises:
        ValueError: if the file exists but holds no usable record for the edge.
    """
    from pymatgen_xanes_nn.jsonio import read_json

    path = path or calibration_file()
    if not os.path.exists(path):
        return 0.0, None
    record = read_json(path).get(edge.element)
    if record is None:
        return 0.0, None
    shift = record.get("shift")
    if not isinstance(shift, (int, float)) or isinstance(shift, bool) or not abs(shift) < 100:
        raise InputError(f"{path}: the {edge.name} calibration has no usable shift ({shift!r}); run xanes-nn calibrate "
                         "again")
    return float(shift), record


def guidance(e0: float, edge: Edge) -> str:
    """Where an edge found at ``e0`` (eV) sits on the models' scale, and how to calibrate: for ``xanes-nn show``."""
    refs = ", ".join(f"{name} {ref:.1f} eV" for name, _, ref in edge.references)
    nearest = min(edge.references, key=lambda r: abs(r[2] - e0)) if edge.references else None
    text = f"{edge.name} models' energy scale (FEFF10): {refs}"
    if edge.tabulated_e0:
        text += f"; tabulated {edge.name} edge {edge.tabulated_e0:.1f} eV"
    if nearest:
        text += f". This edge: e0 {e0:.1f} eV, {e0 - nearest[2]:+.1f} eV from {nearest[0]}"
    example = edge.references[0][0].split(" ")[0] if edge.references else "NAME"
    return text + (f". A standard measured on your beamline gives the shift: xanes-nn calibrate --standard FILE "
                   f"--compound {example} --save")
