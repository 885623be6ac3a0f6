"""OOD scores, conformal p-values and prediction sets, against their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from pymatgen_xanes_nn.trust.conformal import conformal_quantile, fit_conformal, prediction_sets
from pymatgen_xanes_nn.trust.ood import KNNIndex, combined_pvalue, gaussian_stats, mahalanobis, pvalues


def test_knn_index_is_exact_for_reference_spectra_and_penalises_leaving_the_subspace():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(5, 500))
    ref = rng.normal(size=(40, 5)) @ basis  # rank 5: the projection is exact
    index = KNNIndex.fit(ref, n_components=8)
    q = ref[:7] * 3.0 + rng.normal(0, 1e-3, (7, 500))
    full = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (ref / np.linalg.norm(ref, axis=1, keepdims=True)).T
    np.testing.assert_allclose(index.similarity(q), full, atol=1e-4)
    assert np.all(index.distance(ref[:7]) < 1e-4)
    off = rng.normal(size=(3, 500))  # mostly outside the reference subspace: far, not hidden by the projection
    assert np.all(index.distance(off) > 0.5)


def test_pvalues_and_their_level():
    rng = np.random.default_rng(1)
    cal = np.sort(rng.normal(size=999))
    assert pvalues(cal, [cal.max() + 1])[0] == pytest.approx(1 / 1000)
    assert pvalues(cal, [cal.min() - 1])[0] == 1.0
    fresh = rng.normal(size=20000)  # exchangeable with the calibration set: P(p <= a) <= a
    for a in (0.01, 0.05, 0.2):  # given one calibration set of 999 the rate scatters by sqrt(a (1 - a) / 999)
        assert np.mean(pvalues(cal, fresh) <= a) <= a + 3 * np.sqrt(a * (1 - a) / 999) + 0.005
    both = combined_pvalue({"a": cal, "b": cal}, {"a": fresh, "b": rng.normal(size=20000)})
    assert np.mean(both <= 0.05) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 999)  # Bonferroni keeps the level


def test_conformal_quantile_and_small_sets():
    scores = np.arange(1, 20) / 20.0  # 19 scores: the 90% threshold is the ceil(20 * 0.9) = 18th
    assert conformal_quantile(scores, 0.9) == pytest.approx(18 / 20)
    assert conformal_quantile(scores[:5], 0.9) == np.inf  # too few to promise 90%


def test_class_conditional_sets_cover_each_class():
    rng = np.random.default_rng(2)
    n, k = 6000, 3
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y] += np.array([2.5, 1.0, 0.2])[y]  # class 2 is hard
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    cal, test = np.arange(n) < 3000, np.arange(n) >= 3000
    conf = fit_conformal(p[cal], y[cal], k, level=0.9, mode="class_conditional")
    assert all(conf["class_conditional"])
    sets = prediction_sets(p[test], conf["thresholds"])
    for c in range(k):
        covered = sets[test.nonzero()[0] - 3000, y[test]][y[test] == c]
        assert 0.87 <= covered.mean() <= 0.93, (c, covered.mean())
    small = fit_conformal(p[:30], y[:30], k, level=0.9, mode="class_conditional")  # ~10 per class: shared
    assert not any(small["class_conditional"]) and len(set(small["thresholds"])) == 1
    marginal = fit_conformal(p[cal], y[cal], k, level=0.9)  # the default: one threshold, 90% over all classes
    assert marginal["mode"] == "marginal" and len(set(marginal["thresholds"])) == 1
    assert 0.88 <= prediction_sets(p[test], marginal["thresholds"])[np.arange(3000), y[test]].mean() <= 0.92
    with pytest.raises(ValueError, match="Unknown conformal mode"):
        fit_conformal(p[cal], y[cal], k, mode="per-class")


def test_relative_mahalanobis_discounts_shared_directions():
    rng = np.random.default_rng(3)
    codes = np.concatenate([rng.normal(0, 1, (200, 2)) + [0, 0], rng.normal(0, 1, (200, 2)) + [6, 0]])
    y = np.repeat([0, 1], 200)
    stats = gaussian_stats(codes, y, 2)
    d, rel = mahalanobis(np.array([[0.0, 0.0], [0.0, 8.0]]), stats)
    assert d[1] > d[0] and rel[1] > rel[0]
    # Ren et al. (2021): the squared class distance minus the squared distance to one Gaussian of all codes,
    # computed here independently; a plain Mahalanobis distance (or the background one alone) fails this
    queries = np.array([[-10.0, 0.0], [0.0, 11.0], [3.0, 0.5]])
    d, rel = mahalanobis(queries, stats)
    mean, cov = codes.mean(axis=0), np.cov(codes.T)
    background = np.sqrt(np.einsum("ni,ij,nj->n", queries - mean, np.linalg.inv(cov), queries - mean))
    assert np.all(np.abs(rel - (d**2 - background**2)) <= 0.01 * d**2 + 0.1)  # 1%: the ridge
    # along the direction every code varies in (x, where the classes lie) the far point keeps most of its distance;
    # off it (y), the background is as far as the classes and the relative score is near 0: the order flips
    assert d[1] > d[0] and rel[0] > rel[1] + 3


def test_quality_gate_refuses_short_and_sparse_spectra(toy_model):
    from pymatgen.analysis.xas.spectrum import XAS

    from pymatgen_xanes_nn.preprocessing import DEFAULT_PREPROCESSING, SpectrumError
    from pymatgen_xanes_nn.trust.quality import MIN_POINTS_IN_WINDOW, check_quality

    from .conftest import synthetic_edge

    e, mu = synthetic_edge()
    check_quality(e, DEFAULT_PREPROCESSING)  # a full spectrum passes
    with pytest.raises(SpectrumError, match="ends at 18[56]\\d.\\d eV, 5[0-9]% of the way through"):
        check_quality(e[e < 1870], DEFAULT_PREPROCESSING)
    sparse = np.linspace(0, len(e) - 1, MIN_POINTS_IN_WINDOW - 5).astype(int)
    with pytest.raises(SpectrumError, match="points in the model window"):
        check_quality(e[sparse], DEFAULT_PREPROCESSING)
    with pytest.raises(SpectrumError, match="input-quality gate"):
        toy_model.classify(XAS(e[sparse], mu[sparse], None, "Si"))


def test_evidence_finds_the_spectrum_itself(tmp_path):
    from pymatgen_xanes_nn.io.readers import from_task_doc
    from pymatgen_xanes_nn.preprocessing import DEFAULT_PREPROCESSING, Preprocessing
    from pymatgen_xanes_nn.trust.evidence import build_reference, nearest_reference, reference_vectors, save_reference

    from .conftest import task_docs

    docs = task_docs()
    path = str(tmp_path / "ref.npz")
    save_reference(build_reference(docs, DEFAULT_PREPROCESSING), path)
    x = np.array([DEFAULT_PREPROCESSING.transform(from_task_doc(d)) for d in docs])
    near = nearest_reference(x, DEFAULT_PREPROCESSING, filename=path)
    for d, ev in zip(docs, near):
        assert ev[0]["task_id"] == d["task_id"] and ev[0]["cosine_similarity"] > 0.999
        assert ev[0]["formula"] == d["metadata"]["formula"] and len(ev) == 3
    np.testing.assert_allclose(reference_vectors([docs[1]["task_id"]], DEFAULT_PREPROCESSING, filename=path)[0], x[1],
                               atol=1e-3)
    assert nearest_reference(x, Preprocessing(normalization="max"), filename=path) is None


def test_evidence_of_an_oxidation_model_is_named_by_oxidation_state(tmp_path):
    from pymatgen_xanes_nn.edges import S_K
    from pymatgen_xanes_nn.io.readers import from_task_doc
    from pymatgen_xanes_nn.io.tasks import load_collection
    from pymatgen_xanes_nn.labels import evidence_class
    from pymatgen_xanes_nn.preprocessing import Preprocessing
    from pymatgen_xanes_nn.trust.evidence import build_reference, nearest_reference, save_reference

    pre = Preprocessing.for_edge(S_K.element, alignment="e0", e0_column=True, normalization="pre_edge")
    docs = {}
    for d in load_collection(S_K.tasks_collection):  # one spectrum of each oxidation state
        if d["metadata"].get("oxidation"):
            docs.setdefault(d["metadata"]["oxidation"], d)
    path = str(tmp_path / "ref.npz")
    save_reference(build_reference(list(docs.values()), pre), path)
    x = np.array([pre.transform(from_task_doc(d)) for d in docs.values()])
    for (state, d), ev in zip(docs.items(), nearest_reference(x, pre, filename=path)):
        assert ev[0]["task_id"] == d["task_id"] and ev[0]["oxidation"] == state
        assert evidence_class(ev[0], ["S2-", "S1-", "S0", "S4+", "S6+"], "oxidation") == state
    assert evidence_class({"environment": "SO4"}, ["S6+"], "oxidation") is None  # a reference without the field
    assert evidence_class({"oxidation": "S6+", "environment": "SO4"}, ["SO4", "S-other"], "environment",
                          S_K.element) == "SO4"


def test_each_preprocessing_has_its_own_shipped_reference_file():
    from pymatgen_xanes_nn.preprocessing import DEFAULT_PREPROCESSING, Preprocessing
    from pymatgen_xanes_nn.trust.evidence import REFERENCE_FILE, reference_file

    aligned = reference_file(Preprocessing(alignment="e0"))
    assert reference_file(DEFAULT_PREPROCESSING) == REFERENCE_FILE
    assert aligned != REFERENCE_FILE and aligned == reference_file(Preprocessing(alignment="e0"))
    assert aligned != reference_file(Preprocessing(normalization="max"))


def test_a_reference_grows_by_generations_and_the_newest_is_used(tmp_path):
    from pymatgen_xanes_nn.errors import InputError
    from pymatgen_xanes_nn.preprocessing import Preprocessing
    from pymatgen_xanes_nn.trust.evidence import reference_file, shipped_reference

    pre = Preprocessing(alignment="e0")
    assert shipped_reference(pre, str(tmp_path)) == (str(tmp_path / reference_file(pre)), 1)  # none installed
    for generation in (1, 2):
        (tmp_path / reference_file(pre, generation)).write_bytes(b"")
    (tmp_path / reference_file(pre, 4)).write_bytes(b"")  # after a gap: not a generation of this line
    assert shipped_reference(pre, str(tmp_path)) == (str(tmp_path / reference_file(pre, 2)), 2)
    assert reference_file(pre, 2) != reference_file(pre) and reference_file(pre, 2).endswith("_0002.npz")
    with pytest.raises(InputError, match="generation 0"):
        reference_file(pre, 0)


@pytest.mark.parametrize("name", ["si_k_environment", "s_k_environment", "s_k_oxidation"])
def test_shipped_evidence_covers_the_edges_real_crystals(name):
    """The evidence a shipped model shows is drawn from (nearly) all of its edge's computed real crystals.

    New shards may land before the next index generation; 90% keeps that room and fails on a stale index.
    """
    from pymatgen_xanes_nn import XANESClassifier
    from pymatgen_xanes_nn.edges import get_edge
    from pymatgen_xanes_nn.io.tasks import load_collection
    from pymatgen_xanes_nn.trust.evidence import load_reference, shipped_reference

    clf = XANESClassifier.from_pretrained(name)
    ref = load_reference(shipped_reference(clf.preprocessing)[0])
    assert ref is not None
    tasks = {d["task_id"] for d in load_collection(get_edge(clf.metadata["edge"]).tasks_collection)}
    indexed = set(map(str, ref["task_id"]))
    assert len(tasks - indexed) <= 0.1 * len(tasks), f"{len(tasks - indexed)} of {len(tasks)} spectra not indexed"


def test_model_can_flag_with_another_score_combination(toy_model_file, tmp_path):
    from pymatgen_xanes_nn.classifier import XANESClassifier
    from pymatgen_xanes_nn.trust.ood import combined_pvalue

    clf = XANESClassifier.from_file(toy_model_file)
    pair = ["reconstruction", "energy"]
    knn = clf.with_ood_scores(pair, alpha=0.01, reason="test")
    assert knn.ood["scores"] == pair and knn.ood["alpha"] == 0.01 and clf.ood["scores"] != pair
    assert knn.metadata["ood_changes"][-1]["from"]["scores"] == list(clf.ood["scores"])
    assert knn.model_version != clf.model_version  # builders reclassify with the new flag
    assert knn.with_ood_scores(pair, alpha=0.01).model_version == knn.model_version
    x = np.random.default_rng(0).random((5, clf.preprocessing.n_points)).astype(np.float32)
    scores = clf.ood_scores(x)
    np.testing.assert_allclose(knn.ood_pvalue(scores), combined_pvalue({k: clf.ood["calibration"][k] for k in pair},
                                                                       {k: scores[k] for k in pair}))
    assert "outside_classes" not in knn.metadata["metrics"]  # stale for the new flag
    outside = x[:4]
    rated = clf.with_ood_scores(pair, x_outside=outside, outside_labels=["a", "a", "b", "b"])
    assert rated.metadata["metrics"]["outside_classes"]["ood_rate"] == pytest.approx(rated.ood_flags(outside).mean())
    assert rated.metadata["metrics"]["outside_classes"]["by_label"]["b"]["n"] == 2
    knn.to(str(tmp_path / "m.json.gz"))  # a valid model file: checksum recomputed, loads again
    assert XANESClassifier.from_file(str(tmp_path / "m.json.gz")).ood["scores"] == pair
    with pytest.raises(ValueError, match="no calibration"):
        clf.with_ood_scores(["telepathy"])
    with pytest.raises(ValueError, match="alpha"):
        clf.with_ood_scores(["knn"], alpha=1.5)


def test_edge_index_measures_how_far_the_edge_sits_from_its_shape_neighbours():
    from pymatgen_xanes_nn.preprocessing import DEFAULT_PREPROCESSING, find_e0
    from pymatgen_xanes_nn.trust.ood import EdgeIndex, align_rows

    grid = DEFAULT_PREPROCESSING.grid
    rng = np.random.default_rng(3)

    def edge(e0, peak):  # arctan step plus a white line, as a Si K edge looks
        return 0.5 + np.arctan((grid - e0) / 0.8) / np.pi + peak * np.exp(-0.5 * ((grid - e0 - 2.0) / 1.2) ** 2)

    # two shapes with their own edge positions, as SiO4 (high white line, e0 ~ 1846) and SiC4 (low, ~ 1841)
    ref = np.array([edge(1846 + rng.normal(0, 0.2), 2.0) for _ in range(20)]
                   + [edge(1841 + rng.normal(0, 0.2), 0.3) for _ in range(20)])
    index = EdgeIndex.fit(ref, grid, n_components=16)
    np.testing.assert_allclose(find_e0(grid, ref)[:20], index.e0[:20])
    aligned = align_rows(ref[:2], grid, find_e0(grid, ref[:2]), 1850.0)
    np.testing.assert_allclose(find_e0(grid, aligned), 1850.0, atol=0.2)
    fresh = np.array([edge(1846.1, 2.0), edge(1841.0, 0.3)])
    assert np.all(index.offset(fresh) < 0.5)
    # the same shapes with the edges of the other shape, or shifted by 4 eV: the offset is the shift
    moved = np.array([edge(1841.0, 2.0), edge(1845.0, 0.3), edge(1850.0, 2.0)])
    np.testing.assert_allclose(index.offset(moved), [5.0, 4.0, 4.0], atol=0.5)


def test_quality_measures_see_sparse_and_noisy_spectra():
    from pymatgen_xanes_nn.trust.quality import MAX_EDGE_STEP, MAX_NOISE, quality_measures, quality_problems

    from .conftest import synthetic_edge

    e, mu = synthetic_edge()
    window, e0, step = (1836.0, 1896.0), 1846.0, 1.0
    clean = quality_measures(e, mu, e0, step, window)
    assert clean["edge_step_ev"] <= MAX_EDGE_STEP and clean["noise"] < MAX_NOISE and not quality_problems(clean)
    thin = quality_measures(e[::25], mu[::25], e0, step, window)  # points ~25x further apart
    assert thin["edge_step_ev"] > MAX_EDGE_STEP
    assert any("sparse near the edge" in p for p in quality_problems(thin))
    rng = np.random.default_rng(0)
    for snr in (5.0, 10.0):  # the estimate recovers the noise it is given, as a share of the edge step
        noisy = quality_measures(e, mu + rng.normal(0, step / snr, len(mu)), e0, step, window)
        assert noisy["noise"] == pytest.approx(1 / snr, rel=0.25)
    problems = quality_problems(quality_measures(e, mu + rng.normal(0, 0.2, len(mu)), e0, step, window))
    assert problems == [p for p in problems if p.startswith("noisy")] and problems


def test_classify_flags_poor_input_and_says_why(toy_model):
    from pymatgen.analysis.xas.spectrum import XAS

    from .conftest import synthetic_edge

    e, mu = synthetic_edge()
    step = float(np.mean(mu[-20:]) - np.mean(mu[:20]))
    clean = toy_model.classify(XAS(e, mu, None, "Si"), evidence=False)
    assert "input quality" not in clean["reason"] and clean["quality"]["noise"] < 0.06
    noisy = XAS(e, mu + np.random.default_rng(1).normal(0, step / 4, len(mu)), None, "Si")
    r = toy_model.classify(noisy, evidence=False)
    assert r["ood"] and r["dont_know"] and "input quality: noisy" in r["reason"]
    assert toy_model.classify(toy_model.vectorize(XAS(e, mu, None, "Si"))[0][0], evidence=False)["quality"] is None


def test_refresh_ood_rebuilds_the_training_calibration(toy_model):
    """refresh_ood recomputes the network-free scores' out-of-fold calibration exactly as training made it."""
    from pymatgen_xanes_nn.training.fit import refresh_ood

    from .conftest import toy_set

    x, labels, groups, _ = toy_set()
    new = refresh_ood(toy_model, x, labels, groups, ["knn", "edge_offset"], reason="test")
    for score in ("knn", "edge_offset"):
        np.testing.assert_allclose(new.ood["calibration"][score], toy_model.ood["calibration"][score], atol=1e-5)
    np.testing.assert_allclose(new.ood["edge_e0"], toy_model.ood["edge_e0"])
    assert new.ood["scores"] == ["knn", "edge_offset"] and new.metadata["ood_changes"][-1]["reason"] == "test"
    assert new.model_version != toy_model.model_version  # builders reclassify
    with pytest.raises(ValueError, match="not model 'toy'"):
        refresh_ood(toy_model, x[:-1], labels[:-1], groups[:-1])


def test_fit_dont_know_spends_the_budget_on_the_best_rule():
    from pymatgen_xanes_nn.trust.abstain import dont_know, fit_dont_know

    rng = np.random.default_rng(0)
    n = 2000
    correct = rng.random(n) < 0.9
    # wrong answers are less confident and a little stranger, as out of fold
    confidence = np.where(correct, rng.beta(8, 1.5, n), rng.beta(3, 3, n))
    pvalue = np.where(correct, rng.random(n), rng.random(n) ** 1.5)
    size = np.ones(n, int)
    best = fit_dont_know(confidence, correct, pvalue, size, budget=0.05, alphas=(0.01, 0.05))
    flagged = dont_know(pvalue, best["alpha"], size, confidence, best["confidence_floor"])
    assert flagged[correct].mean() <= 0.05 + 1e-12 and best["correct_flagged"] == flagged[correct].mean()
    assert best["wrong_flagged"] == flagged[~correct].mean() > 0.3
    # the floor takes what the OOD flag leaves: at alpha 0.05 the flag alone spends the budget
    wide = fit_dont_know(confidence, correct, pvalue, size, budget=0.05, alphas=(0.05,))
    alone = (pvalue < 0.05)[correct].mean()
    assert alone < wide["correct_flagged"] <= 0.05 and wide["confidence_floor"] > 0
    assert fit_dont_know(confidence, correct, pvalue, size, budget=alone, alphas=(0.05,))["confidence_floor"] == 0.0
    # the larger level unless the smaller one catches more wrong answers by over one standard error: with 200
    # wrong answers and budget 5% it does (0.66 vs 0.59, se 0.034); with 50 and budget 8%, 0.70 vs 0.66 is noise
    for budget, keep in ((0.05, np.ones(n, bool)), (0.08, correct | (np.cumsum(~correct) <= 50))):
        args = (confidence[keep], correct[keep], pvalue[keep], size[keep])
        narrow, wide_k = (fit_dont_know(*args, budget=budget, alphas=(a,)) for a in (0.01, 0.05))
        gap = narrow["wrong_flagged"] - wide_k["wrong_flagged"]
        se = np.sqrt(narrow["wrong_flagged"] * (1 - narrow["wrong_flagged"]) / (~correct[keep]).sum())
        chosen = fit_dont_know(*args, budget=budget, alphas=(0.01, 0.05))["alpha"]
        assert gap > 0 and chosen == (0.01 if budget == 0.05 else 0.05) and (gap > se) == (budget == 0.05)
    # empty and large sets count as "don't know" whatever the confidence
    assert dont_know(np.ones(3), 0.05, np.array([0, 1, 5]), np.ones(3)).tolist() == [True, False, True]


def test_score_reference_makes_network_scores_scale_free():
    from pymatgen_xanes_nn.trust.ood import NETWORK_SCORES, score_reference, standardize

    rng = np.random.default_rng(3)
    train_scores = {k: rng.gamma(2.0, 1.0, 200) for k in NETWORK_SCORES}
    test_scores = {k: rng.gamma(2.0, 1.5, 50) for k in NETWORK_SCORES}
    ref = score_reference(train_scores)
    # another network whose scores are the same up to scale and offset standardizes to the same numbers
    moved = {k: 3.0 * v - 7.0 for k, v in train_scores.items()}
    a = standardize({**test_scores, "knn": test_scores["energy"]}, ref)
    b = standardize({k: 3.0 * v - 7.0 for k, v in test_scores.items()}, score_reference(moved))
    for k in NETWORK_SCORES:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-9)
    np.testing.assert_array_equal(a["knn"], test_scores["energy"])  # network-free scores are left alone
    # mostly tied training scores (max_softmax of confidently fitted spectra) still have a scale > 0
    tied = score_reference({k: np.r_[np.zeros(150), rng.random(50)] for k in NETWORK_SCORES})
    assert all(v[1] > 0.01 for v in tied.values())


def test_network_scores_keep_their_calibration_when_the_logits_change_scale(toy_model):
    """A network whose logits are smaller (another training run) must not flag its own training spectra: the energy
    score is compared with its calibration on the network's own scale (the r5 white-line model flagged 11%)."""
    import copy

    from pymatgen_xanes_nn.trust.ood import score_reference

    from .conftest import toy_set

    x, *_ = toy_set()
    # training records the shipped network's flag rate on its own training spectra
    assert toy_model.metadata["metrics"]["out_of_fold"]["ood_rate_own_training"] == pytest.approx(
        toy_model.ood_flags(x).mean())
    clf = toy_model.with_ood_scores(["energy"], alpha=0.05)
    assert "ood_rate_own_training" not in clf.metadata["metrics"]["out_of_fold"]  # stale for another flag
    assert np.median(clf.ood_scores(x)["energy"]) == pytest.approx(0.0, abs=1e-6)  # its own training median
    flat = copy.deepcopy(clf)
    last = max(i for i, layer in enumerate(flat.fnn) if "W" in layer)
    flat.fnn[last] = {**flat.fnn[last], "W": flat.fnn[last]["W"] * 0.3, "b": flat.fnn[last]["b"] * 0.3}
    # the calibration's scale applied to another network (what the fold networks' raw scores did to the shipped one)
    assert flat.ood_flags(x).mean() > 0.5
    flat.ood["reference"] = score_reference(flat.ood_scores(x, standardized=False))  # its own, as training does
    assert flat.ood_flags(x).mean() <= 0.1


def test_a_model_of_format_3_or_later_needs_its_score_reference(toy_model):
    from pymatgen_xanes_nn.classifier import MODEL_FORMAT, InvalidModelError, XANESClassifier, model_checksum

    d = toy_model.as_dict()
    assert d["version"] == MODEL_FORMAT == "4" and set(d["ood"]["reference"]) >= {"energy", "max_softmax"}
    d["ood"] = {k: v for k, v in d["ood"].items() if k != "reference"}
    d["checksum"] = model_checksum(d)
    with pytest.raises(InvalidModelError, match="ood.reference"):
        XANESClassifier.from_dict(d)
    d["version"] = "2"  # format 2 files predate it and load as they were calibrated
    d["checksum"] = model_checksum(d)
    assert "reference" not in XANESClassifier.from_dict(d).ood
