"""Where the package's shipped data lives (read-only: nothing writes into an installed package by default)."""

from __future__ import annotations

import os

DATA_DIR = os.path.join(os.path.dirname(__file__), "data")


def data_path(name: str) -> str:
    """Return the path of a file shipped in ``pymatgen_xanes_nn/data``."""
    return os.path.join(DATA_DIR, name)
