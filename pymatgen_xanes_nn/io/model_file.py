"""The model file format: versions, the class markers a file may carry, array and layer encoding, the checksum.

A model file is data (:mod:`pymatgen_xanes_nn.jsonio` parses it without importing anything); this module turns its
fields into arrays and checks each one, naming the field when it is wrong. :class:`~pymatgen_xanes_nn.classifier.
XANESClassifier` builds itself from what these functions return and validates the rest in its constructor.
"""

from __future__ import annotations

import base64
import hashlib
import platform
from typing import TYPE_CHECKING, Any

import numpy as np

from pymatgen_xanes_nn.errors import XANESError

if TYPE_CHECKING:
    from collections.abc import Sequence

#: Version of the model file format written; files of a major version outside :data:`READABLE_FORMATS` are refused.
#: Format 2 adds the checksum; format 3 the network scores' standardization (``ood.reference``), which format 2 files
#: lack (their scores are used raw, as they were calibrated); format 4 the ensemble's fold networks (``members``,
#: optional: a format 4 file without them reads like format 3).
MODEL_FORMAT = "4"
READABLE_FORMATS = ("2", "3", "4")
#: The only class markers a model file may carry; they are checked, never imported.
MODEL_CLASSES = frozenset({("pymatgen_xanes_nn.classifier", "XANESClassifier"),
                           ("pymatgen_xanes_nn.preprocessing", "Preprocessing")})
#: Arrays of :attr:`XANESClassifier.ood` (the latent Gaussians and the k-NN index), and the keys the flag needs.
OOD_ARRAYS = ("class_means", "precision", "background_mean", "background_precision", "knn_basis", "knn_reference")
OOD_KEYS = (*OOD_ARRAYS, "calibration", "scores", "alpha")
#: The edge index (:class:`~pymatgen_xanes_nn.trust.ood.EdgeIndex`): needed only by models that use ``edge_offset``.
EDGE_ARRAYS = ("edge_basis", "edge_reference", "edge_e0")
#: Accepted OOD significance levels: training picks 0.01-0.05; far below, the flag never fires.
ALPHA_RANGE = (1e-4, 0.5)
#: Accepted softmax temperatures (fitted ones are 0.5-5): below, logits overflow to NaN confidences.
TEMPERATURE_RANGE = (0.01, 100.0)
#: Largest |median| or scale of a network score's reference: a scale of 1e30 would squash every score to 0.
MAX_REFERENCE = 1e6


class IncompatibleModelError(XANESError):
    """A model file written by an incompatible version of pymatgen-xanes-nn."""


class InvalidModelError(XANESError):
    """A model file that is corrupt, tampered with or degenerate; the message names the problem."""


def model_checksum(d: dict[str, Any]) -> str:
    """SHA-256 of a model dict's canonical JSON (every field but ``checksum``): arrays, labels and metadata."""
    import json

    from monty.json import MontyEncoder

    plain = json.loads(json.dumps({k: v for k, v in d.items() if k != "checksum"}, cls=MontyEncoder))
    return hashlib.sha256(json.dumps(plain, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def encode_array(a: np.ndarray) -> dict[str, Any]:
    """An array as the file stores it: float32 bytes in base64, with dtype and shape."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    return {"dtype": "float32", "shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode("ascii")}


def decode_array(d: dict[str, Any] | list | np.ndarray, what: str = "array") -> np.ndarray:
    """The array of an encoded field (or a plain list); :class:`InvalidModelError` names ``what`` if it is not one."""
    if isinstance(d, np.ndarray):
        return np.asarray(d, dtype=np.float32)
    try:
        if isinstance(d, list):
            return np.asarray(d, dtype=np.float32)
        if d.get("dtype") != "float32" or set(d) != {"dtype", "shape", "b64"}:
            raise ValueError(f"expected keys dtype=float32, shape, b64, got {sorted(d)}")
        return np.frombuffer(base64.b64decode(d["b64"], validate=True), dtype=np.float32).reshape(d["shape"]).copy()
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise InvalidModelError(f"Model field {what} is not a valid array: {exc}") from exc


def encode_layers(layers: Sequence[dict]) -> list[dict]:
    """Dense layers (``W``, ``b``, ``activation``) with their arrays encoded."""
    return [{k: (encode_array(v) if k in ("W", "b") else v) for k, v in layer.items()} for layer in layers]


def decode_layers(layers: Sequence[dict], what: str) -> list[dict]:
    """Dense layers of a file: only ``W``, ``b`` and a known ``activation`` per layer, arrays decoded."""
    from pymatgen_xanes_nn.models import ACTIVATIONS

    if not isinstance(layers, (list, tuple)) or not layers:
        raise InvalidModelError(f"Model field {what} must be a non-empty list of layers")
    out = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict) or set(layer) - {"W", "b", "activation"}:
            raise InvalidModelError(f"Model {what} layer {i} must have only W, b and activation")
        if layer.get("activation") not in ACTIVATIONS:
            raise InvalidModelError(
                f"Model {what} layer {i} has unknown activation {layer.get('activation')!r}; "
                f"known: {sorted(ACTIVATIONS)}"
            )
        if ("W" in layer) != ("b" in layer):
            raise InvalidModelError(f"Model {what} layer {i} needs both W and b")
        out.append({k: (decode_array(v, f"{what}[{i}].{k}") if k in ("W", "b") else v) for k, v in layer.items()})
    return out


def check_chain(layers: list[dict], n_in: int, what: str) -> int:
    """Check that dense layers chain from ``n_in`` inputs with finite weights; return the output width."""
    width = n_in
    for i, layer in enumerate(layers):
        if "W" not in layer:
            continue
        w, b = layer["W"], layer["b"]
        if w.ndim != 2 or w.shape[0] != width or b.shape != (w.shape[1],):
            raise InvalidModelError(f"Model {what} layer {i}: weight shape {w.shape} does not follow width {width}")
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise InvalidModelError(f"Model {what} layer {i} has non-finite weights")
        width = w.shape[1]
    return width


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
            and bool(np.isfinite(value)))


def is_positive_number(value: Any) -> bool:
    """A finite number above 0."""
    return is_number(value) and value > 0


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
