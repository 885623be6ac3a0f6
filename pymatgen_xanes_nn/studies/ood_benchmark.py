"""The OOD benchmark: how well each score tells spectra a model should not answer from ones it should.

``xanes-nn ood-benchmark --scheme environment`` trains the shipped recipe on grouped folds and scores, with each
fold's networks, spectra it never saw:

* inside: the held-out materials of the fold (their classes are known to the model);
* far: shapes no Si K edge has (steps, step + peak, sine, ramp, double edges, spike trains, noise), and other
  elements' K edges (Al, P, S; FEFF10 with the project's runner, ``xanes-nn simulate --absorber``) moved so their
  e0 sits at a Si K edge's;
* faults: the held-out spectra damaged as measurements are (self-absorption saturation, truncation to 50-80% of
  the window, 10-30 points, shifts of 3-5 eV, SNR 5);
* near: for the environment scheme, each Si environment left out of training in turn (the model never saw a
  SiN4, ..., or the mixed-anion ``Si-other`` sites); for the chemsys scheme, spectra outside its classes.

A spectrum the input checks or the input-quality gate refuse gets no answer: it counts as caught (score +inf);
one past a quality limit (:func:`~pymatgen_xanes_nn.trust.quality.quality_problems`) is flagged whatever its p-value,
so the ``combined`` score counts it as caught too.

For every score (and the ``combined`` p-value) it reports AUROC and FPR at 95% TPR. The combined p-value needs
in-distribution calibration scores from other materials than those it scores: a fold's spectra are judged against
the out-of-fold scores of the other folds (cross-conformal), as the shipped model judges a new spectrum against
the out-of-fold scores of its training materials. The prediction sets are made the same way, so the flag rates of
correct and wrong held-out predictions are out of sample too. In the leave-one-environment-out runs the held-out
known materials are split in two halves by group, each calibrating the other.
Results go to ``docs/results/ood_<scheme>.json``; ``xanes-nn report`` renders them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from pymatgen_xanes_nn.training.metrics import auroc, fpr_at_tpr
from pymatgen_xanes_nn.trust.abstain import OOD_ALPHAS, dont_know
from pymatgen_xanes_nn.trust.conformal import fit_conformal, prediction_sets
from pymatgen_xanes_nn.trust.ood import OOD_SCORES, combined_pvalue

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from pymatgen_xanes_nn.preprocessing import Preprocessing
    from pymatgen_xanes_nn.training.fit import SpectraSet, TrainingConfig

#: Environments left out of training in turn (the near-OOD test of the environment model).
LEAVE_OUT = ("SiN4", "SiC4", "SiS4", "SiF6", "SiO6", "SiP4", "SiAs4", "Si-other")
#: Where other elements' K edges are moved: a typical Si K-edge e0 of the dataset, in eV.
SI_K_E0 = 1846.0
#: Faults applied to held-out raw spectra: name -> (kind, parameter range).
FAULTS: dict[str, tuple[str, tuple[float, float]]] = {
    "self-absorption": ("saturate", (0.5, 2.0)),
    "truncated 50-80%": ("truncate", (0.5, 0.8)),
    "sparse 10-30 points": ("sparse", (10, 30)),
    "shift 3-5 eV": ("shift", (3.0, 5.0)),
    "noise SNR 5": ("noise", (5.0, 5.0)),
}
FAR_SHAPES = ("step", "step+peak", "sine", "ramp", "double edge", "spikes", "noise")


def far_spectra(n_per_shape: int, seed: int, e_min: float = 1826.0, e_max: float = 1906.0, n: int = 400):
    """Raw ``(energy, mu)`` pairs of shapes no Si K edge has, with their shape names."""
    rng = np.random.default_rng(seed)
    e = np.linspace(e_min, e_max, n)
    out, kinds = [], []
    for shape in FAR_SHAPES:
        for _ in range(n_per_shape):
            e0 = rng.uniform(1842.0, 1852.0)
            width = rng.uniform(0.5, 3.0)
            step = 0.5 + np.arctan((e - e0) / width) / np.pi
            if shape == "step":
                mu = step
            elif shape == "step+peak":
                centre, sigma = e0 + rng.uniform(0, 4), rng.uniform(1, 3)
                mu = step + rng.uniform(0.5, 3.0) * np.exp(-0.5 * ((e - centre) / sigma) ** 2)
            elif shape == "sine":
                mu = 1.0 + 0.5 * np.sin(2 * np.pi * (e - e_min) / rng.uniform(5.0, 40.0) + rng.uniform(0, 6.3))
            elif shape == "ramp":
                mu = np.clip((e - e0) / rng.uniform(5.0, 40.0), 0.0, None)
            elif shape == "double edge":
                mu = step + 0.5 + np.arctan((e - e0 - rng.uniform(6, 20)) / width) / np.pi
            elif shape == "spikes":
                mu = 0.05 * rng.random(n)
                mu[rng.choice(n, size=rng.integers(3, 12), replace=False)] += rng.uniform(1.0, 3.0)
            else:
                mu = rng.normal(1.0, 0.3, n)
            out.append((e, mu))
            kinds.append(shape)
    return out, kinds


def apply_fault(energy: np.ndarray, mu: np.ndarray, kind: str, low: float, high: float,
                rng: np.random.Generator, preprocessing: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    """One damaged copy of a raw spectrum (see :data:`FAULTS`)."""
    from pymatgen_xanes_nn.training.perturb import add_noise, edge_step, shift

    e, m = np.asarray(energy, float), np.asarray(mu, float)
    amount = rng.uniform(low, high)
    if kind == "saturate":  # thick-sample fluorescence: mu / (mu + step) flattens the white line
        step = abs(edge_step(e, m)) or 1.0
        return e, m / (m + amount * step)
    if kind == "truncate":
        end = preprocessing.e_min + amount * (preprocessing.e_max - preprocessing.e_min)
        keep = e <= end
        return e[keep], m[keep]
    if kind == "sparse":
        inside = np.flatnonzero((e >= preprocessing.e_min) & (e <= preprocessing.e_max))
        idx = np.unique(np.linspace(inside[0], inside[-1], int(round(amount))).astype(int))
        return e[idx], m[idx]
    if kind == "shift":
        return shift(e, m, amount * rng.choice([-1.0, 1.0]))
    if kind == "noise":
        return add_noise(e, m, amount, rng)
    raise ValueError(f"Unknown fault {kind!r}")


#: Where the other elements' K edges are also placed (e0, eV): across the Si window's edge region, since the flag's
#: verdict on a foreign edge depends on where it lands (at 1839-1842 eV, near elemental Si's e0, most were answered).
FOREIGN_E0S = (1836.0, 1838.0, 1840.0, 1842.0, 1844.0, 1846.0, 1848.0, 1850.0)
#: The far set of other K edges placed at ``e0`` (the plain name is the historical placement, :data:`SI_K_E0`).
OTHER_EDGES_KIND = "far: other K edges"


def other_edges_kind(e0: float) -> str:
    """The far-set name of the other K edges placed at ``e0`` eV."""
    return OTHER_EDGES_KIND if e0 == SI_K_E0 else f"{OTHER_EDGES_KIND}, e0 {e0:g} eV"


def other_edges(docs: Sequence[dict], e0_target: float = SI_K_E0) -> tuple[list[tuple[np.ndarray, np.ndarray]],
                                                                           list[str]]:
    """Other elements' K-edge spectra (task documents) moved so that their e0 sits at ``e0_target`` eV."""
    from pymatgen_xanes_nn.preprocessing import find_edge, resample_uniform

    out, kinds = [], []
    for d in docs:
        e, m = np.asarray(d["spectrum"], float)[:, [0, 3]].T
        e0 = find_edge(*resample_uniform(e, m)).e0
        out.append((e - e0 + e0_target, m))
        kinds.append(d["metadata"]["absorbing_element"])
    return out, kinds


def gated_pvalue(pvalue: np.ndarray, poor: np.ndarray) -> np.ndarray:
    """The combined OOD p-value, 0 where the input is past a quality limit (flagged whatever the scores say)."""
    return np.where(np.asarray(poor, bool), 0.0, pvalue)


def pvalue_score(pvalue: np.ndarray) -> np.ndarray:
    """A p-value as a score, higher = less like the training data; 0 (gated) becomes +inf, as a refusal."""
    return np.where(pvalue > 0, 1.0 - pvalue, np.inf)


def _vectorize(raw: Sequence[tuple[np.ndarray, np.ndarray]], preprocessing: Preprocessing,
               gate: bool = True) -> tuple[np.ndarray, list, np.ndarray]:
    """Preprocess raw spectra; ones the input checks (and, with ``gate``, the quality gate) refuse are left out.

    Returns:
        ``(model inputs, indices kept, poor)``: ``poor`` marks kept spectra past a quality limit.
    """
    from pymatgen_xanes_nn.preprocessing import SpectrumError
    from pymatgen_xanes_nn.trust.quality import gated_input, quality_problems

    rows, kept, poor = [], [], []
    for i, (e, m) in enumerate(raw):
        try:
            row, measures = gated_input(e, m, preprocessing, gate=gate)
        except SpectrumError:
            continue
        rows.append(row)
        kept.append(i)
        poor.append(bool(quality_problems(measures)))
    return np.asarray(rows, np.float32).reshape(-1, preprocessing.n_inputs), kept, np.array(poor, bool)


#: Degradations swept for the input-quality gate: coverage of the window kept, and points left in it.
COVERAGE_SWEEP = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
POINTS_SWEEP = (10, 15, 20, 30, 40, 60, 100)


def quality_sweep(clf, test_set: SpectraSet, y_te: np.ndarray, preprocessing: Preprocessing) -> dict[str, Any]:
    """Accuracy of one model on held-out spectra cut to a share of the window or thinned to a number of points."""
    out: dict[str, Any] = {"coverage": {}, "points": {}}
    for kind, values in (("coverage", COVERAGE_SWEEP), ("points", POINTS_SWEEP)):
        for v in values:
            damaged = [apply_fault(e, m, "truncate" if kind == "coverage" else "sparse", v, v,
                                   np.random.default_rng(0), preprocessing) for e, m in test_set.raw]
            x_bad, kept, _ = _vectorize(damaged, preprocessing, gate=False)
            correct = (clf.probabilities(x_bad).argmax(axis=1) == y_te[kept]) if kept else []
            out[kind][str(v)] = {"n": len(y_te), "scored": len(kept), "correct": int(np.sum(correct))}
    return out


def _halves(groups: Sequence[str], seed: int) -> np.ndarray:
    """A 0/1 half per spectrum, whole groups on one side."""
    rng = np.random.default_rng(seed)
    names = sorted(set(groups))
    side = dict(zip(names, rng.permutation(len(names)) % 2))
    return np.array([side[g] for g in groups])


def score_table(inside: dict[str, np.ndarray], outside: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """AUROC and FPR@95TPR of every score, inside vs outside."""
    return {k: {"auroc": auroc(inside[k], outside[k]), "fpr_at_95_tpr": fpr_at_tpr(inside[k], outside[k])}
            for k in inside}


def run_ood_benchmark(
    spectra: SpectraSet,
    classes: list[str],
    config: TrainingConfig,
    preprocessing: Preprocessing,
    scheme: str,
    environments: Sequence[str] | None = None,
    outside: SpectraSet | None = None,
    n_folds: int = 5,
    combined: Sequence[str] | None = None,
    leave_out: Sequence[str] = LEAVE_OUT,
    n_far: int = 20,
    other_edge_docs: Sequence[dict] = (),
    scores_file: str | None = None,
    progress: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Run the benchmark (see the module docstring); ``environments`` are the raw Si environments of ``spectra``.

    Args:
        spectra: labelled spectra of the scheme's classes.
        classes: their class list.
        config: the training recipe (calibration folds are not needed here and are switched off).
        preprocessing: the preprocessing of ``spectra``.
        scheme: ``"environment"`` or ``"chemsys"``.
        environments: raw Si environment of each spectrum (for the leave-one-environment-out test).
        outside: spectra outside the classes (:meth:`SpectraSet.outside`; chemsys: other chemical systems,
            environment: none); any derived structure among them is dropped, since it only ever trains.
        n_folds: grouped folds.
        combined: the scores combined into the p-value (default: the config's).
        leave_out: environments to leave out of training in turn.
        n_far: far spectra per shape.
        other_edge_docs: task documents of other elements' K edges (far OOD).
        scores_file: if given, every score of every spectrum is saved there (``.npz``) for offline analysis.
        progress: called with a status line per trained model.
    """
    from pymatgen_xanes_nn.training.fit import train
    from pymatgen_xanes_nn.training.splits import grouped_folds
    from pymatgen_xanes_nn.trust.calibrate import calibrate, temper

    config = config.replace(calibration_folds=0)
    combined = list(combined or config.ood_scores)
    y = np.array([classes.index(lab) for lab in spectra.labels])
    far_sets = {"far: non-spectra": far_spectra(n_far, config.seed)[0]}
    if other_edge_docs:
        for e0 in FOREIGN_E0S:
            far_sets[other_edges_kind(e0)] = other_edges(other_edge_docs, e0)[0]
    far_x = {kind: _vectorize(raw, preprocessing) for kind, raw in far_sets.items()}
    pooled: dict[str, dict[str, list]] = {}
    held = {"pvalue": [], "correct": [], "in_set": [], "set_size": [], "ood": [], "dont_know": [], "n_refused": {},
            "quality": {}, "alpha": [], "confidence_floor": []}
    per_fold: list[dict[str, Any]] = []
    dump: dict[str, np.ndarray] = {}

    def add(kind: str, scores: dict[str, np.ndarray], pvalue: np.ndarray, alpha: float, n_refused: int = 0) -> None:
        # a refused spectrum gets no answer: caught, whatever the scores would have said; pvalue is 0 where the
        # input is past a quality limit (flagged whatever the scores say)
        bucket = pooled.setdefault(kind, {k: [] for k in [*OOD_SCORES, "combined", "flagged"]})
        for k in OOD_SCORES:
            bucket[k].append(np.concatenate([scores[k], np.full(n_refused, np.inf)]))
        bucket["combined"].append(np.concatenate([pvalue_score(pvalue), np.full(n_refused, np.inf)]))
        bucket["flagged"].append(np.concatenate([pvalue < alpha, np.ones(n_refused, bool)]))

    # quality of the clean spectra (FEFF spectra pass every limit; measured here, not assumed)
    poor_all = _vectorize(spectra.raw, preprocessing, gate=False)[2]

    if outside is not None:  # derived structures only ever train: the outside set holds real crystals
        outside = outside.subset(np.flatnonzero(outside.testable))
    poor_outside = (_vectorize(outside.raw, preprocessing, gate=False)[2] if outside is not None and len(outside.x)
                    else None)
    t0 = time.time()
    for f, (tr, te) in enumerate(grouped_folds(spectra.groups, y, n_folds, config.seed, spectra.testable)):
        train_set, test_set = spectra.subset(tr), spectra.subset(te)
        clf = train(train_set.x, train_set.labels, train_set.groups, config.replace(seed=config.seed + f),
                    preprocessing=preprocessing, raw=train_set.raw, testable=train_set.testable)
        y_te = np.array([list(clf.labels).index(classes[k]) if classes[k] in clf.labels else -1 for k in y[te]])
        sweep = quality_sweep(clf, test_set, y_te, preprocessing)
        for kind, rows in sweep.items():
            for v, r in rows.items():
                acc = held["quality"].setdefault(kind, {}).setdefault(v, {"n": 0, "scored": 0, "correct": 0})
                for key in acc:
                    acc[key] += r[key]
        others = {kind: (clf.ood_scores(x), len(far_sets[kind]) - len(kept), poor)
                  for kind, (x, kept, poor) in far_x.items()}
        rng = np.random.default_rng(config.seed + 100 * f)
        for name, (kind, (low, high)) in FAULTS.items():
            damaged = [apply_fault(e, m, kind, low, high, rng, preprocessing) for e, m in test_set.raw]
            x_bad, kept, poor = _vectorize(damaged, preprocessing)
            held["n_refused"][name] = held["n_refused"].get(name, 0) + len(damaged) - len(kept)
            others[f"fault: {name}"] = (clf.ood_scores(x_bad) if len(kept) else None, len(damaged) - len(kept), poor)
        if outside is not None and len(outside.x):
            others["near: outside the classes"] = (clf.ood_scores(outside.x), 0, poor_outside)
        per_fold.append({"inside": clf.ood_scores(test_set.x), "proba": clf.probabilities(test_set.x),
                         "y": y_te, "others": others, "poor": poor_all[te]})
        if progress:
            progress(f"fold {f + 1}/{n_folds}: {len(tr)} train, {len(te)} held out ({time.time() - t0:.0f} s)")
    # cross-conformal: each fold's spectra are judged against the out-of-fold scores of the other folds, as the
    # shipped model judges a new spectrum against the out-of-fold scores of its training materials
    for f, fold in enumerate(per_fold):
        rest = [g for j, g in enumerate(per_fold) if j != f]
        y_cal = np.concatenate([g["y"] for g in rest])
        known = y_cal >= 0
        # as in training (the same function): temperature, sets, OOD calibration, level and confidence floor fitted
        # on the other folds' out-of-fold predictions (untempered networks are so sharp that thresholds from one
        # fold's networks do not carry to another's; measured: 67.8% coverage at 90%)
        fitted = calibrate(np.concatenate([g["proba"] for g in rest])[known], y_cal[known],
                           {k: np.concatenate([g["inside"][k] for g in rest])[known] for k in combined}, combined,
                           config.conformal_level, config.conformal_mode, config.dont_know_budget,
                           OOD_ALPHAS if config.ood_alpha is None else [config.ood_alpha],
                           poor=np.concatenate([g["poor"] for g in rest])[known])
        calib = {k: np.sort(np.concatenate([g["inside"][k] for g in rest])) for k in combined}
        temperature, conformal, abstain, alpha = fitted.temperature, fitted.conformal, fitted.abstain, fitted.alpha

        def pv(scores, poor, calib=calib):
            return gated_pvalue(combined_pvalue(calib, {k: scores[k] for k in combined}), poor)

        held["alpha"].append(alpha)
        held["confidence_floor"].append(abstain["confidence_floor"])
        y_te, proba = fold["y"], temper(fold["proba"], temperature)
        sets = prediction_sets(proba, conformal["thresholds"])
        p_in = pv(fold["inside"], fold["poor"])
        held["pvalue"].append(p_in)
        held["ood"].append(p_in < alpha)
        held["dont_know"].append(dont_know(p_in, alpha, sets.sum(axis=1), proba.max(axis=1),
                                           abstain["confidence_floor"]))
        held["correct"].append(proba.argmax(axis=1) == y_te)
        held["in_set"].append(sets[np.arange(len(y_te)), np.clip(y_te, 0, None)] & (y_te >= 0))
        held["set_size"].append(sets.sum(axis=1))
        add("inside", fold["inside"], p_in, alpha)
        for kind, (scores, n_refused, poor) in fold["others"].items():
            if scores is None:
                scores = {k: np.zeros(0) for k in OOD_SCORES}
            add(kind, scores, pv(scores, poor), alpha, n_refused)
            dump.update({f"fold{f}|{kind}|{k}": v for k, v in scores.items()})
            dump[f"fold{f}|{kind}|n_refused"] = np.array([n_refused])
            dump[f"fold{f}|{kind}|poor"] = poor
        dump.update({f"fold{f}|inside|{k}": v for k, v in fold["inside"].items()})
        # for offline study of the sets and the calibration: untempered probabilities and true classes
        dump.update({f"fold{f}|inside|poor": fold["poor"], f"fold{f}|inside|proba": fold["proba"],
                     f"fold{f}|inside|y": fold["y"]})
    # leave one environment out: networks that never saw it score it against held-out known environments
    loeo = {}
    loeo_alpha = max(set(held["alpha"]), key=held["alpha"].count)  # the folds' most frequent choice
    if scheme == "environment" and environments is not None:
        env = np.asarray(environments)
        for k, name in enumerate(leave_out):
            out_mask = (env == name) | (np.asarray(spectra.labels) == name)
            scored = out_mask & np.asarray(spectra.testable)  # left out of training all, scored on real ones
            if scored.sum() < 5:
                continue
            keep = np.flatnonzero(~out_mask)
            rest = spectra.subset(keep)
            y_rest = np.array([classes.index(lab) for lab in rest.labels])
            folds = grouped_folds(rest.groups, y_rest, n_folds, config.seed + 7 * k, rest.testable)
            tr, te = folds[0]
            train_set, test_set = rest.subset(tr), rest.subset(te)
            clf = train(train_set.x, train_set.labels, train_set.groups, config.replace(seed=config.seed + 50 + k),
                        preprocessing=preprocessing, raw=train_set.raw, testable=train_set.testable)
            s_in = clf.ood_scores(test_set.x)
            s_out = clf.ood_scores(spectra.x[scored])
            half = _halves(test_set.groups, config.seed + k)
            calib = {c: np.sort(s_in[c][half == 1]) for c in combined}
            poor_in, poor_out = poor_all[keep[te]][half == 0], poor_all[scored]
            p_in = gated_pvalue(combined_pvalue(calib, {c: s_in[c][half == 0] for c in combined}), poor_in)
            p_out = gated_pvalue(combined_pvalue(calib, {c: s_out[c] for c in combined}), poor_out)
            dump.update({f"loeo {name}|{part}|{c}": v[c] for part, v in (("inside", s_in), ("out", s_out))
                         for c in OOD_SCORES})
            dump[f"loeo {name}|inside|half"] = half
            inside = {c: s_in[c][half == 0] for c in OOD_SCORES}
            inside["combined"] = pvalue_score(p_in)
            out = {c: s_out[c] for c in OOD_SCORES}
            out["combined"] = pvalue_score(p_out)
            loeo[name] = {"n": int(scored.sum()), "scores": score_table(inside, out),
                          "flagged": float(np.mean(p_out < loeo_alpha)),
                          "inside_flagged": float(np.mean(p_in < loeo_alpha))}
            bucket = pooled.setdefault("near: left-out environment",
                                       {c: [] for c in [*OOD_SCORES, "combined", "flagged"]})
            inside_bucket = pooled.setdefault("inside (left-out runs)",
                                              {c: [] for c in [*OOD_SCORES, "combined", "flagged"]})
            for c in [*OOD_SCORES, "combined"]:
                bucket[c].append(out[c])
                inside_bucket[c].append(inside[c])
            bucket["flagged"].append(p_out < loeo_alpha)
            inside_bucket["flagged"].append(p_in < loeo_alpha)
            if progress:
                progress(f"left out {name} ({out_mask.sum()} spectra): combined AUROC "
                         f"{loeo[name]['scores']['combined']['auroc']:.3f} ({time.time() - t0:.0f} s)")
    cat = {kind: {k: np.concatenate(v) for k, v in b.items()} for kind, b in pooled.items()}
    results: dict[str, Any] = {"scheme": scheme, "n_folds": n_folds, "combined_scores": combined,
                               "ood_alpha": held["alpha"], "confidence_floor": held["confidence_floor"],
                               "config": config.as_dict(), "sets": {}}
    for kind, scores in cat.items():
        if kind.startswith("inside"):
            continue
        ref = cat["inside (left-out runs)"] if kind == "near: left-out environment" else cat["inside"]
        flagged = scores.pop("flagged")
        results["sets"][kind] = {"n": int(len(scores["combined"])),
                                 "scores": score_table({k: v for k, v in ref.items() if k != "flagged"}, scores),
                                 "flagged": float(np.mean(flagged))}
    results["leave_one_environment_out"] = loeo
    placed = {kind: row for kind, row in results["sets"].items() if kind.startswith(OTHER_EDGES_KIND)}
    if placed:  # the flag's worst placement of a foreign edge, the figure that matters for a user
        worst = min(placed, key=lambda k: placed[k]["scores"]["combined"]["auroc"])
        results["foreign_edges_worst"] = {"set": worst, "auroc": placed[worst]["scores"]["combined"]["auroc"],
                                          "flagged": placed[worst]["flagged"],
                                          "by_position": {k: placed[k]["flagged"] for k in placed}}
    correct = np.concatenate(held["correct"])
    in_set = np.concatenate(held["in_set"])
    size = np.concatenate(held["set_size"])
    ood, abstained = np.concatenate(held["ood"]), np.concatenate(held["dont_know"])
    results["held_out"] = {
        "n": int(len(correct)), "accuracy": float(correct.mean()),
        "coverage": float(in_set.mean()), "mean_set_size": float(size.mean()),
        "ood_flagged_correct": float(np.mean(ood[correct])),
        "ood_flagged_wrong": float(np.mean(ood[~correct])) if (~correct).any() else None,
        "dont_know_correct": float(np.mean(abstained[correct])),
        "dont_know_wrong": float(np.mean(abstained[~correct])) if (~correct).any() else None,
        "not_single_set_wrong": float(np.mean((size != 1)[~correct])) if (~correct).any() else None,
        "faults_refused_by_input_checks": held["n_refused"],
    }
    # accuracy of damaged held-out spectra (refused ones count as not answered): the gate's thresholds
    results["quality"] = {kind: {v: {**r, "accuracy_of_scored": r["correct"] / r["scored"] if r["scored"] else None}
                                 for v, r in rows.items()} for kind, rows in held["quality"].items()}
    results["seconds"] = time.time() - t0
    if scores_file:
        np.savez_compressed(scores_file, **dump)
    return results


def _fold_pvalues(saved, combo: Sequence[str], folds: Sequence[str], kinds: Sequence[str], report: Sequence[str]
                  ) -> tuple[list[np.ndarray], dict[str, list[np.ndarray]]]:
    """Combined p-values of ``combo`` for the known spectra and each set of the ``report`` folds.

    Each fold is calibrated on the other ``folds`` (cross-conformal, as the benchmark does it). Refused spectra
    count as caught (p = 0).
    """
    def p(calib_of, scores_of):
        return combined_pvalue({c: np.sort(calib_of(c)) for c in combo}, {c: scores_of(c) for c in combo})

    def flagged_poor(pvalue, key):  # past a quality limit: flagged whatever the scores say
        return gated_pvalue(pvalue, saved[key]) if key in saved.files else pvalue

    inside, outside = [], {k: [] for k in kinds}
    for f in report:
        def calib(c, f=f):
            return np.concatenate([saved[f"{g}|inside|{c}"] for g in folds if g != f])

        inside.append(flagged_poor(p(calib, lambda c, f=f: saved[f"{f}|inside|{c}"]), f"{f}|inside|poor"))
        for kind in kinds:
            if f"{f}|{kind}|{combo[0]}" not in saved.files:
                continue
            refused = int(saved[f"{f}|{kind}|n_refused"][0])
            pk = flagged_poor(p(calib, lambda c, f=f, kind=kind: saved[f"{f}|{kind}|{c}"]), f"{f}|{kind}|poor")
            outside[kind].append(np.concatenate([pk, np.zeros(refused)]))
    return inside, outside


def _set_aurocs(inside: list[np.ndarray], outside: dict[str, list[np.ndarray]]) -> dict[str, float]:
    """AUROC per set (lower p-value: more out of distribution) and their ``mean``."""
    row = {kind: auroc(-np.concatenate(inside), -np.concatenate(v)) for kind, v in outside.items() if v}
    row["mean"] = float(np.mean(list(row.values())))
    return row


def _saved_layout(saved) -> tuple[list[str], list[str], list[str]]:
    """The folds, the scored sets and the leave-one-environment-out runs of a ``--scores`` file."""
    keys = [k.split("|") for k in saved.files]
    folds = sorted({k[0] for k in keys if k[0].startswith("fold")})
    kinds = sorted({k[1] for k in keys if k[0].startswith("fold") and k[1] != "inside"})
    loeo = sorted({k[0] for k in keys if k[0].startswith("loeo")})
    return folds, kinds, loeo


def _score_combinations(max_size: int) -> list[tuple[str, ...]]:
    from itertools import combinations

    return [combo for size in range(1, max_size + 1) for combo in combinations(OOD_SCORES, size)]


def combination_table(scores_file: str, max_size: int = 3) -> dict[str, dict[str, float]]:
    """AUROC of every combination of up to ``max_size`` scores on each set, from a saved ``--scores`` file.

    The p-values are rebuilt as in the benchmark (cross-conformal over folds; in the leave-one-environment-out
    runs one half of the held-out known materials calibrates the other), so a combination is judged exactly as
    the shipped flag would use it. Refused spectra count as caught.

    Returns:
        ``{"+".join(combination): {set name: AUROC, ..., "mean": mean over the sets}}``.
    """
    saved = np.load(scores_file)
    folds, kinds, loeo = _saved_layout(saved)
    table = {}
    for combo in _score_combinations(max_size):
        row = _set_aurocs(*_fold_pvalues(saved, combo, folds, kinds, folds))
        if loeo:
            row.update(_loeo_aurocs(saved, combo, loeo))
            row["mean"] = float(np.mean([v for k, v in row.items() if k != "mean" and not k.startswith("loeo")]))
        table["+".join(combo)] = row
    return table


def _loeo_aurocs(saved, combo: Sequence[str], loeo: Sequence[str]) -> dict[str, float]:
    """AUROC of ``combo`` in each leave-one-environment-out run and pooled over the runs.

    In each run one half of the known materials calibrates the other; the pooled value is
    ``"near: left-out environment"``.
    """
    row, near_in, near_out = {}, [], []
    for name in loeo:
        half = saved[f"{name}|inside|half"]
        calib = {c: np.sort(saved[f"{name}|inside|{c}"][half == 1]) for c in combo}
        near_in.append(combined_pvalue(calib, {c: saved[f"{name}|inside|{c}"][half == 0] for c in combo}))
        near_out.append(combined_pvalue(calib, {c: saved[f"{name}|out|{c}"] for c in combo}))
        row[name] = auroc(-near_in[-1], -near_out[-1])
    row["near: left-out environment"] = auroc(-np.concatenate(near_in), -np.concatenate(near_out))
    return row


def nested_combination(scores_file: str, max_size: int = 3, shipped: Sequence[str] | None = None
                       ) -> dict[str, Any]:
    """The score combination chosen without looking at the spectra it is judged on (nested over folds).

    For each fold, every combination of up to ``max_size`` scores is ranked by its mean AUROC over the sets on
    the *other* folds only (each calibrated on the rest of them) and, when the file has them, the pooled
    leave-one-environment-out runs; the winner then scores the fold, calibrated on all other folds. The held-out
    p-values of all folds are pooled per set. The leave-one-environment-out runs are separate models on all
    materials, so their AUROC is reported for the choices but is not nested.

    Args:
        scores_file: the benchmark's ``--scores`` file (at least 3 folds).
        max_size: largest combination.
        shipped: a combination to report the same way for comparison (e.g. the shipped ``ood_scores``).

    Returns:
        ``{"chosen": [combination per fold], "nested": {set: AUROC, "mean"}, "all_folds": the combination the same
        rule picks on every fold (what to ship), "shipped": {...}}``.
    """
    saved = np.load(scores_file)
    folds, kinds, loeo = _saved_layout(saved)
    if len(folds) < 3:
        raise ValueError(f"{scores_file}: a nested choice needs >= 3 folds, the file has {len(folds)}")
    combos = _score_combinations(max_size)
    near = {c: _loeo_aurocs(saved, c, loeo) for c in combos} if loeo else {}

    def criterion(combo: tuple[str, ...], used: list[str]) -> float:
        row = _set_aurocs(*_fold_pvalues(saved, combo, used, kinds, used))
        terms = [v for k, v in row.items() if k != "mean"]
        return float(np.mean(terms + ([near[combo]["near: left-out environment"]] if near else [])))

    chosen, inside, outside = [], [], {k: [] for k in kinds}
    for f in folds:
        rest = [g for g in folds if g != f]
        best = max(combos, key=lambda c: criterion(c, rest))
        chosen.append(best)
        fin, fout = _fold_pvalues(saved, best, folds, kinds, [f])
        inside += fin
        for kind, v in fout.items():
            outside[kind] += v
    pick = max(combos, key=lambda c: criterion(c, folds))

    def described(combo: tuple[str, ...]) -> dict[str, Any]:
        row = _set_aurocs(*_fold_pvalues(saved, combo, folds, kinds, folds))
        return {"scores": list(combo), **row, **({"near: left-out environment (not nested)":
                                                  near[combo]["near: left-out environment"]} if near else {})}

    out: dict[str, Any] = {"folds": len(folds), "chosen": ["+".join(c) for c in chosen],
                           "nested": _set_aurocs(inside, outside), "all_folds": described(pick)}
    if near:
        out["nested"]["near: left-out environment (not nested)"] = float(np.mean(
            [near[c]["near: left-out environment"] for c in chosen]))
    if shipped:
        out["shipped"] = described(tuple(k for k in OOD_SCORES if k in shipped))
    return out


def prediction_set_table(scores_file: str, level: float = 0.9, classes: Sequence[str] | None = None) -> dict[str, Any]:
    """Held-out coverage, set size and calibration of each conformal mode, from a saved ``--scores`` file.

    Rebuilt as the benchmark does it: each fold's probabilities are tempered and thresholded with a temperature and
    thresholds fitted on the other folds' out-of-fold probabilities, so every figure is out of sample.

    Args:
        scores_file: the benchmark's ``--scores`` file.
        level: the sets' coverage level.
        classes: the class list of the run (names the per-class rows; default: their indices).

    Returns:
        ``{"level", "n", "accuracy", "ece_untempered", "ece", "modes": {mode: {"coverage", "mean_set_size",
        "singletons", "per_class": {class: {"n", "coverage", "mean_set_size"}}}}}``.
    """
    from pymatgen_xanes_nn.training.metrics import expected_calibration_error
    from pymatgen_xanes_nn.trust.calibrate import fit_temperature, temper
    from pymatgen_xanes_nn.trust.conformal import CONFORMAL_MODES

    names = list(classes) if classes is not None else None
    saved = np.load(scores_file)
    folds = sorted(k.split("|")[0] for k in saved.files if k.endswith("|inside|proba"))
    proba = [saved[f"{f}|inside|proba"] for f in folds]
    y = [saved[f"{f}|inside|y"] for f in folds]
    out: dict[str, Any] = {"level": level, "modes": {}}
    # per fold: a temperature fitted on the other folds, the fold's tempered probabilities and the calibration set
    tempered, calibration = [], []
    for f in range(len(folds)):
        p_cal = np.concatenate([p for j, p in enumerate(proba) if j != f])
        y_cal = np.concatenate([t for j, t in enumerate(y) if j != f])
        p_cal, y_cal = p_cal[y_cal >= 0], y_cal[y_cal >= 0]
        temperature = fit_temperature(p_cal, y_cal)
        tempered.append(temper(proba[f], temperature))
        calibration.append((temper(p_cal, temperature), y_cal))
    true = np.concatenate(y)
    for mode in CONFORMAL_MODES:
        covered, sizes = [], []
        for f, (p_cal, y_cal) in enumerate(calibration):
            sets = prediction_sets(tempered[f], fit_conformal(p_cal, y_cal, p_cal.shape[1], level, mode)["thresholds"])
            covered.append(sets[np.arange(len(y[f])), np.clip(y[f], 0, None)] & (y[f] >= 0))
            sizes.append(sets.sum(axis=1))
        covered, sizes = np.concatenate(covered), np.concatenate(sizes)
        out["modes"][mode] = {
            "coverage": float(covered.mean()), "mean_set_size": float(sizes.mean()),
            "singletons": float(np.mean(sizes == 1)),
            "per_class": {(names[k] if names else str(k)): {"n": int(np.sum(true == k)),
                                                            "coverage": float(covered[true == k].mean()),
                                                            "mean_set_size": float(sizes[true == k].mean())}
                          for k in np.unique(true[true >= 0])}}
    p_all, y_all = np.concatenate(tempered), np.concatenate(y)
    known = y_all >= 0
    out.update(n=int(len(y_all)), accuracy=float(np.mean(p_all.argmax(axis=1) == y_all)),
               ece=expected_calibration_error(p_all[known], y_all[known]),
               ece_untempered=expected_calibration_error(np.concatenate(proba)[known], y_all[known]))
    return out
