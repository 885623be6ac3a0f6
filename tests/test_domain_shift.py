"""The domain-shift benchmark's sites and FEFF physics variants."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from pymatgen_xanes_nn.studies.domain_shift import pick_sites, variant_jobs, variant_task_id

from .conftest import diamond_si, fake_task_docs


def test_pick_sites_one_site_per_material_covering_every_class():
    from pymatgen_xanes_nn.labels import assign_labels, select_classes

    docs = fake_task_docs(n_groups=6, sites=2)
    picked = pick_sites(docs, n=12, seed=0)
    by_id = {d["task_id"]: d for d in docs}
    groups = [by_id[t]["metadata"]["group_id"] for t in picked]
    assert len(picked) == 12 and len(set(groups)) == 12  # never two sites of one material
    for scheme in ("chemsys", "environment"):
        labels = assign_labels([by_id[t] for t in picked], scheme, select_classes(docs, scheme))
        assert set(Counter(labels).values()) == {4}  # round robin: the three classes equally
    assert pick_sites(docs, n=12, seed=0) == picked
    assert pick_sites(docs, n=12, seed=1) != picked
    # more sites than materials: one per material, no more
    assert len(pick_sites(docs, n=50)) == 18


def test_variant_jobs_keep_site_labels_and_group():
    docs = fake_task_docs(n_groups=2, sites=1)
    jobs = variant_jobs(docs, [docs[0]["task_id"]], "dataset_rpa")
    assert jobs[0].task_id == variant_task_id(docs[0]["task_id"], "dataset_rpa") == f"{docs[0]['task_id']}+dataset_rpa"
    assert jobs[0].metadata["group_id"] == docs[0]["metadata"]["group_id"]
    assert jobs[0].metadata["physics_of"] == docs[0]["task_id"]
    assert "timing" not in jobs[0].metadata and jobs[0].site_index == docs[0]["absorbing_atom"]
    with pytest.raises(ValueError, match="not in the dataset: nope"):
        variant_jobs(docs, ["nope"], "dataset_rpa")


@pytest.mark.parametrize("preset, card, value", [("dataset_nohole", "COREHOLE", "none"),
                                                 ("dataset_rpa", "COREHOLE", "RPA"),
                                                 ("dataset_dh", "EXCHANGE", "2 0.0 0.0 2")])
def test_physics_variant_cards_reach_feff_input(tmp_path, preset, card, value):
    from pymatgen_xanes_nn.datagen.simulate import PRESETS, write_feff_input

    tags = write_feff_input(diamond_si(), 0, PRESETS[preset], str(tmp_path))
    text = (tmp_path / "feff.inp").read_text()
    assert str(tags[card]) == value and f"{card} {value}" in " ".join(text.split())
    dataset = write_feff_input(diamond_si(), 0, PRESETS["dataset"], str(tmp_path / "d"))
    assert str(dataset[card]) != value  # the dataset preset keeps MPXANESSet's FSR core hole and HL exchange
    assert {k: v for k, v in tags.items() if k != card} == {k: v for k, v in dataset.items() if k != card}


def _variants_of(docs, sites, shift_ev):
    import copy

    import numpy as np

    out = []
    for d in docs:
        if d["task_id"] in sites:
            v = copy.deepcopy(d)
            rows = np.asarray(v["spectrum"])
            rows[:, 0] += shift_ev
            v["spectrum"] = rows.tolist()
            v["task_id"] = variant_task_id(d["task_id"], "dataset_rpa")
            out.append(v)
    return out


def test_benchmark_scores_each_site_out_of_fold_and_resumes(tmp_path, monkeypatch):
    from pymatgen_xanes_nn.studies.domain_shift import BROADENINGS, benchmark
    from pymatgen_xanes_nn.training import fit as training
    from pymatgen_xanes_nn.training.fit import TrainingConfig

    docs = fake_task_docs(n_groups=6, sites=2)
    sites = pick_sites(docs)
    variants = _variants_of(docs, set(sites[:10]), 6.0)  # 6 eV: the energy offset between the fake classes
    config = TrainingConfig(ae_epochs=3, fnn_epochs=20, augment_copies=1)
    candidates = {"none": {"augment_copies": 0}, "wide": {"augment_shift": 3.0},
                  "e0": {"augment_copies": 0, "preprocessing": {"alignment": "e0"}}}
    fits = []
    original = training.train

    def counting_train(*args, **kwargs):
        fits.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "train", counting_train)
    cache = str(tmp_path / "models")
    out = benchmark("chemsys", docs, variants, config, candidates, n_folds=2, cache=cache)
    assert len(fits) == 6  # three candidates x two folds
    assert out["n_sites"]["dataset"] == 18 and out["n_sites"]["dataset_rpa"] == 10
    assert all(out["n_sites"][f"broaden_{w:g}"] == 18 for w in BROADENINGS)
    for name in candidates:
        table = out["candidates"][name]
        assert table["all"]["dataset_rpa"]["n"] == 10
        assert table["selection"]["dataset"]["n"] + table["report"]["dataset"]["n"] == 18
        rpa = table["all"]["dataset_rpa"]
        assert rpa["drop"] == pytest.approx(rpa["accuracy_dataset"] - rpa["accuracy"])
    # other inputs, same materials tested: the e0-aligned candidate is scored on the same sites
    assert out["candidates"]["e0"]["all"]["dataset_rpa"]["n"] == 10
    assert out["candidates"]["e0"]["all"]["dataset"]["n"] == 18
    # a 6 eV shift turns one fake class into another: accuracy must fall there
    assert out["candidates"]["none"]["all"]["dataset_rpa"]["drop"] > 0.3
    assert out["best"] == max(out["selection_criterion"], key=out["selection_criterion"].get)
    # the default flag reads the edge position, which e0-aligned inputs remove: that recipe may not ship
    assert set(out["unshippable"]) == {"e0"}
    crit, top = out["selection_criterion"], max(["none", "wide"], key=out["selection_criterion"].get)
    assert set(out["tied"]) == {n for n in ("none", "wide") if crit[n] >= crit[top] - out["standard_error"]}
    assert out["chosen"] == min(out["tied"], key=lambda n: (out["worst_drop"][n], -crit[n]))
    # more variants later: the kept fold models score them without training again
    more = _variants_of(docs, set(sites), 6.0)
    again = benchmark("chemsys", docs, more, config, candidates, n_folds=2, cache=cache)
    assert len(fits) == 6 and again["n_sites"]["dataset_rpa"] == 18
    assert again["candidates"]["none"]["all"]["dataset"] == out["candidates"]["none"]["all"]["dataset"]
    # a damaged model file is refitted, not trusted
    damaged = sorted(os.listdir(cache))[0]
    with open(os.path.join(cache, damaged), "wb") as fh:
        fh.write(b"not a model")
    benchmark("chemsys", docs, more, config, candidates, n_folds=2, cache=cache)
    assert len(fits) == 7


def test_physics_models_leave_the_test_materials_and_one_preset_out(monkeypatch):
    from pymatgen_xanes_nn.labels import assign_labels, select_classes, training_only
    from pymatgen_xanes_nn.preprocessing import DEFAULT_PREPROCESSING
    from pymatgen_xanes_nn.studies import domain_shift
    from pymatgen_xanes_nn.training.fit import SpectraSet, TrainingConfig

    docs = fake_task_docs(n_groups=6, sites=1)
    classes = select_classes(docs, "chemsys")
    variants = _variants_of(docs, {d["task_id"] for d in docs}, 0.5)
    nohole = _variants_of(docs, {d["task_id"] for d in docs}, -0.5)
    for v in nohole:
        v["task_id"] = v["task_id"].replace("dataset_rpa", "dataset_nohole")
    variants += nohole
    for v in variants:
        v["metadata"]["physics_of"] = v["task_id"].split("+")[0]
    assert all(training_only(v) for v in variants) and not any(training_only(d) for d in docs)
    # variants never count a class
    assert select_classes(docs + variants, "environment") == select_classes(docs, "environment")

    def spectra(ds):
        return SpectraSet.from_docs(ds, assign_labels(ds, "chemsys", classes)).labelled()

    base, physics = spectra(docs), spectra(variants)
    assert len(base.x) == len(docs) and len(physics.x) == 2 * len(docs)
    assert physics.testable == [False] * len(physics.x) and all(base.testable)
    test_groups = {base.groups[0]}
    train_set = base.subset([i for i, g in enumerate(base.groups) if g not in test_groups])
    seen = {}
    monkeypatch.setattr(domain_shift, "_fold_model",
                        lambda s, config, pre, seed, path: seen.setdefault(path, s.task_ids) and path)
    models = domain_shift._fold_models(train_set, physics, test_groups, TrainingConfig(), DEFAULT_PREPROCESSING, 0,
                                       "m")
    assert set(models) == {"", "dataset_rpa", "dataset_nohole"}
    for left_out, path in models.items():
        ids = seen[path]
        assert not any(t.split("+")[0] == base.task_ids[0] for t in ids)  # no site of a test material
        presets = {domain_shift.variant_preset(t) for t in ids}
        assert left_out not in presets - {""} and ids[:len(train_set.x)] == train_set.task_ids
        assert len(ids) == len(train_set.x) * (3 if left_out == "" else 2)
    assert domain_shift._fold_models(train_set, None, test_groups, TrainingConfig(), DEFAULT_PREPROCESSING, 0,
                                     "m") == {"": "m.json.gz"}


def test_benchmark_with_physics_variants_in_training(tmp_path):
    from pymatgen_xanes_nn.studies.domain_shift import benchmark
    from pymatgen_xanes_nn.training.fit import TrainingConfig

    docs = fake_task_docs(n_groups=6, sites=2)
    sites = pick_sites(docs)
    variants = _variants_of(docs, set(sites), 0.5)
    for v in variants:
        v["metadata"]["physics_of"] = v["task_id"].split("+")[0]
    config = TrainingConfig(ae_epochs=3, fnn_epochs=20)
    cache = str(tmp_path / "models")
    out = benchmark("chemsys", docs, variants, config, {"phys": {"physics": True, "augment_copies": 0}}, n_folds=2,
                    cache=cache)
    # per fold: one model on every preset, one without the only preset
    assert len([f for f in os.listdir(cache) if "physics-without" in f]) == 4
    assert out["candidates"]["phys"]["all"]["dataset_rpa"]["n"] == 18
    assert out["n_sites"]["dataset"] == 18


def test_e0_aligned_recipes_ship_only_without_the_edge_offset_score():
    from pymatgen_xanes_nn.studies.domain_shift import CANDIDATES, unshippable
    from pymatgen_xanes_nn.training.fit import TrainingConfig

    with_edge, without = TrainingConfig(ood_scores=("knn", "edge_offset")), TrainingConfig(ood_scores=("knn",))
    assert "edge_offset" in unshippable(CANDIDATES["e0_aligned"], with_edge)
    assert unshippable(CANDIDATES["e0_aligned"], without) is None
    assert unshippable(CANDIDATES["white_line"], with_edge) is None


def _table(clean: float, drops: dict[str, float], n: int = 80) -> dict:
    sets = {k: {"n": n, "accuracy": clean - d, "accuracy_dataset": clean, "drop": d} for k, d in drops.items()}
    return {"dataset": {"n": n, "accuracy": clean}, **sets, "mean": {}, "mean_physics": {}}


def test_choose_prefers_the_robust_recipe_among_those_the_selection_half_cannot_tell_apart():
    from pymatgen_xanes_nn.studies.domain_shift import choose
    from pymatgen_xanes_nn.training.fit import TrainingConfig

    def result(robust_clean: float) -> dict:
        return {"candidates": {
            "fragile": {"overrides": {}, "selection": _table(0.92, {"shift_+3": 0.20, "broaden_1": 0.0})},
            "robust": {"overrides": {}, "selection": _table(robust_clean, {"shift_+3": 0.0, "broaden_1": 0.01})}}}

    # criteria (mean over clean and perturbed sets): fragile (0.92 + 0.72 + 0.92) / 3 = 0.853
    close = choose(result(0.88), TrainingConfig())  # robust 0.877: simply better
    assert close["best"] == close["chosen"] == "robust"
    tie = choose(result(0.84), TrainingConfig())  # 0.837: within one standard error (3.0 points at n = 80)
    assert tie["best"] == "fragile" and set(tie["tied"]) == {"fragile", "robust"} and tie["chosen"] == "robust"
    far = choose(result(0.60), TrainingConfig())  # 0.595: clearly worse, robust or not
    assert far["tied"] == ["fragile"] and far["chosen"] == "fragile"
