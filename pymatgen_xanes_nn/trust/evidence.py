"""Evidence: the shipped spectra most similar to a query, what a scientist checks before believing a label.

``xanes-nn reference`` preprocesses every shipped FEFF spectrum once and stores a cosine k-NN index of them
(:class:`pymatgen_xanes_nn.trust.ood.KNNIndex`) with each spectrum's task id, formula and Si environment in
``pymatgen_xanes_nn/data/reference_spectra.npz`` (plain arrays: loaded with ``allow_pickle=False``). Models whose
inputs are made otherwise (e.g. e0-aligned) get their own file, named by :func:`reference_file`; a reference
that grows gets a new generation beside the old file.
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from pymatgen_xanes_nn.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pymatgen_xanes_nn.preprocessing import Preprocessing

REFERENCE_FILE = "reference_spectra.npz"
#: Neighbours returned as evidence.
N_EVIDENCE = 3
#: Fields kept per reference spectrum.
FIELDS = ("task_id", "formula", "environment", "source")
#: Fields kept when the documents carry them (the S edge's oxidation state); older references lack them.
OPTIONAL_FIELDS = ("oxidation",)


def reference_file(preprocessing: Preprocessing, generation: int = 1) -> str:
    """The reference's file name for model inputs made by ``preprocessing`` (the default keeps the plain name).

    A reference grows by a new generation (``_0002``, ...), never by rewriting a committed file; the shipped one is
    the highest generation installed (:func:`shipped_reference`).
    """
    from pymatgen_xanes_nn.preprocessing import DEFAULT_PREPROCESSING

    if generation < 1:
        raise InputError(f"reference generation {generation} is below 1")
    stem = ("reference_spectra" if preprocessing == DEFAULT_PREPROCESSING
            else f"reference_spectra_{preprocessing.fingerprint}")  # the one fingerprint of the preprocessing
    return f"{stem}.npz" if generation == 1 else f"{stem}_{generation:04d}.npz"


def build_reference(docs: Sequence[dict], preprocessing: Preprocessing, n_components: int = 96) -> dict[str, Any]:
    """The k-NN index and identity fields of task documents (ones that fail preprocessing are left out)."""
    from pymatgen_xanes_nn.io.readers import from_task_doc
    from pymatgen_xanes_nn.preprocessing import SpectrumError
    from pymatgen_xanes_nn.trust.ood import KNNIndex

    present = [k for k in OPTIONAL_FIELDS if any(k in (d.get("metadata") or {}) for d in docs)]
    rows, meta = [], {k: [] for k in (*FIELDS, *present)}
    for d in docs:
        try:
            rows.append(preprocessing.spectra(preprocessing.transform(from_task_doc(d))))
        except SpectrumError:
            continue
        m = d.get("metadata") or {}
        for k in meta:
            value = d.get("task_id") if k == "task_id" else m.get(k)
            meta[k].append("" if value is None else str(value))  # unlabelled: "", not "None"
    x = np.asarray(rows, np.float32)
    index = KNNIndex.fit(x, n_components)
    return {"basis": index.basis, "reference": index.reference, "norms": np.linalg.norm(x, axis=1).astype(np.float32),
            "preprocessing": json.dumps(preprocessing.as_dict()), **{k: np.asarray(v) for k, v in meta.items()}}


def reference_vectors(task_ids: Sequence[str], preprocessing: Preprocessing, filename: str | None = None
                      ) -> np.ndarray:
    """The model inputs of reference spectra, rebuilt from the index (exact to the projection, for plots)."""
    ref = load_reference(filename or _shipped(preprocessing))
    if ref is None:
        raise FileNotFoundError("No reference spectra installed: run `xanes-nn reference`")
    where = {t: i for i, t in enumerate(ref["task_id"])}
    idx = [where[t] for t in task_ids]
    return (ref["reference"][idx] * ref["norms"][idx, None]) @ ref["basis"].T


def save_reference(reference: dict[str, Any], filename: str) -> None:
    """Write the reference as a compressed ``.npz`` of plain arrays."""
    np.savez_compressed(filename, **{k: np.asarray(v) for k, v in reference.items()})


def shipped_reference(preprocessing: Preprocessing, data_dir: str | None = None) -> tuple[str, int]:
    """The path and generation of the newest installed reference for ``preprocessing`` (generation 1 if none is).

    Args:
        preprocessing: the model's preprocessing.
        data_dir: where references live (default: the package's data).
    """
    from pymatgen_xanes_nn.paths import data_path

    folder = data_dir or data_path("")
    generation = 1
    while os.path.exists(os.path.join(folder, reference_file(preprocessing, generation + 1))):
        generation += 1
    return os.path.join(folder, reference_file(preprocessing, generation)), generation


@functools.lru_cache(maxsize=16)
def _shipped(preprocessing: Preprocessing) -> str:
    """The shipped reference path for ``preprocessing`` (cached: classify() asks on every call)."""
    return shipped_reference(preprocessing)[0]


@functools.lru_cache(maxsize=4)
def load_reference(path: str) -> dict[str, Any] | None:
    """A reference file (None if not installed); arrays only, never pickles."""
    if not os.path.exists(path):
        return None
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return {k: v.item() if v.ndim == 0 else v for k, v in arrays.items()}  # 0-d: the preprocessing JSON, a str


@functools.lru_cache(maxsize=16)
def _same_preprocessing(stored: str, wanted: Preprocessing) -> bool:
    # compared as fingerprints: a reference written before a field existed (at its default) still matches
    from pymatgen_xanes_nn.preprocessing import Preprocessing

    try:
        return Preprocessing.from_dict(json.loads(stored)).fingerprint == wanted.fingerprint
    except (TypeError, ValueError, KeyError):
        return False


def nearest_reference(x: np.ndarray, preprocessing: Preprocessing, k: int = N_EVIDENCE,
                      filename: str | None = None) -> list[list[dict[str, Any]]] | None:
    """The ``k`` most similar shipped spectra of each model-input row, or None without a matching reference.

    A reference made with other preprocessing would compare different things: it is not used.
    """
    from pymatgen_xanes_nn.trust.ood import KNNIndex

    ref = load_reference(filename or _shipped(preprocessing))
    if ref is None or not _same_preprocessing(ref["preprocessing"], preprocessing):
        return None
    x = preprocessing.spectra(x)  # shapes are compared; the e0 column is not a point of the spectrum
    sim = KNNIndex(ref["basis"], ref["reference"]).similarity(x)
    k = min(k, sim.shape[1])
    part = np.argpartition(-sim, k - 1, axis=1)[:, :k]  # the k best without sorting all
    top = np.take_along_axis(part, np.argsort(-np.take_along_axis(sim, part, axis=1), axis=1), axis=1)
    centred = centred_similarity(x, ref["basis"], ref["reference"], top)
    fields = [*FIELDS, *(f for f in OPTIONAL_FIELDS if f in ref)]
    return [[{**{f: str(ref[f][j]) for f in fields}, "cosine_similarity": round(float(sim[i, j]), 4),
              "similarity": round(float(centred[i, n]), 4)}
             for n, j in enumerate(row)] for i, row in enumerate(top)]


def centred_similarity(x: np.ndarray, basis: np.ndarray, reference: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Cosine similarity after subtracting the mean reference spectrum, for the neighbours ``top`` of each row.

    Every normalized K edge rises from 0 to 1, so plain cosines of unrelated spectra are all >= 0.99 (forsterite's
    second and third neighbours were nitrides). Centred on the mean spectrum, what is compared is how a spectrum
    differs from a typical one: 1 for the same shape, near 0 or below for unrelated ones.
    """
    x = np.asarray(x, np.float64)
    q = (x @ basis) / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)
    mean = reference.mean(axis=0)
    qc = q - mean
    rc = reference[top] - mean  # (n, k, dims)
    num = np.einsum("nd,nkd->nk", qc, rc)
    den = np.linalg.norm(qc, axis=1, keepdims=True) * np.linalg.norm(rc, axis=2)
    return num / np.clip(den, 1e-12, None)


#: Rules under which "don't know" follows when the network's label and its evidence disagree
#: (``xanes-nn evidence-study`` chooses one by nested folds; a model stores it in ``conformal["evidence_rule"]``).
RULES = ("none", "top1", "top3_majority", "not_in_top3")


def majority_class(neighbours: Sequence[str | None]) -> str | None:
    """The most common class of the :data:`N_EVIDENCE` nearest spectra (most similar first; ties: the most similar)."""
    counts = Counter(neighbours[:N_EVIDENCE])
    best = max(counts.values())
    return next(n for n in neighbours[:N_EVIDENCE] if counts[n] == best)


def disagrees(rule: str, label: str, neighbours: Sequence[str | None]) -> bool:
    """Whether ``rule`` says the network's ``label`` and its nearest spectra's classes (most similar first) disagree.

    Neighbours of no class of the model (None) count as disagreeing with any label.
    """
    if rule == "none" or not neighbours:
        return False
    if rule == "top1":
        return neighbours[0] != label
    if rule == "top3_majority":
        return majority_class(neighbours) != label
    if rule == "not_in_top3":
        return label not in neighbours[:N_EVIDENCE]
    raise InputError(f"Unknown evidence rule {rule!r}; choose one of {RULES}")


def out_of_fold_neighbours(x: np.ndarray, labels: Sequence[str], folds: Sequence[tuple[np.ndarray, np.ndarray]],
                           reference_mask: np.ndarray, preprocessing: Preprocessing, n_components: int = 96
                           ) -> dict[int, list[str]]:
    """The classes of the nearest training-fold spectra of every tested spectrum, most similar first.

    Args:
        x: model inputs.
        labels: class per row.
        folds: ``(train, test)`` index pairs.
        reference_mask: which rows may serve as evidence (the real crystals: the shipped reference holds no
            physics variants or derived structures).
        preprocessing: the model's preprocessing (its grid part is compared).
        n_components: projection size of the index, as ``xanes-nn reference`` builds it.
    """
    from pymatgen_xanes_nn.trust.ood import KNNIndex

    out: dict[int, list[str]] = {}
    for tr, te in folds:
        ref = np.asarray([i for i in tr if reference_mask[i]])
        index = KNNIndex.fit(preprocessing.spectra(x[ref]), n_components)
        sim = index.similarity(preprocessing.spectra(x[te]))
        top = np.argsort(-sim, axis=1)[:, :N_EVIDENCE]
        for row, i in enumerate(te):
            out[int(i)] = [labels[ref[j]] for j in top[row]]
    return out
