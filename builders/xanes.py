"""mrun pipeline of a checkout: ``mrun builders/xanes.py`` (the same as ``mrun "$(xanes-nn builders-file)"``).

See pymatgen_xanes_nn/pipeline/mrun_xanes.py for the settings; this file only re-exports its builders.
"""

from pymatgen_xanes_nn.pipeline.mrun_xanes import __builders__  # noqa: F401
