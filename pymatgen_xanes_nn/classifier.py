"""``XANESClassifier``: the trained autoencoder + FNN behind one MSONable object.

>>> from pymatgen_xanes_nn import XANESClassifier
>>> clf = XANESClassifier.from_pretrained()          # the seed's 12 chemical-system classes
>>> clf.predict(xas)                                  # e.g. "Mg-O-Si"
>>> clf.predict_proba(xas)                            # {"Al-O-Si": 0.01, ...}

Prediction is a NumPy forward pass: importing the package and predicting never imports
TensorFlow. Training (:meth:`XANESClassifier.fit`) imports Keras lazily.
"""

from __future__ import annotations

import base64
import hashlib
import os
import platform
import warnings
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
from monty.json import MSONable

from pymatgen_xanes_nn.models import forward
from pymatgen_xanes_nn.preprocessing import Preprocessing, SpectrumError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pymatgen.analysis.xas.spectrum import XAS

#: Version of the model file format; files of another major version are refused.
MODEL_FORMAT = "1"
#: Pretrained models shipped in ``pymatgen_xanes_nn/data``, listed once.
PRETRAINED = {
    "si_k_chemsys": "model_si_k_chemsys.json.gz",
    "si_k_environment": "model_si_k_environment.json.gz",
}
DEFAULT_MODEL = "si_k_chemsys"


class IncompatibleModelError(ValueError):
    """A model file written by an incompatible version of pymatgen-xanes-nn."""


def _encode_array(a: np.ndarray) -> dict[str, Any]:
    a = np.ascontiguousarray(a, dtype=np.float32)
    return {"dtype": "float32", "shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode("ascii")}


def _decode_array(d: dict[str, Any] | list | np.ndarray) -> np.ndarray:
    if isinstance(d, (list, np.ndarray)):
        return np.asarray(d, dtype=np.float32)
    return np.frombuffer(base64.b64decode(d["b64"]), dtype=d["dtype"]).reshape(d["shape"]).copy()


def _encode_layers(layers: Sequence[dict]) -> list[dict]:
    return [{k: (_encode_array(v) if k in ("W", "b") else v) for k, v in layer.items()} for layer in layers]


def _decode_layers(layers: Sequence[dict]) -> list[dict]:
    return [{k: (_decode_array(v) if k in ("W", "b") else v) for k, v in layer.items()} for layer in layers]


def hash_vectors(x: np.ndarray, labels: Sequence[str]) -> str:
    """SHA-256 of the training matrix and labels (recorded in every model)."""
    h = hashlib.sha256(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    h.update("\n".join(labels).encode())
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries a model was trained with."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("pymatgen-xanes-nn", "numpy", "scipy", "pymatgen", "tensorflow-cpu", "tensorflow", "keras",
                "scikit-learn", "feff10-rs"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


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
        temperature: softmax temperature fitted on held-out spectra (calibration).
        ood: out-of-distribution statistics: ``recon_threshold`` (MSE), ``class_means``,
            ``precision`` (inverse shared covariance of codes) and ``maha_threshold``.
        metadata: training data hash, parameters, library versions, metrics.
        version: model file format version.
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
        metadata: dict[str, Any] | None = None,
        version: str = MODEL_FORMAT,
    ):
        if str(version).split(".")[0] != MODEL_FORMAT:
            raise IncompatibleModelError(
                f"Model {name!r} has file format {version}; this pymatgen-xanes-nn reads format {MODEL_FORMAT}. "
                "Retrain it with `xanes-nn train` or install the matching package version."
            )
        self.name = name
        self.labels = list(labels)
        self.preprocessing = (
            preprocessing if isinstance(preprocessing, Preprocessing) else Preprocessing.from_dict(preprocessing)
        )
        self.encoder = _decode_layers(encoder)
        self.decoder = _decode_layers(decoder)
        self.fnn = _decode_layers(fnn)
        self.code_mean = _decode_array(code_mean)
        self.code_std = _decode_array(code_std)
        self.temperature = float(temperature)
        self.ood = dict(ood or {})
        for key in ("class_means", "precision"):
            if key in self.ood:
                self.ood[key] = _decode_array(self.ood[key])
        self.metadata = metadata or {}
        self.version = str(version)
        n_out = self.fnn[-2]["W"].shape[1] if len(self.fnn) > 1 else 0
        if n_out != len(self.labels):
            raise IncompatibleModelError(f"Model {name!r}: {n_out} outputs but {len(self.labels)} labels")
        if self.encoder[0]["W"].shape[0] != self.preprocessing.n_points:
            raise IncompatibleModelError(f"Model {name!r}: encoder input does not match the preprocessing grid")

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, name: str = DEFAULT_MODEL) -> XANESClassifier:
        """Load a model shipped with the package (no download).

        Args:
            name: one of :data:`PRETRAINED` (``"si_k_chemsys"``, ``"si_k_environment"``).
        """
        from pymatgen_xanes_nn.dataset import data_path, read_json_gz

        if name not in PRETRAINED:
            raise ValueError(f"Unknown pretrained model {name!r}; choose one of {sorted(PRETRAINED)}")
        path = data_path(PRETRAINED[name])
        if not os.path.exists(path):
            raise FileNotFoundError(f"Pretrained model {name!r} is not installed ({path})")
        return cls.from_dict(read_json_gz(path))

    @classmethod
    def from_file(cls, filename: str) -> XANESClassifier:
        """Load a model written by :meth:`to`."""
        from pymatgen_xanes_nn.dataset import read_json_gz

        if filename.endswith(".gz"):
            return cls.from_dict(read_json_gz(filename))
        from monty.serialization import loadfn

        obj = loadfn(filename)
        return obj if isinstance(obj, cls) else cls.from_dict(obj)

    def to(self, filename: str) -> None:
        """Write the model as JSON (gzipped if the name ends in ``.gz``)."""
        from pymatgen_xanes_nn.dataset import write_json_gz

        if filename.endswith(".gz"):
            write_json_gz(self.as_dict(), filename)
        else:
            from monty.serialization import dumpfn

            dumpfn(self.as_dict(), filename)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict with the weights base64-encoded (float32, exact)."""
        ood = {k: (_encode_array(v) if isinstance(v, np.ndarray) else v) for k, v in self.ood.items()}
        return {
            "@module": type(self).__module__,
            "@class": type(self).__name__,
            "name": self.name,
            "labels": self.labels,
            "preprocessing": self.preprocessing.as_dict(),
            "encoder": _encode_layers(self.encoder),
            "decoder": _encode_layers(self.decoder),
            "fnn": _encode_layers(self.fnn),
            "code_mean": _encode_array(self.code_mean),
            "code_std": _encode_array(self.code_std),
            "temperature": self.temperature,
            "ood": ood,
            "metadata": self.metadata,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> XANESClassifier:
        """Rebuild from :meth:`as_dict` output."""
        return cls(**{k: v for k, v in d.items() if not k.startswith("@")})

    def __repr__(self) -> str:
        return f"XANESClassifier({self.name!r}, {len(self.labels)} classes, code {self.code_size})"

    @property
    def code_size(self) -> int:
        """Dimension of the latent code."""
        return int(self.encoder[-1]["W"].shape[1])

    # ------------------------------------------------------------------ inputs
    def vectorize(
        self, spectra, shift: float = 0.0, smooth: float | None = None
    ) -> tuple[np.ndarray, bool]:
        """Preprocess spectra into the model's input matrix.

        Args:
            spectra: an ``XAS`` or its dict, a list of them, or raw arrays already on the model's
                grid (shape ``(n_points,)`` or ``(n, n_points)``).
            shift: energy shift in eV applied to every ``XAS`` (calibration).
            smooth: Savitzky-Golay window in eV for noisy measured spectra.

        Returns:
            ``(matrix of shape (n, n_points), single)`` where ``single`` says one spectrum was given.
        """
        n = self.preprocessing.n_points
        if isinstance(spectra, np.ndarray):
            arr = np.asarray(spectra, dtype=np.float32)
            single = arr.ndim == 1
            arr = arr.reshape(1, -1) if single else arr
            if arr.ndim != 2 or arr.shape[1] != n:
                raise SpectrumError(f"Raw arrays must be on the model's {n}-point grid, got shape {spectra.shape}")
            if not np.isfinite(arr).all():
                raise SpectrumError("Input array contains NaN or inf")
            return arr, single
        single = not isinstance(spectra, (list, tuple))
        items = [spectra] if single else list(spectra)
        if not items:
            raise SpectrumError("No spectra given")
        rows = []
        for i, xas in enumerate(items):
            try:
                rows.append(self.preprocessing.transform(xas, shift=shift, smooth=smooth))
            except SpectrumError as exc:
                raise SpectrumError(str(exc) if single else f"Spectrum {i}: {exc}") from exc
        return np.asarray(rows, dtype=np.float32), single

    # ------------------------------------------------------------------ outputs
    def _encode_matrix(self, x: np.ndarray) -> np.ndarray:
        return forward(self.encoder, x)

    def _proba_matrix(self, codes: np.ndarray) -> np.ndarray:
        p = forward(self.fnn, (codes - self.code_mean) / self.code_std)
        if self.temperature != 1.0:
            logits = np.log(np.clip(p, 1e-12, None)) / self.temperature
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
        return p

    def encode(self, spectra, **kwargs) -> np.ndarray:
        """The latent code(s): shape ``(code_size,)`` for one spectrum, ``(n, code_size)`` for many."""
        x, single = self.vectorize(spectra, **kwargs)
        z = self._encode_matrix(x)
        return z[0] if single else z

    def predict_proba(self, spectra, **kwargs) -> dict[str, float] | list[dict[str, float]]:
        """Calibrated class probabilities: a mapping label -> probability (a list for many spectra)."""
        x, single = self.vectorize(spectra, **kwargs)
        p = self._proba_matrix(self._encode_matrix(x))
        out = [dict(zip(self.labels, map(float, row))) for row in p]
        return out[0] if single else out

    def predict(self, spectra, **kwargs) -> str | list[str]:
        """The most probable label (a list for many spectra)."""
        x, single = self.vectorize(spectra, **kwargs)
        idx = self._proba_matrix(self._encode_matrix(x)).argmax(axis=1)
        out = [self.labels[i] for i in idx]
        return out[0] if single else out

    def reconstruct(self, spectra, **kwargs) -> XAS | list[XAS]:
        """The autoencoder's reconstruction (a denoised spectrum) as ``XAS`` on the model's grid."""
        from pymatgen.analysis.xas.spectrum import XAS

        x, single = self.vectorize(spectra, **kwargs)
        rec = forward(self.decoder, self._encode_matrix(x))
        grid = self.preprocessing.grid
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = [XAS(grid, row.astype(float), None, "Si", edge="K", spectrum_type="XANES") for row in rec]
        return out[0] if single else out

    def classify(self, spectra, **kwargs) -> dict[str, Any] | list[dict[str, Any]]:
        """Everything about spectra in one pass: label, probabilities, confidence, OOD flag, latent code.

        Returns:
            Dicts with ``label``, ``probabilities``, ``confidence`` (calibrated top probability),
            ``ood`` (bool), ``reconstruction_error`` (MSE on the grid), ``latent_distance``
            (Mahalanobis distance to the nearest class mean), ``latent``, ``model``, ``model_version``.
        """
        x, single = self.vectorize(spectra, **kwargs)
        z = self._encode_matrix(x)
        p = self._proba_matrix(z)
        rec_err, maha = self.ood_scores(x, z)
        flags = self.ood_flags(rec_err, maha)
        out = []
        for i in range(len(x)):
            k = int(p[i].argmax())
            out.append(
                {
                    "label": self.labels[k],
                    "probabilities": dict(zip(self.labels, map(float, p[i]))),
                    "confidence": float(p[i, k]),
                    "ood": bool(flags[i]),
                    "reconstruction_error": float(rec_err[i]),
                    "latent_distance": float(maha[i]),
                    "latent": [float(v) for v in z[i]],
                    "model": self.name,
                    "model_version": self.model_version,
                }
            )
        return out[0] if single else out

    @property
    def model_version(self) -> str:
        """An identifier that changes whenever the weights change."""
        return self.metadata.get("model_version", f"{self.name}-{self.version}")

    def latent_distance(self, z: np.ndarray) -> np.ndarray:
        """Mahalanobis distance (shared covariance) of codes to the nearest class mean."""
        if "class_means" not in self.ood:
            return np.zeros(len(z))
        diff = z[:, None, :] - self.ood["class_means"][None, :, :]
        d2 = np.einsum("ncd,de,nce->nc", diff, self.ood["precision"], diff)
        return np.sqrt(np.clip(d2.min(axis=1), 0, None))

    def ood_scores(self, x: np.ndarray, codes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Reconstruction MSE on the grid and latent Mahalanobis distance of each model-input row."""
        codes = self._encode_matrix(x) if codes is None else codes
        return np.mean((forward(self.decoder, codes) - x) ** 2, axis=1), self.latent_distance(codes)

    def ood_flags(self, reconstruction_error: np.ndarray, latent_distance: np.ndarray) -> np.ndarray:
        """True where a spectrum is unlike the training data (either threshold exceeded)."""
        flags = np.zeros(len(reconstruction_error), dtype=bool)
        if "recon_threshold" in self.ood:
            flags |= reconstruction_error > self.ood["recon_threshold"]
        if "maha_threshold" in self.ood:
            flags |= latent_distance > self.ood["maha_threshold"]
        return flags

    # ------------------------------------------------------------------ training
    @classmethod
    def fit(
        cls, x: np.ndarray, labels: Sequence[str], groups: Sequence[str] | None = None, **kwargs
    ) -> XANESClassifier:
        """Train autoencoder then FNN on preprocessed spectra; see :func:`pymatgen_xanes_nn.training.train`."""
        from pymatgen_xanes_nn.training import train

        return train(x, labels, groups=groups, **kwargs)


def now_iso() -> str:
    """UTC timestamp for model metadata."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
