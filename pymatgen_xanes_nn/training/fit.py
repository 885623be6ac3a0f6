"""Training: task documents -> preprocessed spectra -> autoencoder -> FNN -> calibrated classifier."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from monty.json import MSONable

from pymatgen_xanes_nn.errors import InputError
from pymatgen_xanes_nn.jsonio import append_checkpoint, read_checkpoint
from pymatgen_xanes_nn.models import (
    AE_CONFIGS,
    DEFAULT_AE,
    DEFAULT_FNN,
    DEFAULT_KEEP_PROB,
    FNN_CONFIGS,
    check_config,
    check_keep_prob,
)
from pymatgen_xanes_nn.preprocessing import DEFAULT_PREPROCESSING, Preprocessing, SpectrumError
from pymatgen_xanes_nn.training.splits import grouped_folds
from pymatgen_xanes_nn.trust.abstain import DONT_KNOW_BUDGET, OOD_ALPHAS
from pymatgen_xanes_nn.trust.conformal import CONFORMAL_MODES
from pymatgen_xanes_nn.trust.evidence import RULES as EVIDENCE_RULES
from pymatgen_xanes_nn.trust.ood import DEFAULT_OOD_SCORES, OOD_SCORES

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pymatgen_xanes_nn.classifier import XANESClassifier

logger = logging.getLogger(__name__)

#: Augmented copies per training spectrum of the shipped models and the CLI: the winner of the
#: alignment x augmentation ablation in docs/RESULTS.md (4 copies made shift +-2 eV cost 2-3 points
#: of clean accuracy instead of 20-55).
DEFAULT_AUGMENT_COPIES = 4


@dataclass
class SpectraSet:
    """Preprocessed spectra with their raw arrays, labels and material groups.

    Attributes:
        x: model inputs, shape ``(n, n_points)``.
        raw: the raw ``(energy, mu)`` arrays (for perturbations).
        labels: class label per spectrum (None: outside the class list).
        groups: material group id per spectrum (StructureMatcher family).
        task_ids: task id per spectrum.
        weights: site multiplicity per spectrum.
        skipped: task ids that could not be preprocessed, with the reason.
        derived: per spectrum, whether it may only train (:func:`~pymatgen_xanes_nn.labels.training_only`: a
            structure derived by substitution or a site computed with other physics); never tested (:attr:`testable`).
    """

    x: np.ndarray
    raw: list[tuple[np.ndarray, np.ndarray]]
    labels: list[str | None]
    groups: list[str]
    task_ids: list[str]
    weights: list[int] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    derived: list[bool] = field(default_factory=list)

    @classmethod
    def from_docs(
        cls, docs: Sequence[dict], labels: Sequence[str | None], preprocessing: Preprocessing = DEFAULT_PREPROCESSING
    ) -> SpectraSet:
        """Preprocess task documents; documents that fail are listed in ``skipped``, not fatal."""
        from pymatgen_xanes_nn.io.readers import from_task_doc
        from pymatgen_xanes_nn.labels import training_only

        xs, raw, labs, groups, ids, weights, derived, skipped = [], [], [], [], [], [], [], {}
        for doc, label in zip(docs, labels):
            try:
                xas = from_task_doc(doc)
                vec = preprocessing.transform(xas)
            except SpectrumError as exc:
                skipped[doc.get("task_id", "?")] = str(exc)
                continue
            meta = doc.get("metadata") or {}
            xs.append(vec)
            raw.append((np.asarray(xas.x, float), np.asarray(xas.y, float)))
            labs.append(label)
            groups.append(meta.get("group_id", doc.get("task_id")))
            ids.append(doc.get("task_id"))
            weights.append(int(meta.get("multiplicity", 1)))
            derived.append(training_only(doc))
        if skipped:
            logger.warning("%d documents could not be preprocessed", len(skipped))
        x = np.asarray(xs, dtype=np.float32).reshape(len(xs), preprocessing.n_inputs)
        return cls(x, raw, labs, groups, ids, weights, skipped, derived)

    def subset(self, idx: Sequence[int]) -> SpectraSet:
        """The spectra at positions ``idx``."""
        idx = list(idx)
        return SpectraSet(
            self.x[idx], [self.raw[i] for i in idx], [self.labels[i] for i in idx], [self.groups[i] for i in idx],
            [self.task_ids[i] for i in idx], [self.weights[i] for i in idx], {},
            [self.derived[i] for i in idx] if self.derived else [],
        )

    def concatenate(self, other: SpectraSet) -> SpectraSet:
        """These spectra followed by ``other``'s."""
        def flags(s: SpectraSet) -> list[bool]:
            return s.derived or [False] * len(s.x)

        return SpectraSet(np.concatenate([self.x, other.x]), self.raw + other.raw, self.labels + other.labels,
                          self.groups + other.groups, self.task_ids + other.task_ids, self.weights + other.weights,
                          {**self.skipped, **other.skipped}, flags(self) + flags(other))

    @property
    def testable(self) -> list[bool]:
        """Which spectra may sit in a test fold: the real crystals (all when none is derived)."""
        return [not d for d in self.derived] if self.derived else [True] * len(self.x)

    def labelled(self) -> SpectraSet:
        """Only the spectra with a label."""
        return self.subset([i for i, lab in enumerate(self.labels) if lab is not None])

    def outside(self) -> SpectraSet:
        """The real crystals outside the classes, which test the OOD flag.

        Derived structures outside the classes are left out: like every derived spectrum, they never test.
        """
        return self.subset([i for i, (lab, real) in enumerate(zip(self.labels, self.testable)) if lab is None and real])


def dataset_for_scheme(
    scheme: str, docs: Sequence[dict] | None = None, preprocessing: Preprocessing = DEFAULT_PREPROCESSING,
    n_classes: int = 12,
) -> tuple[SpectraSet, list[str]]:
    """Load documents (default: the shipped dataset), pick classes by the scheme's rule and preprocess.

    Returns:
        ``(spectra, classes)``; spectra outside the classes keep ``label=None``.
    """
    from pymatgen_xanes_nn.io.tasks import load_tasks
    from pymatgen_xanes_nn.labels import assign_labels, select_classes

    docs = list(docs) if docs is not None else load_tasks()
    if not docs:
        raise InputError("No task documents: simulate some or check the dataset file")
    classes = select_classes(docs, scheme, n_classes=n_classes)
    return SpectraSet.from_docs(docs, assign_labels(docs, scheme, classes), preprocessing), classes


def grouped_holdout(
    groups: Sequence[str], labels: Sequence[str], fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices so no group is on both sides; about ``fraction`` of each class is held out.

    A class whose spectra all come from one group stays entirely in training.
    """
    rng = np.random.default_rng(seed)
    groups, labels = np.asarray(groups), np.asarray(labels)
    held = np.zeros(len(groups), dtype=bool)
    for cls in sorted(set(labels)):
        cls_groups = sorted(set(groups[labels == cls]))
        if len(cls_groups) < 2:
            continue
        rng.shuffle(cls_groups)
        target, taken = fraction * np.sum(labels == cls), 0
        for g in cls_groups[:-1]:  # always keep one group of the class for training
            if taken >= target:
                break
            if held[groups == g].any():
                continue
            held |= groups == g
            taken += np.sum((groups == g) & (labels == cls))
    return np.flatnonzero(~held), np.flatnonzero(held)


#: Outside-class labels with fewer spectra than this are kept in a model's metadata but not printed or reported:
#: one or two spectra make no rate.
MIN_REPORTED_OUTSIDE = 5


#: :class:`TrainingConfig` fields left out of its dict while at their default (see :meth:`TrainingConfig.as_dict`).
_OMITTED_AT_DEFAULT = ("augment_self_absorption", "ensemble")


@dataclass(frozen=True)
class TrainingConfig(MSONable):
    """Every option of :func:`train`, in one frozen, serializable place (stored in each model's metadata).

    Args:
        name: model name.
        ae_config: autoencoder configuration (Table I).
        fnn_config: FNN configuration (Table II).
        keep_prob: dropout keep probability (the seed's "dropout ratio").
        ae_epochs: autoencoder epochs (the seed: 200).
        fnn_epochs: FNN epochs (the seed: 500).
        ae_batch_size: autoencoder batch size.
        batch_size: FNN batch size (the seed: 16).
        learning_rate: Adam learning rate for both networks.
        seed: random seed (TensorFlow, NumPy, folds).
        augment_copies: experimental-like copies (shift, broadening, noise) of each training spectrum, made
            inside each fold after the split, so held-out materials never leak into training.
        augment_shift: largest calibration shift (eV) of an augmented copy (uniform in +-).
        augment_fwhm: largest Gaussian broadening (eV FWHM) of an augmented copy.
        augment_white_line: white-line scaling of an augmented copy, log-uniform in ``[1/(1+a), 1+a]`` (0: none).
        augment_slope: largest background slope of an augmented copy, in edge steps per eV (uniform in +-; 0: none).
        augment_self_absorption: largest fluorescence self-absorption strength of an augmented copy (uniform from
            0; 0: none; 0.2 takes FEFF's quartz white line from 3.4 to 2.4 edge steps).
        e0_input: the FNN reads the spectrum's e0 beside the latent code (needs a preprocessing with ``e0_column``).
        calibration_folds: grouped folds for cross-fitting: each material is scored by networks that never saw
            it; the temperature, the conformal thresholds and the OOD calibration come from those out-of-fold
            scores, and the shipped networks are then trained on everything (0: no calibration).
        conformal_level: coverage of the prediction sets.
        conformal_mode: ``"marginal"`` (one threshold) or ``"class_conditional"`` (a threshold per class with enough
            calibration spectra). Chosen by the OOD benchmark's held-out folds (docs/RESULTS.md): on the chemsys
            scheme class-conditional sets covered 84.3% at a 90% level, marginal ones 89.7%.
        ood_scores: scores combined into the OOD p-value (see :mod:`pymatgen_xanes_nn.trust`).
        ood_alpha: the OOD flag fires below this combined p-value: at most this share of unseen in-distribution
            materials is flagged. None: chosen among
            :data:`~pymatgen_xanes_nn.trust.abstain.OOD_ALPHAS` with the confidence
            floor (:func:`~pymatgen_xanes_nn.trust.abstain.fit_dont_know`) on the out-of-fold predictions.
        dont_know_budget: share of correct out-of-fold predictions "don't know" may flag; the confidence floor
            takes what the OOD flag and the prediction sets leave of it.
        knn_components: PCA components of the cosine k-NN index.
        evidence_rule: "don't know" also when the network's label and its nearest shipped spectra disagree under
            this rule (:data:`~pymatgen_xanes_nn.trust.evidence.RULES`; ``xanes-nn evidence-study`` chooses it
            by nested folds); fitted out of fold with the rest of the don't-know policy. Needs evidence named in
            the model's classes (the environment scheme).
        ensemble: ship the calibration folds' networks as the model (:mod:`pymatgen_xanes_nn.ensemble`): mean
            probabilities, cross-conformal sets and network-score p-values; the network trained on everything then
            gives only the latent code and the reconstruction. Needs calibration folds and no ``reconstruction``
            OOD score (members carry no decoder).
    """

    name: str = "custom"
    ae_config: str = DEFAULT_AE
    fnn_config: str = DEFAULT_FNN
    keep_prob: float = DEFAULT_KEEP_PROB
    ae_epochs: int = 200
    fnn_epochs: int = 500
    ae_batch_size: int = 32
    batch_size: int = 16
    learning_rate: float = 1e-3
    seed: int = 0
    augment_copies: int = 0
    augment_shift: float = 2.0
    augment_fwhm: float = 2.0
    augment_white_line: float = 0.0
    augment_slope: float = 0.0
    augment_self_absorption: float = 0.0
    e0_input: bool = False
    calibration_folds: int = 5
    conformal_level: float = 0.9
    conformal_mode: str = "marginal"
    ood_scores: tuple[str, ...] = DEFAULT_OOD_SCORES
    ood_alpha: float | None = None
    dont_know_budget: float = DONT_KNOW_BUDGET
    knn_components: int = 64
    evidence_rule: str = "none"
    ensemble: bool = False

    def __post_init__(self):
        check_config(self.ae_config, AE_CONFIGS)
        check_config(self.fnn_config, FNN_CONFIGS)
        check_keep_prob(self.keep_prob)
        object.__setattr__(self, "ood_scores", tuple(self.ood_scores))
        unknown = set(self.ood_scores) - set(OOD_SCORES)
        if unknown or not self.ood_scores:
            raise InputError(f"Unknown OOD scores {sorted(unknown)}; choose from {OOD_SCORES}")
        if not 0 < self.conformal_level < 1 or not (self.ood_alpha is None or 0 < self.ood_alpha < 1):
            raise InputError("conformal_level and ood_alpha must lie in (0, 1)")
        if not 0 <= self.dont_know_budget < 1:
            raise InputError(f"dont_know_budget must lie in [0, 1), got {self.dont_know_budget}")
        if self.conformal_mode not in CONFORMAL_MODES:
            raise InputError(f"Unknown conformal_mode {self.conformal_mode!r}; choose from {CONFORMAL_MODES}")
        if self.evidence_rule not in EVIDENCE_RULES:
            raise InputError(f"Unknown evidence_rule {self.evidence_rule!r}; choose from {EVIDENCE_RULES}")
        if self.calibration_folds == 1 or self.calibration_folds < 0:
            raise InputError(f"calibration_folds must be 0 or >= 2, got {self.calibration_folds}")
        if self.ensemble and (not self.calibration_folds or "reconstruction" in self.ood_scores):
            raise InputError("ensemble needs calibration_folds >= 2 (its members) and no reconstruction OOD score "
                             "(members carry no decoder)")

    @property
    def augmentation(self) -> dict[str, float]:
        """The bounds of :func:`~pymatgen_xanes_nn.training.perturb.augment` (keyword arguments)."""
        bounds = {"max_shift": self.augment_shift, "max_fwhm": self.augment_fwhm,
                  "white_line": self.augment_white_line, "max_slope": self.augment_slope}
        if self.augment_self_absorption:
            bounds["max_self_absorption"] = self.augment_self_absorption
        return bounds

    def as_dict(self) -> dict[str, Any]:
        """The fields, without those added later that are at their default.

        The keys of checkpoints and cached fold models made before such a field existed stay what they were.
        """
        d = super().as_dict()
        for name in _OMITTED_AT_DEFAULT:
            if d.get(name) == TrainingConfig.__dataclass_fields__[name].default:
                d.pop(name, None)
        return d

    def fold_options(self) -> dict[str, Any]:
        """The options that change what a calibration fold computes: the key of a training checkpoint.

        All but the evidence rule, applied after the folds: choosing one reuses the folds of a finished training.
        """
        return {k: v for k, v in self.as_dict().items() if k != "evidence_rule"}

    def replace(self, **changes) -> TrainingConfig:
        """A copy with some options changed."""
        import dataclasses

        return dataclasses.replace(self, **changes)


def train(
    x: np.ndarray,
    labels: Sequence[str],
    groups: Sequence[str] | None = None,
    config: TrainingConfig | None = None,
    *,
    preprocessing: Preprocessing = DEFAULT_PREPROCESSING,
    raw: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    x_unlabelled: np.ndarray | None = None,
    x_outside: np.ndarray | None = None,
    outside_labels: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
    testable: Sequence[bool] | None = None,
    checkpoint: str | None = None,
    verbose: int = 0,
    **options: Any,
) -> XANESClassifier:
    """Train the autoencoder, then the FNN on its codes; calibrate probabilities, prediction sets and the OOD flag.

    Calibration is cross-fitted: with ``calibration_folds = K`` the networks are trained K times, each time
    without one grouped fold of materials, and score that fold. The temperature (negative log-likelihood), the
    split-conformal thresholds and the OOD scores' calibration distributions all come from these out-of-fold
    scores; the shipped networks are then trained on every spectrum.

    Args:
        x: preprocessed spectra, shape ``(n, n_points)``.
        labels: class label per spectrum.
        groups: material group per spectrum; no fold splits a group.
        config: the options (default :class:`TrainingConfig`); keyword ``options`` override single fields.
        preprocessing: the preprocessing that produced ``x`` (stored with the model).
        raw: the raw ``(energy, mu)`` arrays of the rows of ``x`` (needed for augmentation).
        x_unlabelled: extra spectra for the autoencoder only (e.g. chemical systems outside the class list).
        x_outside: spectra of classes the model does not know, never trained on: only to measure how often the
            final model flags them.
        outside_labels: a label per ``x_outside`` spectrum (e.g. its Si environment), for per-label flag rates.
        metadata: extra metadata to store (e.g. dataset provenance).
        testable: which spectra the calibration folds may score (default: all; :attr:`SpectraSet.testable` keeps
            derived structures out, so temperature, sets and OOD flag are calibrated on real crystals only).
        checkpoint: a JSON-lines file that keeps every finished calibration fold's out-of-fold scores; a rerun
            with the same data and options skips those folds (a killed training loses only the fold in flight).
        verbose: Keras verbosity.
        **options: fields of :class:`TrainingConfig` to override (e.g. ``ae_epochs=30``).
    """
    from pymatgen_xanes_nn.classifier import MODEL_FORMAT, XANESClassifier, hash_vectors, library_versions, now_iso
    from pymatgen_xanes_nn.training.metrics import classification_metrics
    from pymatgen_xanes_nn.trust.calibrate import calibrate
    from pymatgen_xanes_nn.trust.conformal import fit_conformal, prediction_sets
    from pymatgen_xanes_nn.trust.ood import flag_rates

    config = (config or TrainingConfig()).replace(**options)
    x = np.asarray(x, dtype=np.float32)
    labels = list(labels)
    if len(x) != len(labels):
        raise InputError(f"{len(x)} spectra but {len(labels)} labels")
    if not np.isfinite(x).all():
        raise SpectrumError("Training matrix contains NaN or inf")
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise InputError(f"Need at least 2 classes, got {classes}")
    if config.e0_input and not preprocessing.e0_column:
        raise InputError("e0_input needs a preprocessing with e0_column=True (the e0 the FNN reads)")
    # an e0-aligned input without its e0 column has no absolute edge position: no edge_offset score
    available = [s for s in OOD_SCORES if s != "edge_offset" or preprocessing.alignment != "e0"
                 or preprocessing.e0_column]
    if set(config.ood_scores) - set(available):
        raise InputError("The edge_offset OOD score reads the absolute e0, which e0-aligned inputs keep only with "
                         "e0_column=True; add it or choose other ood_scores")
    if config.augment_copies and (raw is None or len(raw) != len(x)):
        raise InputError("augment_copies needs the raw (energy, mu) arrays of every spectrum")
    y = np.array([classes.index(lab) for lab in labels])
    groups = list(groups) if groups is not None else [str(i) for i in range(len(x))]

    def fit_on(idx: np.ndarray, seed: int) -> tuple[XANESClassifier, dict]:
        """Networks trained on the spectra ``idx`` (plus their augmented copies)."""
        x_fit, y_fit = x[idx], y[idx]
        if config.augment_copies:  # copies made after the split: held-out groups never leak into training
            from pymatgen_xanes_nn.training.perturb import augment

            x_aug, y_aug = augment([raw[i] for i in idx], [labels[i] for i in idx], preprocessing,
                                   config.augment_copies, seed, **config.augmentation)
            x_fit = np.concatenate([x_fit, x_aug])
            y_fit = np.concatenate([y_fit, [classes.index(lab) for lab in y_aug]])
        return _fit_networks(x_fit, y_fit, x[idx], classes, config, preprocessing, x_unlabelled, seed=seed,
                             verbose=verbose)

    metrics: dict[str, Any] = {}
    folds = grouped_folds(groups, y, config.calibration_folds, config.seed, testable)
    if folds:
        scored = np.zeros(len(x), bool)
        proba_raw = np.zeros((len(x), len(classes)))
        scores = {name: np.zeros(len(x)) for name in available}  # all calibrated; config.ood_scores combined
        key = run_key(x, labels, groups, "train", config.fold_options(), preprocessing,
                      None if testable is None else list(testable),
                      None if x_unlabelled is None else hash_vectors(x_unlabelled, []))
        done = {r["fold"]: r for r in read_checkpoint(checkpoint, key)}
        for k, (tr, te) in enumerate(folds):
            scored[te] = True
            if k not in done:
                clf_k, _ = fit_on(tr, config.seed + 1000 * (k + 1))
                fold_scores = clf_k.ood_scores(x[te])
                done[k] = {"fold": k, "proba_raw": clf_k.probabilities(x[te], temperature=1.0).tolist(),
                           "scores": {name: np.asarray(fold_scores[name]).tolist() for name in scores}}
                if config.ensemble:  # the fold's networks themselves: a resumed run ships them too
                    done[k]["member"] = _member_parts(clf_k)
                append_checkpoint(checkpoint, key, done[k])
            proba_raw[te] = done[k]["proba_raw"]
            for name in scores:
                scores[name][te] = done[k]["scores"][name]
        extra = None
        if config.evidence_rule != "none":  # the evidence of each scored spectrum: its fold's training crystals
            from pymatgen_xanes_nn.trust.evidence import disagrees, out_of_fold_neighbours

            real = np.ones(len(x), bool) if testable is None else np.asarray(testable, bool)
            near = out_of_fold_neighbours(x, labels, folds, real, preprocessing)
            predicted = proba_raw.argmax(axis=1)
            extra = np.array([disagrees(config.evidence_rule, classes[predicted[i]], near[i])
                              for i in np.flatnonzero(scored)])
        proba_raw, y_oof = proba_raw[scored], y[scored]
        fitted = calibrate(proba_raw, y_oof, {name: v[scored] for name, v in scores.items()}, config.ood_scores,
                           config.conformal_level, config.conformal_mode, config.dont_know_budget,
                           OOD_ALPHAS if config.ood_alpha is None else [config.ood_alpha], extra=extra)
        sets = prediction_sets(fitted.proba, fitted.conformal["thresholds"])
        metrics["out_of_fold"] = classification_metrics(y_oof, fitted.proba, classes)
        metrics["out_of_fold"].update({
            "ece_uncalibrated": classification_metrics(y_oof, proba_raw, classes)["ece"],
            "coverage": float(np.mean(sets[np.arange(len(y_oof)), y_oof])),
            "mean_set_size": float(sets.sum(axis=1).mean()),
            "folds": len(folds),
            "dont_know": fitted.abstain,
            # p-values against the very scores they were calibrated on (in sample: about alpha by construction)
            "ood_rate_in_sample": float(np.mean(fitted.pvalue < fitted.alpha)),
        })
    members = None
    if folds and config.ensemble:
        members = _members(done, folds, fitted.proba, y_oof, scored)
    nets, hist = fit_on(np.arange(len(x)), config.seed)
    if folds:
        temperature, conformal, calibration = fitted.temperature, fitted.conformal, fitted.calibration
        if config.evidence_rule != "none":
            conformal = {**conformal, "evidence_rule": config.evidence_rule}
    else:  # uncalibrated: the training set's own scores stand in (optimistic; only for quick fits and tests)
        temperature, own = 1.0, nets.ood_scores(x)
        calibration = {name: np.sort(own[name]).astype(np.float32) for name in available}
        conformal = fit_conformal(nets.probabilities(x), y, len(classes), config.conformal_level,
                                  config.conformal_mode)
    # without folds there is nothing to choose the level on: the largest candidate, the most sensitive flag
    alpha = fitted.alpha if folds else (config.ood_alpha or max(OOD_ALPHAS))
    data_hash = hash_vectors(x, labels)
    # the shipped model, built once from its parts and validated by its constructor
    clf = XANESClassifier(config.name, classes, preprocessing, nets.encoder, nets.decoder, nets.fnn, nets.code_mean,
                          nets.code_std, temperature=temperature, e0_input=config.e0_input,
                          ood={**nets.ood, "calibration": calibration, "alpha": float(alpha)}, conformal=conformal,
                          members=members)
    if folds:  # the shipped network on its own training spectra: far above alpha means its scores left their scale
        metrics["out_of_fold"]["ood_rate_own_training"] = float(np.mean(clf.ood_flags(x)))
    if x_outside is not None and len(x_outside):
        metrics["outside_classes"] = flag_rates(clf.ood_flags(np.asarray(x_outside, np.float32)), outside_labels)
    clf.metadata = {
        "model_version": f"{config.name}-{data_hash[:10]}-s{config.seed}",
        "created": now_iso(),
        "format": MODEL_FORMAT,
        "training_data_sha256": data_hash,
        "n_train": int(len(x)),
        "class_counts": {c: int(n) for c, n in zip(classes, np.bincount(y, minlength=len(classes)))},
        "config": {k: v for k, v in config.as_dict().items() if not k.startswith("@")},
        "n_unlabelled": 0 if x_unlabelled is None else int(len(x_unlabelled)),
        "versions": library_versions(),
        "history": hist,
        "metrics": metrics,
        **(metadata or {}),
    }
    return clf


def _member_parts(clf: XANESClassifier) -> dict[str, Any]:
    """A fold network's weights and latent statistics as a checkpoint keeps them (encoded like a model file)."""
    from pymatgen_xanes_nn.io.model_file import encode_array, encode_layers
    from pymatgen_xanes_nn.trust.ood import ENSEMBLE_SCORES, GAUSSIAN_ARRAYS

    return {"encoder": encode_layers(clf.encoder), "fnn": encode_layers(clf.fnn),
            "code_mean": encode_array(clf.code_mean), "code_std": encode_array(clf.code_std),
            "stats": {k: encode_array(clf.ood[k]) for k in GAUSSIAN_ARRAYS},
            "reference": {k: clf.ood["reference"][k] for k in ENSEMBLE_SCORES}}


def _members(done: dict[int, dict], folds: Sequence[tuple[np.ndarray, np.ndarray]], proba: np.ndarray,
             y_scored: np.ndarray, scored: np.ndarray) -> list:
    """The fold networks with what each scored out of fold: ``1 - p_true`` (tempered) and its network scores.

    ``proba`` and ``y_scored`` are the tempered probabilities and classes of the ``scored`` rows, in row order.
    """
    from pymatgen_xanes_nn.ensemble import FoldNetwork
    from pymatgen_xanes_nn.io.model_file import encode_array
    from pymatgen_xanes_nn.trust.ood import ENSEMBLE_SCORES

    position = np.full(len(scored), -1)
    position[np.flatnonzero(scored)] = np.arange(int(scored.sum()))
    members = []
    for k, (_, te) in enumerate(folds):
        rows = position[te]
        rows = rows[np.argsort(1.0 - proba[rows, y_scored[rows]], kind="stable")]  # stored sorted: binary search
        parts = done[k]["member"]
        members.append(FoldNetwork.from_dict({
            **parts,
            "conformal_scores": encode_array(1.0 - proba[rows, y_scored[rows]]),
            "conformal_labels": [int(t) for t in y_scored[rows]],
            "calibration": {name: encode_array(np.sort(done[k]["scores"][name])) for name in ENSEMBLE_SCORES},
        }, f"fold {k}"))
    return members


def run_key(x: np.ndarray, labels: Sequence[str], groups: Sequence[str], *options: Any) -> str:
    """Fingerprint of the data and every option that changes a result: the key of a resumable run's checkpoint."""
    from pymatgen_xanes_nn.classifier import hash_vectors

    h = hashlib.sha256(hash_vectors(x, labels).encode())
    h.update("\n".join(groups).encode())
    h.update(json.dumps([o.as_dict() if hasattr(o, "as_dict") else o for o in options], sort_keys=True,
                        default=str).encode())
    return h.hexdigest()


def fit_networks(
    x_fit: np.ndarray, y_fit: np.ndarray, n_classes: int, config: TrainingConfig, *, seed: int | None = None,
    x_unlabelled: np.ndarray | None = None, validation: tuple[np.ndarray, np.ndarray] | None = None,
    verbose: int = 0, n_points: int | None = None,
) -> dict[str, Any]:
    """The autoencoder, then the FNN on its standardized codes with balanced class weights (the one recipe).

    Args:
        x_fit: model inputs ``(n, n_inputs)``: the autoencoder reads their grid part; with ``config.e0_input``
            the FNN reads the e0 column beside the code.
        y_fit: their class indices.
        n_classes: number of outputs.
        config: networks, epochs, batch sizes, learning rate and keep probability.
        seed: random seed (default: the config's).
        x_unlabelled: extra spectra for the autoencoder only.
        validation: ``(x, y)`` scored after every epoch (learning curves; never used for fitting).
        verbose: Keras verbosity.
        n_points: the grid's points (default: every column); later columns (the e0 column) are side inputs, which
            the FNN reads only with ``config.e0_input``.

    Returns:
        ``{"encoder", "decoder", "fnn", "code_mean", "code_std", "codes"`` (of ``x_fit``), ``"history"}``; the
        history holds ``autoencoder_loss``, ``fnn_loss``, ``fnn_accuracy`` and, with ``validation``,
        ``autoencoder_val_loss`` and ``fnn_val_accuracy``.
    """
    from pymatgen_xanes_nn.models import fit_autoencoder, fit_fnn, forward

    c = config if seed is None else config.replace(seed=seed)
    x_fit = np.asarray(x_fit, np.float32)
    n = n_points or x_fit.shape[1]
    e0 = x_fit[:, n:]  # the e0 column of an e0-aligned input (empty otherwise)
    x_fit = x_fit[:, :n]
    x_ae = x_fit if x_unlabelled is None or not len(x_unlabelled) else np.concatenate(
        [x_fit, np.asarray(x_unlabelled, np.float32)[:, :n]])
    encoder, decoder, ae_hist = fit_autoencoder(
        x_ae, c.ae_config, epochs=c.ae_epochs, batch_size=c.ae_batch_size, learning_rate=c.learning_rate,
        seed=c.seed, x_val=None if validation is None else validation[0][:, :n], verbose=verbose,
    )
    def features(x_in: np.ndarray, side: np.ndarray) -> np.ndarray:
        codes = forward(encoder, x_in)
        return np.concatenate([codes, side], axis=1) if c.e0_input else codes

    codes = features(x_fit, e0)
    mean, std = codes.mean(axis=0), codes.std(axis=0) + 1e-6
    counts = np.bincount(y_fit, minlength=n_classes)
    # balanced class weights: thin classes count as much as O-Si
    class_weight = {k: float(len(y_fit) / (n_classes * max(m, 1))) for k, m in enumerate(counts)}
    z_val = None if validation is None else (features(validation[0][:, :n], validation[0][:, n:]) - mean) / std
    fnn, fnn_hist = fit_fnn(
        (codes - mean) / std, y_fit, n_classes, c.fnn_config, c.keep_prob, epochs=c.fnn_epochs,
        batch_size=c.batch_size, learning_rate=c.learning_rate, seed=c.seed, class_weight=class_weight,
        verbose=verbose, z_val=z_val, y_val=None if validation is None else validation[1],
    )
    history = {"autoencoder_loss": ae_hist["loss"], "fnn_loss": fnn_hist["loss"],
               "fnn_accuracy": fnn_hist.get("accuracy", [])}
    if validation is not None:
        history.update(autoencoder_val_loss=ae_hist.get("val_loss", []),
                       fnn_val_accuracy=fnn_hist.get("val_accuracy", []))
    return {"encoder": encoder, "decoder": decoder, "fnn": fnn, "code_mean": mean, "code_std": std, "codes": codes,
            "history": history}


def _fit_networks(
    x_fit: np.ndarray, y_fit: np.ndarray, x_ref: np.ndarray, classes: list[str], config: TrainingConfig,
    preprocessing: Preprocessing, x_unlabelled: np.ndarray | None, seed: int, verbose: int,
) -> tuple[XANESClassifier, dict[str, list[float]]]:
    """:func:`fit_networks`, wrapped as a classifier with the OOD statistics of ``x_ref``.

    ``x_ref`` are the unaugmented training spectra: the k-NN and edge indexes hold them, not their perturbed copies,
    and the network scores are standardized by their scores (each network by its own training spectra, so fold
    networks and the shipped one speak the same scale).
    """
    from pymatgen_xanes_nn.classifier import XANESClassifier
    from pymatgen_xanes_nn.trust.ood import gaussian_stats, input_indexes, score_reference

    nets = fit_networks(x_fit, y_fit, len(classes), config, seed=seed, x_unlabelled=x_unlabelled, verbose=verbose,
                        n_points=preprocessing.n_points)
    ood = {**gaussian_stats(nets["codes"], y_fit, len(classes)),
           **input_indexes(x_ref, preprocessing, config.knn_components), "scores": list(config.ood_scores)}
    clf = XANESClassifier(config.name, classes, preprocessing, nets["encoder"], nets["decoder"], nets["fnn"],
                          nets["code_mean"], nets["code_std"], ood=ood, e0_input=config.e0_input,
                          check=False)  # calibrated by train()
    clf.ood["reference"] = score_reference(clf.ood_scores(x_ref, standardized=False))
    return clf, nets["history"]


def refresh_ood(clf: XANESClassifier, x: np.ndarray, labels: Sequence[str], groups: Sequence[str],
                scores: Sequence[str] = DEFAULT_OOD_SCORES, reason: str = "",
                testable: Sequence[bool] | None = None) -> XANESClassifier:
    """The same networks with freshly built network-free OOD statistics (k-NN and edge indexes), no retraining.

    The k-NN distance and the edge offset depend on the training spectra only, so their out-of-fold calibration is
    rebuilt exactly as :func:`train` builds it: the model's own grouped calibration folds (its config's number of
    folds and seed), each fold scored by indexes of the other folds. Use it to give a model trained before a score
    existed that score; the change is recorded in ``metadata["ood_changes"]``.

    Args:
        clf: the model.
        x: its training spectra (model inputs); checked against the model's training-data hash.
        labels: their labels.
        groups: their material groups (the calibration folds never split one).
        scores: the combination the refreshed model flags with.
        reason: why, for the record.
        testable: which spectra the calibration folds score, as in :func:`train`.

    Raises:
        ValueError: if ``x`` and ``labels`` are not the model's training data.
    """
    from pymatgen_xanes_nn.classifier import XANESClassifier, hash_vectors
    from pymatgen_xanes_nn.trust.ood import EdgeIndex, KNNIndex, input_indexes

    x = np.asarray(x, np.float32)
    if hash_vectors(x, list(labels)) != clf.metadata.get("training_data_sha256"):
        raise InputError(f"These spectra are not model {clf.name!r}'s training data (training-data hash differs)")
    config = TrainingConfig.from_dict(clf.metadata["config"])
    y = np.array([list(clf.labels).index(lab) for lab in labels])
    folds = grouped_folds(list(groups), y, config.calibration_folds, config.seed, testable)
    if not folds:
        raise InputError(f"Model {clf.name!r} was trained without calibration folds: nothing to calibrate against")
    pre = clf.preprocessing
    oof = {"knn": np.full(len(x), np.nan), "edge_offset": np.full(len(x), np.nan)}
    spectra, e0 = pre.spectra(x), pre.e0_of(x)
    for tr, te in folds:
        oof["knn"][te] = KNNIndex.fit(spectra[tr], config.knn_components).distance(spectra[te])
        oof["edge_offset"][te] = EdgeIndex.fit(spectra[tr], pre.grid, config.knn_components,
                                               e0=None if e0 is None else e0[tr]).offset(
            spectra[te], None if e0 is None else e0[te])
    oof = {k: v[np.isfinite(v)] for k, v in oof.items()}  # spectra never tested (derived) are not calibration
    new = XANESClassifier.from_dict(clf.as_dict())  # a copy: the caller's model stays as it was
    new.ood.update(input_indexes(x, pre, config.knn_components))
    new.ood["calibration"] = {**new.ood["calibration"], **{k: np.sort(v).astype(np.float32) for k, v in oof.items()}}
    # with_ood_scores rebuilds the model from its dict, so the new arrays are checked as on any load
    return new.with_ood_scores(scores, reason=reason or "refresh_ood: network-free OOD indexes rebuilt from the "
                                                        "training data")
