from __future__ import annotations

import os

import numpy as np
import pytest

TEST_FILES = os.path.join(os.path.dirname(__file__), "..", "test_files")


def test_file(*parts: str) -> str:
    path = os.path.join(TEST_FILES, *parts)
    assert os.path.exists(path), f"missing fixture {path}"
    return path


test_file.__test__ = False  # not a test


@pytest.fixture
def diamond_xmu() -> str:
    return test_file("feff", "Si_diamond", "xmu.dat")


@pytest.fixture
def diamond_xas(diamond_xmu):
    from pymatgen_xanes_nn.io import read_xmu

    return read_xmu(diamond_xmu)


def synthetic_edge(e0: float = 1846.0, n: int = 300, lo: float = 1830.0, hi: float = 1895.0):
    """An arctan edge with a white line: energies (eV) and mu."""
    e = np.linspace(lo, hi, n)
    mu = 0.5 + np.arctan((e - e0) / 1.0) / np.pi + 0.8 * np.exp(-((e - e0 - 3) ** 2) / 4.0)
    return e, mu
