"""mrun pipeline: FEFF task documents -> interpolated spectra -> material spectra -> classifications.

    mrun builders/xanes.py                  # embedded default: shipped dataset, JSON files in ./xanes_nn_output
    XANES_NN_MONGO_URI=mongodb://localhost:27017 mrun builders/xanes.py    # a MongoDB server
    mrun -n 2 builders/xanes.py             # two worker processes

Settings come from the environment; see pymatgen_xanes_nn.builders.ENV_VARS.
"""

from pymatgen_xanes_nn.builders import pipeline_from_env

__builders__ = pipeline_from_env()
