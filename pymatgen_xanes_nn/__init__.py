"""pymatgen-xanes-nn: interpret K-edge XANES spectra (Si, S) with neural networks.

The runtime library sits at the top: :mod:`~pymatgen_xanes_nn.preprocessing` (the model's energy grid),
:mod:`~pymatgen_xanes_nn.models` (the seed's networks), :mod:`~pymatgen_xanes_nn.classifier`
(:class:`XANESClassifier`), :mod:`~pymatgen_xanes_nn.labels`, :mod:`~pymatgen_xanes_nn.edges` (one definition per
absorption edge) and :mod:`~pymatgen_xanes_nn.jsonio` (files as data). Below it, by role:

* :mod:`~pymatgen_xanes_nn.trust`: OOD scores, conformal sets, the don't-know policy, input quality, evidence;
* :mod:`~pymatgen_xanes_nn.io`: spectrum files, packed task documents and their shards, output schemas;
* :mod:`~pymatgen_xanes_nn.training`: fitting, splits, perturbations, evaluation, metrics;
* :mod:`~pymatgen_xanes_nn.pipeline`: maggma builders and stores, a local server, the atomate add-on;
* :mod:`~pymatgen_xanes_nn.datagen`: structure corpora, substitution, FEFF runs, the dataset card;
* :mod:`~pymatgen_xanes_nn.studies`: the seed's experiments, domain shift, the OOD benchmark, the report;
* :mod:`~pymatgen_xanes_nn.cli`: ``xanes-nn``.
"""

from __future__ import annotations

__version__ = "0.1.0"

#: Public names, imported on first use: `import pymatgen_xanes_nn` stays cheap and never imports TensorFlow.
_LAZY = {
    "XANESClassifier": "pymatgen_xanes_nn.classifier",
    "Preprocessing": "pymatgen_xanes_nn.preprocessing",
    "SpectrumBuilder": "pymatgen_xanes_nn.pipeline.builders",
    "MaterialSpectrumBuilder": "pymatgen_xanes_nn.pipeline.builders",
    "ClassificationBuilder": "pymatgen_xanes_nn.pipeline.builders",
    "Edge": "pymatgen_xanes_nn.edges",
    "get_edge": "pymatgen_xanes_nn.edges",
}
__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
