"""docs/RESULTS.md is rendered from result JSON, and the committed one matches the committed JSON."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from pymatgen_xanes_nn.cli import main
from pymatgen_xanes_nn.studies.report import (
    INPUT_CANDIDATES,
    chosen_ablation,
    input_selection,
    load_evaluation,
    render_results,
    robustness_score,
)

ROOT = os.path.join(os.path.dirname(__file__), "..")
RESULTS = os.path.join(ROOT, "docs", "results")


def _summary(clean: float, shifted: float) -> dict:
    return {"neural_network": {"clean": {"accuracy": {"mean": clean, "std": 0.0}},
                               "shift +2 eV": {"accuracy": {"mean": shifted, "std": 0.0}}}}


def test_choice_rule_weighs_robustness(tmp_path):
    """The ablation winner is the best mean over clean and perturbed accuracy, not the best clean one."""
    runs = {"absolute_aug0": _summary(0.80, 0.20), "e0_aug4": _summary(0.70, 0.65)}
    for name, summary in runs.items():
        (tmp_path / f"ablation_chemsys_{name}.json").write_text(json.dumps({"grouped": {"summary": summary}}))
    best = chosen_ablation(str(tmp_path))
    assert (best["alignment"], best["augment"]) == ("e0", 4)
    assert robustness_score(best["summary"]["neural_network"]) == pytest.approx(0.675)


def test_report_from_evaluate_output(tmp_path, capsys):
    """Rendering, on a committed fixture: an `xanes-nn evaluate` output of 30 fake spectra (2 epochs, 2 folds; made
    by the command in test_files/results/README.md). The evaluation itself is tested in test_cli.py."""
    results = tmp_path / "results"
    results.mkdir()
    out = results / "evaluation_chemsys.json"
    shutil.copy(os.path.join(ROOT, "test_files", "results", "evaluation_chemsys.json"), out)
    shutil.copy(out, results / "ablation_chemsys_absolute_aug0.json")
    md = tmp_path / "RESULTS.md"
    assert main(["report", "--results", str(results), "--output", str(md)]) == 0
    text = md.read_text()
    ev = json.loads(out.read_text())
    assert ev["dataset"]["n_spectra"] == 30 and ev["dataset"]["n_groups"] == 15
    rf = ev["grouped"]["summary"]["random_forest"]["clean"]["accuracy"]
    assert f"{100 * rf['mean']:.1f} ± {100 * rf['std']:.1f}" in text  # numbers come from the JSON
    assert "Chosen then: alignment `absolute` with 0 augmentation copies" in text
    assert "random by spectrum (seed's protocol)" in text and "| 92 |" in text
    assert (results / "confusion_chemsys.png").stat().st_size > 5_000
    assert (results / "reliability_chemsys.png").stat().st_size > 5_000
    bins = ev["grouped"]["summary"]["neural_network"]["clean"]["calibration_bins"]
    assert sum(bins["count"]) == 30  # every spectrum predicted once out of fold


def test_committed_report_matches_committed_results():
    ev = load_evaluation(RESULTS, "chemsys")
    assert ev and {"grouped", "random"} <= set(ev), "run xanes-nn evaluate (see RESULTS.md)"
    with open(os.path.join(ROOT, "docs", "RESULTS.md")) as f:
        assert f.read() == render_results(RESULTS), "docs/RESULTS.md is stale: run `xanes-nn report`"


def _fold(clean: float, shifted: float, n: int = 100, fold: int = 0) -> dict:
    return {"repeat": 0, "fold": fold, "n_test": n,
            "neural_network": {"clean": {"accuracy": clean, "n": n}, "shift +2 eV": {"accuracy": shifted, "n": n}}}


def _candidate(tmp_path, name: str, folds: list[dict], alignment: str, e0_input: bool) -> None:
    summary = {k: {"accuracy": {"mean": sum(f["neural_network"][k]["accuracy"] for f in folds) / len(folds)}}
               for k in ("clean", "shift +2 eV")}
    doc = {"preprocessing": {"alignment": alignment},
           "grouped": {"folds": folds, "augment_copies": 4, "train_kwargs": {"e0_input": e0_input},
                       "summary": {"neural_network": summary}}}
    (tmp_path / INPUT_CANDIDATES[name].format(scheme="chemsys")).write_text(json.dumps(doc))


@pytest.mark.parametrize("aligned_clean, chosen", [(0.70, "aligned_e0"), (0.55, "absolute")])
def test_input_choice_takes_the_most_robust_of_the_tied(tmp_path, aligned_clean, chosen):
    """Within one standard error (0.05 at 100 spectra of 50%) the smaller worst drop wins; beyond it the best does."""
    _candidate(tmp_path, "absolute", [_fold(0.80, 0.60, fold=f) for f in range(2)], "absolute", False)
    _candidate(tmp_path, "aligned", [_fold(0.50, 0.50, fold=f) for f in range(2)], "e0", False)
    _candidate(tmp_path, "aligned_e0", [_fold(aligned_clean, aligned_clean, fold=f) for f in range(2)], "e0", True)
    sel = input_selection(str(tmp_path))
    assert sel["chosen"] == chosen
    assert "aligned" not in sel["tied"]


def test_shipped_model_uses_the_chosen_input():
    """The shipped chemsys model reads the input the committed candidate results choose."""
    from pymatgen_xanes_nn import XANESClassifier
    from pymatgen_xanes_nn.training.fit import DEFAULT_AUGMENT_COPIES

    sel = input_selection(RESULTS)
    assert sel is not None, "the input candidates' results are not committed"
    best = sel["candidates"][sel["chosen"]]
    clf = XANESClassifier.from_pretrained("si_k_chemsys")
    assert clf.preprocessing.alignment == best["alignment"]
    assert bool(clf.metadata["config"].get("e0_input", False)) == best["e0_input"]
    assert clf.metadata["config"]["augment_copies"] == best["augment"] == DEFAULT_AUGMENT_COPIES


def test_readme_quotes_the_report():
    """Every 'mean ± std' the README and the development record quote is a number of docs/RESULTS.md."""
    import re

    results = open(os.path.join(ROOT, "docs", "RESULTS.md")).read()
    quoted = []
    for doc in ("README.md", os.path.join("docs", "DEVELOPMENT.md")):
        quoted += re.findall(r"\d+\.\d ± \d+\.\d", open(os.path.join(ROOT, doc)).read())
    assert len(quoted) >= 8
    assert [q for q in quoted if q not in results] == []


def test_domain_shift_section_reports_the_report_half(tmp_path):
    from pymatgen_xanes_nn.studies.report import _domain_shift_section

    def table(acc, rpa):
        return {"dataset": {"n": 80, "accuracy": acc}, "dataset_rpa": {"n": 78, "accuracy": rpa,
                                                                       "accuracy_dataset": acc, "drop": acc - rpa},
                "mean": {"accuracy": rpa, "drop": acc - rpa},
                "mean_physics": {"accuracy": rpa, "drop": acc - rpa} if rpa < 0.8 else {}}

    res = {"n_folds": 5, "n_sites": {"dataset": 160, "dataset_rpa": 156}, "chosen": "white_line", "best": "e0",
           "unshippable": {"e0": "no edge"},
           "candidates": {"shipped": {"overrides": {}, "selection": table(0.9, 0.5), "report": table(0.95, 0.6),
                                      "all": {}},
                          "white_line": {"overrides": {"augment_white_line": 0.5}, "selection": table(0.9, 0.8),
                                         "report": table(0.93, 0.85), "all": {}},
                          "e0": {"overrides": {"preprocessing": {"alignment": "e0"}}, "selection": table(0.9, 0.85),
                                 "report": table(0.9, 0.82), "all": {}}}}
    (tmp_path / "domain_shift_environment.json").write_text(json.dumps(res))
    text = "\n".join(_domain_shift_section(str(tmp_path)))
    assert "| shipped | 95.0 | 60.0 (+35.0) | 35.0 | 35.0 |" in text
    assert "| white_line (selection half's pick) | 93.0 | 85.0 (+8.0) | 8.0 | - |" in text
    assert "| e0 (best on the selection half; may not ship: no edge) | 90.0 |" in text
    assert "dataset 160, dataset_rpa 156" in text and "chemsys" not in text
    assert '`white_line` {"augment_white_line": 0.5}' in text and "`shipped` (none)" in text


def test_derived_comparison_pairs_the_same_real_folds(tmp_path):
    from pymatgen_xanes_nn.studies.report import _derived_section, derived_comparison

    def run(accs):
        folds = [{"repeat": 0, "fold": k, "n_test": 10,
                  "neural_network": {"clean": {"accuracy": a, "balanced_accuracy": a - 0.1}},
                  "random_forest": {"clean": {"accuracy": 0.5, "balanced_accuracy": 0.4}}} for k, a in enumerate(accs)]
        recall = {"O-Si": accs[0], "C-Si": accs[1]}
        return {"folds": folds, "summary": {"neural_network": {"clean": {"per_class_recall": recall}},
                                            "random_forest": {}}, "repeats": 1,
                "augment_copies": 4, "train_kwargs": {"augment_white_line": 0.5, "calibration_folds": 0}}

    without, with_derived = run([0.6, 0.7, 0.5]), run([0.7, 0.8, 0.7])
    table = derived_comparison(without, with_derived)
    assert table["neural_network"]["difference"] == pytest.approx(0.1333, abs=1e-4)
    assert table["random_forest"]["difference"] == 0.0
    other = run([0.7, 0.8, 0.7])
    other["folds"][0]["n_test"] = 11  # another split: no pairing
    with pytest.raises(ValueError, match="same test folds"):
        derived_comparison(without, other)
    (tmp_path / "derived_chemsys_grouped_without.json").write_text(json.dumps({"grouped": without}))
    (tmp_path / "derived_chemsys_grouped_with.json").write_text(
        json.dumps({"grouped": with_derived, "dataset": {"n_derived": 156}}))
    text = "\n".join(_derived_section(str(tmp_path)))
    assert "156 derived spectra added" in text
    assert "| neural network (AE + FNN) | 60.0 | 73.3 | +13.3 ± 3.3 | 50.0 | 63.3 | +13.3 ± 3.3 |" in text
    assert "--augment-white-line 0.5 --calibration-folds 0 [--with-derived]" in text
    assert "network is +23.3 ± 3.3 points against the best baseline (random forest)" in text
    assert "(mean over the folds that hold the class): O-Si 60 -> 70, C-Si 70 -> 80." in text


def test_nested_combination_lines_name_the_choice_and_keep_held_out_first(tmp_path):
    from pymatgen_xanes_nn.studies.report import _nested_lines

    res = {"folds": 3, "chosen": ["knn", "knn", "knn+energy"],
           "nested": {"far: non-spectra": 0.9, "mean": 0.9},
           "all_folds": {"scores": ["knn"], "far: non-spectra": 0.95, "mean": 0.95}}
    (tmp_path / "ood_nested_chemsys.json").write_text(json.dumps(res))
    text = "\n".join(_nested_lines(str(tmp_path), "chemsys"))
    assert "Chosen per fold: knn, knn, knn+energy" in text and "picks `knn` (what to ship)" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows == ["| nested choice (held out) | 0.900 | 0.900 |", "| all folds: knn | 0.950 | 0.950 |"]
    assert _nested_lines(str(tmp_path), "environment") == []


def test_the_seed_numbers_sentence_reads_the_committed_curves(tmp_path):
    import json
    import shutil

    from pymatgen_xanes_nn.studies.report import _seed_numbers_sentence

    src = os.path.join(os.path.dirname(__file__), "..", "docs", "results", "experiments")
    text = " ".join(_seed_numbers_sentence(src))
    assert "match training accuracy, not test accuracy" in text and "keep 0.8: 98-99%" in text
    for name in ("dropout", "activations"):
        shutil.copy(os.path.join(src, f"{name}.json"), tmp_path / f"{name}.json")
    res = json.loads((tmp_path / "dropout.json").read_text())
    for curves in res["curves"].values():
        curves["train_accuracy"] = [[0.5] * len(c) for c in curves["train_accuracy"]]
    (tmp_path / "dropout.json").write_text(json.dumps(res))
    assert "keep 0.8: 50%" in " ".join(_seed_numbers_sentence(str(tmp_path)))


def test_readme_performance_rows_are_the_committed_benchmarks():
    from pymatgen_xanes_nn.studies.report import PERFORMANCE_MARKERS, performance_rows

    readme = open(os.path.join(ROOT, "README.md")).read()
    block = readme.split(PERFORMANCE_MARKERS[0] + "\n")[1].split("\n" + PERFORMANCE_MARKERS[1])[0]
    assert block == performance_rows(os.path.join(ROOT, "benchmarks", "results")), "regenerate the README rows"


def test_readme_model_rows_are_the_shipped_models():
    """The README's model table is regenerated from the model files and the measured results (no drift)."""
    from pymatgen_xanes_nn.studies.report import MODEL_MARKERS, model_rows

    readme = open(os.path.join(ROOT, "README.md")).read()
    block = readme.split(MODEL_MARKERS[0] + "\n")[1].split("\n" + MODEL_MARKERS[1])[0]
    assert block == model_rows(os.path.join(ROOT, "docs", "results")), \
        "regenerate with `xanes-nn report --readme README.md`"


def test_update_readme_rewrites_only_the_generated_blocks(tmp_path):
    from pymatgen_xanes_nn.studies.report import MODEL_MARKERS, update_readme

    readme = tmp_path / "README.md"
    readme.write_text(f"# head\n{MODEL_MARKERS[0]}\nstale row\n{MODEL_MARKERS[1]}\ntail\n")
    assert update_readme(str(readme), os.path.join(ROOT, "docs", "results"), str(tmp_path))
    text = readme.read_text()
    assert "stale row" not in text and "`s_k_oxidation`" in text and text.startswith("# head\n")
    assert text.endswith(f"{MODEL_MARKERS[1]}\ntail\n")
    assert not update_readme(str(readme), os.path.join(ROOT, "docs", "results"), str(tmp_path))  # nothing to do


def test_edge_evaluation_section_puts_the_network_beside_its_baselines(tmp_path):
    from pymatgen_xanes_nn.studies.report import _edge_evaluation_section

    def stats(acc):
        return {k: {"mean": acc, "std": 0.01} for k in ("accuracy", "balanced_accuracy", "macro_f1", "ece")}

    res = {"scheme": "oxidation", "dataset": {"n_spectra": 546, "n_groups": 397},
           "grouped": {"n_splits": 5, "repeats": 1, "summary": {"neural_network": {"clean": stats(0.85)},
                                                                "random_forest": {"clean": stats(0.9)}}}}
    (tmp_path / "evaluation_s_oxidation_grouped.json").write_text(json.dumps(res))
    text = "\n".join(_edge_evaluation_section(str(tmp_path)))
    assert "## S K `oxidation`: network and baselines (grouped split" in text and "546 spectra, 397 groups" in text
    assert "| neural_network | 85.0 ± 1.0 |" in text and "| random_forest | 90.0 ± 1.0 |" in text
    assert _edge_evaluation_section(str(tmp_path / "none")) == []
