"""Honest evaluation: grouped folds, the seed's random split, baselines, calibration, robustness.

Splits are by material family (the dataset's ``group_id``): sites and P/T variants of one
material are never on both sides. The seed's protocol (random split by spectrum) is reported
next to it, labelled as such. Baselines (random forest, cosine k-NN, logistic regression) see
the same folds and the same preprocessed inputs as the neural model.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from pymatgen_xanes_nn.errors import InputError
from pymatgen_xanes_nn.jsonio import append_checkpoint, read_checkpoint
from pymatgen_xanes_nn.preprocessing import SpectrumError
from pymatgen_xanes_nn.training.metrics import classification_metrics
from pymatgen_xanes_nn.training.splits import grouped_folds, random_folds

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from pymatgen_xanes_nn.training.fit import SpectraSet

BASELINES = ("random_forest", "extra_trees", "knn_cosine", "logistic_regression")
#: Perturbations of the robustness study: name -> (kind, amount).
PERTURBATIONS: dict[str, tuple[str, float]] = {
    "shift -2 eV": ("shift", -2.0),
    "shift -1 eV": ("shift", -1.0),
    "shift +1 eV": ("shift", 1.0),
    "shift +2 eV": ("shift", 2.0),
    "broaden 1 eV": ("broaden", 1.0),
    "broaden 2 eV": ("broaden", 2.0),
    "noise SNR 50": ("noise", 50.0),
    "noise SNR 20": ("noise", 20.0),
}


def make_baseline(name: str, seed: int = 0):
    """A scikit-learn baseline by name (one of :data:`BASELINES`)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "random_forest":
        return RandomForestClassifier(n_estimators=300, class_weight="balanced", random_state=seed, n_jobs=1)
    if name == "extra_trees":  # round 8: the best simple model on aligned inputs (93.2% vs RF 92.3%, same folds)
        from sklearn.ensemble import ExtraTreesClassifier

        return ExtraTreesClassifier(n_estimators=300, class_weight="balanced", random_state=seed, n_jobs=1)
    if name == "knn_cosine":
        return KNeighborsClassifier(n_neighbors=5, metric="cosine", weights="distance")
    if name == "logistic_regression":
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced", max_iter=3000))
    raise InputError(f"Unknown baseline {name!r}; choose one of {BASELINES}")


def baseline_proba(model, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Class probabilities of a fitted scikit-learn model, padded to all classes."""
    p = model.predict_proba(x)
    full = np.zeros((len(x), n_classes))
    full[:, model.classes_] = p
    return full


def perturb_set(
    spectra: SpectraSet, kind: str, amount: float, seed: int, preprocessing
) -> tuple[np.ndarray, np.ndarray]:
    """Preprocess perturbed copies of raw spectra; returns ``(x, kept_index)`` (failures dropped)."""
    from pymatgen_xanes_nn.training.perturb import add_noise, broaden, shift

    rng = np.random.default_rng(seed)
    rows, kept = [], []
    for i, (e, mu) in enumerate(spectra.raw):
        if kind == "shift":
            e2, m2 = shift(e, mu, amount)
        elif kind == "broaden":
            e2, m2 = broaden(e, mu, amount)
        elif kind == "noise":
            e2, m2 = add_noise(e, mu, amount, rng)
        else:
            raise InputError(f"Unknown perturbation {kind!r}")
        try:
            rows.append(preprocessing.transform_arrays(e2, m2))
            kept.append(i)
        except SpectrumError:
            continue
    return np.asarray(rows, np.float32).reshape(-1, preprocessing.n_inputs), np.asarray(kept, int)


def evaluate(
    spectra: SpectraSet,
    classes: Sequence[str],
    protocol: str = "grouped",
    n_splits: int = 5,
    repeats: int = 3,
    seed: int = 0,
    train_kwargs: dict[str, Any] | None = None,
    baselines: Sequence[str] = BASELINES,
    robustness: bool = True,
    augment_copies: int = 0,
    preprocessing=None,
    progress: Callable[[str], None] | None = None,
    checkpoint: str | None = None,
) -> dict[str, Any]:
    """Cross-validate the neural model and the baselines on identical folds.

    Args:
        spectra: labelled spectra (see :func:`pymatgen_xanes_nn.training.fit.dataset_for_scheme`).
        classes: the class list.
        protocol: ``"grouped"`` (by material family) or ``"random"`` (the seed's, by spectrum).
        n_splits: folds per repeat.
        repeats: repeats with different shuffles.
        seed: base seed.
        train_kwargs: options for :func:`pymatgen_xanes_nn.training.fit.train` (epochs, configs, ...).
        baselines: baseline names to run.
        robustness: also score perturbed test spectra (shift, broadening, noise).
        augment_copies: experimental-like augmented copies per training spectrum (0: none).
        preprocessing: the preprocessing of ``spectra`` (default: the package default).
        progress: called with a status line after each fold.
        checkpoint: a JSON-lines file that keeps every finished fold; a rerun with the same data and
            options skips them (an evaluation takes hours: a killed run loses only the fold in flight).

    Returns:
        ``folds`` (per fold and model metrics) and ``summary`` (mean and std per model and metric).
    """
    from pymatgen_xanes_nn.preprocessing import DEFAULT_PREPROCESSING
    from pymatgen_xanes_nn.training.fit import TrainingConfig, run_key, train

    preprocessing = preprocessing or DEFAULT_PREPROCESSING
    if protocol not in ("grouped", "random"):
        raise InputError(f"Unknown protocol {protocol!r}; choose 'grouped' or 'random'")
    y = np.array([list(classes).index(lab) for lab in spectra.labels])
    train_kwargs = dict(train_kwargs or {})
    key = run_key(spectra.x, spectra.labels, spectra.groups, protocol, n_splits, seed, train_kwargs, baselines,
                  robustness, augment_copies, preprocessing)
    done = {(r["repeat"], r["fold"]): r for r in read_checkpoint(checkpoint, key)}
    folds_out = []
    for r in range(repeats):
        split_seed = seed + r
        folds = (grouped_folds(spectra.groups, y, n_splits, split_seed, spectra.testable) if protocol == "grouped"
                 else random_folds(len(y), y, n_splits, split_seed, spectra.testable))
        for f, (tr, te) in enumerate(folds):
            if (r, f) in done:
                folds_out.append(done[(r, f)])
                continue
            t0 = time.time()
            train_set, test_set = spectra.subset(tr), spectra.subset(te)
            test_sets = {"clean": (test_set.x, np.arange(len(te)))}
            if robustness:
                for name, (kind, amount) in PERTURBATIONS.items():
                    test_sets[name] = perturb_set(test_set, kind, amount, split_seed * 100 + f, preprocessing)
            result: dict[str, Any] = {"repeat": r, "fold": f, "n_train": int(len(tr)), "n_test": int(len(te))}
            clf = train(train_set.x, train_set.labels, train_set.groups, preprocessing=preprocessing,
                        seed=split_seed * 100 + f, raw=train_set.raw, augment_copies=augment_copies,
                        testable=train_set.testable, **train_kwargs)
            idx = [list(classes).index(c) for c in clf.labels]
            models: dict[str, Callable[[np.ndarray], np.ndarray]] = {}

            def nn_proba(x, clf=clf, idx=idx):
                p = np.zeros((len(x), len(classes)))
                p[:, idx] = clf.probabilities(x)
                return p

            models["neural_network"] = nn_proba
            x_fit, y_fit = train_set.x, y[tr]
            if augment_copies:  # the baselines get the same augmented copies
                from pymatgen_xanes_nn.training.perturb import augment

                x_aug, y_aug = augment(train_set.raw, train_set.labels, preprocessing, augment_copies,
                                       split_seed * 100 + f, **TrainingConfig(**train_kwargs).augmentation)
                x_fit = np.concatenate([x_fit, x_aug])
                y_fit = np.concatenate([y_fit, [list(classes).index(c) for c in y_aug]])
            for name in baselines:
                model = make_baseline(name, seed=split_seed).fit(x_fit, y_fit)
                models[name] = lambda x, m=model: baseline_proba(m, x, len(classes))
            for model_name, proba_fn in models.items():
                scores = {}
                for set_name, (x_te, kept) in test_sets.items():
                    if len(kept) == 0:
                        continue
                    m = classification_metrics(y[te][kept], proba_fn(x_te), classes)
                    scores[set_name] = m if set_name == "clean" else {
                        "accuracy": m["accuracy"], "balanced_accuracy": m["balanced_accuracy"], "n": m["n"]}
                result[model_name] = scores
            if clf.conformal and clf.metadata.get("config", {}).get("calibration_folds"):
                # the network's prediction sets on the held-out materials (issue 13); without calibration folds
                # they were fitted on the training spectra themselves and say nothing about coverage
                y_te = np.array([list(clf.labels).index(c) if c in clf.labels else -1 for c in test_set.labels])
                sets = clf.prediction_sets(test_set.x)
                known = y_te >= 0
                covered = sets[np.flatnonzero(known), y_te[known]]
                result["neural_network"]["clean"].update({
                    "coverage": float(covered.mean()) if known.any() else 0.0,
                    "mean_set_size": float(sets.sum(axis=1).mean()),
                    "ood_flagged": float(np.mean(clf.ood_flags(test_set.x))),
                    "coverage_by_class": {c: [int(covered[y_te[known] == k].sum()), int((y_te[known] == k).sum())]
                                          for k, c in enumerate(clf.labels) if (y_te[known] == k).any()},
                })
            result["seconds"] = time.time() - t0
            folds_out.append(result)
            append_checkpoint(checkpoint, key, result)
            if progress:
                progress(f"{protocol} repeat {r + 1}/{repeats} fold {f + 1}/{n_splits}: NN "
                         f"{result['neural_network']['clean']['accuracy']:.3f} "
                         + " ".join(f"{b} {result[b]['clean']['accuracy']:.3f}" for b in baselines)
                         + f" ({result['seconds']:.0f} s)")
    return {"protocol": protocol, "n_splits": n_splits, "repeats": repeats, "classes": list(classes),
            "train_kwargs": train_kwargs, "augment_copies": augment_copies, "folds": folds_out,
            "summary": summarize(folds_out)}


def summarize(folds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over folds of every scalar metric, per model and test set."""
    out: dict[str, Any] = {}
    models = [k for k in folds[0] if isinstance(folds[0][k], dict)]
    for model in models:
        out[model] = {}
        for set_name in folds[0][model]:
            out[model][set_name] = {}
            for metric, value in folds[0][model][set_name].items():
                if isinstance(value, (int, float)) and metric != "n":
                    vals = [f[model][set_name][metric] for f in folds if set_name in f[model]]
                    out[model][set_name][metric] = {"mean": float(np.mean(vals)), "std": float(np.std(vals))}
        conf = sum(np.asarray(f[model]["clean"]["confusion_matrix"]) for f in folds)
        out[model]["clean"]["confusion_matrix"] = conf.tolist()
        recalls = {}
        for f in folds:
            for c, v in f[model]["clean"]["per_class_recall"].items():
                recalls.setdefault(c, []).append(v)
        out[model]["clean"]["per_class_recall"] = {c: float(np.mean(v)) for c, v in recalls.items()}
        bins = [f[model]["clean"]["calibration_bins"] for f in folds if "calibration_bins" in f[model]["clean"]]
        if bins:  # pooled over folds: a reliability diagram of all out-of-fold predictions
            out[model]["clean"]["calibration_bins"] = {k: np.sum([b[k] for b in bins], axis=0).tolist()
                                                       for k in bins[0]}
        by_class: dict[str, list[int]] = {}
        for f in folds:  # prediction-set coverage per class, pooled: [covered, n]
            for c, (hit, n) in f[model]["clean"].get("coverage_by_class", {}).items():
                by_class[c] = [by_class.get(c, [0, 0])[0] + hit, by_class.get(c, [0, 0])[1] + n]
        if by_class:
            out[model]["clean"]["coverage_by_class"] = {c: {"covered": h, "n": n, "coverage": h / n}
                                                        for c, (h, n) in sorted(by_class.items())}
    return out
