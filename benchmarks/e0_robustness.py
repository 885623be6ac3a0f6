"""How stable e0 is under the augmentation's perturbations, for several derivative smoothings.

    python benchmarks/e0_robustness.py

For every third spectrum of the environment task, two random augmentations (shift +-2 eV, broadening 0-2 eV FWHM,
noise SNR 20-200, as :func:`~pymatgen_xanes_nn.training.perturb.random_perturbation`): the error of e0 against the clean
spectrum's e0 plus the shift, and how far each smoothing moves the clean e0 from the raw-derivative one.
Writes ``benchmarks/results/e0_robustness.json`` (the choice of ``preprocessing.E0_SMOOTHING``).
"""

from __future__ import annotations

import warnings

import numpy as np
from common import write_results

from pymatgen_xanes_nn.io.tasks import load_tasks
from pymatgen_xanes_nn.preprocessing import DEFAULT_PREPROCESSING, E0_SMOOTHING, find_e0
from pymatgen_xanes_nn.training.fit import dataset_for_scheme
from pymatgen_xanes_nn.training.perturb import add_noise, broaden, shift

SMOOTHINGS = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)


def summary(errors: np.ndarray) -> dict[str, float]:
    """Median, 90th percentile, share above 2 eV and maximum of absolute errors (eV)."""
    a = np.abs(errors)
    return {"median": float(np.median(a)), "p90": float(np.percentile(a, 90)), "above_2ev": float(np.mean(a > 2)),
            "max": float(a.max())}


def main() -> None:
    warnings.filterwarnings("ignore", category=UserWarning)
    raw = dataset_for_scheme("environment", load_tasks(derived=False), DEFAULT_PREPROCESSING)[0].raw
    clean = np.array([[find_e0(e, m, s) for s in SMOOTHINGS] for e, m in raw])
    rng = np.random.default_rng(0)
    errors = []
    for i in range(0, len(raw), 3):
        for _ in range(2):
            delta = rng.uniform(-2, 2)
            e, m = broaden(*shift(*raw[i], delta), rng.uniform(0, 2))
            e, m = add_noise(e, m, rng.uniform(20, 200), rng)
            errors.append([find_e0(e, m, s) - delta - clean[i, j] for j, s in enumerate(SMOOTHINGS)])
    errors = np.array(errors)
    out = {"n_spectra": len(raw), "n_augmented": len(errors), "shipped_smoothing_ev": E0_SMOOTHING, "smoothing": {}}
    for j, s in enumerate(SMOOTHINGS):
        out["smoothing"][str(s)] = {"augmented_error_ev": summary(errors[:, j]),
                                    "clean_move_ev": summary(clean[:, j] - clean[:, 0])}
        a, c = out["smoothing"][str(s)]["augmented_error_ev"], out["smoothing"][str(s)]["clean_move_ev"]
        print(f"sigma {s:.1f} eV: augmented |error| median {a['median']:.2f}, p90 {a['p90']:.2f}, "
              f"> 2 eV {a['above_2ev']:.1%}, max {a['max']:.1f}; clean move median {c['median']:.2f}")
    write_results("e0_robustness", out)


if __name__ == "__main__":
    main()
