from __future__ import annotations

import json

import numpy as np
import pytest

from pymatgen_xanes_nn.cli import main
from pymatgen_xanes_nn.io.tasks import pack_tasks
from pymatgen_xanes_nn.studies.experiments import EXPERIMENTS, split
from pymatgen_xanes_nn.training.fit import dataset_for_scheme

from .conftest import fake_task_docs


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("exp") / "tasks.json.gz"
    pack_tasks(fake_task_docs(n_groups=5, sites=2), str(path))
    return str(path)


# the FNN sweeps are 24 Keras fits each (a few seconds of TensorFlow tracing per fit): slow
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in ("dropout", "activations") else n for n in EXPERIMENTS]
)
def test_quick_experiment(name, dataset, tmp_path):
    assert main(["experiment", name, "--quick", "--dataset", dataset, "--output", str(tmp_path)]) == 0
    result = json.loads((tmp_path / f"{name}.json").read_text())
    assert (tmp_path / f"{name}.png").stat().st_size > 5_000
    assert result["quick"] and result["n_spectra"] == 30 and result["settings"]["seeds"] == [0, 1, 2]
    if name == "latent":
        assert np.asarray(result["nn1_code"]).shape == (30, 2) and np.asarray(result["nn2_pca"]).shape == (30, 2)
        assert np.isfinite(result["nn1_code"]).all()
        assert 0 <= result["separability"]["nn1_code"]["mean"] <= 1
        return
    expected = {"autoencoders": 4, "dropout": 4, "activations": 4}[name] * 2  # variants x protocols
    assert len(result["curves"]) == expected
    for curves in result["curves"].values():
        for runs in curves.values():
            arr = np.asarray(runs)
            assert arr.shape == (3, 3) and np.isfinite(arr).all()  # 3 seeds x 3 epochs


def test_split_protocols():
    spectra, _ = dataset_for_scheme("chemsys", fake_task_docs(n_groups=5, sites=2))
    tr, te = split(spectra, "grouped", seed=0)
    groups = np.asarray(spectra.groups)
    assert not set(groups[tr]) & set(groups[te])
    tr, te = split(spectra, "random", seed=0)
    assert len(te) == 6 and not set(tr) & set(te)
    with pytest.raises(ValueError, match="Unknown protocol"):
        split(spectra, "temporal", seed=0)
