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
    from pymatgen_xanes_nn.io.readers import read_xmu

    return read_xmu(diamond_xmu)


def synthetic_edge(e0: float = 1846.0, n: int = 300, lo: float = 1830.0, hi: float = 1895.0):
    """An arctan edge with a white line: energies (eV) and mu."""
    e = np.linspace(lo, hi, n)
    mu = 0.5 + np.arctan((e - e0) / 1.0) / np.pi + 0.8 * np.exp(-((e - e0 - 3) ** 2) / 4.0)
    return e, mu


CENTERS = {"A-Si": 1841.0, "B-Si": 1846.0, "C-Si": 1851.0}


def toy_set(n_per_class=36, seed=0, preprocessing=None, around_e0=False, noise=0.01):
    """Three classes of synthetic edges at different energies; three "sites" per material group.

    ``around_e0``: each spectrum runs from e0 - 16 to e0 + 49 eV (nothing but e0 tells the classes apart once
    aligned); otherwise all share one energy range.
    """
    from pymatgen_xanes_nn.preprocessing import DEFAULT_PREPROCESSING

    preprocessing = preprocessing or DEFAULT_PREPROCESSING
    rng = np.random.default_rng(seed)
    x, labels, groups, raw = [], [], [], []
    for label, center in CENTERS.items():
        for i in range(n_per_class):
            e0 = center + rng.normal(0, 0.6)
            e, mu = synthetic_edge(e0=e0, lo=e0 - 16, hi=e0 + 49) if around_e0 else synthetic_edge(e0=e0)
            mu = mu + rng.normal(0, noise, mu.size)
            raw.append((e, mu))
            x.append(preprocessing.transform_arrays(e, mu))
            labels.append(label)
            groups.append(f"{label}-{i // 3}")
    return np.array(x, np.float32), labels, groups, raw


@pytest.fixture(scope="session")
def toy_model():
    """A small model trained on :func:`toy_set` (seconds)."""
    from pymatgen_xanes_nn.training.fit import train

    x, labels, groups, _ = toy_set()
    return train(x, labels, groups, name="toy", ae_config="NN2", ae_epochs=30, fnn_epochs=40, seed=1,
                 calibration_folds=3)


@pytest.fixture(scope="session")
def toy_model_file(toy_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "toy.json.gz"
    toy_model.to(str(path))
    return str(path)


def task_docs() -> list[dict]:
    """The real FEFF task documents in test_files/tasks."""
    import glob

    from pymatgen_xanes_nn.jsonio import PYMATGEN_CLASSES, read_json

    return [read_json(p, PYMATGEN_CLASSES) for p in sorted(glob.glob(os.path.join(TEST_FILES, "tasks", "*.json.gz")))]


def fake_task_docs(n_groups: int = 6, sites: int = 2, seed: int = 0) -> list[dict]:
    """Task documents in the real schema whose spectra are shifted copies of a real FEFF spectrum.

    Three chemical systems (energy offsets 0, +3, +6 eV) of ``n_groups`` materials each.
    """
    import copy

    rng = np.random.default_rng(seed)
    template = next(d for d in task_docs() if d["task_id"] == "amcsd-789-s0")
    docs = []
    for k, (chemsys, offset) in enumerate([("O-Si", 0.0), ("Mg-O-Si", 3.0), ("C-Si", 6.0)]):
        for g in range(n_groups):
            for s in range(sites):
                d = copy.deepcopy(template)
                rows = np.asarray(d["spectrum"])
                rows[:, 0] += offset + rng.normal(0, 0.3)
                rows[:, 3] *= 1 + rng.normal(0, 0.02)
                d["spectrum"] = rows.tolist()
                d["task_id"] = f"fake-{k}-{g}-s{s}"
                d["metadata"] = dict(d["metadata"], chemsys=chemsys, group_id=f"fg{k}-{g}",
                                     structure_id=f"fake-{k}-{g}", environment=["SiO4", "SiO6", "SiC4"][k])
                docs.append(d)
    return docs


def diamond_si():
    """Diamond Si (Fd-3m, a = 5.431 A): one unique Si site."""
    from pymatgen.core import Lattice, Structure

    return Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.431), ["Si"], [[0, 0, 0]])
