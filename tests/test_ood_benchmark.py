"""The OOD benchmark runs end to end on a tiny problem and reports what it says it does."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pymatgen_xanes_nn.preprocessing import DEFAULT_PREPROCESSING, SpectrumError
from pymatgen_xanes_nn.studies.ood_benchmark import (
    FAR_SHAPES,
    FAULTS,
    SI_K_E0,
    apply_fault,
    combination_table,
    far_spectra,
    other_edges,
    prediction_set_table,
    run_ood_benchmark,
)
from pymatgen_xanes_nn.training.fit import TrainingConfig, dataset_for_scheme
from pymatgen_xanes_nn.trust.ood import OOD_SCORES

from .conftest import fake_task_docs, synthetic_edge


def test_faults_do_what_they_say():
    e, mu = synthetic_edge()
    rng = np.random.default_rng(0)
    pre = DEFAULT_PREPROCESSING
    e2, m2 = apply_fault(e, mu, "truncate", 0.6, 0.6, rng, pre)
    assert e2[-1] <= pre.e_min + 0.6 * (pre.e_max - pre.e_min)
    e3, _ = apply_fault(e, mu, "sparse", 12, 12, rng, pre)
    assert len(e3) == 12
    _, m4 = apply_fault(e, mu, "saturate", 1.0, 1.0, rng, pre)
    assert m4.max() < 1.0  # mu / (mu + step) never reaches 1
    e5, _ = apply_fault(e, mu, "shift", 4.0, 4.0, rng, pre)
    assert abs(abs(e5[0] - e[0]) - 4.0) < 1e-9
    with pytest.raises(ValueError, match="Unknown fault"):
        apply_fault(e, mu, "melt", 1, 1, rng, pre)
    far, kinds = far_spectra(2, 0)
    assert len(far) == 2 * len(FAR_SHAPES) and set(kinds) == set(FAR_SHAPES)


def test_other_edges_are_moved_to_the_si_edge():
    from pymatgen_xanes_nn.io.tasks import OTHER_EDGES_FILE, load_tasks
    from pymatgen_xanes_nn.paths import data_path
    from pymatgen_xanes_nn.preprocessing import find_e0, resample_uniform

    docs = load_tasks(data_path(OTHER_EDGES_FILE))
    raw, kinds = other_edges(docs)
    assert {"Al", "P", "S"} <= set(kinds)
    for (e, m), d in zip(raw, docs):
        assert abs(find_e0(*resample_uniform(e, m)) - SI_K_E0) < 0.5
        assert abs(e[0] - d["spectrum"][0][0]) > 200  # Al 1560, P 2141, S 2466 eV: really moved


def test_benchmark_on_a_tiny_problem(tmp_path):
    from pymatgen_xanes_nn.io.tasks import OTHER_EDGES_FILE, load_tasks
    from pymatgen_xanes_nn.paths import data_path

    docs = fake_task_docs(n_groups=6)
    spectra, classes = dataset_for_scheme("chemsys", docs)
    data = spectra.labelled()
    envs = ["SiN4" if i % 4 == 0 else "SiO4" for i in range(len(data.x))]
    data.derived = [i % 12 == 0 for i in range(len(data.x))]  # 3 of the 9 SiN4 spectra: derived structures
    outside = data.subset(range(6))  # one derived, five real
    res = run_ood_benchmark(data, classes, TrainingConfig(ae_epochs=2, fnn_epochs=2, ae_config="NN4"),
                            DEFAULT_PREPROCESSING, "environment", environments=envs, n_folds=2, n_far=2,
                            leave_out=("SiN4",), progress=None, outside=outside,
                            other_edge_docs=load_tasks(data_path(OTHER_EDGES_FILE))[:3],
                            scores_file=str(tmp_path / "scores.npz"))
    assert {"far: non-spectra", "far: other K edges", "near: left-out environment"} <= set(res["sets"])
    assert res["sets"]["far: other K edges"]["n"] == 3 * 2  # every fold scores them
    worst = res["foreign_edges_worst"]  # the foreign edges placed across the window, the worst placement named
    assert len(worst["by_position"]) == 8 and worst["set"] in res["sets"]
    assert worst["auroc"] == min(res["sets"][k]["scores"]["combined"]["auroc"] for k in worst["by_position"])
    # derived structures only ever train: never scored as held out, left out or outside the classes
    assert res["held_out"]["n"] == 36 - 3
    assert res["leave_one_environment_out"]["SiN4"]["n"] == 9 - 3
    assert res["sets"]["near: outside the classes"]["n"] == 5 * 2
    # the quality gate refuses every spectrum cut to <= 80% of the window: refused counts as caught
    assert res["held_out"]["faults_refused_by_input_checks"]["truncated 50-80%"] == 36 - 3
    assert all(v["auroc"] == 1.0 for v in res["sets"]["fault: truncated 50-80%"]["scores"].values())
    saved = np.load(tmp_path / "scores.npz")
    assert {"fold0|inside|knn", "fold1|far: other K edges|energy", "loeo SiN4|out|knn"} <= set(saved.files)
    # the offline analysis rebuilds the benchmark's own combined p-values from the saved scores
    table = combination_table(str(tmp_path / "scores.npz"))
    assert len(table) == sum(math.comb(len(OOD_SCORES), k) for k in (1, 2, 3))
    shipped = "+".join(k for k in OOD_SCORES if k in TrainingConfig().ood_scores)
    for kind in ("far: non-spectra", "fault: shift 3-5 eV", "near: left-out environment"):
        assert table[shipped][kind] == pytest.approx(res["sets"][kind]["scores"]["combined"]["auroc"])
    assert {f"fault: {name}" for name in FAULTS} <= set(res["sets"]) | {
        f"fault: {n}" for n, k in res["held_out"]["faults_refused_by_input_checks"].items() if k}
    for r in res["sets"].values():
        assert set(r["scores"]) == {*OOD_SCORES, "combined"}
        assert all(0 <= s["auroc"] <= 1 and 0 <= s["fpr_at_95_tpr"] <= 1 for s in r["scores"].values())
    h = res["held_out"]
    assert 0 <= h["coverage"] <= 1
    # sparse and noisy faults are flagged by the quality limits whatever their scores: caught
    for fault in ("noise SNR 5", "sparse 10-30 points"):
        assert res["sets"][f"fault: {fault}"]["flagged"] == 1.0
    # held-out sets rebuilt offline from the saved probabilities: the run's own mode gives the run's coverage
    sets = prediction_set_table(str(tmp_path / "scores.npz"), level=0.9)
    assert sets["n"] == 36 - 3 and set(sets["modes"]) == {"marginal", "class_conditional"}
    assert sets["modes"][TrainingConfig().conformal_mode]["coverage"] == pytest.approx(h["coverage"])
    assert sets["accuracy"] == pytest.approx(h["accuracy"])
    assert set(res["quality"]) == {"coverage", "points"}
    with pytest.raises(SpectrumError):  # the sweep's lowest coverage is below what preprocessing accepts
        DEFAULT_PREPROCESSING.transform_arrays(*apply_fault(*synthetic_edge(), "truncate", 0.45, 0.45,
                                                            np.random.default_rng(0), DEFAULT_PREPROCESSING))


def _synthetic_scores(path, n_folds: int, informative: str = "knn", seed: int = 0) -> str:
    """A ``--scores`` file where only ``informative`` separates the outside set from the known spectra."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for f in range(n_folds):
        for kind, n in (("inside", 60), ("far: test", 40)):
            for c in OOD_SCORES:
                shift = 3.0 if (kind != "inside" and c == informative) else 0.0
                arrays[f"fold{f}|{kind}|{c}"] = rng.normal(shift, 1.0, n)
        arrays[f"fold{f}|far: test|n_refused"] = np.array([0])
    np.savez(path, **arrays)
    return str(path)


def test_nested_combination_finds_the_informative_score_without_seeing_the_fold(tmp_path):
    from pymatgen_xanes_nn.studies.ood_benchmark import nested_combination

    res = nested_combination(_synthetic_scores(tmp_path / "s.npz", 3), max_size=1, shipped=("energy",))
    assert res["chosen"] == ["knn"] * 3 and res["folds"] == 3
    assert res["nested"]["far: test"] > 0.9 and res["nested"]["mean"] == res["nested"]["far: test"]
    assert 0.3 < res["shipped"]["far: test"] < 0.7  # an uninformative score stays near chance
    with pytest.raises(ValueError, match="needs >= 3 folds"):
        nested_combination(_synthetic_scores(tmp_path / "two.npz", 2))


def test_other_edges_are_placed_across_the_window():
    from pymatgen_xanes_nn.io.tasks import OTHER_EDGES_FILE, load_tasks
    from pymatgen_xanes_nn.paths import data_path
    from pymatgen_xanes_nn.preprocessing import find_e0, resample_uniform
    from pymatgen_xanes_nn.studies.ood_benchmark import FOREIGN_E0S, other_edges_kind

    docs = load_tasks(data_path(OTHER_EDGES_FILE))[:3]
    assert min(FOREIGN_E0S) <= 1836.0 and max(FOREIGN_E0S) >= 1850.0
    for target in (1836.0, 1840.0, 1850.0):
        for e, m in other_edges(docs, target)[0]:
            assert abs(find_e0(*resample_uniform(e, m)) - target) < 0.5
    assert other_edges_kind(SI_K_E0) == "far: other K edges" and other_edges_kind(1840.0).endswith("e0 1840 eV")
