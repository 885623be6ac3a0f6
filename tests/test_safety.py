"""Untrusted files: model files, spectra and task documents are data; nothing in them runs code."""

from __future__ import annotations

import gzip
import json
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from monty.json import MontyEncoder

from pymatgen_xanes_nn.classifier import IncompatibleModelError, InvalidModelError, XANESClassifier, model_checksum
from pymatgen_xanes_nn.io.model_file import encode_array
from pymatgen_xanes_nn.io.readers import from_task_doc, read_spectrum
from pymatgen_xanes_nn.jsonio import UnsafeDocumentError, loads, read_json
from pymatgen_xanes_nn.preprocessing import SpectrumError

from .conftest import task_docs


@pytest.fixture()
def payload_module(tmp_path, monkeypatch):
    """A module beside the files that records its own import (the attack of issue 16)."""
    sentinel = tmp_path / "payload_ran"
    (tmp_path / "xanes_payload.py").write_text(f"open({str(sentinel)!r}, 'w').write('ran')\nclass Boom:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield sentinel
    sys.modules.pop("xanes_payload", None)


PAYLOAD = {"@module": "xanes_payload", "@class": "Boom"}
LAUNCHPAD = {"@module": "fireworks.core.launchpad", "@class": "LaunchPad", "host": "10.255.255.1", "port": 1}


def _plain(model) -> dict:
    """A deep, JSON-plain copy of a model's dict (tests edit it freely)."""
    return json.loads(json.dumps(model.as_dict()))


def _resigned(d: dict) -> dict:
    d["checksum"] = model_checksum(d)
    return d


def _write(d, path) -> str:
    with gzip.open(path, "wt") as f:
        json.dump(d, f)
    return str(path)


@pytest.mark.parametrize("where", ["preprocessing.version", "metadata.extra", "ood.alpha", "top"])
def test_model_file_naming_a_class_is_refused_and_nothing_imports(toy_model, payload_module, tmp_path, where):
    d = _plain(toy_model)
    if where == "top":
        d["@module"], d["@class"] = PAYLOAD["@module"], PAYLOAD["@class"]
    else:
        field, key = where.split(".")
        d[field][key] = dict(PAYLOAD)
    path = _write(_resigned(d), tmp_path / "evil.json.gz")  # even a valid checksum does not help
    with pytest.raises(InvalidModelError, match="xanes_payload|Not a XANESClassifier"):
        XANESClassifier.from_file(path)
    assert not payload_module.exists() and "xanes_payload" not in sys.modules


def test_model_file_naming_launchpad_opens_no_connection(toy_model, tmp_path):
    d = _plain(toy_model)
    d["preprocessing"]["version"] = dict(LAUNCHPAD)
    with pytest.raises(InvalidModelError, match="LaunchPad"):
        XANESClassifier.from_file(_write(_resigned(d), tmp_path / "lp.json.gz"))


def _tamper(d: dict, case: str) -> None:
    if case == "temperature_negative":
        d["temperature"] = -1.0
    elif case == "temperature_zero":
        d["temperature"] = 0.0
    elif case == "nan_weights":
        w = np.frombuffer(__import__("base64").b64decode(d["fnn"][0]["W"]["b64"]), np.float32).copy()
        w[0] = np.nan
        d["fnn"][0]["W"] = encode_array(w.reshape(d["fnn"][0]["W"]["shape"]))
    elif case == "zero_code_std":
        d["code_std"] = encode_array(np.zeros(d["code_std"]["shape"], np.float32))
    elif case == "missing_ood":
        d["ood"] = {}
    elif case == "unknown_activation":
        d["encoder"][0]["activation"] = "swish_of_doom"
    elif case == "unknown_version":
        d["version"] = "7"
    elif case == "duplicate_labels":
        d["labels"] = [d["labels"][0]] * len(d["labels"])
    elif case == "unknown_field":
        d["exec"] = "import os"
    elif case == "temperature_tiny":
        d["temperature"] = 1e-30
    elif case == "alpha_tiny":
        d["ood"]["alpha"] = 1e-300
    elif case == "reference_huge":
        first = sorted(d["ood"]["reference"])[0]
        d["ood"]["reference"][first] = [0.0, 1e30]
    elif case == "alpha_string":
        d["ood"]["alpha"] = "0.05"
    elif case == "threshold_bool":
        d["conformal"]["thresholds"][0] = True
    elif case == "threshold_nan":
        d["conformal"]["thresholds"][0] = float("nan")
    elif case == "evidence_rule_unknown":
        d["conformal"]["evidence_rule"] = "ask_the_file"
    elif case == "score_unknown":
        d["ood"]["scores"] = ["knn", "mind_reading"]
    elif case == "post_edge_reversed":
        d["preprocessing"]["post_edge"] = [45.0, 25.0]
    elif case == "calibration_unsorted":
        cal = d["ood"]["calibration"]["knn"]
        arr = np.frombuffer(__import__("base64").b64decode(cal["b64"]), np.float32)
        d["ood"]["calibration"]["knn"] = encode_array(arr[::-1])
    elif case in ("edge_e0_nan", "edge_basis_shape"):
        key = "edge_e0" if case == "edge_e0_nan" else "edge_basis"
        arr = np.frombuffer(__import__("base64").b64decode(d["ood"][key]["b64"]), np.float32).copy()
        if case == "edge_e0_nan":
            arr[0] = np.nan
            d["ood"][key] = encode_array(arr)
        else:
            d["ood"][key] = encode_array(arr.reshape(-1, d["ood"][key]["shape"][1])[:10])


@pytest.mark.parametrize("case, error, match", [
    ("temperature_negative", InvalidModelError, "temperature"),
    ("temperature_zero", InvalidModelError, "temperature"),
    ("nan_weights", InvalidModelError, "non-finite weights"),
    ("zero_code_std", InvalidModelError, "code_std must be > 0"),
    ("missing_ood", InvalidModelError, "ood block lacks"),
    ("unknown_activation", InvalidModelError, "unknown activation 'swish_of_doom'"),
    ("unknown_version", IncompatibleModelError, "file format 7"),
    ("duplicate_labels", InvalidModelError, "distinct"),
    ("unknown_field", InvalidModelError, "Unknown model fields"),
    ("temperature_tiny", InvalidModelError, "temperature must be a number in"),
    ("alpha_tiny", InvalidModelError, r"ood\.alpha: Input should be greater than or equal to 0\.0001"),
    ("alpha_string", InvalidModelError, r"ood\.alpha: Input should be a valid number"),
    ("threshold_bool", InvalidModelError, r"conformal\.thresholds\.0: Input should be a valid number"),
    ("threshold_nan", InvalidModelError, r"conformal\.thresholds\.0: Input should be a finite number"),
    ("evidence_rule_unknown", InvalidModelError, r"conformal\.evidence_rule: Input should be 'none'"),
    ("score_unknown", InvalidModelError, r"ood\.scores\.1: Input should be 'reconstruction'"),
    ("reference_huge", InvalidModelError, r"ood\.reference\.\w+: Value error, needs \|median\|"),
    ("post_edge_reversed", InvalidModelError, "post_edge"),
    ("calibration_unsorted", InvalidModelError, "must be sorted"),
    ("edge_e0_nan", InvalidModelError, "edge index is not finite"),
    ("edge_basis_shape", InvalidModelError, "edge index does not match"),
])
def test_degenerate_model_refused_at_load(toy_model, tmp_path, case, error, match):
    d = _plain(toy_model)
    _tamper(d, case)
    path = _write(_resigned(d), tmp_path / f"{case}.json.gz")
    with pytest.raises(error, match=match):
        XANESClassifier.from_file(path)


def test_checksum_catches_swapped_labels(toy_model, tmp_path):
    d = _plain(toy_model)
    d["labels"] = d["labels"][::-1]
    with pytest.raises(InvalidModelError, match="checksum mismatch"):
        XANESClassifier.from_file(_write(d, tmp_path / "swapped.json.gz"))
    del d["checksum"]
    with pytest.raises(InvalidModelError, match="no checksum"):
        XANESClassifier.from_dict(d)
    del d["version"]  # deleting both keys skips nothing
    with pytest.raises(InvalidModelError, match="no version"):
        XANESClassifier.from_dict(d)


def test_round_trip_and_shipped_models_pass_their_checks(toy_model, tmp_path):
    path = str(tmp_path / "m.json.gz")
    toy_model.to(path)
    again = XANESClassifier.from_file(path)
    np.testing.assert_array_equal(again.encoder[0]["W"], toy_model.encoder[0]["W"])
    for name in ("si_k_chemsys", "si_k_environment"):
        assert XANESClassifier.from_pretrained(name).validate().labels


def test_truncated_model_file_names_the_file(toy_model, tmp_path):
    path = tmp_path / "cut.json.gz"
    toy_model.to(str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidModelError, match="cut.json.gz.*truncated or corrupt"):
        XANESClassifier.from_file(str(path))


def test_deeply_nested_json_is_a_clear_error(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(UnsafeDocumentError, match="nested too deeply"):
        loads(deep)
    path = tmp_path / "deep.json"
    path.write_text('{"a": ' + "[" * 200 + "]" * 200 + "}")
    with pytest.raises(UnsafeDocumentError, match="nested deeper than"):
        read_json(str(path))
    with pytest.raises(SpectrumError, match="nested too deeply|nested deeper"):
        (tmp_path / "deep2.json").write_text(deep)
        read_spectrum(str(tmp_path / "deep2.json"))


def test_xas_json_with_payload_in_site_properties_is_refused(payload_module, tmp_path):
    from pymatgen.analysis.xas.spectrum import XAS

    from .conftest import diamond_si, synthetic_edge

    e, mu = synthetic_edge()
    d = XAS(e, mu, diamond_si(), "Si", absorbing_index=0).as_dict()
    d["structure"]["sites"][0]["properties"] = {"magmom": dict(PAYLOAD)}
    path = tmp_path / "evil_xas.json"
    path.write_text(json.dumps(d, cls=MontyEncoder))
    with pytest.raises(SpectrumError, match="refuses to load class 'Boom'"):
        read_spectrum(str(path))
    assert not payload_module.exists()


def test_task_document_with_payload_is_refused(payload_module):
    doc = dict(task_docs()[0])
    doc["structure"] = json.loads(json.dumps(doc["structure"]))
    doc["structure"]["sites"][0]["properties"] = {"x": dict(PAYLOAD)}
    with pytest.raises(SpectrumError, match="refuses to load class"):
        from_task_doc(doc)
    assert not payload_module.exists()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=5),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                    max_leaves=30))
def test_fuzzed_model_fields_never_crash_loading(toy_model, junk):
    """Any JSON value in any field gives a clean InvalidModelError (or loads), never another exception."""
    base = _plain(toy_model)
    for field in ("labels", "preprocessing", "encoder", "fnn", "code_std", "temperature", "ood", "metadata"):
        d = dict(base)
        d[field] = junk
        try:
            XANESClassifier.from_dict(_resigned(d))
        except (InvalidModelError, IncompatibleModelError):
            pass


# ---------------------------------------------------------------------------- builders never stop
def _task_store(docs):
    from pymatgen_xanes_nn.pipeline.stores import DictStore

    store = DictStore(collection_name=f"t{id(docs)}", key="task_id")
    store.connect()
    store.load(docs)  # raw inserts: an upsert would refuse the worst of them
    return store


def _empty(name, key):
    from pymatgen_xanes_nn.pipeline.stores import DictStore

    store = DictStore(collection_name=name, key=key)
    store.connect()
    return store


def _malformed_tasks():
    import copy
    from datetime import datetime, timezone

    good = task_docs()
    now = datetime.now(timezone.utc)
    docs = []
    for d in good:
        d = copy.deepcopy(d)
        d["last_updated"] = now
        docs.append(d)
    no_id = copy.deepcopy(docs[0])
    del no_id["task_id"]
    yesterday = copy.deepcopy(docs[0])
    yesterday.update(task_id="lu-yesterday", last_updated="yesterday")
    integer = copy.deepcopy(docs[1])
    integer["task_id"] = 4242  # atomate numbers its tasks
    dup_a, dup_b = copy.deepcopy(docs[2]), copy.deepcopy(docs[2])
    dup_a["task_id"] = dup_b["task_id"] = "dup-1"
    undated = copy.deepcopy(docs[3])
    undated["task_id"] = "undated"
    del undated["last_updated"]
    return docs, [no_id, yesterday, integer, dup_a, dup_b, undated]


def test_malformed_task_documents_never_stop_the_spectrum_build():
    from pymatgen_xanes_nn.pipeline.builders import SpectrumBuilder

    good, bad = _malformed_tasks()
    tasks, spectra = _task_store(good + bad), _empty("spectra", "task_id")
    builder = SpectrumBuilder(tasks, spectra)
    builder.run()
    docs = {d["task_id"]: d for d in spectra.query()}
    for d in good:
        assert docs[d["task_id"]]["state"] == "successful"
    assert docs[4242]["state"] == "successful" and docs["undated"]["state"] == "successful"
    assert docs["lu-yesterday"]["state"] == "failed" and "not a date: 'yesterday'" in docs["lu-yesterday"]["error"]
    assert docs["dup-1"]["state"] == "failed" and "2 source documents share task_id" in docs["dup-1"]["error"]
    assert builder.n_skipped == 1  # the document without task_id: logged and counted
    # an unchanged rerun does nothing, and the failures stay recorded once
    again = SpectrumBuilder(tasks, spectra)
    assert list(again.get_items()) == []
    # the target key is unique: a second document with the same key cannot be stored
    from pymongo.errors import DuplicateKeyError

    with pytest.raises(DuplicateKeyError):
        spectra.load([{"task_id": "dup-1"}])


def test_repaired_document_is_rebuilt():
    from pymatgen_xanes_nn.pipeline.builders import SpectrumBuilder

    good, bad = _malformed_tasks()
    tasks, spectra = _task_store(good + bad), _empty("spectra2", "task_id")
    SpectrumBuilder(tasks, spectra).run()
    repaired = tasks.query_one({"task_id": "lu-yesterday"})
    repaired["last_updated"] = "2001-01-01T00:00:00"
    tasks.update([repaired])
    SpectrumBuilder(tasks, spectra).run()
    assert spectra.query_one({"task_id": "lu-yesterday"})["state"] == "successful"


def test_fast_mode_never_skips_undated_documents():
    import copy

    from pymatgen_xanes_nn.pipeline.builders import SpectrumBuilder

    good, _ = _malformed_tasks()
    tasks, spectra = _task_store(good), _empty("spectra3", "task_id")
    SpectrumBuilder(tasks, spectra).run()
    late = copy.deepcopy(good[0])
    late["task_id"] = "no-date"
    del late["last_updated"]
    tasks.load([late])
    fast = SpectrumBuilder(tasks, spectra, exhaustive=False)
    assert [d["task_id"] for d in fast.get_items()] == ["no-date"]


def test_multiplicities_that_cancel_give_a_failed_material():
    from datetime import datetime, timezone

    from pymatgen_xanes_nn.pipeline.builders import MaterialSpectrumBuilder

    spectra, materials = _empty("sp", "task_id"), _empty("mat", "structure_id")
    now = datetime.now(timezone.utc)
    spectra.update([{"task_id": f"x-s{i}", "structure_id": "x", "multiplicity": m, "spectrum": [1.0] * 500,
                     "preprocessing_version": "1.0", "state": "successful", "last_updated": now}
                    for i, m in enumerate([2, -2])])
    MaterialSpectrumBuilder(spectra, materials).run()
    doc = materials.query_one({"structure_id": "x"})
    assert doc["state"] == "failed" and "multiplicities must be positive" in doc["error"]


# ---------------------------------------------------------------------------- configuration fails fast
@pytest.mark.parametrize("env, match", [
    ({"XANES_NN_TASKS_FILE": "/no/such/tasks.json.gz"}, "XANES_NN_TASKS_FILE.*no such file"),
    ({"XANES_NN_MODEL": "si_k_chemsyz"}, "XANES_NN_MODEL='si_k_chemsyz'"),
    ({"XANES_NN_EXHAUSTIVE": "maybe"}, "XANES_NN_EXHAUSTIVE='maybe'"),
    ({"XANES_NN_MONGO_URI": "mongodb://127.0.0.1:1/?directConnection=true"}, "did not answer within"),
    ({"XANES_NN_MONGO_URI": "mongodb://127.0.0.1:1", "XANES_NN_MONGO_TIMEOUT_MS": "-3"},
     "MONGO_TIMEOUT_MS=.-3.: Input should be greater than 0"),
    ({"XANES_NN_MODLE": "si_k_chemsys"}, "Unknown setting"),
])
def test_misconfiguration_fails_fast_and_clearly(tmp_path, env, match):
    from pymatgen_xanes_nn.pipeline.builders import ConfigurationError, pipeline_from_env

    with pytest.raises(ConfigurationError, match=match):
        pipeline_from_env({"XANES_NN_OUTPUT": str(tmp_path), **env})
    assert not list(tmp_path.glob("*.json")), "nothing may be written before the settings are checked"


def test_broken_model_file_fails_before_building(tmp_path):
    from pymatgen_xanes_nn.pipeline.builders import ConfigurationError, pipeline_from_env

    bad = tmp_path / "model.json.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ConfigurationError, match="model.json.gz"):
        pipeline_from_env({"XANES_NN_OUTPUT": str(tmp_path / "out"), "XANES_NN_MODEL": str(bad)})


def test_mrun_exits_nonzero_with_one_line_on_bad_settings(tmp_path):
    import os
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    mrun = os.path.join(os.path.dirname(sys.executable), "mrun")
    env = {**os.environ, "XANES_NN_EXHAUSTIVE": "maybe", "XANES_NN_OUTPUT": str(tmp_path)}
    proc = subprocess.run([mrun, os.path.join(root, "builders", "xanes.py")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert "xanes-nn configuration error: XANES_NN_EXHAUSTIVE='maybe'" in proc.stdout + proc.stderr


# ---------------------------------------------------------------------------- bounded inputs, no global state
@pytest.mark.parametrize("energy, match", [
    (np.r_[np.linspace(1830, 1900, 99), 2e6], "span"),
    (np.r_[np.linspace(1830, 1900, 99), 1e12], "span"),
])
def test_energy_typo_is_refused_before_allocation(energy, match):
    from pymatgen_xanes_nn.preprocessing import DEFAULT_PREPROCESSING

    mu = np.linspace(0, 1, energy.size)
    with pytest.raises(SpectrumError, match=match):
        DEFAULT_PREPROCESSING.transform_arrays(energy, mu)


@pytest.mark.parametrize("name", ["spec.json.gz", "xmu.dat.gz", "spec.csv.gz"])
def test_truncated_compressed_spectrum_names_the_file(tmp_path, name):
    data = gzip.compress(("1840 0.1\n" * 2000).encode())
    path = tmp_path / name
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SpectrumError, match=f"{name}.*truncated or corrupt"):
        read_spectrum(str(path))


def test_predict_goes_on_after_a_bad_file_and_exits_nonzero(tmp_path, capsys):
    from pymatgen_xanes_nn.cli import main
    from pymatgen_xanes_nn.paths import data_path

    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00broken")
    good = data_path("examples/SiO2_quartz.csv")
    code = main(["predict", str(bad), good, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and "error" in out[0] and out[1]["label"]


def test_concurrent_reconstruct_leaves_warning_filters_alone(toy_model):
    import threading
    import warnings

    from .conftest import toy_set

    x = toy_set()[0][:4] - 0.5  # negative intensities: XAS would warn inside reconstruct
    before = list(warnings.filters)
    errors, outputs = [], []

    def work():
        try:  # an exception in a thread is otherwise printed and lost: the test would pass
            outputs.extend(len(toy_model.reconstruct(x)) for _ in range(20))
        except Exception as exc:  # noqa: BLE001 - any crash is the failure under test
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and outputs == [4] * 80
    assert warnings.filters == before


@pytest.mark.parametrize("argv, match", [
    (["simulate", "--dataset", "/no/such/dataset.json.gz"], "no such file"),
    (["simulate", "--limit", "-1"], "below 0"),
    (["simulate", "--workers", "0"], "below 1"),
    (["train", "--output", "/no/such/dir/model.json.gz"], "not writable"),
    (["predict", "x.csv", "--shift", "nan"], "not a finite number"),
    (["predict", "x.csv", "--shift", "inf"], "not a finite number"),
    (["predict", "x.csv", "--top", "-2"], "below 1"),
    (["predict", "x.csv", "--model", "."], "is a directory"),
    (["predict", "x.csv", "--smooth", "0"], "not > 0"),
])
def test_bad_options_fail_before_any_work(argv, match, capsys):
    from pymatgen_xanes_nn.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and match in capsys.readouterr().err


def test_truncated_tasks_file_is_a_configuration_error(tmp_path):
    from pymatgen_xanes_nn.io.tasks import pack_tasks
    from pymatgen_xanes_nn.pipeline.builders import ConfigurationError, pipeline_from_env

    path = tmp_path / "tasks.json.gz"
    pack_tasks(task_docs(), str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigurationError, match="tasks.json.gz.*truncated or corrupt"):
        pipeline_from_env({"XANES_NN_OUTPUT": str(tmp_path / "out"), "XANES_NN_TASKS_FILE": str(path)})


def test_two_writers_of_one_json_store_never_share_a_temp_file(tmp_path):
    import threading

    from pymatgen_xanes_nn.pipeline.stores import JSONFileStore

    errors = []

    def write(tag):
        try:
            store = JSONFileStore(str(tmp_path / "xanes_spectra.json"), key="task_id")
            store.connect()
            for i in range(30):
                store.update([{"task_id": f"{tag}-{i}", "x": i}])
        except Exception as exc:  # noqa: BLE001 - any crash is the failure under test
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert json.loads((tmp_path / "xanes_spectra.json").read_text())  # a complete file, not a torn one


def test_show_goes_on_after_a_bad_file(tmp_path, capsys):
    from pymatgen_xanes_nn.cli import main
    from pymatgen_xanes_nn.paths import data_path

    bad = tmp_path / "cut.xmu.dat.gz"
    bad.write_bytes(gzip.compress(b"# x\n1840 0 0 1 0 0\n" * 50)[:40])
    code = main(["show", str(bad), data_path("examples/SiO2_quartz.csv")])
    captured = capsys.readouterr()
    assert code == 1 and "cut.xmu.dat.gz" in captured.err and "truncated or corrupt" in captured.err
    assert "SiO2_quartz.csv: Si K-edge" in captured.out


def test_embedded_output_files_are_read_as_data(tmp_path):
    """maggma's JSONStore hands a last_updated dict to monty's decoder, which imports the module it names."""
    import json
    import sys

    from pymatgen_xanes_nn.jsonio import UnsafeDocumentError
    from pymatgen_xanes_nn.pipeline.stores import JSONFileStore

    (tmp_path / "evil_lu_module.py").write_text("import pathlib; pathlib.Path(__file__).with_suffix('.ran').touch()\n")
    sys.path.insert(0, str(tmp_path))
    try:
        (tmp_path / "xanes_spectra.json").write_text(json.dumps([{"task_id": "a", "last_updated": {
            "@module": "evil_lu_module", "@class": "X", "string": "2020-01-01"}}]))
        with pytest.raises(UnsafeDocumentError, match="evil_lu_module"):
            JSONFileStore(str(tmp_path / "xanes_spectra.json"), key="task_id").connect()
        assert not (tmp_path / "evil_lu_module.ran").exists() and "evil_lu_module" not in sys.modules
    finally:
        sys.path.remove(str(tmp_path))


def test_embedded_store_connect_does_not_rewrite_its_file(tmp_path):
    import os

    from pymatgen_xanes_nn.pipeline.stores import JSONFileStore

    store = JSONFileStore(str(tmp_path / "xanes_spectra.json"), key="task_id")
    store.connect()
    store.update([{"task_id": "a", "x": 1}, {"task_id": "b", "x": 2}, {"task_id": "a", "x": 3}])
    path = tmp_path / "xanes_spectra.json"
    before = os.stat(path).st_mtime_ns
    again = JSONFileStore(str(tmp_path / "xanes_spectra.json"), key="task_id")
    again.connect()
    assert os.stat(path).st_mtime_ns == before  # an unchanged rerun writes nothing
    assert sorted((d["task_id"], d["x"]) for d in again.query()) == [("a", 3), ("b", 2)]  # upsert: last wins


def test_a_model_built_in_memory_is_validated_by_its_constructor(toy_model):
    m = toy_model
    parts = (m.name, m.labels, m.preprocessing, m.encoder, m.decoder, m.fnn, m.code_mean, m.code_std)
    XANESClassifier(*parts, temperature=m.temperature, ood=m.ood, conformal=m.conformal)  # the model itself passes
    with pytest.raises(InvalidModelError, match="ood.alpha"):
        XANESClassifier(*parts, temperature=m.temperature, ood={**m.ood, "alpha": 7.0}, conformal=m.conformal)
    with pytest.raises(InvalidModelError, match="ood block lacks"):
        XANESClassifier(*parts, temperature=m.temperature, ood={}, conformal=m.conformal)


@pytest.mark.parametrize("env, match", [
    ({"XANES_NN_STAGES": "spectra,everything"}, "XANES_NN_STAGES='spectra,everything': use some of spectra"),
    ({"XANES_NN_EXHAUSTIVE": "maybe"}, "XANES_NN_EXHAUSTIVE='maybe': Input should be a valid boolean"),
])
def test_settings_name_the_variable_and_what_it_must_be(env, match):
    from pymatgen_xanes_nn.pipeline.settings import ConfigurationError, PipelineSettings

    with pytest.raises(ConfigurationError, match=match):
        PipelineSettings.from_env(env)


def test_settings_read_the_process_environment_and_parse_types(monkeypatch):
    from pymatgen_xanes_nn.pipeline.settings import ENV_VARS, PipelineSettings

    monkeypatch.setenv("XANES_NN_STAGES", "spectra, materials")
    monkeypatch.setenv("XANES_NN_EXHAUSTIVE", "no")
    monkeypatch.setenv("XANES_NN_MONGO_TIMEOUT_MS", "250")
    s = PipelineSettings.from_env()
    assert s.stages == ("spectra", "materials") and s.exhaustive is False and s.mongo_timeout_ms == 250
    # an explicit env is the whole truth: the process environment does not leak into it
    assert PipelineSettings.from_env({}).stages[-1] == "material_classifications"
    assert set(ENV_VARS) == {f"XANES_NN_{n.upper()}" for n in PipelineSettings.model_fields}
