"""mrun pipeline: FEFF task documents -> interpolated spectra -> material spectra -> classifications.

Installed with the package, so it runs from any folder: ``mrun "$(xanes-nn builders-file)"``. In a checkout,
``mrun builders/xanes.py`` runs the same pipeline.

    mrun "$(xanes-nn builders-file)"        # embedded default: shipped dataset, JSON files in ./xanes_nn_output
    XANES_NN_MONGO_URI=mongodb://localhost:27017 mrun "$(xanes-nn builders-file)"    # a MongoDB server
    mrun -n 2 "$(xanes-nn builders-file)"   # two worker processes

Settings come from the environment; see pymatgen_xanes_nn.pipeline.builders.ENV_VARS. A wrong setting stops here,
before any building, with one line naming it.
"""

import sys

from pymatgen_xanes_nn.pipeline.builders import ConfigurationError, pipeline_from_env

try:
    __builders__ = pipeline_from_env()
except ConfigurationError as exc:
    sys.exit(f"xanes-nn configuration error: {exc}")
