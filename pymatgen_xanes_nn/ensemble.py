"""Cross-fitted ensembles: the calibration folds' networks as the model, with cross-conformal sets and p-values.

Training cross-fits its calibration: fold network ``k`` never saw the materials of fold ``k`` and scored them. An
ensemble model keeps these networks (:class:`FoldNetwork`) with what each one scored out of fold, and uses them
as follows (Vovk 2015, "Cross-conformal predictors"):

* probabilities: the mean of the members' tempered probabilities;
* prediction sets and OOD p-values: each member's score of a new spectrum is compared with the scores that
  member gave its own held-out fold, and the counts are pooled over members,
  ``p = (1 + sum_k #{i in fold k: s_i >= s_k(x)}) / (n + 1)``; no threshold fitted on one network is applied to
  another. Cross-conformal sets have no exact finite-sample guarantee (about ``1 - 2 alpha`` in theory, near
  ``1 - alpha`` in practice): their coverage is measured, and reported.
* disagreement: the share of members whose top label differs from the ensemble's (shown, not calibrated: every
  training spectrum was seen by all members but one, so no out-of-fold reference exists for it).

Members carry no decoder (the model's own all-data network reconstructs and gives the latent code), so the
``reconstruction`` OOD score is not available to an ensemble.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pymatgen_xanes_nn.io.model_file import (
    MAX_REFERENCE,
    InvalidModelError,
    check_chain,
    decode_array,
    decode_layers,
    encode_array,
    encode_layers,
    is_number,
)
from pymatgen_xanes_nn.models import forward, softmax
from pymatgen_xanes_nn.trust.ood import ENSEMBLE_SCORES, GAUSSIAN_ARRAYS, network_scores

if TYPE_CHECKING:
    from collections.abc import Sequence

#: Fewest members of an ensemble (cross-fitting needs at least two folds).
MIN_MEMBERS = 2


@dataclass
class FoldNetwork:
    """One calibration fold's encoder and classifier, with the scores it gave the materials it never saw.

    Attributes:
        encoder: encoder layers (dicts with ``W``, ``b``, ``activation``).
        fnn: classifier layers, ending in a softmax.
        code_mean: mean of its training codes (its FNN reads standardized codes).
        code_std: their standard deviation.
        stats: its latent class Gaussians (:data:`~pymatgen_xanes_nn.trust.ood.GAUSSIAN_ARRAYS`).
        reference: ``{score: [median, scale]}`` of its network scores on its own training spectra.
        conformal_scores: ``1 - p_true`` (tempered) of its held-out spectra.
        conformal_labels: their true class indices, in the same order.
        calibration: each network score (standardized by ``reference``) of its held-out spectra, sorted.
    """

    encoder: list[dict]
    fnn: list[dict]
    code_mean: np.ndarray
    code_std: np.ndarray
    stats: dict[str, np.ndarray]
    reference: dict[str, list[float]]
    conformal_scores: np.ndarray
    conformal_labels: np.ndarray
    calibration: dict[str, np.ndarray]

    def codes(self, spectra: np.ndarray, side: np.ndarray | None) -> np.ndarray:
        """What its FNN reads (unstandardized): the latent code of the grid part, and the e0 column if given."""
        z = forward(self.encoder, spectra)
        return z if side is None else np.concatenate([z, side], axis=1)

    def logits(self, codes: np.ndarray) -> np.ndarray:
        """Its classifier's logits of :meth:`codes`."""
        return forward(self.fnn[:-1], (codes - self.code_mean) / self.code_std)

    def scores(self, codes: np.ndarray, logits: np.ndarray) -> dict[str, np.ndarray]:
        """Its network OOD scores, standardized by its own training spectra (as its calibration was)."""
        raw = network_scores(codes, logits, self.stats)
        return {k: (v - self.reference[k][0]) / self.reference[k][1] for k, v in raw.items()}

    def as_dict(self) -> dict[str, Any]:
        """The member as a model file stores it (arrays encoded, held-out scores sorted)."""
        order = np.argsort(self.conformal_scores, kind="stable")
        return {
            "encoder": encode_layers(self.encoder),
            "fnn": encode_layers(self.fnn),
            "code_mean": encode_array(self.code_mean),
            "code_std": encode_array(self.code_std),
            "stats": {k: encode_array(v) for k, v in self.stats.items()},
            "reference": {k: [float(t) for t in v] for k, v in self.reference.items()},
            "conformal_scores": encode_array(self.conformal_scores[order]),
            "conformal_labels": [int(t) for t in self.conformal_labels[order]],
            "calibration": {k: encode_array(np.sort(v)) for k, v in self.calibration.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], what: str = "member") -> FoldNetwork:
        """A member from its dict; :class:`InvalidModelError` names the field that is wrong."""
        keys = {"encoder", "fnn", "code_mean", "code_std", "stats", "reference", "conformal_scores",
                "conformal_labels", "calibration"}
        if not isinstance(d, dict) or set(d) != keys:
            raise InvalidModelError(f"Model {what} must have exactly the fields {sorted(keys)}")
        for key in ("stats", "reference", "calibration"):
            if not isinstance(d[key], dict):
                raise InvalidModelError(f"Model {what}.{key} must be a dict")
        labels = d["conformal_labels"]
        if not isinstance(labels, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in labels):
            raise InvalidModelError(f"Model {what}.conformal_labels must be a list of class indices")
        return cls(
            decode_layers(d["encoder"], f"{what}.encoder"), decode_layers(d["fnn"], f"{what}.fnn"),
            decode_array(d["code_mean"], f"{what}.code_mean"), decode_array(d["code_std"], f"{what}.code_std"),
            {k: decode_array(v, f"{what}.stats.{k}") for k, v in d["stats"].items()},
            {k: list(v) if isinstance(v, list) else v for k, v in d["reference"].items()},
            decode_array(d["conformal_scores"], f"{what}.conformal_scores"), np.asarray(labels, dtype=np.int64),
            {k: decode_array(v, f"{what}.calibration.{k}") for k, v in d["calibration"].items()},
        )

    def check(self, n_points: int, latent: int, code_size: int, n_classes: int, scores: Sequence[str],
              what: str) -> None:
        """Refuse a member that does not fit its model: shapes, finiteness, sortedness, known scores.

        ``latent`` is the model's code width, ``code_size`` what its FNN reads (the code, plus e0 with e0_input).
        """
        if check_chain(self.encoder, n_points, f"{what}.encoder") != latent:
            raise InvalidModelError(f"Model {what}: its encoder does not give a {latent}-wide code")
        if self.fnn[-1] != {"activation": "softmax"} or check_chain(self.fnn, code_size, f"{what}.fnn") != n_classes:
            raise InvalidModelError(f"Model {what}: its classifier must map the code to {n_classes} softmax outputs")
        for key, arr in (("code_mean", self.code_mean), ("code_std", self.code_std)):
            if arr.shape != (code_size,) or not np.isfinite(arr).all():
                raise InvalidModelError(f"Model {what}.{key} must be {code_size} finite values")
        if (self.code_std <= 0).any():
            raise InvalidModelError(f"Model {what}.code_std must be > 0")
        shapes = {"class_means": (n_classes, code_size), "precision": (code_size, code_size),
                  "background_mean": (code_size,), "background_precision": (code_size, code_size)}
        if set(self.stats) != set(GAUSSIAN_ARRAYS) or any(self.stats[k].shape != s for k, s in shapes.items()) or \
                not all(np.isfinite(v).all() for v in self.stats.values()):
            raise InvalidModelError(f"Model {what}.stats must hold finite {shapes}")
        if set(self.reference) != set(ENSEMBLE_SCORES) or not all(
                isinstance(v, list) and len(v) == 2 and all(is_number(t) and abs(t) < MAX_REFERENCE for t in v)
                and v[1] > 0 for v in self.reference.values()):
            raise InvalidModelError(f"Model {what}.reference needs [median, 0 < scale < {MAX_REFERENCE:g}] for each "
                                    f"of {list(ENSEMBLE_SCORES)}")
        s, y = self.conformal_scores, self.conformal_labels
        if s.ndim != 1 or len(s) < 1 or y.shape != s.shape or not np.isfinite(s).all() or (s < 0).any() \
                or (s > 1).any() or (np.diff(s) < 0).any() or (y < 0).any() or (y >= n_classes).any():
            raise InvalidModelError(f"Model {what}: conformal_scores must be sorted values in [0, 1], one class index "
                                    f"below {n_classes} each")
        missing = [k for k in scores if k in ENSEMBLE_SCORES and k not in self.calibration]
        if missing or set(self.calibration) - set(ENSEMBLE_SCORES):
            raise InvalidModelError(f"Model {what}.calibration must hold network scores {list(ENSEMBLE_SCORES)}; "
                                    f"missing {missing}")
        for k, v in self.calibration.items():
            if v.ndim != 1 or not len(v) or not np.isfinite(v).all() or (np.diff(v) < 0).any():
                raise InvalidModelError(f"Model {what}.calibration.{k} must be sorted finite scores")


def cross_conformal_pvalues(calibrations: Sequence[np.ndarray], scores: np.ndarray) -> np.ndarray:
    """Cross-conformal p-values: ``(1 + sum_k #{c in calibrations[k]: c >= scores[k]}) / (n + 1)``.

    Args:
        calibrations: per member, the sorted scores of the spectra it held out (``n`` in all).
        scores: ``(members, ...)``: each member's score of the same test rows.
    """
    scores = np.asarray(scores, float)
    n = sum(len(c) for c in calibrations)
    greater = sum(len(c) - np.searchsorted(np.asarray(c, float), s, side="left")
                  for c, s in zip(calibrations, scores))
    return (1.0 + greater) / (n + 1.0)


@dataclass
class Ensemble:
    """The members of an ensemble model and the shared temperature their probabilities are tempered with."""

    members: list[FoldNetwork]
    temperature: float
    e0_input: bool = False

    def outputs(self, spectra: np.ndarray, side: np.ndarray | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Each member's codes and logits of the model inputs (grid part ``spectra``, e0 ``side``)."""
        codes = [m.codes(spectra, side if self.e0_input else None) for m in self.members]
        return codes, [m.logits(z) for m, z in zip(self.members, codes)]

    def member_probabilities(self, logits: Sequence[np.ndarray], temperature: float | None = None) -> np.ndarray:
        """``(members, n, classes)``: each member's probabilities at the temperature (the ensemble's by default)."""
        t = self.temperature if temperature is None else temperature
        return np.stack([softmax(z / t, axis=1) for z in logits])

    def sets(self, member_proba: np.ndarray, level: float, class_conditional: Sequence[bool]) -> np.ndarray:
        """Cross-conformal prediction sets ``(n, classes)``: label ``y`` stays while its p-value is above ``1 - level``.

        A label's p-value compares each member's ``1 - p_y`` with that member's held-out scores: of every class in
        marginal mode, of class ``y`` only where the model fitted class-conditional thresholds.
        """
        n_classes = member_proba.shape[2]
        out = np.zeros(member_proba.shape[1:], dtype=bool)
        for y in range(n_classes):
            own = bool(class_conditional[y]) if len(class_conditional) else False
            cals = [m.conformal_scores[m.conformal_labels == y] if own else m.conformal_scores for m in self.members]
            out[:, y] = cross_conformal_pvalues(cals, 1.0 - member_proba[:, :, y]) > 1.0 - level
        return out

    def member_scores(self, codes: Sequence[np.ndarray], logits: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Each member's standardized network scores of its codes and logits (computed once per call)."""
        return [m.scores(z, lg) for m, z, lg in zip(self.members, codes, logits)]

    def pvalues(self, member_scores: Sequence[dict[str, np.ndarray]], names: Sequence[str]) -> dict[str, np.ndarray]:
        """Cross-conformal p-values of the network scores among ``names``.

        Each member's score (:meth:`member_scores`) is read against its own held-out scores; the other names
        (scores of the inputs, not the networks) are left out.
        """
        return {k: cross_conformal_pvalues([m.calibration[k] for m in self.members],
                                           np.stack([s[k] for s in member_scores]))
                for k in names if k in ENSEMBLE_SCORES}

    @staticmethod
    def mean_scores(member_scores: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """The members' standardized network scores, averaged (for display)."""
        return {k: np.mean([s[k] for s in member_scores], axis=0) for k in ENSEMBLE_SCORES}


def disagreement(member_proba: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Share of members whose top label is not the ensemble's ``label`` (one per row)."""
    return np.mean(member_proba.argmax(axis=2) != np.asarray(label)[None, :], axis=0)
