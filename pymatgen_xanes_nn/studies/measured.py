"""Measured spectra as the truth: how a shipped model reads beamline standards, across calibration shifts.

The models learn FEFF spectra; a measured standard of known speciation says whether what they learned carries over.
Each file is classified at the edge's recorded FEFF-to-measured offset (:attr:`~pymatgen_xanes_nn.edges.Edge.
calibration_offset`, what a user gets after ``xanes-nn calibrate``) and at shifts around it, since a user's own
calibration is good to a few eV at best. The standards are development data: reported, never trained or tuned on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pymatgen_xanes_nn.errors import InputError

if TYPE_CHECKING:
    from pymatgen_xanes_nn.classifier import XANESClassifier

#: The measured S K-edge standards in ``test_files/measured/S``: file -> (compound, oxidation label, motif).
S_STANDARDS: dict[str, tuple[str, str]] = {
    "CaS_rt_001.xdi": ("CaS", "S2-"),
    "pyrite1_rt_01.xdi": ("FeS2 (pyrite)", "S1-"),
    "S_elemental_rt_01.xdi": ("S8", "S0"),
    "gypsum_rt_01.xdi": ("CaSO4.2H2O (gypsum)", "S6+"),
}
#: The same standards under the S environment scheme (first-shell motif).
S_STANDARDS_ENVIRONMENT: dict[str, tuple[str, str]] = {
    "CaS_rt_001.xdi": ("CaS", "SM6"),
    "pyrite1_rt_01.xdi": ("FeS2 (pyrite)", "SS1M3"),
    "S_elemental_rt_01.xdi": ("S8", "SS2"),
    "gypsum_rt_01.xdi": ("CaSO4.2H2O (gypsum)", "SO4"),
}
#: Shifts (eV) around the recorded calibration at which each standard is read again.
CALIBRATION_ERRORS = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)


def standards_for(clf: XANESClassifier) -> dict[str, tuple[str, str]]:
    """The standards and expected labels for a model's edge and label scheme.

    Raises:
        ValueError: if no measured standards of that edge and scheme are in the project.
    """
    scheme = clf.metadata.get("label_scheme")
    table = {("S", "oxidation"): S_STANDARDS, ("S", "environment"): S_STANDARDS_ENVIRONMENT}.get(
        (clf.edge.element, scheme))
    if table is None:
        raise InputError(f"No measured standards for the {clf.edge.name} edge under the {scheme!r} scheme")
    return table


def read_standards(clf: XANESClassifier, folder: str, standards: dict[str, tuple[str, str]],
                   errors: Sequence[float] = CALIBRATION_ERRORS) -> dict[str, Any]:
    """Classify every standard at the edge's calibration plus each of ``errors``.

    Args:
        clf: the model (its edge's ``calibration_offset`` puts the files on FEFF's scale).
        folder: where the files are.
        standards: file name -> (compound, expected label).
        errors: calibration errors in eV added to the recorded shift.

    Returns:
        ``{"model", "shift", "files": {file: {"compound", "expected", "by_error": {error: result}}}, "summary"}``
        where a result holds ``label``, ``confidence``, ``prediction_set``, ``dont_know``, ``reason``, ``right``,
        and the summary counts, at the recorded calibration and over every error, answers that are right, right
        in the set, "don't know", and wrong without "don't know".
    """
    from pymatgen_xanes_nn.io.readers import read_spectrum

    shift = -clf.edge.calibration_offset  # measured scale -> FEFF's scale
    files: dict[str, Any] = {}
    for name, (compound, expected) in standards.items():
        xas = read_spectrum(os.path.join(folder, name))
        by_error = {}
        for err in errors:
            res = clf.classify(xas, shift=shift + err, evidence=False)
            by_error[f"{err:+g}"] = {
                "label": res["label"], "confidence": round(res["confidence"], 4),
                "prediction_set": res["prediction_set"], "dont_know": res["dont_know"], "reason": res["reason"],
                "right": res["label"] == expected, "in_set": expected in res["prediction_set"],
            }
        files[name] = {"compound": compound, "expected": expected, "by_error": by_error}

    def counts(keys: Sequence[str]) -> dict[str, int]:
        rows = [f["by_error"][k] for f in files.values() for k in keys]
        return {"n": len(rows), "right": sum(r["right"] for r in rows), "in_set": sum(r["in_set"] for r in rows),
                "dont_know": sum(r["dont_know"] for r in rows),
                "wrong_without_dont_know": sum(not r["right"] and not r["dont_know"] for r in rows)}

    return {"model": clf.model_version, "shift": shift, "errors": list(errors), "files": files,
            "summary": {"at_calibration": counts(["+0"]), "all_errors": counts([f"{e:+g}" for e in errors])}}
