"""docs/RESULTS.md, rendered from the committed JSON outputs of ``xanes-nn evaluate`` and ``experiment``.

Every number in the report comes from a file in ``docs/results/``; the text around the numbers is
fixed. The seed paper's own numbers are the constants below, quoted from its text.

Files read (all optional; a missing one leaves its section out):
    evaluation_<scheme>.json or evaluation_<scheme>_<protocol>.json   ``xanes-nn evaluate``
    ablation_chemsys_<alignment>_aug<n>.json              preprocessing/augmentation ablation
    experiments/<name>.json                               ``xanes-nn experiment all``
"""

from __future__ import annotations

import glob
import json
import os
import re
from typing import Any

import numpy as np

from pymatgen_xanes_nn.edges import DEFAULT_ELEMENT, S_K
from pymatgen_xanes_nn.errors import InputError
from pymatgen_xanes_nn.training.metrics import one_standard_error_choice

#: The seed paper's numbers (Huang et al. 2017), quoted from its text.
SEED_PAPER = {
    "accuracy": 0.92,  # AE NN2 + FNN4, dropout keep 0.8 (abstract, Fig. 9)
    "n_spectra": "more than 500",
    "n_classes": 12,
    "split": "not stated (spectra of one material may sit on both sides)",
    "dropout": {1.0: "~95%", 0.8: "~90%", 0.6: "fluctuating", 0.4: "over 89%"},
    "autoencoders": {"NN1": "converges < 100 epochs", "NN2": "best (chosen)", "NN3": "converges < 100 epochs",
                     "NN4": "converges after ~180 epochs"},
    "activations": {"FNN1": "fluctuates after 200 epochs", "FNN2": "smooth", "FNN3": "-", "FNN4": "best, 92%"},
}
MODEL_NAMES = {"neural_network": "neural network (AE + FNN)", "random_forest": "random forest",
               "knn_cosine": "k-NN (cosine)", "logistic_regression": "logistic regression"}
PROTOCOL_NAMES = {"grouped": "grouped by material (honest)", "random": "random by spectrum (seed's protocol)"}


def _load(path: str) -> dict[str, Any] | None:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _pm(stat: dict[str, float], pct: bool = True) -> str:
    if pct:
        return f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}"
    return f"{stat['mean']:.3g} ± {stat['std']:.2g}"


def load_evaluation(results_dir: str, scheme: str) -> dict[str, Any] | None:
    """The evaluation of ``scheme``: one file with both protocols, or one file per protocol, merged."""
    merged: dict[str, Any] = {}
    for suffix in ("", "_grouped", "_random"):
        data = _load(os.path.join(results_dir, f"evaluation_{scheme}{suffix}.json"))
        if data:
            merged.update(data)
    return merged or None


def perturbed_mean(summary_model: dict[str, Any]) -> float:
    """Mean accuracy over the perturbed test sets (shift, broadening, noise) of one model."""
    vals = [v["accuracy"]["mean"] for k, v in summary_model.items() if k != "clean"]
    return float(np.mean(vals)) if vals else float("nan")


def robustness_score(summary_model: dict[str, Any]) -> float:
    """The preprocessing-choice criterion: mean accuracy over clean and all perturbed test sets."""
    vals = [v["accuracy"]["mean"] for v in summary_model.values()]
    return float(np.mean(vals))


def ablations(results_dir: str, scheme: str = "chemsys") -> list[dict[str, Any]]:
    """The ablation runs of ``scheme``: alignment, augmentation copies and the grouped summary."""
    out = []
    for path in sorted(glob.glob(os.path.join(results_dir, f"ablation_{scheme}_*_aug*.json"))):
        m = re.search(rf"ablation_{scheme}_(\w+?)_aug(\d+)\.json$", path)
        data = _load(path)
        if m and data and "grouped" in data:
            out.append({"alignment": m.group(1), "augment": int(m.group(2)), "file": os.path.basename(path),
                        "refit": bool(data["grouped"].get("train_kwargs", {}).get("refit", False)),
                        "summary": data["grouped"]["summary"]})
    return out


def chosen_ablation(results_dir: str, scheme: str = "chemsys") -> dict[str, Any] | None:
    """The ablation with the best neural-network :func:`robustness_score` (None without ablations)."""
    runs = ablations(results_dir, scheme)
    return max(runs, key=lambda r: robustness_score(r["summary"]["neural_network"])) if runs else None


#: The input candidates of the shipped chemsys model (issue 31): name -> result file (grouped folds, one repeat).
INPUT_CANDIDATES = {"absolute": "derived_{scheme}_grouped_with.json",
                    "aligned": "selection_{scheme}_aligned.json",
                    "aligned_e0": "selection_{scheme}_aligned_e0.json"}


def _fold_criterion(folds: list[dict[str, Any]], model: str = "neural_network") -> np.ndarray:
    """Per fold, the mean accuracy over the clean and all perturbed test sets (:func:`robustness_score` per fold)."""
    return np.array([np.mean([v["accuracy"] for v in f[model].values()]) for f in folds])


def input_selection(results_dir: str, scheme: str = "chemsys") -> dict[str, Any] | None:
    """The choice between the :data:`INPUT_CANDIDATES` on their shared grouped folds (None without all of them).

    Criterion: :func:`robustness_score` of the network over the folds all candidates share; the choice is
    :func:`~pymatgen_xanes_nn.training.metrics.one_standard_error_choice` (the domain-shift benchmark's rule).

    Returns:
        ``{"chosen", "tied", "standard_error", "n_folds", "n_test", "candidates": {name: {file, alignment,
        e0_input, augment, criterion, clean, worst_drop, difference, se}}}``, where ``difference`` and ``se`` are
        the best candidate's criterion minus this one's, paired over the folds, and its standard error.
    """
    runs = {name: _load(os.path.join(results_dir, f.format(scheme=scheme))) for name, f in INPUT_CANDIDATES.items()}
    if not all(r and "grouped" in r for r in runs.values()):
        return None
    # the folds all candidates share, matched by (repeat, fold) and test size (a candidate may have more repeats)
    folds = {name: {(f["repeat"], f["fold"], f["n_test"]): f for f in r["grouped"]["folds"]}
             for name, r in runs.items()}
    shared = sorted(set.intersection(*(set(f) for f in folds.values())))
    if len(shared) < 2:
        raise ValueError(f"the input candidates of {scheme} share fewer than 2 grouped folds")
    crit = {name: _fold_criterion([folds[name][k] for k in shared]) for name in runs}
    best = max(crit, key=lambda n: crit[n].mean())
    out: dict[str, Any] = {"n_folds": len(shared), "candidates": {}}
    for name, r in runs.items():
        nn = [folds[name][k]["neural_network"] for k in shared]
        clean = float(np.mean([f["clean"]["accuracy"] for f in nn]))
        sets = [s for s in nn[0] if s != "clean"]
        paired = _paired(crit[best] - crit[name]) if name != best else {"difference": 0.0, "se": 0.0}
        out["candidates"][name] = {
            "file": INPUT_CANDIDATES[name].format(scheme=scheme),
            "alignment": r.get("preprocessing", {}).get("alignment", "absolute"),
            "e0_input": bool(r["grouped"].get("train_kwargs", {}).get("e0_input", False)),
            "augment": int(r["grouped"].get("augment_copies", 0)),
            "criterion": float(crit[name].mean()), "clean": clean,
            "worst_drop": max([clean - float(np.mean([f[s]["accuracy"] for f in nn])) for s in sets] + [0.0]),
            **paired}
    c = out["candidates"]
    n_best = sum(folds[best][k]["neural_network"]["clean"]["n"] for k in shared)
    out["chosen"], out["tied"], out["standard_error"] = one_standard_error_choice(
        {n: v["criterion"] for n, v in c.items()}, {n: v["worst_drop"] for n, v in c.items()}, c[best]["clean"],
        n_best)
    out["n_test"] = n_best
    return out


def _input_selection_section(results_dir: str, scheme: str = "chemsys") -> list[str]:
    sel = input_selection(results_dir, scheme)
    if not sel:
        return []
    lines = [f"## Input choice of the shipped `{scheme}` model", "",
             f"Grouped split of real crystals (derived spectra train only), the {sel['n_folds']} folds every "
             "candidate shares. `absolute`: FEFF's absolute energies, edge-step normalised (the earlier choice, "
             "below); `aligned`: e0 moved to one reference energy, pre-/post-edge normalised, trained with shift, "
             "broadening, white-line, background-slope and self-absorption augmentation; `aligned_e0`: the same, "
             "with the absolute e0 (the chemical shift) read by the network as a feature. Criterion: mean network "
             "accuracy over the clean and all perturbed test sets; candidates within one binomial standard error "
             f"of the best one's clean accuracy ({sel['standard_error']:.3f}, {sel['n_test']} test spectra) are "
             "tied, and the tie goes to the smallest worst drop (the domain-shift benchmark's rule). The paired "
             "difference column is information, not the rule.", "",
             "| candidate | file | NN clean | criterion | best minus candidate | worst drop | |",
             "|---|---|---:|---:|---:|---:|---|"]
    for name, c in sel["candidates"].items():
        mark = "**chosen**" if name == sel["chosen"] else ("tied" if name in sel["tied"] else "")
        lines.append(f"| {name} | `{c['file']}` | {100 * c['clean']:.1f} | {c['criterion']:.3f} | "
                     f"{c['difference']:.3f} ± {c['se']:.3f} | {100 * c['worst_drop']:.1f} | {mark} |")
    lines += ["", f"The shipped `si_k_{scheme}` model uses `{sel['chosen']}` (checked by the tests).", ""]
    return lines


def _evaluation_section(ev: dict[str, Any], title: str, with_seed: bool) -> list[str]:
    lines = [f"## {title}", ""]
    ds = ev.get("dataset", {})
    if ds:
        lines += [f"{ds['n_spectra']} site spectra of {ds['n_groups']} materials (StructureMatcher families), "
                  f"{len(ds['class_counts'])} classes; "
                  + ", ".join(f"{c} {n}" for c, n in ds["class_counts"].items()) + ".", ""]
    protocols = [p for p in ("grouped", "random") if p in ev]
    first = ev[protocols[0]]
    tk = first.get("train_kwargs", {})
    lines += [f"{first['n_splits']}-fold cross-validation x {first['repeats']} repeats per protocol; "
              f"neural network: autoencoder {tk.get('ae_config', 'NN2')}, FNN {tk.get('fnn_config', 'FNN4')}, "
              f"keep probability {tk.get('keep_prob', 0.8)}, {tk.get('ae_epochs', 200)} + {tk.get('fnn_epochs', 500)} "
              f"epochs, augmentation copies per training spectrum: {first.get('augment_copies', 0)}, "
              f"refit on all training groups after calibration: {'yes' if tk.get('refit') else 'no'}; "
              f"preprocessing alignment `{ev.get('preprocessing', {}).get('alignment', '?')}`. "
              "Accuracy in %, mean ± standard deviation over folds.", ""]
    header = "| model | " + " | ".join(PROTOCOL_NAMES[p] for p in protocols) + " |"
    if with_seed:
        header = "| model | seed paper | " + " | ".join(PROTOCOL_NAMES[p] for p in protocols) + " |"
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    for model, name in MODEL_NAMES.items():
        if model not in first["summary"]:
            continue
        cells = [_pm(ev[p]["summary"][model]["clean"]["accuracy"]) for p in protocols]
        seed = [f"{100 * SEED_PAPER['accuracy']:.0f}" if model == "neural_network" else "-"] if with_seed else []
        lines.append(f"| {name} | " + " | ".join(seed + cells) + " |")
    for p in protocols:
        summ = ev[p]["summary"]
        lines += ["", f"**{PROTOCOL_NAMES[p]}**: all metrics", "",
                  "| model | accuracy | balanced accuracy | macro-F1 | ECE |", "|---|---|---|---|---|"]
        for model, name in MODEL_NAMES.items():
            if model in summ:
                c = summ[model]["clean"]
                lines.append(f"| {name} | {_pm(c['accuracy'])} | {_pm(c['balanced_accuracy'])} | "
                             f"{_pm(c['macro_f1'])} | {c['ece']['mean']:.3f} ± {c['ece']['std']:.3f} |")
    if "grouped" in ev:
        summ = ev["grouped"]["summary"]
        models = [m for m in MODEL_NAMES if m in summ]
        classes = list(summ["neural_network"]["clean"]["per_class_recall"])
        lines += ["", "Per-class recall in %, grouped split (mean over the folds that contain the class):", "",
                  "| class | " + " | ".join(MODEL_NAMES[m] for m in models) + " |", "|---|" + "---|" * len(models)]
        for c in classes:
            lines.append(f"| {c} | " + " | ".join(
                f"{100 * summ[m]['clean']['per_class_recall'].get(c, float('nan')):.0f}" for m in models) + " |")
        sets = [s for s in summ["neural_network"] if s != "clean"]
        if sets:
            lines += ["", "Robustness, grouped split: accuracy in % on perturbed test spectra "
                      "(models trained as above):", "",
                      "| test spectra | " + " | ".join(MODEL_NAMES[m] for m in models) + " |",
                      "|---|" + "---|" * len(models)]
            for s in ["clean", *sets]:
                lines.append(f"| {s} | " + " | ".join(f"{100 * summ[m][s]['accuracy']['mean']:.1f}" for m in models)
                             + " |")
    return lines


def _ablation_section(results_dir: str, scheme: str) -> list[str]:
    runs = ablations(results_dir, scheme)
    if not runs:
        return []
    best = chosen_ablation(results_dir, scheme)
    lines = ["## Preprocessing choice: alignment and augmentation", "",
             "Grouped split, one repeat of 5 folds per setting. `absolute` keeps FEFF's absolute energies (the "
             "seed's choice; the chemical shift is information, but so is any calibration error); `e0` moves each "
             "spectrum's e0 (maximum of the smoothed first derivative) to one reference energy. Augmentation adds "
             "random "
             "experimental-like copies of each training spectrum (shift up to ±2 eV, Gaussian broadening up to "
             "2 eV FWHM, noise SNR 20-200), for the neural network and the baselines alike. "
             "Criterion: mean neural-network accuracy over the clean and all perturbed test sets.", "",
             "| alignment | augmentation copies | NN refit on all | NN clean | NN perturbed (mean) | "
             "NN worst perturbation | best baseline clean | best baseline perturbed (mean) | criterion |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        s = r["summary"]
        nn = s["neural_network"]
        worst = min(((k, v["accuracy"]["mean"]) for k, v in nn.items() if k != "clean"), key=lambda kv: kv[1],
                    default=("-", float("nan")))
        base = {m: s[m] for m in s if m != "neural_network"}
        best_base = max(base, key=lambda m: base[m]["clean"]["accuracy"]["mean"]) if base else None
        bb = (f"{100 * base[best_base]['clean']['accuracy']['mean']:.1f} ({MODEL_NAMES[best_base]})"
              if best_base else "-")
        bbp = f"{100 * perturbed_mean(base[best_base]):.1f}" if best_base else "-"
        mark = " **(chosen)**" if r is best else ""
        lines.append(f"| {r['alignment']} | {r['augment']} | {'yes' if r['refit'] else 'no'} | "
                     f"{_pm(nn['clean']['accuracy'])} | "
                     f"{100 * perturbed_mean(nn):.1f} | {100 * worst[1]:.1f} ({worst[0]}) | {bb} | {bbp} | "
                     f"{100 * robustness_score(nn):.1f}{mark} |")
    lines += ["", f"Chosen then: alignment `{best['alignment']}` with {best['augment']} augmentation copies per "
              "training spectrum; the evaluations below use it. The shipped chemsys model's input now comes from the "
              "input choice above (wider augmentation and the e0 feature, on more data). Caveat: this "
              "choice was made on the same grouped folds whose accuracy is reported below (no nested selection), "
              "so those numbers carry a small selection bias."]
    plain = next((r for r in runs if r["augment"] == 0 and r["alignment"] == best["alignment"]), None)
    if plain:
        s0 = plain["summary"]
        base = max((m for m in s0 if m != "neural_network"), key=lambda m: s0[m]["clean"]["accuracy"]["mean"])
        nn0, b0 = s0["neural_network"]["clean"]["accuracy"], s0[base]["clean"]["accuracy"]
        lead = "leads" if b0["mean"] > nn0["mean"] else "trails"
        lines[-1] += (f" Without augmentation ({best['alignment']} alignment, same folds) the {MODEL_NAMES[base]} "
                      f"{lead} the network: {_pm(b0)} vs {_pm(nn0)}.")
    lines.append("")
    return lines


def _experiment_section(exp_dir: str) -> list[str]:
    lines: list[str] = []
    ae = _load(os.path.join(exp_dir, "autoencoders.json"))
    if ae:
        lines += ["## Table I / Figure 6: autoencoders", "",
                  f"{ae['n_spectra']} spectra, {ae['settings']['ae_epochs']} epochs, seeds "
                  f"{ae['settings']['seeds']}; reconstruction MSE after the last epoch, mean ± std over seeds.", "",
                  "| config | seed paper | training, grouped | held-out, grouped | training, random "
                  "| held-out, random |",
                  "|---|---|---|---|---|---|"]
        for cfg in ("NN1", "NN2", "NN3", "NN4"):
            g, r = ae["final"].get(f"{cfg}|grouped"), ae["final"].get(f"{cfg}|random")
            if g and r:
                lines.append(f"| {cfg} | {SEED_PAPER['autoencoders'][cfg]} | {_pm(g['loss'], False)} | "
                             f"{_pm(g['val_loss'], False)} | {_pm(r['loss'], False)} | {_pm(r['val_loss'], False)} |")
        lines += ["", "![autoencoder training cost](results/experiments/autoencoders.png)", ""]
    lat = _load(os.path.join(exp_dir, "latent.json"))
    if lat:
        sep = lat["separability"]
        lines += ["## Figure 7: the 2-D code", "",
                  f"NN1's 2-D code of all {lat['n_spectra']} spectra, and NN2's 32-D code projected by PCA "
                  f"(first two components explain {100 * sum(lat['nn2_pca_explained']):.0f}% of its variance). "
                  "Separability, as 1-nearest-neighbour accuracy in the 2-D plane with every neighbour from another "
                  f"material: NN1 code {_pm(sep['nn1_code'])}%, NN2 PCA {_pm(sep['nn2_pca'])}%.", "",
                  "![latent scatter](results/experiments/latent.png)", ""]
    for name, title, key, variants in (
        ("dropout", "Figure 8: dropout (keep probability), FNN1", "dropout", ("1.0", "0.8", "0.6", "0.4")),
        ("activations", "Table II / Figure 9: activations, keep 0.8", "activations", ("FNN1", "FNN2", "FNN3", "FNN4")),
    ):
        res = _load(os.path.join(exp_dir, f"{name}.json"))
        if not res:
            continue
        lines += [f"## {title}", "",
                  f"{res['n_spectra']} spectra, AE {res['settings']['ae_epochs']} + FNN "
                  f"{res['settings']['fnn_epochs']} "
                  f"epochs, seeds {res['settings']['seeds']}; accuracy in % after the last epoch on the training "
                  "spectra and on the test spectra (and the best test epoch, which the seed's curves invite reading "
                  "but which is chosen on the test set).", "",
                  "| variant | seed paper | grouped: training | grouped: test | grouped: best test epoch | "
                  "random: training | random: test | random: best test epoch |",
                  "|---|---|---|---|---|---|---|---|"]
        for v in variants:
            g, r = res["final"].get(f"{v}|grouped"), res["final"].get(f"{v}|random")
            if not (g and r):
                continue
            seed = SEED_PAPER[key].get(float(v) if key == "dropout" else v, "-")
            lines.append(f"| {v} | {seed} | {_pm(_last_train(res, v, 'grouped'))} | {_pm(g['test_accuracy'])} | "
                         f"{_pm(g['best_test_accuracy'])} | {_pm(_last_train(res, v, 'random'))} | "
                         f"{_pm(r['test_accuracy'])} | {_pm(r['best_test_accuracy'])} |")
        lines += ["", f"![{name}](results/experiments/{name}.png)", ""]
    lines += _seed_numbers_sentence(exp_dir)
    return lines


def _last_train(res: dict[str, Any], variant: str, protocol: str) -> dict[str, float]:
    """Training accuracy after the last epoch, mean and std over seeds, from the committed curves."""
    curves = np.asarray(res["curves"][f"{variant}|{protocol}"]["train_accuracy"], float)
    return {"mean": float(curves[:, -1].mean()), "std": float(curves[:, -1].std(ddof=1)), "n": len(curves)}


def _seed_numbers_sentence(exp_dir: str) -> list[str]:
    """Which of our curves the seed's accuracies match: training, not test (from the committed curves)."""
    drop = _load(os.path.join(exp_dir, "dropout.json"))
    act = _load(os.path.join(exp_dir, "activations.json"))
    if not (drop and act):
        return []

    def span(res: dict[str, Any], variants: tuple[str, ...], which: str) -> str:
        values = []
        for v in variants:
            for protocol in ("grouped", "random"):
                values.append(100 * (_last_train(res, v, protocol)["mean"] if which == "train"
                                     else res["final"][f"{v}|{protocol}"]["test_accuracy"]["mean"]))
        low, high = f"{min(values):.0f}", f"{max(values):.0f}"
        return f"{low}%" if low == high else f"{low}-{high}%"

    return ["**What the seed's accuracies are.** The seed reports ~95% (keep 1.0), ~90% (keep 0.8) and 92% (FNN4). "
            f"Those are where our networks' *training* accuracy sits after the last epoch (keep 1.0: "
            f"{span(drop, ('1.0',), 'train')}, keep 0.8: {span(drop, ('0.8',), 'train')}, FNN4: "
            f"{span(act, ('FNN4',), 'train')}; grouped and random splits), while their *test* accuracy stays at "
            f"{span(drop, ('1.0', '0.8', '0.6', '0.4'), 'test')} for every dropout setting and "
            f"{span(act, ('FNN1', 'FNN2', 'FNN3', 'FNN4'), 'test')} for every activation set. The seed's numbers match "
            f"training accuracy, not test accuracy. One exception: keep 0.4, where the seed reports over 89% and our "
            f"training accuracy reaches {span(drop, ('0.4',), 'train')}.", ""]


def _differences(ev: dict[str, Any] | None) -> list[str]:
    if not ev or "grouped" not in ev:
        return []
    g = ev["grouped"]["summary"]
    nn_g = g["neural_network"]["clean"]["accuracy"]["mean"]
    lines = ["## Where we differ from the paper, and why", ""]
    ds = ev.get("dataset", {})
    if ds:
        lines.append(f"- **Data.** The seed had {SEED_PAPER['n_spectra']} spectra in {SEED_PAPER['n_classes']} "
                     f"classes; ours are the {ds['n_spectra']} site spectra of the {len(ds['class_counts'])} largest "
                     f"chemical systems among the structures available offline (AMCSD via larixite and "
                     f"matbench_dielectric), {ds['n_groups']} distinct materials.")
    if "random" in ev:
        nn_r = ev["random"]["summary"]["neural_network"]["clean"]["accuracy"]["mean"]
        lines.append(f"- **Split.** On the seed's protocol (random split by spectrum) the network scores "
                     f"{100 * nn_r:.1f}%; split by material it scores {100 * nn_g:.1f}%. The gap is what a random "
                     "split leaks: the symmetry-unique Si sites of one material share most of their surroundings "
                     "(the dataset keeps one structure per StructureMatcher family, so there are no polymorph or "
                     "pressure variants to leak), so "
                     "a random split partly tests memory. Only the grouped number predicts performance on a new "
                     "material.")
    sentence, verdict = _baseline_comparison(ev)
    lines.append("- **Baselines.** " + sentence
                 + ("" if verdict == "beats" else " With a few hundred spectra and thin classes the "
                    "autoencoder's 32-number code carries about what a forest or a nearest-neighbour search "
                    "finds in the full spectrum; the paper had no baseline to show this."))
    ece = {m: g[m]["clean"]["ece"]["mean"] for m in g}
    calibrated = min((m for m in g if m != "neural_network"), key=lambda m: ece[m])
    lines.append(f"- **Calibration.** Out-of-fold ECE of the network {ece['neural_network']:.3f} vs "
                 f"{ece[calibrated]:.3f} for the best-calibrated baseline ({MODEL_NAMES[calibrated]}). "
                 "In these evaluations the temperature was fitted on the ~15% of training materials held out from "
                 "the first networks, a few dozen spectra; the reliability diagram shows in which confidence range "
                 "it misses. The network's probabilities are calibrated only where this ECE says so; the shipped "
                 "models now fit the temperature on out-of-fold scores of every training material (\"Shipped "
                 "models\").")
    lines.append("- **Physics.** Chemical systems such as Fe-Li-O-Si, Co-Li-O-Si and Cr-Li-O-Si share the same "
                 "SiO4 tetrahedra, and a Si K edge sees mostly the first shells: the task is partly ill-posed, which "
                 "the confusion matrix shows. The `si_k_environment` model asks what the edge does encode.")
    return lines + [""]


def _baseline_comparison(ev: dict[str, Any]) -> tuple[str, str]:
    """The network against the best baseline on the grouped folds, paired by fold: (sentence, verdict)."""
    g = ev["grouped"]["summary"]
    best = max((m for m in g if m != "neural_network"), key=lambda m: g[m]["clean"]["accuracy"]["mean"])
    nn_g, best_acc = g["neural_network"]["clean"]["accuracy"]["mean"], g[best]["clean"]["accuracy"]["mean"]
    diffs = np.array([f["neural_network"]["clean"]["accuracy"] - f[best]["clean"]["accuracy"]
                      for f in ev["grouped"]["folds"]])
    se = diffs.std(ddof=1) / np.sqrt(len(diffs)) if len(diffs) > 1 else float("inf")
    verdict = "beats" if diffs.mean() > 2 * se else "loses to" if diffs.mean() < -2 * se else "is level with"
    sentence = (f"On the grouped split the network {verdict} the best baseline ({MODEL_NAMES[best]}): "
                f"{100 * nn_g:.1f}% vs {100 * best_acc:.1f}%, a paired difference of {100 * diffs.mean():+.1f} ± "
                f"{100 * se:.1f} points (standard error over {len(diffs)} folds; the network wins "
                f"{int(np.sum(diffs > 0))}, ties {int(np.sum(diffs == 0))}, loses {int(np.sum(diffs < 0))}).")
    return sentence, verdict


def _models_section() -> list[str]:
    """The shipped models' provenance, out-of-fold calibration, prediction sets and OOD rates (their metadata)."""
    from pymatgen_xanes_nn.classifier import PRETRAINED, XANESClassifier
    from pymatgen_xanes_nn.training.fit import MIN_REPORTED_OUTSIDE

    lines = ["## Shipped models", "",
             "From each model file's metadata. Out of fold: every material scored by networks trained without it "
             "(grouped cross-fitting); the temperature, the conformal thresholds and the OOD calibration are fitted "
             "on these scores, then the shipped networks are trained on all spectra. Its ECE after temperature is "
             "therefore in-sample for the temperature (one parameter); `xanes-nn evaluate` gives held-out figures. "
             "Outside classes: spectra of chemical systems or environments the model has no class for, never "
             "trained on; they should be flagged out of distribution.", "",
             "| model | classes | spectra | out-of-fold accuracy | ECE before -> after temperature | "
             "set coverage (level) | mean set size | OOD flagged: outside classes |",
             "|---|---|---|---|---|---|---|---|"]
    metadata = {name: XANESClassifier.from_pretrained(name) for name in PRETRAINED}
    for name, clf in metadata.items():
        md = clf.metadata
        oof, out = md["metrics"].get("out_of_fold", {}), md["metrics"].get("outside_classes")
        n = sum(md["class_counts"].values())
        acc = f"{100 * oof['accuracy']:.1f}" if oof else "-"
        ece = f"{oof['ece_uncalibrated']:.3f} -> {oof['ece']:.3f}" if oof else "-"
        cov = f"{100 * oof['coverage']:.1f}% ({100 * clf.conformal['level']:.0f}%)" if oof else "-"
        size = f"{oof['mean_set_size']:.2f}" if oof else "-"
        ood_out = f"{100 * out['ood_rate']:.0f}% (n={out['n']})" if out else "-"
        lines.append(f"| `{name}` | {len(md['class_counts'])} | {n} | {acc} | {ece} | {cov} | {size} | {ood_out} |")
    for name, clf in metadata.items():
        by_label = clf.metadata["metrics"].get("outside_classes", {}).get("by_label")
        if by_label:
            lines += ["", f"`{name}`, outside spectra by Si environment (environments with at least "
                      f"{MIN_REPORTED_OUTSIDE} spectra): an unknown silicate looks like a known one to a Si K edge, "
                      "an unknown coordination chemistry should not.", "",
                      "| outside spectra | n | flagged out of distribution |", "|---|---:|---:|"]
            lines += [f"| {kind} | {r['n']} | {100 * r['ood_rate']:.0f}% |" for kind, r in by_label.items()
                      if r["n"] >= MIN_REPORTED_OUTSIDE]
    return [*lines, ""]


def _ood_section(results_dir: str) -> list[str]:
    """The OOD benchmark: AUROC of every score on far, fault and near spectra; flag rates; the quality sweep."""
    from pymatgen_xanes_nn.trust.ood import OOD_SCORES
    from pymatgen_xanes_nn.trust.quality import MAX_EDGE_STEP, MAX_NOISE

    lines: list[str] = []
    for scheme in ("environment", "chemsys"):
        path = os.path.join(results_dir, f"ood_{scheme}.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            res = json.load(f)
        cols = [*OOD_SCORES, "combined"]
        alphas = res["ood_alpha"] if isinstance(res["ood_alpha"], list) else [res["ood_alpha"]]
        level = (f"{alphas[0]}" if len(set(alphas)) == 1 else
                 "the level each fold's training chose (" + ", ".join(f"{a:g}" for a in alphas) + ")")
        lines += [f"## Out of distribution: `{scheme}` ({res['n_folds']} grouped folds)", "",
                  f"`xanes-nn ood-benchmark --scheme {scheme} --output docs/results/ood_{scheme}.json`. AUROC of each "
                  "score (higher: better separated from held-out materials of known classes); `combined` is the "
                  f"Bonferroni p-value of {', '.join(res['combined_scores'])}, flagged below {level}"
                  # runs with the input-quality limits also record accuracy by input quality
                  + (f"; a spectrum past an input-quality limit (points more than {MAX_EDGE_STEP} eV apart near the "
                     f"edge, noise above {MAX_NOISE:.0%} of the edge step) is flagged whatever its p-value"
                     if "quality" in res else "") + ".", "",
                  "| spectra | n | " + " | ".join(cols) + " | flagged |", "|---|---:|" + "---:|" * (len(cols) + 1)]
        for kind, r in res["sets"].items():
            lines.append(f"| {kind} | {r['n']} | " + " | ".join(f"{r['scores'][c]['auroc']:.3f}" for c in cols)
                         + f" | {100 * r['flagged']:.0f}% |")
        loeo = res.get("leave_one_environment_out") or {}
        if loeo:
            lines += ["", "Leave one environment out (networks that never saw it):", "",
                      "| left out | n | " + " | ".join(cols) + " | flagged |", "|---|---:|" + "---:|" * (len(cols) + 1)]
            for name, r in loeo.items():
                lines.append(f"| {name} | {r['n']} | " + " | ".join(f"{r['scores'][c]['auroc']:.3f}" for c in cols)
                             + f" | {100 * r['flagged']:.0f}% |")
        h = res["held_out"]
        wrong = f"{100 * h['dont_know_wrong']:.0f}%" if h["dont_know_wrong"] is not None else "-"
        floors = res.get("confidence_floor")
        reasons = ("OOD, empty set, more than 3 labels or confidence below the floor fitted out of fold ("
                   + ", ".join(f"{t:.2f}" for t in floors) + ")") if floors else "OOD, empty set or more than 3 labels"
        lines += ["", f"Held-out materials (n={h['n']}, accuracy {100 * h['accuracy']:.1f}%): "
                  f"{100 * res['config']['conformal_level']:.0f}% prediction sets cover {100 * h['coverage']:.1f}% "
                  f"with {h['mean_set_size']:.2f} labels on average; \"don't know\" ({reasons}) on "
                  f"{100 * h['dont_know_correct']:.1f}% of correct and {wrong} of wrong predictions; the OOD flag "
                  f"alone on {100 * h['ood_flagged_correct']:.1f}% and "
                  + (f"{100 * h['ood_flagged_wrong']:.0f}%." if h["ood_flagged_wrong"] is not None else "-."), ""]
        lines += _set_lines(results_dir, scheme)
        lines += _combination_lines(results_dir, scheme, res["combined_scores"])
        lines += _nested_lines(results_dir, scheme)
        q = res.get("quality")
        if q:
            lines += ["Input quality (accuracy of the held-out spectra that preprocessing still accepts):", "",
                      "| window kept | " + " | ".join(q["coverage"]) + " |", "|---|" + "---:|" * len(q["coverage"]),
                      "| accuracy | " + " | ".join("-" if r["accuracy_of_scored"] is None else
                                                    f"{100 * r['accuracy_of_scored']:.0f}%"
                                                    for r in q["coverage"].values()) + " |", "",
                      "| points in the window | " + " | ".join(q["points"]) + " |",
                      "|---|" + "---:|" * len(q["points"]),
                      "| accuracy | " + " | ".join("-" if r["accuracy_of_scored"] is None else
                                                    f"{100 * r['accuracy_of_scored']:.0f}%"
                                                    for r in q["points"].values()) + " |", ""]
    return lines


def _set_lines(results_dir: str, scheme: str) -> list[str]:
    """Held-out coverage of each conformal mode (``ood-benchmark --sets-from``), if that analysis was run."""
    path = os.path.join(results_dir, f"ood_sets_{scheme}.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        t = json.load(f)
    lines = [f"Prediction sets and calibration, held out (`xanes-nn ood-benchmark --sets-from` on this run's saved "
             f"probabilities; each fold's temperature and thresholds fitted on the other folds): accuracy "
             f"{100 * t['accuracy']:.1f}% (n={t['n']}), ECE {t['ece_untempered']:.3f} untempered, {t['ece']:.3f} "
             "tempered.", "",
             "| conformal mode | coverage at " + f"{100 * t['level']:.0f}% | mean set size | single-label sets |",
             "|---|---:|---:|---:|"]
    for mode, r in t["modes"].items():
        lines.append(f"| {mode} | {100 * r['coverage']:.1f}% | {r['mean_set_size']:.2f} | "
                     f"{100 * r['singletons']:.0f}% |")
    modes = list(t["modes"])
    per_class = t["modes"][modes[0]]["per_class"]
    lines += ["", "Per class (coverage / mean set size):", "",
              "| class | n | " + " | ".join(modes) + " |", "|---|---:|" + "---:|" * len(modes)]
    for name, r in per_class.items():
        lines.append(f"| {name} | {r['n']} | " + " | ".join(
            f"{100 * t['modes'][m]['per_class'][name]['coverage']:.0f}% / "
            f"{t['modes'][m]['per_class'][name]['mean_set_size']:.1f}" for m in modes) + " |")
    return [*lines, ""]


def _combination_lines(results_dir: str, scheme: str, shipped: list[str]) -> list[str]:
    """The best combinations of OOD scores (``ood-benchmark --combinations-from``) and the one this run used."""
    from pymatgen_xanes_nn.trust.ood import OOD_SCORES

    path = os.path.join(results_dir, f"ood_combinations_{scheme}.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        table = json.load(f)
    sets = [k for k in next(iter(table.values())) if k != "mean" and not k.startswith("loeo")]
    ranked = sorted(table, key=lambda c: -table[c]["mean"])
    used = "+".join(k for k in OOD_SCORES if k in shipped)
    rows = ranked[:5] + ([used] if used in table and used not in ranked[:5] else [])
    lines = ["", f"Combinations of up to 3 scores (`xanes-nn ood-benchmark --combinations-from` on this run's saved "
             f"scores, {len(table)} combinations; rank by the mean AUROC over the sets):", "",
             "| rank | scores | mean | " + " | ".join(k.split(": ")[-1] for k in sets) + " |",
             "|---:|---|---:|" + "---:|" * len(sets)]
    for c in rows:
        lines.append(f"| {ranked.index(c) + 1} | {c}{' (this run)' if c == used else ''} | {table[c]['mean']:.3f} | "
                     + " | ".join(f"{table[c][k]:.3f}" for k in sets) + " |")
    return [*lines, ""]


def _nested_lines(results_dir: str, scheme: str) -> list[str]:
    """The score combination chosen by nested folds (``ood-benchmark --nested-from``) against the one this run used."""
    res = _load(os.path.join(results_dir, f"ood_nested_{scheme}.json"))
    if not res:
        return []
    sets = [k for k in res["nested"] if k != "mean"]
    rows = [("nested choice (held out)", res["nested"]),
            (f"all folds: {'+'.join(res['all_folds']['scores'])}", res["all_folds"])]
    if "shipped" in res:
        rows.append((f"this run: {'+'.join(res['shipped']['scores'])}", res["shipped"]))
    lines = ["", f"Nested choice of the combination (`xanes-nn ood-benchmark --scheme {scheme} --nested-from "
             f"SCORES.npz --output docs/results/ood_nested_{scheme}.json`): for each of the {res['folds']} folds the "
             "combination with the best mean AUROC on the other folds (and the leave-one-environment-out runs, "
             "which are not nested) scores the fold. Chosen per fold: " + ", ".join(res["chosen"])
             + f". The same rule on all folds picks `{'+'.join(res['all_folds']['scores'])}` (what to ship); its row "
             "below is in-sample for the choice, the first row is not.", "",
             "| combination | mean | " + " | ".join(k.split(": ", 1)[-1] for k in sets) + " |",
             "|---|---:|" + "---:|" * len(sets)]
    for name, row in rows:
        lines.append(f"| {name} | {row['mean']:.3f} | " + " | ".join(
            f"{row[k]:.3f}" if k in row else "-" for k in sets) + " |")
    return [*lines, ""]


def derived_comparison(without: dict[str, Any], with_derived: dict[str, Any],
                       metric: str = "accuracy") -> dict[str, dict[str, float]]:
    """Per model: ``metric`` without and with the derived training data on the same real test folds, paired.

    Raises:
        ValueError: if the two evaluations' test folds differ (other seeds, fold counts or real spectra).
    """
    key = [(f["repeat"], f["fold"], f["n_test"]) for f in without["folds"]]
    if key != [(f["repeat"], f["fold"], f["n_test"]) for f in with_derived["folds"]]:
        raise InputError("The evaluations with and without derived data were not run on the same test folds")
    out = {}
    for model in without["summary"]:
        a = np.array([f[model]["clean"][metric] for f in without["folds"]])
        b = np.array([f[model]["clean"][metric] for f in with_derived["folds"]])
        out[model] = {"without": float(a.mean()), "with": float(b.mean()), **_paired(b - a)}
    return out


def _paired(diff: np.ndarray) -> dict[str, float]:
    """Mean of paired per-fold differences and its standard error."""
    return {"difference": float(diff.mean()),
            "se": float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("inf")}


def _recipe_flags(result: dict[str, Any]) -> str:
    """The ``xanes-nn evaluate`` options of a result's recipe that differ from the defaults."""
    from pymatgen_xanes_nn.training.fit import DEFAULT_AUGMENT_COPIES, TrainingConfig

    kw, default = result.get("train_kwargs", {}), TrainingConfig()
    copies = result.get("augment_copies", DEFAULT_AUGMENT_COPIES)
    flags = [f"--augment {copies}"] if copies != DEFAULT_AUGMENT_COPIES else []
    if kw.get("augment_white_line", default.augment_white_line) != default.augment_white_line:
        flags.append(f"--augment-white-line {kw['augment_white_line']:g}")
    if kw.get("calibration_folds", default.calibration_folds) != default.calibration_folds:
        flags.append(f"--calibration-folds {kw['calibration_folds']}")
    return " ".join(flags)


def _derived_section(results_dir: str) -> list[str]:
    """Evaluation on real crystals only, trained with and without the derived structures (issue 14).

    Reads the pair ``derived_<scheme>_<protocol>_without.json`` / ``..._with.json``: one recipe, one code version,
    the same real test folds.
    """
    lines: list[str] = []
    for scheme in ("chemsys", "environment"):
        for protocol in ("grouped", "random"):
            without = _load(os.path.join(results_dir, f"derived_{scheme}_{protocol}_without.json"))
            with_derived = _load(os.path.join(results_dir, f"derived_{scheme}_{protocol}_with.json"))
            if not (without and with_derived and protocol in without and protocol in with_derived):
                continue
            a, b = without[protocol], with_derived[protocol]
            accuracy, balanced = derived_comparison(a, b), derived_comparison(a, b, "balanced_accuracy")
            n = with_derived.get("dataset", {}).get("n_derived")
            flags = _recipe_flags(b)
            lines += [f"## Derived training data: `{scheme}`, {PROTOCOL_NAMES[protocol]}", "",
                      f"`xanes-nn evaluate --scheme {scheme} --protocols {protocol} --repeats {b['repeats']} "
                      f"{flags + ' ' if flags else ''}[--with-derived]`: the same test folds of real crystals "
                      "(derived structures train, never test"
                      + (", and never train beside their tested parent" if protocol == "grouped" else
                         "; under the random split a tested spectrum's derived relatives may train, as its "
                         "sibling sites do") + ")"
                      + (f"; {n} derived spectra added" if n is not None else "") + ". In %, paired difference "
                      "with its standard error over folds.", "",
                      "| model | accuracy without | with derived | difference | balanced without | with derived "
                      "| difference |", "|---|---:|---:|---:|---:|---:|---:|"]
            lines += [f"| {MODEL_NAMES.get(m, m)} | {100 * r['without']:.1f} | {100 * r['with']:.1f} | "
                      f"{100 * r['difference']:+.1f} ± {100 * r['se']:.1f} | {100 * balanced[m]['without']:.1f} | "
                      f"{100 * balanced[m]['with']:.1f} | {100 * balanced[m]['difference']:+.1f} ± "
                      f"{100 * balanced[m]['se']:.1f} |" for m, r in accuracy.items()]
            baselines = [m for m in accuracy if m != "neural_network"]
            if "neural_network" in accuracy and baselines:
                best = max(baselines, key=lambda m: accuracy[m]["with"])
                ahead = _paired(np.array([f["neural_network"]["clean"]["accuracy"] - f[best]["clean"]["accuracy"]
                                          for f in b["folds"]]))
                lines += ["", f"With the derived data the network is {100 * ahead['difference']:+.1f} ± "
                              f"{100 * ahead['se']:.1f} points against the best baseline "
                              f"({MODEL_NAMES.get(best, best)}), paired over the same folds."]
            recall = [r["summary"].get("neural_network", {}).get("clean", {}).get("per_class_recall") for r in (a, b)]
            if all(recall):
                pairs = (f"{c} {100 * v:.0f} -> {100 * recall[1].get(c, np.nan):.0f}" for c, v in recall[0].items())
                lines += ["", "Network recall per class in %, without -> with derived (mean over the folds that "
                              "hold the class): " + ", ".join(pairs) + "."]
            lines.append("")
    return lines


def _domain_shift_section(results_dir: str) -> list[str]:
    """The domain-shift benchmark: accuracy on the same sites computed with other FEFF physics, per augmentation."""
    import glob

    lines: list[str] = []
    for path in sorted(glob.glob(os.path.join(results_dir, "domain_shift_*.json"))):
        res = _load(path)
        if not res or "candidates" not in res:
            continue
        scheme = res.get("scheme") or os.path.basename(path)[len("domain_shift_"):-len(".json")]
        edge = res.get("element", DEFAULT_ELEMENT)
        shifts = [k for k in res["n_sites"] if k != "dataset"]
        command = res.get("command") or (f"xanes-nn domain-shift --scheme {scheme} --folds {res['n_folds']} "
                                         f"--output docs/results/{os.path.basename(path)}")
        lines += [f"## Domain shift: {edge} K `{scheme}` ({res['n_folds']} grouped folds; "
                  f"`{os.path.basename(path)}`)", "",
                  f"`{command}`. "
                  "Models trained on the `dataset` FEFF physics classify held-out sites computed again with "
                  "other physics (`xanes-nn physics-variants`: no core hole, RPA screening, Dirac-Hara exchange) "
                  "or perturbed as a beamline would (broadened: Gaussian FWHM in eV; shifted in eV; white line "
                  "scaled; background slope in edge steps per eV; curved background in edge steps at 50 eV; "
                  "sharpened by an unsharp mask of this FWHM; fluorescence self-absorption of this strength; "
                  "noise at this signal-to-noise ratio): accuracy in % and, in brackets, the drop in "
                  "points against the same sites' `dataset` spectra. Sites per set: "
                  + ", ".join(f"{k} {n}" for k, n in res["n_sites"].items())
                  + ". The recipe is chosen on one half of the sites (alternate picks) and reported here on "
                  "the other half; `shipped` is today's recipe. Recipes (overrides of the shipped one): "
                  + "; ".join(f"`{name}` {json.dumps(c['overrides']) if c['overrides'] else '(none)'}"
                              for name, c in res["candidates"].items()) + ".", ""]
        if len(shifts) > 12:  # the experiment-like suite: a row per perturbation, a column per recipe
            names = list(res["candidates"])
            lines += ["| report half | " + " | ".join(
                          f"{n}{' (pick)' if n == res['chosen'] else ''}" for n in names) + " |",
                      "|---|" + "---:|" * len(names)]
            for k in ["dataset", *shifts, "mean", "mean_physics"]:
                cells = []
                for n in names:
                    t = res["candidates"][n]["report"].get(k) or {}
                    cells.append("-" if "accuracy" not in t and "drop" not in t else
                                 f"{100 * t['accuracy']:.1f}" if k == "dataset" else
                                 f"drop {100 * t['drop']:.1f}" if k.startswith("mean") else
                                 f"{100 * t['accuracy']:.1f} ({100 * t['drop']:+.1f})")
                lines.append(f"| {k} | " + " | ".join(cells) + " |")
            lines.append("")
            continue
        lines += ["| recipe (report half) | dataset | " + " | ".join(shifts) + " | mean drop | physics drop |",
                  "|---|---:|" + "---:|" * (len(shifts) + 2)]
        for name, tables in res["candidates"].items():
            t = tables["report"]
            cells = [f"{100 * t[k]['accuracy']:.1f} ({100 * t[k]['drop']:+.1f})" if k in t else "-" for k in shifts]
            mark = (" (selection half's pick)" if name == res["chosen"] else
                    f" (best on the selection half; may not ship: {res['unshippable'][name]})"
                    if name in res.get("unshippable", {}) and name == res.get("best") else "")
            physics = f"{100 * t['mean_physics']['drop']:.1f}" if t.get("mean_physics") else "-"
            lines.append(f"| {name}{mark} | {100 * t['dataset']['accuracy']:.1f} | " + " | ".join(cells)
                         + f" | {100 * t['mean']['drop']:.1f} | {physics} |")
        lines.append("")
    return lines


def render_results(results_dir: str) -> str:
    """The markdown report of everything in ``results_dir`` (pure: reads JSON, writes nothing)."""
    ev_c = load_evaluation(results_dir, "chemsys")
    ev_e = load_evaluation(results_dir, "environment")
    lines = ["# Results", "",
             "Generated by `xanes-nn report` from the JSON files in `docs/results/` (do not edit by hand). "
             "Each file is the output of one command:", "",
             "```bash",
             "xanes-nn evaluate --scheme S --protocols P --repeats 3 --output docs/results/evaluation_S_P.json"
             "   # S: chemsys, environment; P: grouped, random",
             "xanes-nn evaluate --scheme chemsys --alignment A --augment N --protocols grouped --repeats 1 "
             "--output docs/results/ablation_chemsys_A_augN.json",
             "xanes-nn experiment all --output docs/results/experiments",
             "xanes-nn report", "```", ""]
    lines += _input_selection_section(results_dir, "chemsys")
    lines += _ablation_section(results_dir, "chemsys")
    if ev_c:
        lines += _evaluation_section(ev_c, "Chemical systems (`si_k_chemsys`, the seed's task)", with_seed=True)
        lines += ["", "![confusion matrix](results/confusion_chemsys.png)",
                  "![reliability](results/reliability_chemsys.png)", ""]
    if ev_e:
        lines += _evaluation_section(ev_e, "Si local environment (`si_k_environment`)", with_seed=False)
        lines += ["", "**Against the baselines.** " + _baseline_comparison(ev_e)[0], "",
                  "![confusion matrix](results/confusion_environment.png)", ""]
    lines += _models_section()
    lines += _ood_section(results_dir)
    lines += _domain_shift_section(results_dir)
    lines += _derived_section(results_dir)
    lines += _differences(ev_c)
    lines += _calibration_section(results_dir)
    lines += _measured_section(results_dir)
    lines += _edge_evaluation_section(results_dir)
    lines += _evidence_section(results_dir)
    lines += _experiment_section(os.path.join(results_dir, "experiments"))
    return "\n".join(lines).rstrip() + "\n"


def _measured_section(results_dir: str) -> list[str]:
    """Shipped models on measured standards of known speciation (``xanes-nn measured``)."""
    import glob

    lines: list[str] = []
    for path in sorted(glob.glob(os.path.join(results_dir, "measured_*.json"))):
        res = _load(path)
        if not res or "files" not in res:
            continue
        errors = [f"{e:+g}" for e in res["errors"]]
        lines += [f"## Measured standards: `{res['model']}` (`{os.path.basename(path)}`)", "",
                  f"`{res.get('command', 'xanes-nn measured')}`. Each standard is read at the edge's recorded "
                  f"FEFF-to-measured shift ({res['shift']:+.2f} eV) plus a calibration error (columns, eV); `?` marks "
                  "\"don't know\". Development data: reported, never trained or tuned on.", "",
                  "| standard | expected | " + " | ".join(errors) + " |", "|---|---|" + "---|" * len(errors)]
        for f in res["files"].values():
            cells = [f"{r['label']}{'?' if r['dont_know'] else ''}" for r in f["by_error"].values()]
            lines.append(f"| {f['compound']} | {f['expected']} | " + " | ".join(cells) + " |")
        for key, title in (("at_calibration", "at the recorded shift"), ("all_errors", "over every error")):
            c = res["summary"][key]
            lines.append("" if key == "at_calibration" else "")
            lines.append(f"{title.capitalize()}: {c['right']} of {c['n']} right, {c['in_set']} with the right label in "
                         f"the set, {c['dont_know']} \"don't know\", {c['wrong_without_dont_know']} wrong without "
                         "\"don't know\".")
        lines.append("")
    return lines


def _edge_evaluation_section(results_dir: str) -> list[str]:
    """The shipped recipes cross-validated (``xanes-nn evaluate``): the network beside the baselines on one split.

    Files: ``evaluation_s_*.json`` (the S edge) and ``evaluation_*_ensemble.json`` (an ensemble recipe, nested: each
    held-out fold's model has its own calibration folds, so its sets are judged on materials none of it saw).
    """
    lines: list[str] = []
    paths = sorted(glob.glob(os.path.join(results_dir, "evaluation_s_*.json")))
    paths += sorted(glob.glob(os.path.join(results_dir, "evaluation_*_ensemble.json")))
    for path in paths:
        res = _load(path)
        if not res or "scheme" not in res:
            continue
        element = S_K.element if os.path.basename(path).startswith("evaluation_s_") else DEFAULT_ELEMENT
        for protocol in ("grouped", "random"):
            if protocol not in res:
                continue
            r = res[protocol]
            kind = "ensemble" if r.get("train_kwargs", {}).get("ensemble") else "network"
            # without calibration folds the sets were fitted on the training spectra themselves: no coverage to show
            calibrated = r.get("train_kwargs", {}).get("calibration_folds", 5) != 0
            lines += [f"## {element} K `{res['scheme']}`: {kind} and baselines ({protocol} split, "
                      f"`{os.path.basename(path)}`)", "",
                      f"`xanes-nn evaluate{' --element S' if element == 'S' else ''} --scheme {res['scheme']}` with "
                      f"the shipped recipe ({res['dataset']['n_spectra']} spectra, {res['dataset']['n_groups']} "
                      f"groups; {r.get('n_splits', '?')} folds x {r.get('repeats', '?')}). Accuracy, balanced "
                      "accuracy and ECE on held-out materials, mean ± std over folds; "
                      + ("the network's prediction sets on the same held-out materials." if calibrated else
                         "run without calibration folds (one network per fold), so its sets and temperature are "
                         "uncalibrated: no coverage shown, and ECE is before temperature scaling."), "",
                      "| model | accuracy | balanced | macro-F1 | ECE | set coverage | mean set size |",
                      "|---|---:|---:|---:|---:|---:|---:|"]
            for model, sets in r["summary"].items():
                c = sets["clean"]
                cov = (f"{_pm(c['coverage'])} | {_pm(c['mean_set_size'], pct=False)}"
                       if "coverage" in c and calibrated else "- | -")
                lines.append(f"| {model} | {_pm(c['accuracy'])} | {_pm(c['balanced_accuracy'])} | "
                             f"{_pm(c['macro_f1'])} | {_pm(c['ece'], pct=False)} | {cov} |")
            lines.append("")
    return lines


def _evidence_section(results_dir: str) -> list[str]:
    """Network and evidence together (``xanes-nn evidence-study``): the rules out of fold and the nested choice."""
    lines: list[str] = []
    for path in sorted(glob.glob(os.path.join(results_dir, "evidence_*.json"))):
        res = _load(path)
        if not res or "nested" not in res:
            continue
        n = res["nested_summary"]
        lines += [f"## Network and evidence: `{res['model']}` (`{os.path.basename(path)}`)", "",
                  f"`{res['command']}`. Out of fold ({res['n']} spectra of real crystals, {res['n_folds']} grouped "
                  f"folds): the network is right on {100 * res['network_accuracy']:.1f}%, the class of the nearest "
                  f"training-fold spectrum on {100 * res['evidence_top1_accuracy']:.1f}%, the majority of the three "
                  f"nearest on {100 * res['evidence_top3_majority_accuracy']:.1f}%. Each rule adds \"don't know\" "
                  "when the network and its evidence disagree; the rest of the policy (OOD level, confidence floor "
                  "within the 5% budget) is fitted with it.", "",
                  "| rule | disagrees: wrong answers | disagrees: right answers | don't know: wrong | "
                  "don't know: right |",
                  "|---|---:|---:|---:|---:|"]
        for rule, r in res["rules"].items():
            lines.append(f"| {rule} | {100 * r['disagree_wrong']:.0f}% | {100 * r['disagree_right']:.1f}% | "
                         f"{100 * r['wrong_flagged']:.0f}% | {100 * r['correct_flagged']:.1f}% |")
        lines += ["", "Nested: the rule chosen on the other folds (" + ", ".join(f["chosen"] for f in res["nested"])
                  + f"), judged on the fold it was not chosen on: \"don't know\" on "
                  f"{100 * n['chosen_wrong_flagged']:.0f}% of wrong and "
                  f"{100 * n['chosen_right_flagged']:.1f}% of right answers (the network alone: "
                  f"{100 * n['none_wrong_flagged']:.0f}% and {100 * n['none_right_flagged']:.1f}%).", ""]
    return lines


def _calibration_section(results_dir: str) -> list[str]:
    """Measured standards against FEFF: does one energy offset fit them all (``xanes-nn calibration-study``)?"""
    lines: list[str] = []
    for name in sorted(os.listdir(results_dir)) if os.path.isdir(results_dir) else []:
        if not (name.startswith("calibration_study_") and name.endswith(".json")):
            continue
        res = _load(os.path.join(results_dir, name))
        if not res or not res.get("presets"):
            continue
        compounds = list(res["standards"])
        lines += [f"## {res['element']} K edge: FEFF10 against measured standards", "",
                  f"`xanes-nn calibration-study --element {res['element']}` (`docs/results/{name}`): white-line "
                  "position (highest point within 12 eV above e0) of each measured standard minus that of the FEFF "
                  "spectrum of the same compound; the best single offset is their mean, the residuals are what it "
                  "leaves. Residuals of several eV mean FEFF misplaces that compound's edge relative to the others: "
                  "its absolute energies do not carry the chemical shift, and no calibration offset repairs that.",
                  "", "| FEFF preset | offset (eV) | " + " | ".join(f"{c} residual" for c in compounds) + " | max |",
                  "|---|---:|" + "---:|" * (len(compounds) + 1)]
        for preset, r in res["presets"].items():
            wl = r["white_line"]
            lines.append(f"| {preset} | {wl['offset']:+.2f} | "
                         + " | ".join(f"{wl['residuals'][c]:+.2f}" for c in compounds)
                         + f" | {wl['max_abs_residual']:.2f} |")
        first = next(iter(res["presets"].values()))["standards"]
        lines += ["", "| standard | FEFF task | FEFF white line (dataset preset) | measured white line |",
                  "|---|---|---:|---:|"]
        lines += [f"| {c} | `{res['standards'][c]['task_id']}` | {first[c]['feff_white_line']:.2f} | "
                  f"{first[c]['measured_white_line']:.2f} |" for c in compounds]
        lines.append("")
    return lines


def plot_confusion(summary_model: dict[str, Any], classes: list[str], title: str, filename: str) -> None:
    """Row-normalized confusion matrix (pooled over folds) as a PNG."""
    from pymatgen_xanes_nn.plotting import pyplot

    plt = pyplot()
    cm = np.asarray(summary_model["clean"]["confusion_matrix"], float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(classes), 0.8 + 0.5 * len(classes)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    fig.savefig(filename, dpi=110)
    plt.close(fig)


def plot_reliability(summary: dict[str, Any], filename: str) -> None:
    """Reliability diagram (accuracy vs confidence, pooled out-of-fold predictions) per model."""
    from pymatgen_xanes_nn.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    for i, (model, name) in enumerate(MODEL_NAMES.items()):
        bins = summary.get(model, {}).get("clean", {}).get("calibration_bins")
        if not bins:
            continue
        n = np.asarray(bins["count"])
        m = n > 0
        ax.plot(np.asarray(bins["confidence"])[m] / n[m], np.asarray(bins["correct"])[m] / n[m], "o-",
                label=f"{name} (ECE {summary[model]['clean']['ece']['mean']:.3f})", color=f"C{i}")
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title="calibration, grouped split")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(filename, dpi=110)
    plt.close(fig)


def write_report(results_dir: str, output: str) -> list[str]:
    """Render the report to ``output`` and draw its figures into ``results_dir``; returns files written."""
    written = []
    for scheme in ("chemsys", "environment"):
        ev = load_evaluation(results_dir, scheme)
        if ev and "grouped" in ev:
            summ, classes = ev["grouped"]["summary"], ev["grouped"]["classes"]
            path = os.path.join(results_dir, f"confusion_{scheme}.png")
            plot_confusion(summ["neural_network"], classes, f"{scheme}: neural network, grouped split", path)
            written.append(path)
            if scheme == "chemsys":
                path = os.path.join(results_dir, "reliability_chemsys.png")
                plot_reliability(summ, path)
                written.append(path)
    with open(output, "w") as f:
        f.write(render_results(results_dir))
    return [*written, output]


#: The README's performance rows generated from benchmark JSON sit between these markers.
MODEL_MARKERS = ("<!-- model rows: generated by pymatgen_xanes_nn.studies.report.model_rows() from the shipped models "
                 "and docs/results/measured_*.json -->", "<!-- end of generated model rows -->")


def model_rows(results_dir: str) -> str:
    """The README's table of shipped models.

    Out-of-fold figures come from each model file; measured standards from ``docs/results/measured_*.json``, only
    when they were scored with that very model version (no stale figure).
    """
    from pymatgen_xanes_nn.classifier import PRETRAINED, XANESClassifier

    measured = {}
    for path in sorted(glob.glob(os.path.join(results_dir, "measured_*.json"))):
        res = _load(path)
        if res and "summary" in res:
            measured[res["model"]] = res["summary"]["at_calibration"]
    rows = ["| model | answers | training spectra | right out of fold (balanced) | 90% sets: coverage, mean size | "
            "measured standards at calibration: right, \"don't know\", wrong without it |",
            "|---|---|---:|---|---|---|"]
    for name in PRETRAINED:
        clf = XANESClassifier.from_pretrained(name)
        md = clf.metadata
        oof = md["metrics"].get("out_of_fold") or {}
        m = measured.get(md["model_version"])
        std = (f"{m['right']} of {m['n']}, {m['dont_know']}, {m['wrong_without_dont_know']}" if m else "none measured")
        rows.append(f"| `{name}` | {clf.edge.name} edge, {md['label_scheme']} ({len(clf.labels)} classes) | "
                    f"{md['n_train']:,} | {100 * oof['accuracy']:.1f}% ({100 * oof['balanced_accuracy']:.1f}%) "
                    f"of {oof['n']:,} real crystals' spectra | "
                    f"{100 * oof['coverage']:.1f}%, {oof['mean_set_size']:.2f} | {std} |")
    return "\n".join(rows)


PERFORMANCE_MARKERS = ("<!-- performance rows: generated by pymatgen_xanes_nn.studies.report.performance_rows() "
                       "from benchmarks/results/ -->", "<!-- end of generated performance rows -->")


def update_readme(readme: str, results_dir: str, bench_dir: str) -> bool:
    """Regenerate the README's generated blocks (models, performance) in place; True if it changed."""
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    new = text
    for (start, end), block in ((MODEL_MARKERS, model_rows(results_dir)), (PERFORMANCE_MARKERS,
                                                                          performance_rows(bench_dir))):
        if start in new and end in new:
            head, rest = new.split(start + "\n", 1)
            new = head + start + "\n" + block + "\n" + end + rest.split(end, 1)[1]
    if new != text:
        with open(readme, "w", encoding="utf-8") as f:
            f.write(new)
    return new != text


def performance_rows(bench_dir: str) -> str:
    """The README's performance table for prediction, FEFF workers, training threads and load-tasks.

    Made from the committed benchmark results; a test compares it with the README (no stale copies).
    """
    def load(name: str) -> dict[str, Any]:
        return _load(os.path.join(bench_dir, f"{name}.json")) or {}

    p, f, t, lt = load("predict"), load("feff_workers"), load("training_threads"), load("load_tasks")
    ens = load("predict_si_k_environment")
    rows = ["| what | measured | baseline in the same run |", "|---|---|---|"]
    if p:
        rows += [
            f"| one spectrum, NumPy forward pass | {1e3 * p['predict_vector_s']:.3f} ms "
            f"({1e3 * p['predict_xas_s']:.2f} ms from an `XAS`, preprocessing included; the whole `classify` with "
            f"sets, OOD and evidence {1e3 * p['classify_xas_s']:.2f} ms from an `XAS`, "
            f"{1e3 * p['classify_vector_s']:.2f} ms from a grid vector) | Keras `predict` "
            f"{1e3 * p['keras_predict_call_s']:.0f} ms: the forward pass is {p['speedup_vs_keras_per_call']:.0f}x "
            f"faster (outputs agree to {p['keras_numpy_max_abs_diff']:.0e}) |",
            f"| batch of 10,000 | {p['batch_spectra_per_s']:,.0f} spectra/s | |",
            f"| cold start: import + `from_pretrained()` + predict | {p['cold_predict_s']:.2f} s | "
            f"`import pymatgen.analysis.xas.spectrum` {p['cold_import_pymatgen_xas_s']:.2f} s: "
            f"{p['cold_start_ratio']:.2f}x (load average {p['load_average_1min']:.1f}) |"]
    if p and ens:
        rows.append(f"| one spectrum, the `si_k_environment` ensemble ({ens['ensemble_members']} networks; `python "
                    f"benchmarks/bench_predict.py --model si_k_environment --skip-training`) | whole `classify` "
                    f"{1e3 * ens['classify_vector_s']:.2f} ms from a grid vector ({1e3 * ens['classify_xas_s']:.2f} ms "
                    f"from an `XAS`), forward pass {1e3 * ens['predict_vector_s']:.2f} ms | one network (above): "
                    f"`classify` {1e3 * p['classify_vector_s']:.2f} ms "
                    f"(the ensemble takes {ens['classify_vector_s'] / p['classify_vector_s']:.1f}x as long) |")
    if f:
        n_sites = len(f["sites"])
        rows.append(f"| FEFF10 (`dataset` preset), the {n_sites} smallest corpus sites, `python "
                    f"benchmarks/bench_feff_workers.py --sites {n_sites}` | {f['sites_per_hour_2_workers']:.0f} "
                    f"sites/h with 2 workers | {f['sites_per_hour_1_workers']:.0f} sites/h with 1 worker: "
                    f"{f['speedup']:.2f}x |")
    if t:
        rows.append(f"| training jobs on 2 cores, `python benchmarks/bench_training_threads.py` ({t['spectra']} "
                    f"spectra, {t['epochs']} epochs, fresh processes): 2 concurrent jobs with "
                    f"`TF_NUM_INTRAOP_THREADS=1` | {t['throughput_ratio_2_jobs_one_thread']:.2f}x the jobs per second "
                    f"(one job on 1 thread: {t['throughput_ratio_one_thread']:.2f}x) | one job on TensorFlow's default "
                    f"threads, {t['wall_s_one_job_default_threads']:.1f} s |")
    if lt:
        sec = lt["seconds"]
        first = sec["load-tasks (indexed upserts), first load"]
        base = sec["insert_many (baseline)"]
        rows.append(f"| `xanes-nn load-tasks` of the shipped {lt['n']:,} task documents into secantusdb, `python "
                    f"benchmarks/bench_load_tasks.py` | {first:.1f} s | `insert_many` {base:.1f} s: "
                    f"{first / base:.1f}x |")
    return "\n".join(rows)
