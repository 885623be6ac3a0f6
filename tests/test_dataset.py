from __future__ import annotations

import os
import re

import numpy as np
import pytest

from pymatgen_xanes_nn.datagen.card import dataset_summary, suspect_geometries
from pymatgen_xanes_nn.io.readers import from_task_doc
from pymatgen_xanes_nn.io.tasks import load_tasks
from pymatgen_xanes_nn.preprocessing import DEFAULT_PREPROCESSING

ROOT = os.path.join(os.path.dirname(__file__), "..")


def test_shipped_dataset_is_valid():
    docs = load_tasks(include_failed=True, derived=False)
    assert len(docs) > 100
    ids = [d["task_id"] for d in docs]
    assert len(ids) == len(set(ids))
    for d in docs[:: max(1, len(docs) // 40)]:
        if d.get("state") == "failed":
            assert d["error"]
            continue
        assert d["edge"] == "K" and d["spectrum_type"] == "XANES"
        assert d["metadata"]["group_id"] and d["metadata"]["chemsys"]
        vec = DEFAULT_PREPROCESSING.transform(from_task_doc(d))
        assert np.isfinite(vec).all()


def test_card_matches_committed_dataset():
    card = open(os.path.join(ROOT, "docs", "DATASET.md")).read()
    summary = dataset_summary(load_tasks(include_failed=True, derived=False))
    assert f"task documents: {summary['n_documents']} ({summary['n_successful']} successful" in card
    table = card.split("## Sites per chemical system")[1].split("##")[0]
    rows = {m[0]: (int(m[1]), int(m[2])) for m in re.findall(r"\| (\S+) \| (\d+) \| (\d+) \|", table)}
    expected = {c: (summary["chemsys_structures"][c], n) for c, n in summary["chemsys_sites"].items()}
    assert rows == expected
    env_table = card.split("## Sites per Si local environment")[1].split("##")[0]
    envs = {m[0]: int(m[1]) for m in re.findall(r"\| (\S+) \| (\d+) \|", env_table)}
    assert envs == summary["environment_sites"]


def test_architecture_names_exist():
    """The architecture figure is drawn from real names: every module, class and collection exists."""
    import importlib

    text = open(os.path.join(ROOT, "docs", "ARCHITECTURE.md")).read()
    for path, names in re.findall(r"([\w/]+)\.py: ([\w, ]+)", text):
        mod = importlib.import_module(f"pymatgen_xanes_nn.{path.replace('/', '.')}")
        for name in names.split(", "):
            assert hasattr(mod, name.strip()), f"{path}.{name}"
    for path in re.findall(r"([\w/]+)\.py\b", text):
        importlib.import_module(f"pymatgen_xanes_nn.{path.replace('/', '.')}")
    builders_src = open(os.path.join(ROOT, "pymatgen_xanes_nn", "pipeline", "builders.py")).read()
    for collection in ("spectra", "materials", "classifications", "material_classifications"):
        assert f'"{collection}"' in builders_src and f"xanes_{collection}" in text


def test_shards_grow_a_collection_without_rewriting_a_file(tmp_path):
    import copy
    import hashlib

    from pymatgen_xanes_nn.datagen.simulate import DirectorySink
    from pymatgen_xanes_nn.io.tasks import load_collection, shard_files, write_shard

    from .conftest import task_docs

    docs = copy.deepcopy(task_docs()[:3])
    failed = copy.deepcopy(docs[2])
    failed.update(state="failed", error="FEFF failed", spectrum=None)
    run = DirectorySink(str(tmp_path / "run"))
    for d in docs[:2] + [failed]:
        run.write(d)
    data = str(tmp_path / "data")
    first = write_shard([str(tmp_path / "run")], "coll", data_dir=data)
    assert first["documents"] == 3 and first["successful"] == 2
    digest = hashlib.sha256(open(first["shard"], "rb").read()).hexdigest()
    assert write_shard([str(tmp_path / "run")], "coll", data_dir=data)["shard"] is None  # nothing new
    assert len(load_collection("coll", data_dir=data)) == 2
    run.write(docs[2])  # the failed site succeeds on a rerun
    second = write_shard([str(tmp_path / "run")], "coll", data_dir=data)
    assert second["documents"] == 1 and second["shard"] != first["shard"]
    assert shard_files("coll", data) == [first["shard"], second["shard"]]
    assert hashlib.sha256(open(first["shard"], "rb").read()).hexdigest() == digest
    loaded = {d["task_id"]: d for d in load_collection("coll", include_failed=True, data_dir=data)}
    assert len(loaded) == 3 and all(d["state"] == "successful" for d in loaded.values())
    rerun = DirectorySink(str(tmp_path / "rerun"))  # a failed rerun never replaces a stored success
    rerun.write(dict(copy.deepcopy(docs[0]), state="failed", error="FEFF failed", spectrum=None))
    assert write_shard([str(tmp_path / "rerun")], "coll", data_dir=data)["shard"] is None


def test_suspect_geometries():
    from pymatgen.core import Lattice, Structure

    def doc(sid, species, coords):
        s = Structure(Lattice.cubic(6.0), species, coords, coords_are_cartesian=True)
        return {"task_id": f"{sid}-s0", "structure": s.as_dict(), "metadata": {"structure_id": sid}}

    docs = [doc("split", ["Si", "O", "O"], [[0, 0, 0], [1.6, 0, 0], [1.6, 0.9, 0]]),  # O-O 0.9 A
            doc("split", ["Si", "O", "O"], [[0, 0, 0], [1.6, 0, 0], [1.6, 0.9, 0]]),  # a second site: listed once
            doc("silanol", ["Si", "O", "H"], [[0, 0, 0], [1.6, 0, 0], [2.5, 0, 0]])]  # O-H 0.9 A is a real bond
    found = suspect_geometries(docs)
    assert list(found) == ["split"] and found["split"].endswith("O-O 0.90 A")


@pytest.mark.parametrize("filename", ["si_k_tasks_derived.json.gz", "si_k_tasks_derived_relaxed.json.gz"])
def test_derived_documents_carry_provenance(filename):
    from pymatgen_xanes_nn.paths import data_path

    docs = load_tasks(data_path(filename), include_failed=True)
    assert docs, "derived FEFF chunks are committed"
    real_groups = {d["metadata"]["group_id"] for d in load_tasks(derived=False)}
    for d in docs:
        m = d["metadata"]
        assert m["source"] == "derived" and m["parent_structure_id"] and m["substitution"]["route"]
        # a corpus parent's group, or a group of its own for a parent outside the corpus
        assert m["group_id"] in real_groups or m["group_id"].startswith("gx-")
        assert ("relaxed" in filename) == bool(m.get("relaxation"))


def test_the_card_counts_the_relaxed_derived_spectra():
    """docs/DATASET.md is regenerated with every data chunk (`xanes-nn card`): its derived counts are the file's."""
    from pymatgen_xanes_nn.datagen.card import dataset_summary, derived_summary
    from pymatgen_xanes_nn.io.tasks import DERIVED_RELAXED_TASKS_FILE
    from pymatgen_xanes_nn.paths import data_path

    summary = derived_summary(load_tasks(data_path(DERIVED_RELAXED_TASKS_FILE), include_failed=True))
    real = dataset_summary(load_tasks(include_failed=True, derived=False))
    card = open(os.path.join(ROOT, "docs", "DATASET.md")).read()
    assert f"FEFF task documents: {summary['n_documents']} ({summary['n_successful']} successful" in card
    assert sum(summary["routes"].values()) == summary["n_successful"]
    table = card.split("| chemical system | real structures | derived structures | derived sites |")[1].split("\n\n")[0]
    rows = {r.split("|")[1].strip(): [int(v) for v in r.split("|")[2:5]] for r in table.strip().splitlines()[1:]}
    for chemsys, n in summary["chemsys_sites"].items():
        if chemsys in rows:  # the 40 largest systems are listed
            assert rows[chemsys] == [real["chemsys_structures"].get(chemsys, 0),
                                     summary["chemsys_structures"][chemsys], n]
    assert len(rows) == min(40, len(set(real["chemsys_structures"]) | set(summary["chemsys_sites"])))


def test_load_tasks_returns_the_whole_shipped_dataset_real_then_derived():
    from pymatgen_xanes_nn.io.tasks import DERIVED_RELAXED_TASKS_FILE, TASKS_FILE
    from pymatgen_xanes_nn.paths import data_path

    real = load_tasks(derived=False)
    both = load_tasks()
    derived = load_tasks(data_path(DERIVED_RELAXED_TASKS_FILE))
    assert derived and len(both) == len(real) + len(derived)
    assert len(load_tasks(data_path(TASKS_FILE))) == len(real)  # a file is just that file
    assert len(load_tasks(data_path(TASKS_FILE), derived=True)) == len(both)
    assert [d["task_id"] for d in both[:len(real)]] == [d["task_id"] for d in real]
    assert all(d["metadata"]["source"] == "derived" and d["metadata"].get("relaxation") for d in both[len(real):])
    assert not any(d["metadata"].get("source") == "derived" for d in real)


def test_the_s_card_matches_the_committed_s_spectra():
    from collections import Counter

    from pymatgen_xanes_nn.edges import S_K
    from pymatgen_xanes_nn.io.tasks import load_collection

    card = open(os.path.join(ROOT, "docs", "DATASET_S.md")).read()
    docs = load_collection(S_K.tasks_collection, include_failed=True)
    ok = [d for d in docs if d.get("state") != "failed"]
    assert f"task documents: {len(docs)} ({len(ok)} successful" in card, "run: xanes-nn card --element S"
    table = card.split("## Sites per oxidation label")[1].split("##")[0]
    rows = {m[0]: int(m[1]) for m in re.findall(r"\| (\S+) \| (\d+) \|", table)}
    assert rows == {str(k): v for k, v in Counter(d["metadata"].get("oxidation") for d in ok).items()}
