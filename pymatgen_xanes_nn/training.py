"""Training: task documents -> preprocessed spectra -> autoencoder -> FNN -> calibrated classifier."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

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
    """

    x: np.ndarray
    raw: list[tuple[np.ndarray, np.ndarray]]
    labels: list[str | None]
    groups: list[str]
    task_ids: list[str]
    weights: list[int] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_docs(
        cls, docs: Sequence[dict], labels: Sequence[str | None], preprocessing: Preprocessing = DEFAULT_PREPROCESSING
    ) -> SpectraSet:
        """Preprocess task documents; documents that fail are listed in ``skipped``, not fatal."""
        from pymatgen_xanes_nn.io import from_task_doc

        xs, raw, labs, groups, ids, weights, skipped = [], [], [], [], [], [], {}
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
        if skipped:
            logger.warning("%d documents could not be preprocessed", len(skipped))
        x = np.asarray(xs, dtype=np.float32).reshape(len(xs), preprocessing.n_points)
        return cls(x, raw, labs, groups, ids, weights, skipped)

    def subset(self, idx: Sequence[int]) -> SpectraSet:
        """The spectra at positions ``idx``."""
        idx = list(idx)
        return SpectraSet(
            self.x[idx], [self.raw[i] for i in idx], [self.labels[i] for i in idx], [self.groups[i] for i in idx],
            [self.task_ids[i] for i in idx], [self.weights[i] for i in idx], {},
        )

    def labelled(self) -> SpectraSet:
        """Only the spectra with a label."""
        return self.subset([i for i, lab in enumerate(self.labels) if lab is not None])


def dataset_for_scheme(
    scheme: str, docs: Sequence[dict] | None = None, preprocessing: Preprocessing = DEFAULT_PREPROCESSING,
    n_classes: int = 12,
) -> tuple[SpectraSet, list[str]]:
    """Load documents (default: the shipped dataset), pick classes by the scheme's rule and preprocess.

    Returns:
        ``(spectra, classes)``; spectra outside the classes keep ``label=None``.
    """
    from pymatgen_xanes_nn.dataset import load_tasks
    from pymatgen_xanes_nn.labels import assign_labels, select_classes

    docs = list(docs) if docs is not None else load_tasks()
    if not docs:
        raise ValueError("No task documents: simulate some or check the dataset file")
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


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimizing the negative log-likelihood of held-out predictions."""
    from scipy.optimize import minimize_scalar

    logp = np.log(np.clip(proba, 1e-12, None))

    def nll(log_t: float) -> float:
        z = logp / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(-np.mean(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(axis=1))))

    res = minimize_scalar(nll, bounds=(-4.0, 4.0), method="bounded")
    return float(np.exp(res.x))


#: Outside-class labels with fewer spectra than this are kept in a model's metadata but not printed or reported:
#: one or two spectra make no rate.
MIN_REPORTED_OUTSIDE = 5


def _ood_stats(codes: np.ndarray, y: np.ndarray, n_classes: int, ridge: float = 1e-3) -> dict[str, np.ndarray]:
    means = np.stack([codes[y == k].mean(axis=0) if np.any(y == k) else codes.mean(axis=0) for k in range(n_classes)])
    resid = codes - means[y]
    cov = resid.T @ resid / max(len(codes) - n_classes, 1)
    cov += ridge * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    return {"class_means": means.astype(np.float32), "precision": np.linalg.inv(cov).astype(np.float32)}


def train(
    x: np.ndarray,
    labels: Sequence[str],
    groups: Sequence[str] | None = None,
    name: str = "custom",
    preprocessing: Preprocessing = DEFAULT_PREPROCESSING,
    ae_config: str = DEFAULT_AE,
    fnn_config: str = DEFAULT_FNN,
    keep_prob: float = DEFAULT_KEEP_PROB,
    ae_epochs: int = 200,
    fnn_epochs: int = 500,
    ae_batch_size: int = 32,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    seed: int = 0,
    validation_fraction: float = 0.15,
    raw: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    augment_copies: int = 0,
    x_unlabelled: np.ndarray | None = None,
    refit: bool = True,
    x_outside: np.ndarray | None = None,
    outside_labels: Sequence[str] | None = None,
    ood_quantile: float = 0.95,
    metadata: dict[str, Any] | None = None,
    verbose: int = 0,
) -> XANESClassifier:
    """Train the autoencoder, then the FNN on its codes; calibrate and set OOD thresholds.

    Args:
        x: preprocessed spectra, shape ``(n, n_points)``.
        labels: class label per spectrum.
        groups: material group per spectrum; the held-out calibration split never splits a group.
        name: model name.
        preprocessing: the preprocessing that produced ``x`` (stored with the model).
        ae_config: autoencoder configuration (Table I).
        fnn_config: FNN configuration (Table II).
        keep_prob: dropout keep probability (the seed's "dropout ratio").
        ae_epochs: autoencoder epochs (the seed: 200).
        fnn_epochs: FNN epochs (the seed: 500).
        ae_batch_size: autoencoder batch size.
        batch_size: FNN batch size (the seed: 16).
        learning_rate: Adam learning rate for both networks.
        seed: random seed (TensorFlow, NumPy, split).
        validation_fraction: share of groups held out for calibration, OOD thresholds and metrics
            (0: none; temperature 1 and thresholds from training data).
        raw: the raw ``(energy, mu)`` arrays of the rows of ``x`` (needed for augmentation).
        augment_copies: experimental-like copies (shift, broadening, noise) of each *training-side*
            spectrum, made after the hold-out split so held-out groups never leak into training.
        x_unlabelled: extra spectra for the autoencoder only (e.g. chemical systems outside the class
            list): the seed's unsupervised stage learns spectral features from every simulated spectrum.
            They must not include test spectra of an evaluation.
        refit: after calibrating on the held-out groups, train the final networks on all spectra
            (keeping the temperature and the OOD thresholds' margin); False ships the first networks.
        x_outside: spectra of classes the model does not know (e.g. other chemical systems), never
            trained on: only to measure how often the final model flags them as out of distribution.
        outside_labels: a label per ``x_outside`` spectrum (e.g. its Si environment): the flag rate is also
            stored per label, since an unknown silicate and an unknown nitride are very different tests.
        ood_quantile: share of in-distribution spectra that pass the OOD check; each of the two scores
            gets half the false-alarm budget, since a spectrum is flagged when either exceeds its threshold.
        metadata: extra metadata to store (e.g. dataset provenance).
        verbose: Keras verbosity.
    """
    from pymatgen_xanes_nn.classifier import MODEL_FORMAT, hash_vectors, library_versions, now_iso
    from pymatgen_xanes_nn.metrics import classification_metrics
    from pymatgen_xanes_nn.models import forward

    check_config(ae_config, AE_CONFIGS)
    check_config(fnn_config, FNN_CONFIGS)
    check_keep_prob(keep_prob)
    x = np.asarray(x, dtype=np.float32)
    labels = list(labels)
    if len(x) != len(labels):
        raise ValueError(f"{len(x)} spectra but {len(labels)} labels")
    if not np.isfinite(x).all():
        raise SpectrumError("Training matrix contains NaN or inf")
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError(f"Need at least 2 classes, got {classes}")
    if augment_copies and (raw is None or len(raw) != len(x)):
        raise ValueError("augment_copies needs the raw (energy, mu) arrays of every spectrum")
    y = np.array([classes.index(lab) for lab in labels])
    groups = list(groups) if groups is not None else [str(i) for i in range(len(x))]
    if validation_fraction > 0:
        tr, va = grouped_holdout(groups, labels, validation_fraction, seed)
    else:
        tr, va = np.arange(len(x)), np.array([], dtype=int)
    fit_kwargs = {"ae_config": ae_config, "fnn_config": fnn_config, "keep_prob": keep_prob, "ae_epochs": ae_epochs,
                  "fnn_epochs": fnn_epochs, "ae_batch_size": ae_batch_size, "batch_size": batch_size,
                  "learning_rate": learning_rate, "seed": seed, "verbose": verbose}

    def fit_on(idx: np.ndarray) -> tuple[XANESClassifier, np.ndarray, dict]:
        """Networks trained on the spectra ``idx`` (plus their augmented copies); returns the training matrix."""
        x_fit, y_fit = x[idx], y[idx]
        if augment_copies:  # copies made after the hold-out split: held-out groups never leak into training
            from pymatgen_xanes_nn.perturb import augment

            x_aug, y_aug = augment([raw[i] for i in idx], [labels[i] for i in idx], preprocessing, augment_copies,
                                   seed)
            x_fit = np.concatenate([x_fit, x_aug])
            y_fit = np.concatenate([y_fit, [classes.index(lab) for lab in y_aug]])
        clf, hist = _fit_networks(x_fit, y_fit, classes, name, preprocessing, x_unlabelled, **fit_kwargs)
        return clf, x_fit, hist

    clf, x_tr, hist = fit_on(tr)
    n_augment = len(x_tr) - len(tr)
    # calibration and OOD thresholds on held-out groups (in-distribution but unseen materials)
    metrics: dict[str, Any] = {}
    if len(va):
        codes_va = forward(clf.encoder, x[va])
        raw_p = clf._proba_matrix(codes_va)
        clf.temperature = fit_temperature(raw_p, y[va])
        metrics["validation"] = classification_metrics(y[va], clf._proba_matrix(codes_va), classes)
        metrics["validation"]["ece_uncalibrated"] = classification_metrics(y[va], raw_p, classes)["ece"]
    # OOD thresholds: a quantile of in-distribution scores, training and held-out spectra pooled (the
    # held-out groups alone are too few for a stable tail; the training ones alone are optimistic)
    q_each = 1.0 - (1.0 - ood_quantile) / 2
    scores_tr, scores_va = clf.ood_scores(x_tr), clf.ood_scores(x[va])
    clf.ood["recon_threshold"], clf.ood["maha_threshold"] = (
        float(np.quantile(np.concatenate([t, v]), q_each)) for t, v in zip(scores_tr, scores_va))
    if len(va):  # how often unseen materials of known classes are flagged (the false-alarm rate)
        metrics["validation"]["ood_rate"] = float(np.mean(clf.ood_flags(*scores_va)))
    if refit and len(va):
        # the held-out groups only served to calibrate: the shipped networks learn from every spectrum
        # (measured: +6 points of grouped accuracy on the chemsys set). The temperature carries over; the
        # OOD thresholds keep their ratio to the training-set quantile, measured on the first networks.
        ratio = [t / float(np.quantile(v, q_each)) for t, v in
                 zip((clf.ood["recon_threshold"], clf.ood["maha_threshold"]), scores_tr)]
        temperature = clf.temperature
        clf, x_all, hist = fit_on(np.arange(len(x)))
        clf.temperature = temperature
        scores = clf.ood_scores(x_all)
        clf.ood["recon_threshold"], clf.ood["maha_threshold"] = (
            float(r * np.quantile(v, q_each)) for r, v in zip(ratio, scores))
    if x_outside is not None and len(x_outside):
        x_out = np.asarray(x_outside, np.float32)
        rec, maha = clf.ood_scores(x_out)
        flags = clf.ood_flags(rec, maha)
        metrics["outside_classes"] = {
            "n": int(len(x_out)), "ood_rate": float(np.mean(flags)),
            "reconstruction_rate": float(np.mean(rec > clf.ood["recon_threshold"])),
            "latent_rate": float(np.mean(maha > clf.ood["maha_threshold"])),
        }
        if outside_labels is not None:
            kinds = np.asarray(list(outside_labels))
            if len(kinds) != len(x_out):
                raise ValueError(f"{len(x_out)} outside spectra but {len(kinds)} outside labels")
            metrics["outside_classes"]["by_label"] = {
                k: {"n": int(np.sum(kinds == k)), "ood_rate": float(np.mean(flags[kinds == k]))}
                for k in sorted(set(kinds), key=lambda k: (-np.sum(kinds == k), k))}
    params = {**{k: v for k, v in fit_kwargs.items() if k != "verbose"}, "validation_fraction": validation_fraction,
              "refit": bool(refit and len(va)), "ood_quantile": ood_quantile, "augment_copies": augment_copies,
              "n_augment": n_augment, "n_unlabelled": 0 if x_unlabelled is None else int(len(x_unlabelled))}
    data_hash = hash_vectors(x, labels)
    clf.metadata = {
        "model_version": f"{name}-{data_hash[:10]}-s{seed}",
        "created": now_iso(),
        "format": MODEL_FORMAT,
        "training_data_sha256": data_hash,
        "n_train": int(len(x) if params["refit"] else len(tr)),
        "n_validation": int(len(va)),
        "class_counts": {c: int(n) for c, n in zip(classes, np.bincount(y, minlength=len(classes)))},
        "parameters": params,
        "versions": library_versions(),
        "history": hist,
        "metrics": metrics,
        **(metadata or {}),
    }
    return clf


def _fit_networks(
    x_fit: np.ndarray, y_fit: np.ndarray, classes: list[str], name: str, preprocessing: Preprocessing,
    x_unlabelled: np.ndarray | None, ae_config: str, fnn_config: str, keep_prob: float, ae_epochs: int,
    fnn_epochs: int, ae_batch_size: int, batch_size: int, learning_rate: float, seed: int, verbose: int,
) -> tuple[XANESClassifier, dict[str, list[float]]]:
    """The autoencoder, then the FNN on its standardized codes; returns the classifier and histories."""
    from pymatgen_xanes_nn.classifier import XANESClassifier
    from pymatgen_xanes_nn.models import fit_autoencoder, fit_fnn, forward

    x_ae = x_fit if x_unlabelled is None or not len(x_unlabelled) else np.concatenate(
        [x_fit, np.asarray(x_unlabelled, np.float32)])
    encoder, decoder, ae_hist = fit_autoencoder(
        x_ae, ae_config, epochs=ae_epochs, batch_size=ae_batch_size, learning_rate=learning_rate, seed=seed,
        verbose=verbose,
    )
    codes = forward(encoder, x_fit)
    mean, std = codes.mean(axis=0), codes.std(axis=0) + 1e-6
    counts = np.bincount(y_fit, minlength=len(classes))
    # balanced class weights: thin classes count as much as O-Si
    class_weight = {k: float(len(y_fit) / (len(classes) * max(c, 1))) for k, c in enumerate(counts)}
    fnn, fnn_hist = fit_fnn(
        (codes - mean) / std, y_fit, len(classes), fnn_config, keep_prob, epochs=fnn_epochs,
        batch_size=batch_size, learning_rate=learning_rate, seed=seed, class_weight=class_weight, verbose=verbose,
    )
    clf = XANESClassifier(name, classes, preprocessing, encoder, decoder, fnn, mean, std)
    clf.ood.update(_ood_stats(codes, y_fit, len(classes)))
    history = {"autoencoder_loss": ae_hist["loss"], "fnn_loss": fnn_hist["loss"],
               "fnn_accuracy": fnn_hist.get("accuracy", [])}
    return clf, history

