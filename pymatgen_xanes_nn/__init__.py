"""pymatgen-xanes-nn: interpret Si K-edge XANES spectra with neural networks.

The pipeline, one module per stage: :mod:`~pymatgen_xanes_nn.corpus` (structures) ->
:mod:`~pymatgen_xanes_nn.simulate` (FEFF10 task documents) -> :mod:`~pymatgen_xanes_nn.preprocessing`
(the model's energy grid) -> :mod:`~pymatgen_xanes_nn.models` (Keras AE + FNN) ->
:mod:`~pymatgen_xanes_nn.classifier` (:class:`XANESClassifier`) -> :mod:`~pymatgen_xanes_nn.builders`
(maggma) -> :mod:`~pymatgen_xanes_nn.cli` (``xanes-nn``).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["XANESClassifier", "Preprocessing", "__version__"]


def __getattr__(name: str):
    # lazy: `import pymatgen_xanes_nn` stays cheap, and never imports TensorFlow
    if name == "XANESClassifier":
        from pymatgen_xanes_nn.classifier import XANESClassifier

        return XANESClassifier
    if name == "Preprocessing":
        from pymatgen_xanes_nn.preprocessing import Preprocessing

        return Preprocessing
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
