"""Developer commands: training, evaluation, benchmarks and studies, and the report built from them."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

from pymatgen_xanes_nn.errors import InputError

if TYPE_CHECKING:
    pass

from pymatgen_xanes_nn.cli.common import (
    _add_dataset_options,
    _add_training_options,
    _dataset_or_none,
    _existing_file,
    _int_at_least,
    _load_docs,
    _load_model,
    _model_name_or_file,
    _preprocessing,
    _training_config,
    _writable_path,
)


def _cmd_feff_study(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.datagen.corpus import load_corpus
    from pymatgen_xanes_nn.datagen.feff_study import run_study

    results = run_study(load_corpus(args.corpus), args.presets, args.output, scratch=args.scratch,
                        n_workers=args.workers)
    print(f"{'preset':<18} {'CPU s/site':>10} {'min cosine':>10} {'max diff/peak':>13} {'aligned cos':>11} {'n':>3}")
    for preset, s in results["summary"].items():
        print(f"{preset:<18} {s['mean_cpu_s']:>10.1f} {s['min_cosine']:>10.4f} "
              f"{s['max_diff_over_peak']:>13.3f} {s['min_cosine_aligned']:>11.4f} {s['n']:>3}")
    return 0


def _cmd_measured(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.studies.measured import read_standards, standards_for

    clf = _load_model(args.model)
    result = read_standards(clf, args.folder, standards_for(clf))
    result["command"] = "xanes-nn " + " ".join(sys.argv[1:])
    with open(args.output, "w") as fh:
        json.dump(result, fh, indent=1)
    for f in result["files"].values():
        cells = " ".join(f"{k}:{r['label']}{'?' if r['dont_know'] else ''}" for k, r in f["by_error"].items())
        print(f"{f['compound']:<22} expected {f['expected']:<4} {cells}")
    for key, c in result["summary"].items():
        print(f"{key}: {c['right']}/{c['n']} right, {c['in_set']} in the set, {c['dont_know']} don't know, "
              f"{c['wrong_without_dont_know']} wrong without don't know")
    print(f"wrote {args.output}")
    return 0


def _cmd_evidence_study(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.jsonio import read_checkpoint
    from pymatgen_xanes_nn.studies.evidence_agreement import evidence_study
    from pymatgen_xanes_nn.training.fit import TrainingConfig, dataset_for_scheme, run_key

    clf = _load_model(args.model)
    fields = TrainingConfig.__dataclass_fields__
    config = TrainingConfig(**{k: v for k, v in clf.metadata["config"].items() if k in fields})
    spectra, _ = dataset_for_scheme(clf.metadata["label_scheme"], _load_docs(args), clf.preprocessing)
    data = spectra.labelled()
    key = run_key(data.x, data.labels, data.groups, "train", config.fold_options(), clf.preprocessing,
                  list(data.testable), None)
    folds = read_checkpoint(args.checkpoint, key)
    if not folds:
        raise InputError(f"{args.checkpoint} holds no fold of this model's training run (other data or options: "
                         "give the dataset options the model was trained with)")
    result = evidence_study(data.x, data.labels, data.groups, data.testable, config, clf.preprocessing, folds)
    result.update(model=clf.metadata["model_version"], command="xanes-nn " + " ".join(sys.argv[1:]))
    with open(args.output, "w") as fh:
        json.dump(result, fh, indent=1)
    print(f"right out of fold (n={result['n']}): network {result['network_accuracy']:.3f}, nearest spectrum's class "
          f"{result['evidence_top1_accuracy']:.3f}, majority of the 3 nearest "
          f"{result['evidence_top3_majority_accuracy']:.3f}")
    for rule, r in result["rules"].items():
        print(f"  {rule:<14} disagrees on {100 * r['disagree_wrong']:.0f}% of wrong, {100 * r['disagree_right']:.0f}% "
              f"of right answers; don't know on {100 * r['wrong_flagged']:.0f}% of wrong, "
              f"{100 * r['correct_flagged']:.1f}% of right")
    n = result["nested_summary"]
    print(f"nested choice: {[f['chosen'] for f in result['nested']]}; judged on held-out folds: don't know on "
          f"{100 * n['chosen_wrong_flagged']:.0f}% of wrong, {100 * n['chosen_right_flagged']:.1f}% of right "
          f"(network alone: {100 * n['none_wrong_flagged']:.0f}%, {100 * n['none_right_flagged']:.1f}%)")
    print(f"wrote {args.output}")
    return 0


def _cmd_calibration_study(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.datagen.corpus import load_corpus
    from pymatgen_xanes_nn.datagen.feff_study import measured_alignment
    from pymatgen_xanes_nn.datagen.simulate import DirectorySink, jobs_from_corpus, simulate
    from pymatgen_xanes_nn.io.readers import from_task_doc, read_spectrum
    from pymatgen_xanes_nn.jsonio import write_json

    standards = {}
    for item in args.standards:
        compound, _, rest = item.partition("=")
        task_id, _, measured = rest.partition(":")
        if not (compound and task_id and measured):
            raise InputError(f"--standards {item!r}: write COMPOUND=TASK_ID:MEASURED_FILE")
        standards[compound] = (task_id, measured)
    jobs = {j.task_id: j for j in jobs_from_corpus(load_corpus(element=args.element))}
    missing = sorted(t for t, _ in standards.values() if t not in jobs)
    if missing:
        raise InputError(f"task ids not in the {args.element} corpus: {', '.join(missing)}")
    results: dict = {"element": args.element, "standards": {c: {"task_id": t, "measured": os.path.basename(m)}
                                                            for c, (t, m) in standards.items()}, "presets": {}}
    for preset in args.presets:
        sink = DirectorySink(os.path.join(args.work, preset))
        simulate([jobs[t] for t, _ in standards.values()], sink, settings=preset, n_workers=args.workers,
                 scratch=args.scratch)
        docs = {d["task_id"]: d for d in sink.iter_docs() if d.get("state") == "successful"}
        pairs = {c: (from_task_doc(docs[t], with_structure=False), read_spectrum(m))
                 for c, (t, m) in standards.items() if t in docs}
        if len(pairs) == len(standards):
            results["presets"][preset] = measured_alignment(pairs)
            wl = results["presets"][preset]["white_line"]
            print(f"{preset}: white-line offset {wl['offset']:+.2f} eV, residuals "
                  + ", ".join(f"{c} {v:+.2f}" for c, v in wl["residuals"].items()))
    write_json(results, args.output)
    print(f"-> {args.output}")
    return 0


def _cmd_relax_study(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.datagen.relax_study import markdown, run_study
    from pymatgen_xanes_nn.io.tasks import load_tasks
    from pymatgen_xanes_nn.jsonio import PYMATGEN_CLASSES, iter_directory, read_json

    docs = load_tasks(args.tasks)
    if args.tasks_dir:
        docs += [d for _, d in iter_directory(args.tasks_dir, PYMATGEN_CLASSES)]
    unrelaxed: dict[str, dict] = {}
    for d in sorted(docs, key=lambda d: d["task_id"]):
        if d.get("state") != "failed":
            unrelaxed.setdefault(d["metadata"]["structure_id"], d)
    results = run_study(read_json(args.derived_corpus, PYMATGEN_CLASSES), unrelaxed, args.output, n=args.n,
                        scratch=args.scratch, n_workers=args.workers)
    with open(os.path.join(os.path.dirname(args.output) or ".", "RELAXATION.md"), "w") as f:
        f.write(markdown(results))
    print(json.dumps(results["summary"], indent=1))
    return 0


def _cmd_refresh_ood(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.training.fit import dataset_for_scheme, refresh_ood

    clf = _load_model(args.model)
    scheme = clf.metadata.get("label_scheme")
    if not scheme:
        raise SystemExit(f"Model {clf.name!r} does not record its label scheme")
    data = dataset_for_scheme(scheme, _load_docs(args), clf.preprocessing)[0].labelled()
    new = refresh_ood(clf, data.x, data.labels, data.groups, args.scores, reason=args.reason,
                      testable=data.testable)
    new.to(args.output)
    flags = new.ood_flags(data.x).mean()
    print(f"{new.metadata['model_version']}: flags with {'+'.join(new.ood['scores'])}; "
          f"{100 * flags:.1f}% of its own training spectra flagged (in sample)")
    print(f"wrote {args.output}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.labels import raw_label
    from pymatgen_xanes_nn.training.fit import MIN_REPORTED_OUTSIDE, dataset_for_scheme, train

    if args.evidence_rule != "none" and args.scheme != "environment":
        raise InputError(f"--evidence-rule needs the environment scheme: the shipped evidence is named by "
                         f"environment, not by {args.scheme}")
    pre = _preprocessing(args)
    docs = _load_docs(args)
    spectra, classes = dataset_for_scheme(args.scheme, docs, pre)
    data = spectra.labelled()
    print(f"training {args.name!r} on {len(data.x)} spectra, {len(classes)} classes, {len(set(data.groups))} groups"
          + (f", {args.augment_copies} augmented copies per training spectrum" if args.augment_copies else ""))
    outside = spectra.outside()
    # outside spectra labelled by Si environment: known to the training set, or a new one
    env = {d["task_id"]: raw_label(d, "environment") for d in docs}
    known_env = {env[t] for t in data.task_ids}
    outside_kinds = [env[t] if env[t] not in known_env else "environment seen in training" for t in outside.task_ids]
    checkpoint = f"{args.output}.partial.jsonl"
    clf = train(data.x, data.labels, data.groups, _training_config(args), preprocessing=pre, raw=data.raw,
                x_outside=outside.x, outside_labels=outside_kinds,
                metadata={"label_scheme": args.scheme, "edge": args.element, "dataset": {"n_spectra": len(spectra.x),
                          "n_labelled": len(data.x), "n_derived": int(sum(data.derived)),
                          "skipped": len(spectra.skipped)}},
                testable=data.testable, checkpoint=checkpoint, verbose=args.verbose)
    clf.to(args.output)
    if os.path.exists(checkpoint):  # none without calibration folds
        os.remove(checkpoint)  # the model holds every fold's calibration now
    oof = clf.metadata["metrics"].get("out_of_fold", {})
    if oof:
        print(f"out of fold ({oof['folds']} grouped folds, {oof['n']} spectra): accuracy {oof['accuracy']:.3f}, "
              f"balanced {oof['balanced_accuracy']:.3f}; ECE {oof['ece_uncalibrated']:.3f} -> {oof['ece']:.3f} "
              f"with temperature {clf.temperature:.3f} (fitted on these scores: `xanes-nn evaluate` gives "
              f"held-out numbers); {100 * clf.conformal['level']:.0f}% sets: coverage {oof['coverage']:.3f}, "
              f"mean size {oof['mean_set_size']:.2f}")
        print(f"OOD flag (level {clf.ood['alpha']:g}, scores {'+'.join(clf.ood['scores'])}): "
              f"{100 * oof['ood_rate_in_sample']:.1f}% of out-of-fold spectra, "
              f"{100 * oof['ood_rate_own_training']:.1f}% of the shipped network's own training spectra")
    out = clf.metadata["metrics"].get("outside_classes")
    if out:
        print(f"spectra outside the classes ({out['n']}): {100 * out['ood_rate']:.0f}% flagged out of distribution")
        for kind, r in out.get("by_label", {}).items():
            if r["n"] >= MIN_REPORTED_OUTSIDE:  # all of them are in the model's metadata
                print(f"  {kind} ({r['n']}): {100 * r['ood_rate']:.0f}%")
    print(f"wrote {args.output}")
    return 0


def _dataset_info(data, spectra) -> dict:
    """What a result was computed on: counts, class sizes and the data hash."""
    from collections import Counter

    from pymatgen_xanes_nn.classifier import hash_vectors

    return {"n_spectra": len(data.x), "n_groups": len(set(data.groups)), "n_unlabelled": len(spectra.x) - len(data.x),
            "n_derived": int(sum(data.derived)),
            "class_counts": dict(sorted(Counter(data.labels).items())),
            "training_data_sha256": hash_vectors(data.x, data.labels)}


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.training.evaluation import evaluate
    from pymatgen_xanes_nn.training.fit import dataset_for_scheme

    pre = _preprocessing(args)
    spectra, classes = dataset_for_scheme(args.scheme, _load_docs(args), pre)
    data = spectra.labelled()
    results = {}
    for protocol in args.protocols:
        results[protocol] = evaluate(
            data, classes, protocol=protocol, n_splits=args.folds, repeats=args.repeats, seed=args.seed,
            train_kwargs={k: v for k, v in _training_config(args).as_dict().items()
                          if not k.startswith("@") and k not in ("seed", "augment_copies")},
            robustness=not args.no_robustness, augment_copies=args.augment_copies,
            preprocessing=pre, progress=print, checkpoint=f"{args.output}.partial.jsonl",
        )
    results["preprocessing"] = pre.as_dict()
    results["scheme"] = args.scheme
    results["dataset"] = _dataset_info(data, spectra)
    with open(args.output, "w") as f:
        json.dump(results, f, indent=1)
    os.remove(f"{args.output}.partial.jsonl")  # every fold is in the output now
    for protocol in args.protocols:
        print(f"== {protocol} split ({args.folds}-fold x {args.repeats})")
        for model, sets in results[protocol]["summary"].items():
            c = sets["clean"]
            print(f"  {model:<20} accuracy {c['accuracy']['mean']:.3f} +- {c['accuracy']['std']:.3f}  "
                  f"balanced {c['balanced_accuracy']['mean']:.3f}  macro-F1 {c['macro_f1']['mean']:.3f}  "
                  f"ECE {c['ece']['mean']:.3f}")
    print(f"wrote {args.output}")
    return 0


def _cmd_domain_shift(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.io.tasks import load_tasks
    from pymatgen_xanes_nn.studies.domain_shift import CANDIDATES, benchmark

    if args.with_physics is not None:
        raise SystemExit("error: domain-shift trains on the variants itself (recipes with \"physics\"), leave one "
                         "physics out; --with-physics would put every preset in every model")
    from pymatgen_xanes_nn.edges import SI_K
    from pymatgen_xanes_nn.io.tasks import load_collection
    from pymatgen_xanes_nn.studies.domain_shift import PHYSICS_COLLECTION

    if args.variants is not None:
        variants = load_tasks(args.variants)
        if not variants:
            raise SystemExit(f"error: no physics-variant task documents in {args.variants}: run xanes-nn "
                             "physics-variants")
    else:  # only the Si K edge has physics variants yet: other edges are judged on the perturbations alone
        variants = load_collection(PHYSICS_COLLECTION) if args.element == SI_K.element else []
    result = benchmark(args.scheme, _load_docs(args), variants, _training_config(args),
                       {name: CANDIDATES[name] for name in args.candidates}, n_folds=args.folds, seed=args.seed,
                       preprocessing=_preprocessing(args), cache=args.cache, progress=print)
    result.update(element=args.element, command="xanes-nn " + " ".join(sys.argv[1:]))
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)
    print(f"{'candidate':<20} {'dataset':>8} " + " ".join(f"{k:>14}" for k in result["n_sites"] if k != "dataset"))
    for name, tables in result["candidates"].items():
        t = tables["all"]
        print(f"{name:<20} {t['dataset']['accuracy']:>8.3f} " + " ".join(
            f"{t[k]['accuracy']:>7.3f} ({t[k]['drop']:+.2f})" for k in result["n_sites"] if k in t and k != "dataset"))
    for name, why in result["unshippable"].items():
        print(f"{name} may not ship: {why}")
    print(f"chosen on the selection half: {result['chosen']}; wrote {args.output}")
    return 0


def _cmd_ood_benchmark(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.io.tasks import load_tasks
    from pymatgen_xanes_nn.labels import raw_label
    from pymatgen_xanes_nn.studies.ood_benchmark import run_ood_benchmark
    from pymatgen_xanes_nn.training.fit import dataset_for_scheme

    if args.combinations_from:  # analysis of a finished run: every combination of up to 3 scores
        from pymatgen_xanes_nn.studies.ood_benchmark import combination_table

        table = combination_table(args.combinations_from)
        with open(args.output, "w") as f:
            json.dump(table, f, indent=1)
        for combo, row in sorted(table.items(), key=lambda kv: -kv[1]["mean"])[:10]:
            print(f"{combo:<44} mean AUROC {row['mean']:.3f}  " + "  ".join(
                f"{k.split(': ')[-1]} {v:.3f}" for k, v in row.items() if k != "mean" and not k.startswith("loeo")))
        print(f"wrote {args.output}")
        return 0
    if args.nested_from:  # analysis of a finished run: the combination chosen on other folds than it is judged on
        from pymatgen_xanes_nn.studies.ood_benchmark import nested_combination

        result = nested_combination(args.nested_from, shipped=args.ood_scores)
        with open(args.output, "w") as f:
            json.dump(result, f, indent=1)
        print("chosen per fold: " + ", ".join(result["chosen"]))
        for name in ("nested", "all_folds", "shipped"):
            row = result[name]
            print(f"{name:<10} {'+'.join(row.get('scores', [])):<28} mean AUROC {row['mean']:.3f}  " + "  ".join(
                f"{k.split(': ')[-1]} {v:.3f}" for k, v in row.items() if k not in ("mean", "scores")))
        print(f"ship --ood-scores {' '.join(result['all_folds']['scores'])}; wrote {args.output}")
        return 0
    if args.sets_from:  # analysis of a finished run: coverage and set size of each conformal mode, held out
        from pymatgen_xanes_nn.studies.ood_benchmark import prediction_set_table

        classes = dataset_for_scheme(args.scheme, _load_docs(args), _preprocessing(args))[1]
        table = prediction_set_table(args.sets_from, args.conformal_level, classes)
        with open(args.output, "w") as f:
            json.dump(table, f, indent=1)
        print(f"held out: n={table['n']}, accuracy {table['accuracy']:.3f}, ECE {table['ece_untempered']:.3f} -> "
              f"{table['ece']:.3f} with a temperature from the other folds")
        for mode, r in table["modes"].items():
            print(f"{mode:<18} coverage {r['coverage']:.3f}  mean set {r['mean_set_size']:.2f}  "
                  f"single labels {r['singletons']:.2f}")
        print(f"wrote {args.output}")
        return 0
    pre = _preprocessing(args)
    docs = _load_docs(args)
    spectra, classes = dataset_for_scheme(args.scheme, docs, pre)
    data = spectra.labelled()
    env = {d["task_id"]: raw_label(d, "environment") for d in docs}
    res = run_ood_benchmark(data, classes, _training_config(args), pre, args.scheme,
                            environments=[env[t] for t in data.task_ids], outside=spectra.outside(), n_folds=args.folds,
                            combined=args.combined, n_far=args.n_far, leave_out=args.leave_out,
                            other_edge_docs=load_tasks(args.other_edges) if args.other_edges else (),
                            scores_file=args.scores)
    res["dataset"] = _dataset_info(data, spectra)
    with open(args.output, "w") as f:
        json.dump(res, f, indent=1)
    for kind, r in res["sets"].items():
        best = max(r["scores"].items(), key=lambda kv: kv[1]["auroc"])
        print(f"{kind:<32} n={r['n']:<5} combined AUROC {r['scores']['combined']['auroc']:.3f}  "
              f"best {best[0]} {best[1]['auroc']:.3f}  flagged {100 * r['flagged']:.0f}%")
    h = res["held_out"]
    print(f"held out: accuracy {h['accuracy']:.3f}, coverage {h['coverage']:.3f}, mean set {h['mean_set_size']:.2f}, "
          f"don't know: correct {h['dont_know_correct']:.3f}, wrong {h['dont_know_wrong']}")
    print(f"wrote {args.output}")
    return 0


def _cmd_experiment(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.studies.experiments import EXPERIMENTS, run_experiment

    names = EXPERIMENTS if args.name == "all" else [args.name]
    docs = _load_docs(args) if args.dataset or args.store_uri else None
    for name in names:
        result = run_experiment(name, args.output, quick=args.quick, docs=docs, scheme=args.scheme)
        print(f"{name}: {result['n_spectra']} spectra, {result['n_groups']} groups -> "
              f"{os.path.join(args.output, name)}.json/.png")
        for key, value in sorted(result.get("final", {}).items()):
            print(f"  {key:<20} " + "  ".join(f"{m} {v['mean']:.4g} +- {v['std']:.2g}" for m, v in value.items()))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.studies.report import update_readme, write_report

    for path in write_report(args.results, args.output):
        print(f"wrote {path}")
    if args.readme and os.path.exists(args.readme) and update_readme(args.readme, args.results, args.benchmarks):
        print(f"wrote {args.readme} (its generated tables)")
    return 0


def register(sub) -> None:
    """Add the developer commands to the ``xanes-nn`` subparsers."""
    from pymatgen_xanes_nn.datagen.simulate import PRESETS
    from pymatgen_xanes_nn.edges import EDGES, SI_K
    from pymatgen_xanes_nn.io.tasks import DERIVED_TASKS_FILE, OTHER_EDGES_FILE
    from pymatgen_xanes_nn.paths import data_path
    from pymatgen_xanes_nn.studies.domain_shift import CANDIDATES
    from pymatgen_xanes_nn.studies.ood_benchmark import LEAVE_OUT
    from pymatgen_xanes_nn.trust.ood import DEFAULT_OOD_SCORES, OOD_SCORES

    p = sub.add_parser("refresh-ood", help="rebuild a model's network-free OOD indexes from its training data "
                                           "(k-NN, edge offset; no retraining)")
    p.add_argument("--model", default="si_k_environment", help="pretrained model name or model file")
    p.add_argument("--scores", nargs="+", default=list(DEFAULT_OOD_SCORES), choices=OOD_SCORES)
    p.add_argument("--reason", default="")
    _add_dataset_options(p)
    p.add_argument("--output", type=_writable_path, required=True)
    p.set_defaults(func=_cmd_refresh_ood)

    p = sub.add_parser("train", help="train autoencoder + FNN and write a model file")
    _add_training_options(p)
    p.add_argument("--name", default="custom")
    p.add_argument("--output", type=_writable_path, default="model.json.gz")
    p.add_argument("--verbose", type=int, default=0)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="grouped and random cross-validation with baselines and robustness")
    _add_training_options(p)
    p.add_argument("--protocols", nargs="+", default=["grouped", "random"], choices=["grouped", "random"])
    p.add_argument("--folds", type=_int_at_least(2), default=5)
    p.add_argument("--repeats", type=_int_at_least(1), default=3)
    p.add_argument("--no-robustness", action="store_true")
    p.add_argument("--output", type=_writable_path, default="evaluation.json",
                   help="results JSON; finished folds are kept in OUTPUT.partial.jsonl until it is written, "
                        "so a killed run resumes")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("ood-benchmark", help="AUROC of every OOD score on far, fault and near spectra (grouped folds)")
    _add_training_options(p)
    p.add_argument("--folds", type=_int_at_least(2), default=5)
    p.add_argument("--combined", nargs="+", default=None, choices=OOD_SCORES,
                   help="scores combined into the OOD p-value (default: the training config's)")
    p.add_argument("--n-far", type=_int_at_least(1), default=20, help="far spectra per shape")
    p.add_argument("--other-edges", type=_dataset_or_none, default=data_path(OTHER_EDGES_FILE),
                   help="task documents of other elements' K edges, far OOD ('none': skip)")
    p.add_argument("--scores", default=None, help="also save every score of every spectrum here (.npz)")
    p.add_argument("--combinations-from", type=_existing_file, default=None, metavar="NPZ",
                   help="no run: AUROC of every combination of up to 3 scores from a saved --scores file")
    p.add_argument("--nested-from", type=_existing_file, default=None, metavar="NPZ",
                   help="no run: the score combination chosen on other folds than it is judged on (nested), against "
                        "--ood-scores, from a saved --scores file")
    p.add_argument("--sets-from", type=_existing_file, default=None, metavar="NPZ",
                   help="no run: held-out coverage, set size and ECE of each conformal mode from a saved --scores file")
    p.add_argument("--leave-out", nargs="+", default=list(LEAVE_OUT), metavar="ENV",
                   help="environments left out of training in turn (environment scheme)")
    p.add_argument("--output", type=_writable_path, default="ood_benchmark.json")
    p.set_defaults(func=_cmd_ood_benchmark)

    p = sub.add_parser("domain-shift", help="accuracy on sites computed with other FEFF physics and broadenings, "
                                            "per augmentation (grouped folds; chosen on half the sites)")
    _add_training_options(p)
    p.add_argument("--folds", type=_int_at_least(2), default=5)
    p.add_argument("--variants", default=None,
                   help="packed task documents of xanes-nn physics-variants (default: the shipped collection, "
                        "base file and shards)")
    p.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES),
                   help="recipes compared (augmentation and inputs)")
    p.add_argument("--cache", default="domain_shift_models",
                   help="folder keeping each fold's model: a rerun (e.g. with more variants) loads instead of training")
    p.add_argument("--output", type=_writable_path, default="domain_shift.json")
    p.set_defaults(func=_cmd_domain_shift)

    p = sub.add_parser("experiment", help="reproduce the seed's experiments (Table I/II, Figs. 6-9)")
    p.add_argument("name", choices=["autoencoders", "latent", "dropout", "activations", "all"])
    p.add_argument("--quick", action="store_true", help="a few epochs (for tests)")
    p.add_argument("--output", default=os.path.join("docs", "results", "experiments"))
    p.add_argument("--scheme", default="chemsys")
    p.add_argument("--dataset", default=None, help="packed task documents (default: shipped)")
    p.add_argument("--store-uri", default=None)
    p.add_argument("--database", default="feff")
    p.add_argument("--collection", default="tasks")
    p.set_defaults(func=_cmd_experiment)

    p = sub.add_parser("feff-study", help="compare cheaper FEFF presets with the MPXANESSet defaults (resumable)")
    p.add_argument("--presets", nargs="+", default=["dataset", "fast", "reduced8"], choices=sorted(PRESETS))
    p.add_argument("--workers", type=_int_at_least(1), default=os.cpu_count() or 1)
    p.add_argument("--corpus", default=None)
    p.add_argument("--output", default="feff_study.json")
    p.add_argument("--scratch", default=None)
    p.set_defaults(func=_cmd_feff_study)

    p = sub.add_parser("calibration-study", help="FEFF spectra of measured standards under several presets: does one "
                                                  "energy offset put them all on the measured scale? (resumable)")
    p.add_argument("--element", default=SI_K.element, choices=sorted(EDGES))
    p.add_argument("--standards", nargs="+", required=True, metavar="COMPOUND=TASK_ID:FILE",
                   help="e.g. S8=amcsd-15833-S0:test_files/measured/S/S_elemental_rt_01.xdi")
    p.add_argument("--presets", nargs="+", default=["dataset"], choices=sorted(PRESETS))
    p.add_argument("--work", default="calibration_study", help="folder of the FEFF task documents, one per preset")
    p.add_argument("--workers", type=_int_at_least(1), default=os.cpu_count() or 1)
    p.add_argument("--scratch", default=None)
    p.add_argument("--output", type=_writable_path, default="calibration_study.json")
    p.set_defaults(func=_cmd_calibration_study)

    p = sub.add_parser("measured", help="read measured standards of known speciation with a shipped model, at its "
                                         "edge's calibration and +-3 eV around it (development data: reported, "
                                         "never trained on)")
    p.add_argument("--model", type=_model_name_or_file, default="s_k_oxidation",
                   help="pretrained model name or model file")
    p.add_argument("--folder", default=os.path.join("test_files", "measured", "S"),
                   help="folder of the standards (test_files/measured/S: the four S K-edge standards)")
    p.add_argument("--output", type=_writable_path, default="measured.json")
    p.set_defaults(func=_cmd_measured)

    p = sub.add_parser("evidence-study", help="should \"don't know\" follow when the network and its nearest "
                                               "spectra disagree? Rules chosen by nested folds on a model's "
                                               "out-of-fold predictions (its training checkpoint)")
    _add_dataset_options(p)
    p.add_argument("--model", type=_model_name_or_file, required=True,
                   help="the model file (its preprocessing, labels and training options are used)")
    p.add_argument("--checkpoint", type=_existing_file, required=True,
                   help="the OUTPUT.partial.jsonl its training wrote (copy it before training finishes: it is "
                        "removed then)")
    p.add_argument("--output", type=_writable_path, default="evidence_study.json")
    p.set_defaults(func=_cmd_evidence_study)

    p = sub.add_parser("relax-study", help="relax derived structures with CHGNet and compare FEFF spectra "
                                            "(needs pip install '.[relax]'; resumable)")
    p.add_argument("--n", type=_int_at_least(1), default=30, help="structures to study")
    p.add_argument("--tasks", default=data_path(DERIVED_TASKS_FILE), help="packed derived task documents")
    p.add_argument("--tasks-dir", default=None, help="also a folder of finished derived task documents")
    p.add_argument("--derived-corpus", default=data_path("derived_corpus.json.gz"))
    p.add_argument("--output", default=os.path.join("docs", "relax_study.json"))
    p.add_argument("--scratch", default=None)
    p.add_argument("--workers", type=_int_at_least(1), default=os.cpu_count() or 1)
    p.set_defaults(func=_cmd_relax_study)

    p = sub.add_parser("report", help="write docs/RESULTS.md and its figures from the committed result JSON")
    p.add_argument("--results", default=os.path.join("docs", "results"))
    p.add_argument("--output", default=os.path.join("docs", "RESULTS.md"))
    p.add_argument("--readme", default=None,
                   help="also rewrite this README's generated tables (the model and performance rows), e.g. README.md")
    p.add_argument("--benchmarks", default=os.path.join("benchmarks", "results"), help="benchmark results folder")
    p.set_defaults(func=_cmd_report)
