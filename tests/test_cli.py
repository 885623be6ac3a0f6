from __future__ import annotations

import json
import os
import re

import pytest

from pymatgen_xanes_nn.cli import main
from pymatgen_xanes_nn.io.tasks import pack_tasks

from .conftest import fake_task_docs, test_file

ROOT = os.path.join(os.path.dirname(__file__), "..")


def test_show(tmp_path, capsys):
    png = tmp_path / "si.png"
    assert main(["show", test_file("feff", "Si_diamond", "xmu.dat"), "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"100 points, range 1838\.\d\d-1893\.\d\d eV, e0 18\d\d\.\d\d eV", out)
    assert png.stat().st_size > 10_000


def test_show_bad_file(tmp_path, capsys):
    (tmp_path / "empty.csv").write_text("")
    assert main(["show", str(tmp_path / "empty.csv")]) == 1  # reported per file; the exit code says one failed
    assert "Empty file" in capsys.readouterr().err


def test_predict_json(toy_model_file, tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("1,2\n")
    # one bad file: the others are still classified, and the exit code says not all were
    assert main(["predict", test_file("feff", "Si_diamond", "xmu.dat"), str(tmp_path / "bad.csv"),
                 "--model", toy_model_file, "--json"]) == 1
    results = json.loads(capsys.readouterr().out)
    assert results[0]["label"] in ("A-Si", "B-Si", "C-Si") and "latent" not in results[0]
    assert "1 points" in results[1]["error"] or "need at least" in results[1]["error"]


@pytest.mark.parametrize("header", ["# Column.1:\n# Column.2: mutrans", "# Column.1: energy eV\n# Column.2: mutrans\n"
                                              "# Element.symbol: Xx"])
def test_a_bad_xdi_header_never_stops_the_batch(toy_model_file, tmp_path, capsys, header):
    rows = "\n".join(f"{1830 + i} {0.1 * i}" for i in range(30))
    (tmp_path / "bad.xdi").write_text(f"#XDI/1.0\n{header}\n#----\n{rows}\n")
    for command in (["predict", "--model", toy_model_file, "--json"], ["show"]):
        code = main([*command, str(tmp_path / "bad.xdi"), test_file("feff", "Si_diamond", "xmu.dat")])
        assert code == 1
        out = capsys.readouterr()
        if command[0] == "predict":
            results = json.loads(out.out)
            assert "error" in results[0] and "Column.1" in results[0]["error"] or "Xx" in results[0]["error"]
            assert results[1]["label"]
        else:
            assert "1838" in out.out and "bad.xdi: error" in out.err


def test_show_prints_what_it_can_of_a_spectrum_outside_the_window(tmp_path, capsys):
    import numpy as np

    from .conftest import synthetic_edge

    e, mu = synthetic_edge(e0=1950.0, lo=1930.0, hi=2000.0)  # edge 100 eV above the model window
    (tmp_path / "far.dat").write_text("# energy mu\n" + "".join(f"{a} {b}\n" for a, b in zip(e, mu)))
    png = tmp_path / "far.png"
    assert main(["show", str(tmp_path / "far.dat"), "--png", str(png)]) == 1
    captured = capsys.readouterr()
    assert re.search(r"300 points, range 1930\.00-2000\.00 eV, e0 195\d\.\d\d eV", captured.out)
    assert "matches no tabulated K edge (e0 195" in captured.out and "no model reads this edge" in captured.err
    assert png.stat().st_size > 10_000
    assert np.isfinite(float(re.search(r"e0 (\S+) eV", captured.out).group(1)))


def test_predict_reads_measured_columns(toy_model_file, tmp_path, capsys):
    import numpy as np

    from .conftest import synthetic_edge

    e, mu = synthetic_edge()
    i0 = np.full_like(e, 1e5)
    (tmp_path / "t.dat").write_text("".join(f"{a} {b} {c}\n" for a, b, c in zip(e, i0, i0 * np.exp(-mu))))
    assert main(["predict", str(tmp_path / "t.dat"), "--model", toy_model_file, "--json"]) == 1  # columns unnamed
    assert "no header naming them" in json.loads(capsys.readouterr().out)[0]["error"]
    assert main(["predict", str(tmp_path / "t.dat"), "--model", toy_model_file, "--json",
                 "--columns", "energy,i0,it"]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    assert result["notes"] == [f"{tmp_path / 't.dat'}: transmission, mu = ln(I0/It)"] and result["label"]
    with pytest.raises(SystemExit):
        main(["predict", str(tmp_path / "t.dat"), "--columns", "energy"])


def test_predict_text(toy_model_file, capsys):
    assert main(["predict", test_file("feff", "Si_diamond", "xmu.dat"), "--model", toy_model_file]) == 0
    assert "confidence" in capsys.readouterr().out


def test_unknown_model(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["predict", test_file("feff", "Si_diamond", "xmu.dat"), "--model", "nonexistent_model"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "'nonexistent_model' is not a file and not one of [" in err and "'si_k_chemsys'" in err


def test_user_errors_are_one_line_and_bugs_keep_their_traceback(monkeypatch, capsys):
    from pymatgen_xanes_nn.cli import user
    from pymatgen_xanes_nn.errors import InputError

    def raising(exc):
        def run(args):
            raise exc
        return run

    monkeypatch.setattr(user, "_cmd_models", raising(InputError("unknown level 7")))
    assert main(["models"]) == 2
    assert capsys.readouterr().err.strip() == "xanes-nn models: error: unknown level 7"
    monkeypatch.setattr(user, "_cmd_models", raising(ValueError("operands could not be broadcast")))
    with pytest.raises(ValueError, match="broadcast"):  # a programming error is not dressed up as bad input
        main(["models"])


def test_invalid_choice():
    with pytest.raises(SystemExit):
        main(["train", "--ae", "NN7"])


def test_train_and_evaluate(tmp_path, capsys):
    dataset = tmp_path / "tasks.json.gz"
    pack_tasks(fake_task_docs(), str(dataset))
    model = tmp_path / "m.json.gz"
    assert main(["train", "--dataset", str(dataset), "--ae-epochs", "3", "--fnn-epochs", "3", "--ae", "NN3",
                 "--fnn", "FNN1", "--keep-prob", "0.6", "--output", str(model), "--name", "tiny",
                 "--calibration-folds", "3"]) == 0
    from pymatgen_xanes_nn.classifier import XANESClassifier

    clf = XANESClassifier.from_file(str(model))
    assert clf.labels == ["C-Si", "Mg-O-Si", "O-Si"] and clf.code_size == 64
    assert clf.metadata["config"]["keep_prob"] == 0.6 and clf.metadata["label_scheme"] == "chemsys"
    assert clf.metadata["metrics"]["out_of_fold"]["folds"] == 3
    assert not os.path.exists(f"{model}.partial.jsonl")  # removed once the model holds every fold's calibration
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--dataset", str(dataset), "--ae-epochs", "2", "--fnn-epochs", "2", "--folds", "2",
                 "--repeats", "1", "--augment", "1", "--calibration-folds", "2", "--output", str(out)]) == 0
    res = json.loads(out.read_text())
    for protocol in ("grouped", "random"):
        summary = res[protocol]["summary"]
        assert set(summary) == {"neural_network", "random_forest", "extra_trees", "knn_cosine", "logistic_regression"}
        assert "shift +2 eV" in summary["random_forest"]
        assert 0 <= summary["random_forest"]["clean"]["accuracy"]["mean"] <= 1
    # grouped folds never share a material
    assert "grouped split" in capsys.readouterr().out
    assert not os.path.exists(f"{out}.partial.jsonl")  # removed once the output holds every fold


def test_evaluate_resumes_from_checkpoint(tmp_path, monkeypatch):
    """Finished folds are kept; a rerun with the same data and options does not train them again."""
    from pymatgen_xanes_nn.training import fit as training
    from pymatgen_xanes_nn.training.evaluation import evaluate
    from pymatgen_xanes_nn.training.fit import dataset_for_scheme

    spectra, classes = dataset_for_scheme("chemsys", fake_task_docs())
    data, ckpt = spectra.labelled(), str(tmp_path / "eval.partial.jsonl")
    kwargs = {"protocol": "grouped", "n_splits": 2, "repeats": 1, "robustness": False, "checkpoint": ckpt,
              "train_kwargs": {"ae_epochs": 1, "fnn_epochs": 1, "ae_config": "NN4", "calibration_folds": 0}}
    first = evaluate(data, classes, **kwargs)
    assert len(open(ckpt).read().splitlines()) == 2
    with open(ckpt, "a") as fh:
        fh.write('{"key": "torn')  # a run killed while writing

    def no_training(*args, **kw):
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr(training, "train", no_training)
    assert evaluate(data, classes, **kwargs)["summary"] == first["summary"]
    # other options are another evaluation: its folds are trained
    with pytest.raises(AssertionError, match="trained again"):
        evaluate(data, classes, **{**kwargs, "n_splits": 3})


def test_readme_commands_match_ci():
    readme = open(os.path.join(ROOT, "README.md")).read()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    setup_and_run, tests = blocks[0].strip(), blocks[1].strip()
    assert setup_and_run.endswith("xanes-nn demo") and len(setup_and_run.splitlines()) == 1
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    assert tests in ci, "the CI must run exactly the README's test command"


def test_simulate_unknown_task_id(tmp_path):
    with pytest.raises(SystemExit, match="task ids not in the corpus: nowhere-s3"):
        main(["simulate", "--task-ids", "amcsd-789-s0", "nowhere-s3", "--output", str(tmp_path / "tasks")])


def test_domain_shift_refuses_with_physics(tmp_path):
    # the benchmark leaves one physics out per model; --with-physics would leak every preset into every model
    with pytest.raises(SystemExit, match="leave one physics out"):
        main(["domain-shift", "--with-physics", "--output", str(tmp_path / "ds.json")])
    assert not (tmp_path / "ds.json").exists()


def test_version_and_defaults_in_help(capsys):
    from pymatgen_xanes_nn import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"xanes-nn {__version__}"
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "for Si K, si_k_environment, with si_k_chemsys's set beside it" in text
    assert "the shift saved by `xanes-nn calibrate --save`" in text


def test_demo_runs_end_to_end(tmp_path, capsys):
    """The README's first command: examples classified, the four builders run on the shipped dataset."""
    from pymatgen_xanes_nn.cli import main

    assert main(["demo", "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    from pymatgen_xanes_nn.paths import data_path

    for example in os.listdir(data_path("examples")):
        assert example in out  # every shipped example was classified
    for builder, collection in [("SpectrumBuilder", "xanes_spectra.json"),
                                ("MaterialSpectrumBuilder", "xanes_materials.json"),
                                ("ClassificationBuilder", "xanes_classifications.json")]:
        assert re.search(rf"{builder} -> {collection}: \d+ built, 0 failed", out) or builder == "SpectrumBuilder"
        assert re.search(rf"{builder} -> {collection}: \d+ built", out), out[-2000:]
    assert json.loads((tmp_path / "out" / "xanes_classifications.json").read_text())


def test_every_command_is_in_exactly_one_group():
    from pymatgen_xanes_nn.cli import GROUPS, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    listed = [c for names in GROUPS.values() for c in names]
    assert sorted(listed) == sorted(sub.choices) and len(set(listed)) == len(listed)
