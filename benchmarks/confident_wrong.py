"""How often model files answer wrongly *without* saying "don't know", under calibration shifts and other physics.

    python benchmarks/confident_wrong.py --scheme environment --models OLD.json.gz NEW.json.gz [--name NAME]

The domain-shift benchmark scores accuracy only; a recipe can gain accuracy there and still answer wrongly with
confidence more often (e.g. when its don't-know rule ends up stricter). For each model file:

* every ``--every``-th labelled spectrum of the task, moved by 0, 2 and 4 eV (alternating sign);
* the physics variants (no core hole, RPA, Dirac-Hara; ``si_k_tasks_physics.json.gz``).

Per set: accuracy, the "don't know" rate and the share of spectra that are wrong *and* not "don't know". The
materials are training materials of shipped models (in sample): compare models trained on the same data, not
these accuracies with held-out ones. Writes ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse

import numpy as np
from common import write_results

from pymatgen_xanes_nn.classifier import XANESClassifier
from pymatgen_xanes_nn.io.readers import from_task_doc
from pymatgen_xanes_nn.io.tasks import load_tasks
from pymatgen_xanes_nn.labels import assign_labels, select_classes
from pymatgen_xanes_nn.paths import data_path
from pymatgen_xanes_nn.preprocessing import SpectrumError
from pymatgen_xanes_nn.studies.domain_shift import PHYSICS_TASKS_FILE, variant_preset

SHIFTS = (0.0, 2.0, 4.0)


def rates(rows: list[tuple[bool, bool]]) -> dict[str, float]:
    """``rows`` of (correct, don't know): n, accuracy, don't-know rate, wrong-and-sure rate."""
    a = np.array(rows, bool).reshape(-1, 2)
    return {"n": len(a), "accuracy": float(a[:, 0].mean()), "dont_know": float(a[:, 1].mean()),
            "wrong_and_sure": float(np.mean(~a[:, 0] & ~a[:, 1]))}


def score(clf: XANESClassifier, sets: dict[str, list[tuple[dict, str, float]]]) -> dict[str, dict[str, float]]:
    """Per set of (task document, true label, shift eV): :func:`rates` (documents that fail preprocessing skipped)."""
    out = {}
    for name, items in sets.items():
        rows = []
        for doc, label, shift in items:
            try:
                r = clf.classify(from_task_doc(doc), evidence=False, shift=shift)
            except SpectrumError:
                continue
            rows.append((r["label"] == label, r["dont_know"]))
        out[name] = rates(rows)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scheme", choices=("chemsys", "environment"), default="environment")
    p.add_argument("--models", nargs="+", required=True, help="model files to compare")
    p.add_argument("--every", type=int, default=10, help="take every n-th labelled spectrum for the shift sets")
    p.add_argument("--name", default=None, help="results name (default: confident_wrong_<scheme>)")
    args = p.parse_args()

    docs = load_tasks(derived=False)  # real crystals: the in-sample spectra of every model
    classes = select_classes(docs, args.scheme)
    labelled = [(d, lab) for d, lab in zip(docs, assign_labels(docs, args.scheme, classes)) if lab is not None]
    picked = labelled[:: args.every]
    sets = {f"shift_{s:g}eV": [(d, lab, s * (-1) ** k) for k, (d, lab) in enumerate(picked)] for s in SHIFTS}
    variants = [d for d in load_tasks(data_path(PHYSICS_TASKS_FILE))
                if d.get("state", "successful") == "successful"]
    for d, lab in zip(variants, assign_labels(variants, args.scheme, classes)):
        if lab is not None:
            sets.setdefault(variant_preset(d["task_id"]), []).append((d, lab, 0.0))
    res = {"scheme": args.scheme, "every": args.every,
           "models": {f: score(XANESClassifier.from_file(f), sets) for f in args.models}}
    write_results(args.name or f"confident_wrong_{args.scheme}", res)


if __name__ == "__main__":
    main()
