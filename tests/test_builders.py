from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from pymatgen_xanes_nn.pipeline.builders import (
    ClassificationBuilder,
    MaterialSpectrumBuilder,
    SpectrumBuilder,
    pipeline,
    pipeline_from_env,
)
from pymatgen_xanes_nn.pipeline.stores import DictStore, JSONFileStore

from .conftest import task_docs


def _bad_docs(good: dict) -> list[dict]:
    """Documents a real database holds sooner or later: each must fail alone, with a clear error."""
    bad = []
    for task_id, change in [
        ("bad-nospectrum", {"spectrum": []}),
        ("bad-nan", {"spectrum": [[np.nan] * 6] + good["spectrum"][1:]}),
        ("bad-short", {"spectrum": good["spectrum"][:4]}),
        ("bad-edge", {"edge": "L3"}),
        ("bad-feff", {"state": "failed", "error": "FEFF failed (exit code 1)", "spectrum": None}),
    ]:
        d = copy.deepcopy(good)
        d.update(change)
        d["task_id"] = task_id
        bad.append(d)
    fe = copy.deepcopy(good)  # Fe absorber: the structure's site 0 made iron
    fe["task_id"] = "bad-element"
    fe["structure"]["sites"][0]["species"] = [{"element": "Fe", "occu": 1}]
    fe["structure"]["sites"][0]["label"] = "Fe"
    bad.append(fe)
    return bad


@pytest.fixture
def stores():
    docs = task_docs()
    now = datetime.now(timezone.utc)
    for d in docs:
        d["last_updated"] = now
    tasks = DictStore(key="task_id")
    tasks.connect()
    tasks.update(docs + _bad_docs(docs[0]))
    out = {}
    for name, key in [("spectra", "task_id"), ("materials", "structure_id"), ("cls", "task_id"),
                      ("mcls", "structure_id")]:
        out[name] = DictStore(collection_name=name, key=key)
        out[name].connect()
    return tasks, out


def _run(builders):
    for b in builders:
        b.run()


def _pipeline(stores, model, **kwargs):
    tasks, s = stores
    return pipeline(tasks, s["spectra"], s["materials"], s["cls"], s["mcls"], model=model, **kwargs)


def test_pipeline_end_to_end(stores, toy_model_file, toy_model):
    tasks, s = stores
    _run(_pipeline(stores, toy_model_file))
    good = {d["task_id"] for d in task_docs()}
    spectra = {d["task_id"]: d for d in s["spectra"].query()}
    assert {k for k, d in spectra.items() if d["state"] == "successful"} == good
    errors = {k: d["error"] for k, d in spectra.items() if d["state"] == "failed"}
    assert "no spectrum" in errors["bad-nospectrum"]
    assert "NaN" in errors["bad-nan"]
    assert "4 points" in errors["bad-short"]
    assert "Edge is L3" in errors["bad-edge"]
    assert "Absorbing element is Fe" in errors["bad-element"]
    assert "FEFF calculation failed" in errors["bad-feff"]
    doc = spectra["amcsd-789-s0"]
    assert len(doc["spectrum"]) == 500 and np.isfinite(doc["spectrum"]).all()
    assert doc["chemsys"] == "O-Si" and doc["group_id"] and doc["multiplicity"] == 3
    assert doc["preprocessing_version"] == "1.0" and 1830 < doc["e0"] < 1860

    cls = {d["task_id"]: d for d in s["cls"].query()}
    assert set(cls) == good
    for d in cls.values():
        assert d["label"] in toy_model.labels and d["model_version"] == toy_model.model_version
        assert len(d["latent"]) == toy_model.code_size and isinstance(d["ood"], bool)


def test_material_spectrum_is_multiplicity_weighted(stores, toy_model_file):
    tasks, s = stores
    _run(_pipeline(stores, toy_model_file))
    sites = {d["task_id"]: d for d in s["spectra"].query({"structure_id": "mbd-56"})}
    mat = s["materials"].query_one({"structure_id": "mbd-56"})
    w = {k: d["multiplicity"] for k, d in sites.items()}
    expected = sum(w[k] * np.array(sites[k]["spectrum"]) for k in w) / sum(w.values())
    np.testing.assert_allclose(mat["spectrum"], expected, atol=1e-5)
    assert mat["n_sites"] == 2 and sorted(mat["task_ids"]) == sorted(sites)
    assert s["mcls"].query_one({"structure_id": "mbd-56"})["label"]


def test_unchanged_rerun_does_nothing(stores, toy_model_file):
    builders = _pipeline(stores, toy_model_file)
    _run(builders)
    for b in builders:
        assert list(b.get_items()) == [], type(b).__name__


def test_updated_task_is_rebuilt_alone(stores, toy_model_file):
    tasks, s = stores
    builders = _pipeline(stores, toy_model_file)
    _run(builders)
    doc = tasks.query_one({"task_id": "mbd-56-s0"})
    doc["last_updated"] = datetime.now(timezone.utc) + timedelta(seconds=5)
    tasks.update([doc])
    assert [d["task_id"] for d in builders[0].get_items()] == ["mbd-56-s0"]
    builders[0].run()
    assert [d[0]["structure_id"] for d in builders[1].get_items()] == ["mbd-56"]


def test_model_version_change_reclassifies(stores, toy_model_file, toy_model, tmp_path):
    tasks, s = stores
    _run(_pipeline(stores, toy_model_file))
    other = copy.deepcopy(toy_model)
    other.metadata["model_version"] = "toy-v2"
    other.to(str(tmp_path / "v2.json.gz"))
    b = ClassificationBuilder(s["spectra"], s["cls"], model=str(tmp_path / "v2.json.gz"))
    assert len(list(b.get_items())) == len(task_docs())
    b.run()
    assert {d["model_version"] for d in s["cls"].query()} == {"toy-v2"}
    assert list(b.get_items()) == []


def test_failed_documents_and_retry(stores, toy_model_file, caplog):
    tasks, s = stores
    with caplog.at_level("WARNING"):
        _run(_pipeline(stores, toy_model_file))
    bad = s["spectra"].query_one({"task_id": "bad-feff"})
    assert bad["state"] == "failed" and bad["error"] == "FEFF calculation failed: FEFF failed (exit code 1)"
    # a failed FEFF run is an expected outcome: one warning line, no traceback
    feff_logs = [r.getMessage() for r in caplog.records if "FEFF calculation failed" in r.getMessage()]
    assert feff_logs and all("Traceback" not in m and m.startswith("bad-feff") for m in feff_logs)
    n_good = s["spectra"].count({"state": "successful"})
    # fix a broken task without touching its last_updated: only retry_failed picks it up
    fixed = tasks.query_one({"task_id": "bad-nospectrum"})
    fixed["spectrum"] = task_docs()[0]["spectrum"]
    tasks.update([fixed])
    plain = SpectrumBuilder(tasks, s["spectra"])
    assert list(plain.get_items()) == []
    retry = SpectrumBuilder(tasks, s["spectra"], retry_failed=True)
    assert "bad-nospectrum" in {d["task_id"] for d in retry.get_items()}
    retry.run()
    assert s["spectra"].query_one({"task_id": "bad-nospectrum"})["state"] == "successful"
    assert s["spectra"].count({"state": "successful"}) == n_good + 1  # nothing stored was lost


def test_builders_are_msonable(stores, toy_model_file):
    for b in _pipeline(stores, toy_model_file, chunk_size=7):
        d = b.as_dict()
        json.dumps(d, default=str)
        b2 = type(b).from_dict(d)
        assert type(b2) is type(b) and b2.chunk_size == 7


def test_safe_json_store_roundtrip(tmp_path):
    store = JSONFileStore(str(tmp_path / "things.json"), key="task_id")
    store.connect()
    store.update([{"task_id": "a", "x": 1, "last_updated": datetime.now(timezone.utc)}])
    assert [p.name for p in tmp_path.iterdir()] == ["things.json"]  # no temporary file left
    reread = JSONFileStore(str(tmp_path / "things.json"), key="task_id")
    reread.connect()
    assert reread.query_one({"task_id": "a"})["x"] == 1


def test_embedded_default_pipeline(tmp_path, toy_model_file):
    from pymatgen_xanes_nn.io.tasks import pack_tasks

    pack_tasks(task_docs(), str(tmp_path / "tasks.json.gz"))
    env = {"XANES_NN_OUTPUT": str(tmp_path / "out"), "XANES_NN_MODEL": toy_model_file,
           "XANES_NN_TASKS_FILE": str(tmp_path / "tasks.json.gz")}
    _run(pipeline_from_env(env))
    written = json.loads((tmp_path / "out" / "xanes_classifications.json").read_text())
    assert len(written) == len(task_docs()) and all(d["state"] == "successful" for d in written)
    assert len(json.loads((tmp_path / "out" / "xanes_materials.json").read_text())) == 3


def test_material_builder_records_failures(stores):
    tasks, s = stores
    SpectrumBuilder(tasks, s["spectra"]).run()
    doc = s["spectra"].query_one({"task_id": "mbd-56-s1"})
    doc["preprocessing_fingerprint"] = "0123456789abcdef"
    s["spectra"].update([doc])
    MaterialSpectrumBuilder(s["spectra"], s["materials"]).run()
    mat = s["materials"].query_one({"structure_id": "mbd-56"})
    assert mat["state"] == "failed" and "preprocessed differently" in mat["error"]
    assert s["materials"].query_one({"structure_id": "amcsd-789"})["state"] == "successful"


def test_fast_incremental_mode(stores, toy_model_file):
    tasks, s = stores
    full = SpectrumBuilder(tasks, s["spectra"])
    full.run()
    fast = SpectrumBuilder(tasks, s["spectra"], exhaustive=False)
    assert list(fast.get_items()) == []
    assert fast.as_dict()["exhaustive"] is False
    # a fresh document (newer timestamp) is found; an old-stamped new document is only found exhaustively
    fresh = copy.deepcopy(task_docs()[0])
    fresh["task_id"], fresh["last_updated"] = "fresh", datetime.now(timezone.utc) + timedelta(seconds=10)
    old = copy.deepcopy(task_docs()[0])
    old["task_id"], old["last_updated"] = "old-stamp", datetime(2000, 1, 1, tzinfo=timezone.utc)
    tasks.update([fresh, old])
    assert [d["task_id"] for d in fast.get_items()] == ["fresh"]
    assert {d["task_id"] for d in full.get_items()} == {"fresh", "old-stamp"}


def test_spectra_preprocessed_otherwise_are_refused_by_name(stores, toy_model_file):
    """alignment="e0" keeps the version string "1.0": the fingerprint, not the version, tells them apart."""
    from pymatgen_xanes_nn.preprocessing import DEFAULT_PREPROCESSING, Preprocessing

    tasks, s = stores
    aligned = Preprocessing(alignment="e0")
    assert aligned.version == DEFAULT_PREPROCESSING.version and aligned.fingerprint != DEFAULT_PREPROCESSING.fingerprint
    SpectrumBuilder(tasks, s["spectra"], preprocessing=aligned).run()
    doc = s["spectra"].query_one({"task_id": "amcsd-789-s0"})
    assert doc["preprocessing_fingerprint"] == aligned.fingerprint and doc["edge_step"] > 0
    ClassificationBuilder(s["spectra"], s["cls"], model=toy_model_file).run()
    failed = s["cls"].query_one({"task_id": "amcsd-789-s0"})
    assert failed["state"] == "failed"
    assert "alignment 'absolute' vs 'e0'" in failed["error"] and "rebuild the spectra" in failed["error"]


def test_running_builders_leaves_the_root_logger_alone(stores, toy_model_file):
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    for _ in range(2):
        _run(_pipeline(stores, toy_model_file))
    assert root.handlers == handlers and root.level == level  # maggma's run() adds a DEBUG handler per call


def test_readme_documents_every_output_field():
    import os

    from pymatgen_xanes_nn.io.documents import schema_markdown

    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    assert schema_markdown() in readme  # regenerate the README section when a model changes


def test_output_documents_are_validated(stores, toy_model_file):
    from pydantic import ValidationError

    from pymatgen_xanes_nn.io.documents import DOCUMENTS, SpectrumDoc, validated

    _run(_pipeline(stores, toy_model_file))
    _, s = stores
    bookkeeping = {"_id", "last_updated", "state", "_bt", "_process_time"}
    for stage, store in zip(("spectra", "materials", "classifications", "material_classifications"),
                            (s["spectra"], s["materials"], s["cls"], s["mcls"])):
        doc = store.query_one({"state": "successful"})
        model = DOCUMENTS[stage]
        assert set(doc) - bookkeeping <= set(model.model_fields), stage
        model.model_validate({k: v for k, v in doc.items() if k not in bookkeeping})
    spectrum = {k: v for k, v in s["spectra"].query_one({"state": "successful"}).items() if k not in bookkeeping}
    with pytest.raises(ValidationError, match="e0"):
        validated(SpectrumDoc, dict(spectrum, e0="high"))
    with pytest.raises(ValidationError, match="colour"):
        validated(SpectrumDoc, dict(spectrum, colour="blue"))  # an undocumented field never slips in


@pytest.mark.parametrize("multiplicity", [1e30, 0, -2, 2.5, "4", float("nan"), True])
def test_a_bad_multiplicity_fails_its_document_alone(stores, multiplicity):
    tasks, s = stores
    bad = copy.deepcopy(task_docs()[0])
    bad["task_id"], bad["last_updated"] = "bad-multiplicity", datetime.now(timezone.utc)
    bad["metadata"]["multiplicity"] = multiplicity
    tasks.update([bad])
    SpectrumBuilder(tasks, s["spectra"]).run()
    MaterialSpectrumBuilder(s["spectra"], s["materials"]).run()
    doc = s["spectra"].query_one({"task_id": "bad-multiplicity"})
    assert doc["state"] == "failed" and "multiplicity" in doc["error"]
    good = [d["task_id"] for d in task_docs()]
    assert all(s["spectra"].query_one({"task_id": t})["state"] == "successful" for t in good)
    assert s["materials"].query_one({"structure_id": "amcsd-789"})["state"] == "successful"


def test_a_task_claiming_another_materials_structure_is_never_averaged_in(stores):
    tasks, s = stores
    docs = task_docs()
    rogue = copy.deepcopy(next(d for d in docs if d["metadata"]["structure_id"] != "amcsd-789"))
    rogue["task_id"], rogue["last_updated"] = "rogue", datetime.now(timezone.utc)
    rogue["metadata"]["structure_id"] = "amcsd-789"
    tasks.update([rogue])
    SpectrumBuilder(tasks, s["spectra"]).run()
    MaterialSpectrumBuilder(s["spectra"], s["materials"]).run()
    mat = s["materials"].query_one({"structure_id": "amcsd-789"})
    assert mat["state"] == "failed" and "different structures" in mat["error"] and "rogue" in mat["error"]


def test_a_spectrum_that_overflows_is_failed_not_stored_with_nulls(stores):
    tasks, s = stores
    bad = copy.deepcopy(task_docs()[0])
    bad["task_id"], bad["last_updated"] = "overflow", datetime.now(timezone.utc)
    rows = np.asarray(bad["spectrum"], float)
    rows[len(rows) // 3:: 2, 3] = 1e308  # mu alternating with the float limit above the edge
    bad["spectrum"] = rows.tolist()
    tasks.update([bad])
    SpectrumBuilder(tasks, s["spectra"]).run()
    doc = s["spectra"].query_one({"task_id": "overflow"})
    assert doc["state"] == "failed", doc.get("spectrum", [])[:5]
    assert all(np.isfinite(d["spectrum"]).all() for d in s["spectra"].query({"state": "successful"}))


def test_a_task_dated_in_the_future_does_not_freeze_the_fast_mode(stores):
    tasks, s = stores
    fast = SpectrumBuilder(tasks, s["spectra"], exhaustive=False)
    future = copy.deepcopy(task_docs()[0])
    future["task_id"], future["last_updated"] = "future", datetime(2999, 1, 1, tzinfo=timezone.utc)
    tasks.update([future])
    fast.run()
    doc = s["spectra"].query_one({"task_id": "future"})
    assert doc["state"] == "failed" and "future" in doc["error"]
    update = copy.deepcopy(task_docs()[1])
    update["last_updated"] = datetime.now(timezone.utc) + timedelta(seconds=5)
    tasks.update([update])
    assert [d["task_id"] for d in fast.get_items() if "_invalid" not in d] == [update["task_id"]]
