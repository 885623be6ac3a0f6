"""Other elements' K edges placed across the Si window: how often do the shipped models answer them?

    python benchmarks/foreign_edges.py [--models si_k_environment si_k_chemsys]

The 27 Al, P and S K-edge FEFF10 spectra of ``other_k_edges.json.gz`` are moved so that their e0 sits at each of
``FOREIGN_E0S`` (1836-1850 eV) and classified as Si K edges. An answer without "don't know" is a silent wrong result
(issue 35): the goal is 0 at every position. Baseline in the same run: the shipped Si spectra of the same number of
sites, answered. Writes ``benchmarks/results/foreign_edges.json``.

Beside the counts, each position records the AUROC of each of the model's calibrated input scores (``knn``: shape;
``edge_offset``: edge position given the shape) between its out-of-fold in-distribution calibration scores and the
foreign spectra: 0.5 means the score cannot tell them apart, which says why the flag misses where it misses.
"""

from __future__ import annotations

import argparse

from common import stamp, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["si_k_environment", "si_k_chemsys"])
    args = parser.parse_args()

    import numpy as np
    from pymatgen.analysis.xas.spectrum import XAS

    from pymatgen_xanes_nn import XANESClassifier
    from pymatgen_xanes_nn.io.readers import from_task_doc
    from pymatgen_xanes_nn.io.tasks import OTHER_EDGES_FILE, load_tasks
    from pymatgen_xanes_nn.paths import data_path
    from pymatgen_xanes_nn.preprocessing import SpectrumError
    from pymatgen_xanes_nn.studies.ood_benchmark import FOREIGN_E0S, other_edges
    from pymatgen_xanes_nn.training.metrics import auroc

    docs = load_tasks(data_path(OTHER_EDGES_FILE))
    own = load_tasks(derived=False)[:: max(1, 1013 // len(docs))][: len(docs)]
    res: dict = {"stamp": stamp(), "n_foreign": len(docs), "positions_ev": list(FOREIGN_E0S), "models": {}}
    for name in args.models:
        clf = XANESClassifier.from_pretrained(name)
        row = {}
        for e0 in FOREIGN_E0S:
            answered = refused = 0
            scores: dict[str, list[float]] = {}
            for e, m in other_edges(docs, e0)[0]:
                try:
                    c = clf.classify(XAS(e, m, None, clf.edge.element), evidence=False)
                except SpectrumError:
                    refused += 1
                    continue
                answered += not c["dont_know"]
                for k in ("knn", "edge_offset"):
                    if k in c["ood_scores"] and k in clf.ood["calibration"]:
                        scores.setdefault(k, []).append(c["ood_scores"][k])
            row[f"{e0:g}"] = {"answered": answered, "refused": refused, "dont_know": len(docs) - answered - refused,
                              "auroc": {k: round(auroc(np.asarray(clf.ood["calibration"][k]), np.asarray(v)), 3)
                                        for k, v in scores.items()}}
        baseline = sum(not clf.classify(from_task_doc(d, with_structure=False), evidence=False)["dont_know"]
                       for d in own)
        res["models"][name] = {"foreign_answered_by_e0": row,
                               "worst_answered": max(r["answered"] for r in row.values()),
                               "own_spectra_answered (baseline)": baseline, "n_own": len(own)}
    write_results("foreign_edges", res)


if __name__ == "__main__":
    main()
