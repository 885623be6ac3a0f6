"""What each augmentation of the environment recipe costs on clean spectra, and what it buys under perturbation.

    python benchmarks/augmentation_tradeoff.py

Extra trees (300, fast and stable enough to compare recipes; the network followed them in every selection run) on
the shipped environment model's input (e0-aligned, pre-/post-edge normalised, e0 column), 5 grouped folds of the
1,013 real crystals (seed 1, not the seed-0 folds the recipes were chosen on), 4 augmented copies per training
spectrum made inside each fold. Two tables:

- ``single``: shift (+-3 eV, the one every recipe has) plus one more augmentation at the shipped recipe's bound;
  clean accuracy and SiN4 recall.
- ``tradeoff``: the shipped recipe's shift, broadening, slope and noise with white-line scaling and
  self-absorption at full, half and no strength, and the shipped recipe with the RPA variants of the training
  materials; scored clean and on the held-out spectra with their white line scaled x0.6 and x1.6 and
  self-absorbed (strength 0.2). A perturbed spectrum that fails preprocessing counts as wrong.

Writes ``benchmarks/results/augmentation_tradeoff.json``.
"""

from __future__ import annotations

import warnings

import numpy as np
from common import stamp, write_results
from sklearn.ensemble import ExtraTreesClassifier

from pymatgen_xanes_nn import XANESClassifier
from pymatgen_xanes_nn.io.tasks import load_collection, load_tasks
from pymatgen_xanes_nn.labels import assign_labels
from pymatgen_xanes_nn.preprocessing import SpectrumError
from pymatgen_xanes_nn.studies.domain_shift import PHYSICS_COLLECTION, variant_preset
from pymatgen_xanes_nn.training.fit import SpectraSet, dataset_for_scheme
from pymatgen_xanes_nn.training.perturb import augment, scale_white_line, self_absorb
from pymatgen_xanes_nn.training.splits import grouped_folds

COPIES, SEED, N_FOLDS = 4, 1, 5
#: The shipped recipe's bounds (``xanes-nn train`` options of si_k_environment), as random_perturbation names them.
SHIPPED = {"max_shift": 3.0, "max_fwhm": 3.0, "min_snr": 20.0, "max_slope": 0.003, "white_line": 0.6,
           "max_self_absorption": 0.3}
SHIFT_ONLY = {"max_shift": 3.0, "max_fwhm": 0.0, "min_snr": 1e6, "max_slope": 0.0, "white_line": 0.0,
              "max_self_absorption": 0.0}
SINGLE = {"none": None, "shift": {}, "noise SNR 20": {"min_snr": 20.0}, "broadening 3 eV": {"max_fwhm": 3.0},
          "slope 0.003/eV": {"max_slope": 0.003}, "white line 0.6": {"white_line": 0.6},
          "self-absorption 0.3": {"max_self_absorption": 0.3}}
TRADEOFF = {"shipped": ({}, False),
            "half white line and self-absorption": ({"white_line": 0.3, "max_self_absorption": 0.15}, False),
            "no white line or self-absorption": ({"white_line": 0.0, "max_self_absorption": 0.0}, False),
            "shipped + RPA variants": ({}, True)}


def perturbed(spectra: SpectraSet, pp, fn, arg: float) -> tuple[np.ndarray, np.ndarray]:
    """Inputs of every spectrum perturbed by ``fn(e, mu, arg)``, and which of them preprocess."""
    rows, ok = [], []
    for e, mu in spectra.raw:
        try:
            rows.append(pp.transform_arrays(*fn(e, mu, arg)))
            ok.append(True)
        except SpectrumError:
            rows.append(np.zeros(pp.n_inputs, np.float32))
            ok.append(False)
    return np.asarray(rows, np.float32), np.asarray(ok)


def main() -> None:
    warnings.filterwarnings("ignore", category=UserWarning)
    pp = XANESClassifier.from_pretrained("si_k_environment").preprocessing
    spectra, classes = dataset_for_scheme("environment", load_tasks(derived=False), preprocessing=pp, n_classes=10)
    spectra = spectra.labelled()
    y = np.array([classes.index(c) for c in spectra.labels])
    folds = grouped_folds(spectra.groups, y, N_FOLDS, SEED)
    rpa_docs = [d for d in load_collection(PHYSICS_COLLECTION) if variant_preset(d["task_id"]) == "dataset_rpa"]
    rpa = SpectraSet.from_docs(rpa_docs, assign_labels(rpa_docs, "environment", classes), pp).labelled()
    sin4 = classes.index("SiN4")

    def cross_validate(bounds: dict | None, with_rpa: bool, tests: dict[str, tuple[np.ndarray, np.ndarray]]):
        preds = {name: np.empty_like(y) for name in tests}
        for f, (tr, te) in enumerate(folds):
            train = spectra.subset(tr)
            if with_rpa:
                groups = set(train.groups)
                train = train.concatenate(rpa.subset([i for i, g in enumerate(rpa.groups) if g in groups]))
            x_fit, y_fit = train.x, [classes.index(c) for c in train.labels]
            if bounds is not None:
                x_aug, y_aug = augment(train.raw, train.labels, pp, COPIES, 100 + f, **bounds)
                x_fit, y_fit = np.concatenate([x_fit, x_aug]), y_fit + [classes.index(c) for c in y_aug]
            model = ExtraTreesClassifier(300, random_state=0, n_jobs=2).fit(x_fit, y_fit)
            for name, (x, ok) in tests.items():
                preds[name][te] = np.where(ok[te], model.predict(x[te]), -1)
        return {name: {"accuracy": float(np.mean(p == y)),
                       "balanced_accuracy": float(np.mean([np.mean(p[y == k] == k) for k in range(len(classes))])),
                       "SiN4_recall": float(np.mean(p[y == sin4] == sin4))} for name, p in preds.items()}

    clean = {"clean": (spectra.x, np.ones(len(y), bool))}
    single = {}
    for name, extra in SINGLE.items():
        single[name] = cross_validate(None if extra is None else {**SHIFT_ONLY, **extra}, False, clean)["clean"]
        print(name, single[name], flush=True)
    tests = {**clean, "white line x0.6": perturbed(spectra, pp, scale_white_line, 0.6),
             "white line x1.6": perturbed(spectra, pp, scale_white_line, 1.6),
             "self-absorption 0.2": perturbed(spectra, pp, self_absorb, 0.2)}
    tradeoff = {}
    for name, (extra, with_rpa) in TRADEOFF.items():
        tradeoff[name] = cross_validate({**SHIPPED, **extra}, with_rpa, tests)
        tradeoff[name]["mean_accuracy"] = float(np.mean([t["accuracy"] for t in tradeoff[name].values()]))
        print(name, {k: round(v["accuracy"], 3) for k, v in tradeoff[name].items() if isinstance(v, dict)},
              flush=True)
    write_results("augmentation_tradeoff", {
        "model": "extra trees (300)", "folds": N_FOLDS, "seed": SEED, "copies": COPIES, "n_spectra": len(y),
        "n_rpa_variants": len(rpa.x), "shipped_bounds": SHIPPED, "single": single, "tradeoff": tradeoff,
        **stamp()})


if __name__ == "__main__":
    main()
