"""``XANESClassifier``: the trained autoencoder + FNN behind one MSONable object.

>>> from pymatgen_xanes_nn import XANESClassifier
>>> clf = XANESClassifier.from_pretrained()          # the seed's 12 chemical-system classes
>>> clf.predict(xas)                                  # e.g. "Mg-O-Si"
>>> clf.predict_proba(xas)                            # {"Al-O-Si": 0.01, ...}

Prediction is a NumPy forward pass: importing the package and predicting never imports
TensorFlow. Training (:func:`pymatgen_xanes_nn.training.fit.train`) imports Keras lazily.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import os
import threading
import warnings
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
from monty.json import MSONable

from pymatgen_xanes_nn.edges import SI_K, Edge, get_edge
from pymatgen_xanes_nn.ensemble import MIN_MEMBERS, Ensemble, FoldNetwork
from pymatgen_xanes_nn.errors import InputError
from pymatgen_xanes_nn.io.model_file import (  # noqa: F401 - the format's public names are also ours
    ALPHA_RANGE,
    EDGE_ARRAYS,
    MAX_REFERENCE,
    MODEL_CLASSES,
    MODEL_FORMAT,
    OOD_ARRAYS,
    OOD_KEYS,
    READABLE_FORMATS,
    TEMPERATURE_RANGE,
    IncompatibleModelError,
    InvalidModelError,
    check_chain,
    decode_array,
    decode_layers,
    encode_array,
    encode_layers,
    hash_vectors,
    is_number,
    is_positive_number,
    library_versions,
    model_checksum,
)
from pymatgen_xanes_nn.models import forward
from pymatgen_xanes_nn.preprocessing import Preprocessing, SpectrumError
from pymatgen_xanes_nn.result import Classification

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pymatgen.analysis.xas.spectrum import XAS

#: Normalizations a caller may ask for in place of the model's: both put the edge step at 1 on the same grid.
INPUT_NORMALIZATIONS = ("edge_step", "pre_edge")
_WARNINGS_LOCK = threading.Lock()
#: Pretrained models shipped in ``pymatgen_xanes_nn/data``, listed once.
PRETRAINED = {
    "si_k_chemsys": "model_si_k_chemsys.json.gz",
    "si_k_environment": "model_si_k_environment.json.gz",
    "s_k_oxidation": "model_s_k_oxidation.json.gz",
    "s_k_environment": "model_s_k_environment.json.gz",
}
#: The model used when none is named: the Si K edge's default (the local environment, what the edge encodes best).
DEFAULT_MODEL = SI_K.default_model


class XANESClassifier(MSONable):
    """Autoencoder + feed-forward classifier for Si K-edge XANES, with calibration and an OOD flag.

    Args:
        name: model name, e.g. ``"si_k_chemsys"``.
        labels: class labels, in output order.
        preprocessing: the :class:`Preprocessing` the model was trained with (or its dict).
        encoder: encoder layers (dicts with ``W``, ``b``, ``activation``).
        decoder: decoder layers (the autoencoder's second half).
        fnn: classifier layers, ending in a softmax.
        code_mean: mean of the training codes (the FNN sees standardized codes).
        code_std: standard deviation of the training codes.
        temperature: softmax temperature fitted on out-of-fold spectra (calibration).
        ood: out-of-distribution statistics (:data:`OOD_KEYS`): latent class Gaussians and a background one, the
            cosine k-NN index of the training spectra, each score's out-of-fold ``calibration`` distribution, the
            ``scores`` combined into the flag and its level ``alpha``.
        conformal: conformal prediction sets: ``level`` and one ``thresholds`` entry per label (fitted out of fold,
            applied to this network: coverage measured, not guaranteed).
        metadata: training data hash, parameters, library versions, metrics.
        version: model file format version.
        e0_input: the FNN reads the spectrum's e0 (the preprocessing's ``e0_column``, standardized like the codes)
            beside the latent code: the chemical shift of an e0-aligned input.
        members: the calibration folds' networks (:class:`~pymatgen_xanes_nn.ensemble.FoldNetwork` or their dicts):
            with them the model is a cross-fitted ensemble (:mod:`pymatgen_xanes_nn.ensemble`): probabilities are
            the members' mean, sets and network OOD p-values cross-conformal; this model's own network (trained on
            everything) then gives only the latent code and the reconstruction.
        check: validate the finished model (:meth:`validate`) before it can predict. Only training passes False,
            for the networks it scores before their calibration exists; it then builds the shipped model checked.
    """

    def __init__(
        self,
        name: str,
        labels: Sequence[str],
        preprocessing: Preprocessing | dict,
        encoder: Sequence[dict],
        decoder: Sequence[dict],
        fnn: Sequence[dict],
        code_mean: Sequence[float] | np.ndarray,
        code_std: Sequence[float] | np.ndarray,
        temperature: float = 1.0,
        ood: dict[str, Any] | None = None,
        conformal: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        version: str = MODEL_FORMAT,
        e0_input: bool = False,
        members: Sequence[dict | FoldNetwork] | None = None,
        *,
        check: bool = True,
    ):
        if str(version).split(".")[0] not in READABLE_FORMATS:
            raise IncompatibleModelError(
                f"Model {name!r} has file format {version}; this pymatgen-xanes-nn reads formats "
                f"{', '.join(READABLE_FORMATS)}. "
                "Retrain it with `xanes-nn train` or install the matching package version."
            )
        if not isinstance(name, str) or not name:
            raise InvalidModelError("Model name must be a non-empty string")
        self.name = name
        if not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) for x in labels):
            raise InvalidModelError(f"Model {name!r}: labels must be a list of strings")
        if len(set(labels)) != len(labels) or len(labels) < 2:
            raise InvalidModelError(f"Model {name!r}: labels must be >= 2 distinct strings, got {list(labels)}")
        self.labels = list(labels)
        try:
            self.preprocessing = (
                preprocessing if isinstance(preprocessing, Preprocessing) else Preprocessing.from_dict(preprocessing)
            )
        except (TypeError, ValueError) as exc:
            raise InvalidModelError(f"Model {name!r}: invalid preprocessing: {exc}") from exc
        self.encoder = decode_layers(encoder, "encoder")
        self.decoder = decode_layers(decoder, "decoder")
        self.fnn = decode_layers(fnn, "fnn")
        if self.fnn[-1] != {"activation": "softmax"}:
            raise InvalidModelError(f"Model {name!r}: the classifier must end in a softmax")
        self.code_mean = decode_array(code_mean, "code_mean")
        self.code_std = decode_array(code_std, "code_std")
        if not (is_positive_number(temperature) and TEMPERATURE_RANGE[0] <= temperature <= TEMPERATURE_RANGE[1]):
            raise InvalidModelError(f"Model {name!r}: temperature must be a number in {list(TEMPERATURE_RANGE)} "
                                    f"(outside it the probabilities overflow or say nothing), got {temperature!r}")
        self.temperature = float(temperature)
        if not isinstance(ood or {}, dict):
            raise InvalidModelError(f"Model {name!r}: ood must be a dict")
        self.ood = dict(ood or {})
        for key in (*OOD_ARRAYS, *EDGE_ARRAYS):
            if key in self.ood:
                self.ood[key] = decode_array(self.ood[key], f"ood.{key}")
        if "calibration" in self.ood:
            if not isinstance(self.ood["calibration"], dict):
                raise InvalidModelError(f"Model {name!r}: ood.calibration must be a dict of score arrays")
            self.ood["calibration"] = {k: decode_array(v, f"ood.calibration.{k}")
                                       for k, v in self.ood["calibration"].items()}
        if not isinstance(conformal or {}, dict):
            raise InvalidModelError(f"Model {name!r}: conformal must be a dict")
        self.conformal = dict(conformal or {})
        if not isinstance(metadata or {}, dict):
            raise InvalidModelError(f"Model {name!r}: metadata must be a dict")
        self.metadata = metadata or {}
        self.version = str(version)
        if not isinstance(e0_input, bool) or (e0_input and not self.preprocessing.e0_column):
            raise InvalidModelError(f"Model {name!r}: e0_input must be a bool, and True only with a preprocessing "
                                    "that keeps the e0 column")
        self.e0_input = e0_input
        if members is not None and (not isinstance(members, (list, tuple)) or len(members) < MIN_MEMBERS):
            raise InvalidModelError(f"Model {name!r}: members must be a list of >= {MIN_MEMBERS} fold networks")
        self.members = [m if isinstance(m, FoldNetwork) else FoldNetwork.from_dict(m, f"{name!r} member {i}")
                        for i, m in enumerate(members or [])]
        self._check_shapes()
        if check:
            self.validate()

    def _check_shapes(self) -> None:
        """Refuse weights that do not chain, non-finite values and degenerate scales."""
        name, n = self.name, self.preprocessing.n_points
        latent = check_chain(self.encoder, n, "encoder")
        if check_chain(self.decoder, latent, "decoder") != n:
            raise InvalidModelError(f"Model {name!r}: decoder output does not match the {n}-point grid")
        code = latent + int(self.e0_input)
        n_out = check_chain(self.fnn, code, "fnn")
        if n_out != len(self.labels):
            raise IncompatibleModelError(f"Model {name!r}: {n_out} outputs but {len(self.labels)} labels")
        for key, arr in (("code_mean", self.code_mean), ("code_std", self.code_std)):
            if arr.shape != (code,) or not np.isfinite(arr).all():
                raise InvalidModelError(f"Model {name!r}: {key} must be {code} finite values")
        if (self.code_std <= 0).any():
            raise InvalidModelError(f"Model {name!r}: code_std must be > 0 (a zero scale divides by zero)")
        for i, member in enumerate(self.members):
            member.check(n, latent, code, len(self.labels), (self.ood or {}).get("scores", []),
                         f"{name!r} member {i}")

    @property
    def ensemble(self) -> Ensemble | None:
        """The cross-fitted ensemble of :attr:`members` (None for a single-network model)."""
        if not self.members:
            return None
        return Ensemble(self.members, self.temperature, self.e0_input)

    def validate(self) -> XANESClassifier:
        """Check what a finished model needs (done on every load): complete OOD and conformal blocks, sane values.

        A model without them would never flag anything, or give sets of no stated coverage, silently.
        """
        from pymatgen_xanes_nn.trust.schema import check_trust_blocks

        name, code, n = self.name, self.feature_size, self.preprocessing.n_points
        missing = [k for k in OOD_KEYS if k not in self.ood]
        if missing:
            raise InvalidModelError(f"Model {name!r}: the ood block lacks {missing}; the OOD flag could never fire")
        check_trust_blocks(name, self.ood, self.conformal)
        scores = self.ood["scores"]
        shapes = {"class_means": (len(self.labels), code), "precision": (code, code), "background_mean": (code,),
                  "background_precision": (code, code)}
        for key, shape in shapes.items():
            if self.ood[key].shape != shape:
                raise InvalidModelError(f"Model {name!r}: ood.{key} has shape {self.ood[key].shape}, expected {shape}")
        basis, ref = self.ood["knn_basis"], self.ood["knn_reference"]
        if basis.ndim != 2 or basis.shape[0] != n or ref.ndim != 2 or ref.shape[1] != basis.shape[1] or not len(ref):
            raise InvalidModelError(f"Model {name!r}: the k-NN index does not match the {n}-point grid")
        if not all(np.isfinite(self.ood[k]).all() for k in OOD_ARRAYS):
            raise InvalidModelError(f"Model {name!r}: ood statistics are not finite")
        if all(k in self.ood for k in EDGE_ARRAYS):
            e_basis, e_ref, e_e0 = (np.asarray(self.ood[k]) for k in EDGE_ARRAYS)
            if (e_basis.ndim != 2 or e_basis.shape[0] != n or e_ref.ndim != 2 or e_ref.shape[1] != e_basis.shape[1]
                    or e_e0.shape != (len(e_ref),) or not len(e_ref)):
                raise InvalidModelError(f"Model {name!r}: the edge index does not match the {n}-point grid "
                                        f"(edge_basis {e_basis.shape}, edge_reference {e_ref.shape}, "
                                        f"edge_e0 {e_e0.shape})")
            if not all(np.isfinite(a).all() for a in (e_basis, e_ref, e_e0)):
                raise InvalidModelError(f"Model {name!r}: the edge index is not finite")
        if self.members and any(len(v) != sum(len(m.conformal_scores) for m in self.members) for v in
                                self.ood["calibration"].values()):
            raise InvalidModelError(f"Model {name!r}: the members' held-out spectra must together be the calibration "
                                    "spectra of ood.calibration (a member is missing or was added)")
        if self.members and "reconstruction" in scores:
            raise InvalidModelError(f"Model {name!r}: an ensemble's members have no decoder; ood.scores cannot use "
                                    "reconstruction")
        if self._edge_index() is None and "edge_offset" in scores:
            raise InvalidModelError(f"Model {name!r}: ood.scores uses edge_offset but the edge index is missing")
        if self.version.split(".")[0] != "2" and self.ood.get("reference") is None:  # format 2 predates it
            raise InvalidModelError(f"Model {name!r}: ood.reference is missing; without it the network scores are not "
                                    "comparable with their calibration")
        if len(self.conformal["thresholds"]) != len(self.labels):
            raise InvalidModelError(f"Model {name!r}: conformal.thresholds needs one threshold per label "
                                    f"({len(self.labels)})")
        return self

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, name: str = DEFAULT_MODEL) -> XANESClassifier:
        """Load a model shipped with the package (no download).

        Args:
            name: one of :data:`PRETRAINED` (``"si_k_environment"``, the default, ``"si_k_chemsys"``).
        """
        from pymatgen_xanes_nn.paths import data_path

        if name not in PRETRAINED:
            raise InputError(f"Unknown pretrained model {name!r}; choose one of {sorted(PRETRAINED)}")
        path = data_path(PRETRAINED[name])
        if not os.path.exists(path):
            raise FileNotFoundError(f"Pretrained model {name!r} is not installed ({path})")
        return cls.from_file(path)

    @classmethod
    def load(cls, name_or_file: str) -> XANESClassifier:
        """A shipped model by name (see :data:`PRETRAINED`) or a model file by path.

        Raises:
            ValueError: naming the shipped models, when ``name_or_file`` is neither.
        """
        if name_or_file in PRETRAINED:
            return cls.from_pretrained(name_or_file)
        if os.path.isfile(name_or_file):
            return cls.from_file(name_or_file)
        raise InputError(f"Unknown model {name_or_file!r}: neither a shipped model "
                         f"({', '.join(sorted(PRETRAINED))}) nor a file")

    @classmethod
    def from_file(cls, filename: str) -> XANESClassifier:
        """Load a model written by :meth:`to` (JSON, gzipped or not), as data: nothing in it is imported or run.

        Raises:
            InvalidModelError: if the file is corrupt, fails its checksum or holds degenerate values.
        """
        from pymatgen_xanes_nn.jsonio import UnsafeDocumentError, read_json

        try:
            d = read_json(filename, MODEL_CLASSES)
        except UnsafeDocumentError as exc:
            raise InvalidModelError(str(exc)) from exc
        try:
            return cls.from_dict(d)
        except InvalidModelError as exc:
            raise InvalidModelError(f"{filename}: {exc}") from exc

    def to(self, filename: str) -> None:
        """Write the model as JSON (gzipped if the name ends in ``.gz``), with its checksum."""
        from pymatgen_xanes_nn.jsonio import write_json

        write_json(self.as_dict(), filename)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict with the weights base64-encoded (float32, exact) and a SHA-256 ``checksum``."""
        ood = {k: (encode_array(v) if isinstance(v, np.ndarray) else v) for k, v in self.ood.items()}
        if "calibration" in ood:
            ood["calibration"] = {k: encode_array(v) for k, v in self.ood["calibration"].items()}
        d = {
            "@module": type(self).__module__,
            "@class": type(self).__name__,
            "name": self.name,
            "labels": self.labels,
            "preprocessing": self.preprocessing.as_dict(),
            "encoder": encode_layers(self.encoder),
            "decoder": encode_layers(self.decoder),
            "fnn": encode_layers(self.fnn),
            "code_mean": encode_array(self.code_mean),
            "code_std": encode_array(self.code_std),
            "temperature": self.temperature,
            "ood": ood,
            "conformal": copy.deepcopy(self.conformal),
            "metadata": copy.deepcopy(self.metadata),
            "version": self.version,
        }
        if self.e0_input:  # only then: files of models without it keep their checksum
            d["e0_input"] = True
        if self.members:
            d["members"] = [m.as_dict() for m in self.members]
        d["checksum"] = model_checksum(d)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> XANESClassifier:
        """Rebuild from :meth:`as_dict` output after checking its class markers, fields and checksum.

        Raises:
            InvalidModelError: on a class marker other than this model's, unknown or missing fields, a
                checksum mismatch (edited or corrupt file) or degenerate values.
        """
        from pymatgen_xanes_nn.jsonio import UnsafeDocumentError, check_classes

        if not isinstance(d, dict):
            raise InvalidModelError(f"A model must be a JSON object, got {type(d).__name__}")
        try:
            check_classes(d, MODEL_CLASSES, where="model")
        except UnsafeDocumentError as exc:
            raise InvalidModelError(str(exc)) from exc
        if (d.get("@module"), d.get("@class")) != ("pymatgen_xanes_nn.classifier", "XANESClassifier"):
            raise InvalidModelError("Not a XANESClassifier model file")
        fields = {k: v for k, v in d.items() if not k.startswith("@") and k != "checksum"}
        expected = set(inspect.signature(cls.__init__).parameters) - {"self", "check"}
        if set(fields) - expected:
            raise InvalidModelError(f"Unknown model fields {sorted(set(fields) - expected)}")
        # every readable format carries both: a file without them is refused, never read unchecked
        if "version" not in d:
            raise InvalidModelError("Model has no version (format)")
        if str(d["version"]).split(".")[0] in READABLE_FORMATS:  # other formats: the constructor names the version
            if "checksum" not in d:
                raise InvalidModelError("Model has no checksum")
            if d["checksum"] != model_checksum(d):
                raise InvalidModelError("Model checksum mismatch: the file was edited or is corrupt")
        try:
            return cls(**fields)  # validated by the constructor
        except TypeError as exc:  # a missing required field
            raise InvalidModelError(f"Incomplete model: {exc}") from exc

    def __repr__(self) -> str:
        kind = f", ensemble of {len(self.members)}" if self.members else ""
        return f"XANESClassifier({self.name!r}, {len(self.labels)} classes, code {self.code_size}{kind})"

    @property
    def edge(self) -> Edge:
        """The absorption edge this model reads (``metadata["edge"]``; models before the S edge read Si K)."""
        return get_edge(self.metadata.get("edge", SI_K.element))

    @property
    def code_size(self) -> int:
        """Dimension of the latent code."""
        return int(self.encoder[-1]["W"].shape[1])

    @property
    def feature_size(self) -> int:
        """Width of what the FNN reads: the latent code, plus the e0 with :attr:`e0_input`."""
        return self.code_size + int(self.e0_input)

    # ------------------------------------------------------------------ inputs
    def vectorize(self, spectra, **kwargs) -> tuple[np.ndarray, bool]:
        """Preprocess spectra into the model's input matrix; see :meth:`inputs` (which also measures quality)."""
        x, single, _ = self.inputs(spectra, **kwargs)
        return x, single

    def inputs(
        self, spectra, shift: float = 0.0, smooth: float | None = None, normalization: str | None = None
    ) -> tuple[np.ndarray, bool, list[dict[str, float] | None]]:
        """Preprocess spectra into the model's input matrix and measure their quality.

        Args:
            spectra: an ``XAS`` or its dict, a list of them, or raw arrays already on the model's
                grid (shape ``(n_points,)`` or ``(n, n_points)``).
            shift: energy shift in eV applied to every ``XAS`` (calibration).
            smooth: Savitzky-Golay window in eV for noisy measured spectra.
            normalization: ``"pre_edge"`` removes a sloped background (larch's pre-edge line and post-edge
                polynomial) before the spectrum is put on the grid; None: the model's own normalization.

        Returns:
            ``(matrix of shape (n, n_points), single, quality)`` where ``single`` says one spectrum was given and
            ``quality`` holds each spectrum's :func:`~pymatgen_xanes_nn.trust.quality.quality_measures` (None for rows
            given on the grid: their raw points are gone).
        """
        n = self.preprocessing.n_inputs
        if not is_number(shift):
            raise InputError(f"shift must be a finite number of eV, got {shift!r}")
        if smooth is not None and not is_positive_number(smooth):
            raise InputError(f"smooth must be None or a window > 0 in eV, got {smooth!r}")
        pre = self.preprocessing
        if normalization is not None:
            if normalization not in INPUT_NORMALIZATIONS:
                raise InputError(f"normalization must be one of {INPUT_NORMALIZATIONS}, got {normalization!r}")
            pre = dataclasses.replace(pre, normalization=normalization)
        if isinstance(spectra, np.ndarray):
            arr = np.asarray(spectra, dtype=np.float32)
            single = arr.ndim == 1
            arr = arr.reshape(1, -1) if single else arr
            if arr.ndim != 2 or arr.shape[1] != n:
                raise SpectrumError(f"Raw arrays must be on the model's {n}-point grid, got shape {spectra.shape}")
            if not len(arr):
                raise SpectrumError("No spectra given (an array with 0 rows)")
            if not np.isfinite(arr).all():
                raise SpectrumError("Input array contains NaN or inf")
            return arr, single, [None] * len(arr)
        single = not isinstance(spectra, (list, tuple))
        items = [spectra] if single else list(spectra)
        if not items:
            raise SpectrumError("No spectra given")
        from pymatgen_xanes_nn.preprocessing import check_xas
        from pymatgen_xanes_nn.trust.quality import gated_input

        rows, quality = [], []
        for i, xas in enumerate(items):
            try:
                xas = check_xas(xas, self.edge)
                row, measures = gated_input(xas.x, xas.y, pre, shift=shift, smooth=smooth)
            except SpectrumError as exc:
                raise SpectrumError(str(exc) if single else f"Spectrum {i}: {exc}") from exc
            rows.append(row)
            quality.append(measures)
        return np.asarray(rows, dtype=np.float32), single, quality

    # ------------------------------------------------------------------ outputs
    def _encode_matrix(self, x: np.ndarray) -> np.ndarray:
        """What the FNN reads (before standardization): the latent code of the grid part, and e0 if it reads it."""
        codes = forward(self.encoder, self.preprocessing.spectra(x))
        if self.e0_input:
            codes = np.concatenate([codes, np.asarray(x)[:, self.preprocessing.n_points:]], axis=1)
        return codes

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        """The autoencoder's reconstruction of the grid part from :meth:`_encode_matrix`'s output."""
        return forward(self.decoder, codes[:, : self.code_size])

    def _logits(self, codes: np.ndarray) -> np.ndarray:
        return forward(self.fnn[:-1], (codes - self.code_mean) / self.code_std)

    def _proba_matrix(self, codes: np.ndarray, temperature: float | None = None,
                      logits: np.ndarray | None = None) -> np.ndarray:
        """Softmax of the logits divided by the temperature (the model's own unless given).

        ``logits``: the codes' logits when the caller has them (classify() needs them for the OOD scores too).
        """
        from scipy.special import softmax

        z = (self._logits(codes) if logits is None else logits) / (
            self.temperature if temperature is None else temperature)
        return softmax(z, axis=1)

    def probabilities(self, x: np.ndarray, temperature: float | None = None) -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` of model-input rows ``(n, n_points)``: matrix in, matrix out.

        No checks and no OOD scores: what evaluations and benchmarks need in bulk. ``temperature``: the model's own
        (calibrated) unless given (1.0: the network's raw probabilities, which calibration starts from). An
        ensemble gives its members' mean.
        """
        x = np.asarray(x, np.float32)
        if self.members:
            return self._member_outputs(x)[2].mean(axis=0) if temperature is None else \
                self.ensemble.member_probabilities(self._member_outputs(x)[1], temperature).mean(axis=0)
        return self._proba_matrix(self._encode_matrix(x), temperature=temperature)

    def _member_outputs(self, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
        """An ensemble's codes and logits per member, and its members' tempered probabilities."""
        ens = self.ensemble
        side = np.asarray(x)[:, self.preprocessing.n_points:]
        codes, logits = ens.outputs(self.preprocessing.spectra(x), side)
        return codes, logits, ens.member_probabilities(logits)

    def prediction_sets(self, x: np.ndarray) -> np.ndarray:
        """Boolean ``(n, n_classes)`` prediction sets of model-input rows.

        Cross-conformal for an ensemble; else the out-of-fold thresholds applied to this network.
        """
        from pymatgen_xanes_nn.trust.conformal import prediction_sets

        x = np.asarray(x, np.float32)
        if self.members:
            return self.ensemble.sets(self._member_outputs(x)[2], self.conformal["level"],
                                      self.conformal.get("class_conditional", []))
        return prediction_sets(self.probabilities(x), self.conformal["thresholds"])

    def encode(self, spectra, **kwargs) -> np.ndarray:
        """The latent code(s): shape ``(code_size,)`` for one spectrum, ``(n, code_size)`` for many."""
        x, single = self.vectorize(spectra, **kwargs)
        z = self._encode_matrix(x)
        return z[0] if single else z

    def predict_proba(self, spectra, **kwargs) -> dict[str, float] | list[dict[str, float]]:
        """Calibrated class probabilities: a mapping label -> probability (a list for many spectra)."""
        x, single = self.vectorize(spectra, **kwargs)
        p = self.probabilities(x)
        out = [dict(zip(self.labels, map(float, row))) for row in p]
        return out[0] if single else out

    def predict(self, spectra, **kwargs) -> str | list[str]:
        """The most probable label (a list for many spectra)."""
        x, single = self.vectorize(spectra, **kwargs)
        idx = self.probabilities(x).argmax(axis=1)
        out = [self.labels[i] for i in idx]
        return out[0] if single else out

    def reconstruct(self, spectra, **kwargs) -> XAS | list[XAS]:
        """The autoencoder's reconstruction (a denoised spectrum) as ``XAS`` on the model's grid (printable)."""
        from pymatgen_xanes_nn.io.readers import ReadXAS

        x, single = self.vectorize(spectra, **kwargs)
        rec = self._decode(self._encode_matrix(x))
        grid = self.preprocessing.grid
        # catch_warnings swaps a process-global filter list: unguarded, two threads restore each other's
        # copy and leave "ignore" installed for the whole program
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = [ReadXAS(grid, row.astype(float), None, self.edge.element, edge=self.edge.edge,
                           spectrum_type="XANES") for row in rec]
        return out[0] if single else out

    def classify(self, spectra, evidence: bool = True, **kwargs) -> Classification | list[Classification]:
        """Everything about spectra in one pass: label, probabilities, prediction set, OOD flag, evidence.

        Args:
            spectra: as for :meth:`vectorize`.
            evidence: add the 3 most similar spectra of the shipped dataset (task id, formula, environment,
                cosine similarity): what to look at before believing a label.
            **kwargs: ``shift``, ``smooth`` and ``normalization``, as for :meth:`inputs`.

        Returns:
            :class:`~pymatgen_xanes_nn.result.Classification` dicts (``print`` one for its verdict; Jupyter draws it
            over its evidence) with ``label``, ``probabilities``, ``confidence`` (calibrated top probability),
            ``prediction_set`` (labels kept at ``set_level`` coverage, most probable first), ``ood`` (bool),
            ``ood_pvalue`` (combined conformal p-value; the flag fires below ``ood_alpha``, or when the input
            fails a quality limit), ``ood_scores``, ``quality``
            (:func:`~pymatgen_xanes_nn.trust.quality.quality_measures`),
            ``dont_know`` with ``reason`` (out of distribution, input quality, an empty or a large set, a
            confidence below the floor under which 5% of correct held-out predictions fall, or, for models with an
            evidence rule, evidence that disagrees with the label), ``evidence``,
            ``reconstruction_error``, ``latent_distance``, ``latent``, ``model``, ``model_version``.
        """
        from pymatgen_xanes_nn.ensemble import disagreement
        from pymatgen_xanes_nn.trust.abstain import MAX_USEFUL_SET_SIZE
        from pymatgen_xanes_nn.trust.conformal import prediction_sets
        from pymatgen_xanes_nn.trust.evidence import disagrees, nearest_reference
        from pymatgen_xanes_nn.trust.quality import quality_problems

        x, single, quality = self.inputs(spectra, **kwargs)
        z = self._encode_matrix(x)
        logits = self._logits(z)
        raw = self.ood_scores(x, z, logits, standardized=False)
        scores = self._standardized(raw)
        spread = None
        if self.members:
            ens = self.ensemble
            m_codes, m_logits, m_proba = self._member_outputs(x)
            p = m_proba.mean(axis=0)
            sets = ens.sets(m_proba, self.conformal["level"], self.conformal.get("class_conditional", []))
            m_scores = ens.member_scores(m_codes, m_logits)
            scores.update(ens.mean_scores(m_scores))
            pvalue = self._combined_pvalue(scores, ens.pvalues(m_scores, self.ood["scores"]))
            spread = disagreement(m_proba, p.argmax(axis=1))
        else:
            p = self._proba_matrix(z, logits=logits)
            sets = prediction_sets(p, self.conformal["thresholds"])
            pvalue = self.ood_pvalue(scores)
        alpha = self.ood["alpha"]
        floor = self.conformal.get("confidence_floor", 0.0)  # models before round 4 have none
        rule = self.conformal.get("evidence_rule", "none")  # models before round 8 have none
        near = nearest_reference(x, self.preprocessing) if evidence else None  # None: no reference installed
        if near is not None:  # each piece of evidence named in this model's classes too
            from pymatgen_xanes_nn.labels import evidence_class

            for row in near:
                for ev in row:
                    ev["class"] = evidence_class(ev, self.labels, self.metadata.get("label_scheme"),
                                                 self.edge.element)
        out = []
        for i in range(len(x)):
            k = int(p[i].argmax())
            members = [self.labels[j] for j in np.argsort(-p[i]) if sets[i, j]]
            reasons = []
            problems = quality_problems(quality[i]) if quality[i] is not None else []
            if pvalue[i] < alpha:
                reasons.append(f"out of distribution (p = {pvalue[i]:.3g} < {alpha})")
            reasons.extend(f"input quality: {msg}" for msg in problems)
            if not members:
                reasons.append("empty prediction set: no label is plausible")
            elif len(members) > MAX_USEFUL_SET_SIZE:
                reasons.append(f"prediction set of {len(members)} labels")
            if p[i, k] < floor:
                reasons.append(f"low confidence ({p[i, k]:.2f} < {floor:.2f})")
            if near is not None and disagrees(rule, self.labels[k], [ev["class"] for ev in near[i]]):
                shown = ", ".join(str(ev["class"] or ev["environment"]) for ev in near[i])
                reasons.append(f"the most similar shipped spectra ({shown}) disagree with {self.labels[k]}")
            out.append(Classification(
                {
                    "label": self.labels[k],
                    "probabilities": dict(zip(self.labels, map(float, p[i]))),
                    "confidence": float(p[i, k]),
                    "prediction_set": members,
                    "set_level": float(self.conformal["level"]),
                    "ood": bool(pvalue[i] < alpha or problems),
                    "ood_pvalue": float(pvalue[i]),
                    "ood_alpha": float(alpha),
                    "ood_scores": {name: float(v[i]) for name, v in scores.items()},
                    "quality": quality[i],
                    "dont_know": bool(reasons),
                    "reason": "; ".join(reasons),
                    "evidence": near[i] if near is not None else [],
                    "reconstruction_error": float(raw["reconstruction"][i]),
                    "latent_distance": float(raw["mahalanobis"][i]),
                    "latent": [float(v) for v in z[i]],
                    **({} if spread is None else {"members_disagreeing": float(spread[i])}),
                    "model": self.name,
                    "model_version": self.model_version,
                },
                model_input=x[i], preprocessing=self.preprocessing,
            ))
        return out[0] if single else out

    @property
    def model_version(self) -> str:
        """An identifier that changes whenever the weights change."""
        return self.metadata.get("model_version", f"{self.name}-{self.version}")

    def ood_scores(self, x: np.ndarray, codes: np.ndarray | None = None, logits: np.ndarray | None = None,
                   standardized: bool = True) -> dict[str, np.ndarray]:
        """Every OOD score of :data:`~pymatgen_xanes_nn.trust.ood.OOD_SCORES` per model-input row (higher: stranger).

        ``codes`` and ``logits`` of ``x`` are computed unless the caller has them. ``max_softmax`` uses the network's
        own probabilities (temperature 1): the calibration folds' networks have no temperature yet. With
        ``standardized`` the network scores are divided by the model's own training-spectra scale
        (:func:`~pymatgen_xanes_nn.trust.ood.score_reference`), as their calibration was; raw otherwise.
        """
        from pymatgen_xanes_nn.trust.ood import KNNIndex, network_scores

        codes = self._encode_matrix(x) if codes is None else codes
        logits = self._logits(codes) if logits is None else logits
        scores = {
            "reconstruction": np.mean((self._decode(codes) - self.preprocessing.spectra(x)) ** 2, axis=1),
            **network_scores(codes, logits, self.ood),
            "knn": KNNIndex(self.ood["knn_basis"], self.ood["knn_reference"]).distance(self.preprocessing.spectra(x)),
        }
        edge = self._edge_index()
        if edge is not None:
            scores["edge_offset"] = edge.offset(self.preprocessing.spectra(x), self.preprocessing.e0_of(x))
        return self._standardized(scores) if standardized else scores

    def _standardized(self, scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Raw scores as the calibration reads them (format 2 models have no reference: unchanged)."""
        from pymatgen_xanes_nn.trust.ood import standardize

        return standardize(scores, self.ood.get("reference", {}))

    def _edge_index(self):
        """The model's :class:`~pymatgen_xanes_nn.trust.ood.EdgeIndex` (None for models trained without one)."""
        from pymatgen_xanes_nn.trust.ood import EdgeIndex, KNNIndex

        if not all(k in self.ood for k in EDGE_ARRAYS):
            return None
        return EdgeIndex(KNNIndex(self.ood["edge_basis"], self.ood["edge_reference"]), self.ood["edge_e0"],
                         self.preprocessing.grid, aligned=self.preprocessing.alignment == "e0")

    def ood_pvalue(self, scores: dict[str, np.ndarray]) -> np.ndarray:
        """The combined conformal p-value of the model's chosen scores (small: unlike the training materials).

        For a single network only: an ensemble's network scores are compared member by member (:meth:`ood_pvalues`).
        """
        return self._combined_pvalue(scores, {})

    def _combined_pvalue(self, scores: dict[str, np.ndarray], given: dict[str, np.ndarray]) -> np.ndarray:
        """Bonferroni combination of the chosen scores' p-values (``given`` ones as they are, the rest pooled)."""
        from pymatgen_xanes_nn.trust.ood import bonferroni, pvalues

        return bonferroni([given[k] if k in given else pvalues(self.ood["calibration"][k], scores[k])
                           for k in self.ood["scores"]])

    def ood_pvalues(self, x: np.ndarray) -> np.ndarray:
        """The combined OOD p-value of each model-input row (cross-conformal network scores for an ensemble)."""
        x = np.asarray(x, np.float32)
        scores = self.ood_scores(x)
        if not self.members:
            return self.ood_pvalue(scores)
        m_codes, m_logits, _ = self._member_outputs(x)
        ens = self.ensemble
        return self._combined_pvalue(scores, ens.pvalues(ens.member_scores(m_codes, m_logits), self.ood["scores"]))

    def ood_flags(self, x: np.ndarray) -> np.ndarray:
        """True where a model-input row is unlike the training data (combined p-value below ``ood.alpha``)."""
        return self.ood_pvalues(x) < self.ood["alpha"]

    def with_ood_scores(self, scores: Sequence[str], alpha: float | None = None, reason: str = "",
                        x_outside: np.ndarray | None = None,
                        outside_labels: Sequence[str] | None = None) -> XANESClassifier:
        """The same model flagging with another combination of its calibrated OOD scores (no retraining).

        Every score's out-of-fold calibration is stored in the model, so the combination (and its level) can be
        chosen after training, e.g. by the OOD benchmark; the change is recorded in ``metadata["ood_changes"]``.
        The in-sample flag rate recorded at training was for the old combination and is removed; the flag rate on
        spectra outside the classes is recomputed when they are given, else removed too.

        Args:
            scores: names from :data:`pymatgen_xanes_nn.trust.ood.OOD_SCORES`.
            alpha: the flag's level (default: unchanged).
            reason: why, for the record (e.g. the benchmark that chose it).
            x_outside: model inputs of spectra outside the classes (as given to training).
            outside_labels: their kinds, for per-kind rates.
        """
        from pymatgen_xanes_nn.trust.ood import OOD_SCORES, flag_rates

        scores = list(scores)
        missing = [k for k in scores if k not in OOD_SCORES or k not in self.ood.get("calibration", {})]
        if missing or not scores:
            raise InputError(f"Model {self.name!r} has no calibration for OOD scores {missing or scores}; "
                             f"it has {sorted(self.ood.get('calibration', {}))}")
        alpha = self.ood["alpha"] if alpha is None else alpha
        if not is_positive_number(alpha) or alpha >= 1:
            raise InputError(f"OOD level alpha must be in (0, 1), got {alpha!r}")
        d = self.as_dict()
        d["ood"] = {**d["ood"], "scores": scores, "alpha": float(alpha)}
        metadata = copy.deepcopy(self.metadata)
        for key in ("ood_rate_in_sample", "ood_rate_own_training"):
            metadata.setdefault("metrics", {}).get("out_of_fold", {}).pop(key, None)
        metadata.setdefault("ood_changes", []).append(
            {"date": now_iso(), "from": {"scores": list(self.ood["scores"]), "alpha": self.ood["alpha"]},
             "to": {"scores": scores, "alpha": float(alpha)}, "reason": reason})
        metadata["metrics"].pop("outside_classes", None)
        # classifications change with the flag: a new version makes the builders reclassify
        base = str(metadata.get("model_version", f"{self.name}-{self.version}")).split("+ood-")[0]
        metadata["model_version"] = f"{base}+ood-{'-'.join(scores)}-{alpha:g}"
        d["metadata"] = metadata
        d["checksum"] = model_checksum(d)
        new = type(self).from_dict(d)
        if x_outside is not None and len(x_outside):
            metadata["metrics"]["outside_classes"] = flag_rates(new.ood_flags(np.asarray(x_outside, np.float32)),
                                                                outside_labels)
            d["metadata"] = metadata
            d["checksum"] = model_checksum(d)
            new = type(self).from_dict(d)
        return new


def now_iso() -> str:
    """UTC timestamp for model metadata."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
