"""``python -m pymatgen_xanes_nn.cli``: the same entry point as ``xanes-nn``."""

import sys

from pymatgen_xanes_nn.cli import main

sys.exit(main())
