"""The ``xanes-nn`` command line.

Each subcommand is a thin wrapper over the library; heavy imports (TensorFlow, FEFF) happen only
inside the subcommands that need them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


def _read_files(files: Sequence[str], columns: Sequence[str] | None):
    """Yield ``(name, XAS or None, notes, error)`` for every spectrum of every file; a bad file never stops the rest."""
    import warnings

    from pymatgen_xanes_nn.io.readers import SpectrumNote, read_spectra
    from pymatgen_xanes_nn.preprocessing import SpectrumError

    for filename in files:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SpectrumNote)
            try:
                spectra = read_spectra(filename, columns)
                error = None
            except (SpectrumError, OSError) as exc:
                spectra, error = [], exc
        notes = [str(w.message) for w in caught if issubclass(w.category, SpectrumNote)]
        if error is not None:
            yield filename, None, notes, error
        for name, xas in spectra:
            yield name, xas, notes, None


def _cmd_show(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.calibration import guidance
    from pymatgen_xanes_nn.edges import edge_for
    from pymatgen_xanes_nn.plotting import plot_preprocessed
    from pymatgen_xanes_nn.preprocessing import DEFAULT_PREPROCESSING, Preprocessing, SpectrumError, check_xas

    failed = 0
    for i, (name, xas, notes, error) in enumerate(_read_files(args.files, args.columns)):
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        if error is not None:
            failed += 1
            print(f"{name}: error: {error}", file=sys.stderr)
            continue
        # what one needs to see most when the spectrum does not fit the model: printed before any check
        e0 = DEFAULT_PREPROCESSING.edge(xas.x, xas.y, shift=args.shift, smooth=args.smooth).e0
        element = getattr(xas.absorbing_element, "symbol", str(xas.absorbing_element))
        try:
            edge = edge_for(e0, element)
            pre, where = Preprocessing.for_edge(edge), guidance(e0, edge)
        except ValueError as exc:  # no edge of ours: say what it looks like
            edge, pre, where = None, DEFAULT_PREPROCESSING, str(exc)
        print(
            f"{name}: {xas.absorbing_element} {xas.edge}-edge {xas.spectrum_type}, {len(xas.x)} points, "
            f"range {xas.x[0] + args.shift:.2f}-{xas.x[-1] + args.shift:.2f} eV, e0 {e0:.2f} eV "
            f"(shift {args.shift:+.2f} eV); model window {pre.e_min:g}-{pre.e_max:g} eV"
        )
        print(f"  {where}")
        try:
            if edge is None:
                raise SpectrumError("no model reads this edge")
            vec = pre.transform_arrays(check_xas(xas, edge).x, xas.y, shift=args.shift, smooth=args.smooth)
        except SpectrumError as exc:
            failed += 1
            vec = None
            print(f"  error: {exc}", file=sys.stderr)
        if args.png:
            root, ext = os.path.splitext(args.png)
            png = args.png if len(args.files) == 1 and i == 0 else f"{root}_{i}{ext or '.png'}"
            plot_preprocessed(xas, vec, pre, png, title=os.path.basename(name), shift=args.shift, e0=e0)
            print(f"  wrote {png}")
    return 1 if failed else 0


def _cmd_corpus(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.datagen.corpus import build_corpus, chemsys_ranking, save_corpus

    corpus = build_corpus(progress=True, element=args.element)
    save_corpus(corpus, args.output)
    n_sites = sum(len(r["sites"]) for r in corpus["structures"])
    print(f"{len(corpus['structures'])} unique structures, {n_sites} unique {args.element} sites -> {args.output}")
    print("largest chemical systems:", ", ".join(f"{c} {n}" for c, n in chemsys_ranking(corpus)[:12]))
    print("rejected:", {k: len(v) for k, v in corpus["rejected"].items()})
    return 0


def _cmd_derive(args: argparse.Namespace) -> int:
    from collections import Counter

    from pymatgen_xanes_nn.datagen.corpus import load_corpus, save_corpus
    from pymatgen_xanes_nn.datagen.derive import derive, outside_parents

    seed_classes = args.classes or _load_model("si_k_chemsys").labels
    existing = load_corpus(args.existing)["structures"] if args.existing else []
    extra = [] if args.no_outside_parents else outside_parents(args.max_atoms)
    derived = derive(load_corpus(args.corpus), seed_classes, extra_parents=extra, existing=existing,
                     target_materials=args.target, max_atoms=args.max_atoms, max_sites=args.max_sites, progress=True)
    save_corpus(derived, args.output)
    recs = derived["structures"]
    routes = Counter(r["substitution"]["route"] for r in recs)
    print(f"{len(recs)} derived structures, {sum(len(r['sites']) for r in recs)} unique Si sites -> {args.output}")
    print("routes:", dict(routes))
    print("materials per seed class (real + derived):", derived["per_class"])
    if derived["shortfall"]:
        print(f"below {args.target} materials:", derived["shortfall"])
    return 0


def _cmd_analogues(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.datagen.analogues import derive_analogues
    from pymatgen_xanes_nn.datagen.corpus import load_corpus, save_corpus

    out = derive_analogues(load_corpus(args.corpus, element=args.element), args.element, args.classes,
                           max_atoms=args.max_atoms, progress=True)
    save_corpus(out, args.output)
    recs = out["structures"]
    print(f"{len(recs)} analogue structures, {sum(len(r['sites']) for r in recs)} unique {args.element} sites "
          f"-> {args.output}")
    print("sites per class:", out["per_class"])
    print("left out:", out["rejected"])
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.datagen.corpus import chemsys_ranking, load_corpus
    from pymatgen_xanes_nn.datagen.simulate import (
        DirectorySink,
        StoreSink,
        interleave,
        jobs_for_absorber,
        jobs_from_corpus,
        simulate,
    )
    from pymatgen_xanes_nn.edges import SI_K
    from pymatgen_xanes_nn.io.tasks import load_tasks

    corpus = load_corpus(args.corpus)
    top = [c for c, _ in chemsys_ranking(corpus)[: args.priority]]
    if args.absorber and args.absorber != corpus.get("element", SI_K.element):
        jobs = jobs_for_absorber(corpus, args.absorber, args.limit or 4)
    else:
        jobs = jobs_from_corpus(corpus, priority_chemsys=top)
    if args.interleave:
        jobs = interleave(jobs, args.interleave)
    if args.only_priority:
        jobs = [j for j in jobs if j.metadata["chemsys"] in top]
    if args.task_ids:
        unknown = sorted(set(args.task_ids) - {j.task_id for j in jobs})
        if unknown:
            raise SystemExit(f"error: task ids not in the corpus: {', '.join(unknown)}")
        jobs = [j for j in jobs if j.task_id in set(args.task_ids)]
    if args.limit:
        jobs = jobs[: args.limit]
    if args.store_uri:
        from pymatgen_xanes_nn.pipeline.stores import mongo_store

        sink = StoreSink(mongo_store(args.store_uri, args.collection, args.database))
    else:
        done = load_tasks(args.dataset, include_failed=True) if args.dataset else []
        if args.collection_done:  # e.g. s_k_tasks: what the committed shards hold is not computed again
            from pymatgen_xanes_nn.io.tasks import load_collection

            done += load_collection(args.collection_done, include_failed=True)
        sink = DirectorySink(args.output, also_done=done)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `kill` stops FEFF and cleans up like Ctrl-C
    counts = simulate(jobs, sink, settings=args.settings, n_workers=args.workers, scratch=args.scratch,
                      retry_failed=args.retry_failed)
    print(json.dumps(counts))
    return 0


def _cmd_load_tasks(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.io.tasks import load_tasks
    from pymatgen_xanes_nn.pipeline.builders import ConfigurationError, check_mongo

    try:
        check_mongo(args.uri)
    except ConfigurationError as exc:
        raise SystemExit(f"error: {exc}") from None
    from pymatgen_xanes_nn.pipeline.stores import upsert_tasks

    n, total = 0, 0
    for filename in args.datasets:
        docs = load_tasks(filename, include_failed=True)
        total = upsert_tasks(args.uri, args.database, args.collection, docs)
        n += len(docs)
    print(f"{n} task documents -> {args.database}.{args.collection} ({total} in the collection); now: "
          'XANES_NN_MONGO_URI=... mrun "$(xanes-nn builders-file)"')
    return 0


def _cmd_pack(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.io.tasks import write_shard

    out = write_shard(args.directories, args.collection, data_dir=args.data_dir)
    if out["shard"] is None:
        print(f"nothing new for {args.collection} in {', '.join(args.directories)}")
    else:
        print(f"packed {out['documents']} new task documents ({out['successful']} successful) -> {out['shard']}")
    return 0


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
        raise ValueError(f"{args.checkpoint} holds no fold of this model's training run (other data or options: "
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
            raise ValueError(f"--standards {item!r}: write COMPOUND=TASK_ID:MEASURED_FILE")
        standards[compound] = (task_id, measured)
    jobs = {j.task_id: j for j in jobs_from_corpus(load_corpus(element=args.element))}
    missing = sorted(t for t, _ in standards.values() if t not in jobs)
    if missing:
        raise ValueError(f"task ids not in the {args.element} corpus: {', '.join(missing)}")
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


def _cmd_physics_variants(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.io.tasks import load_collection, load_tasks, write_shard
    from pymatgen_xanes_nn.studies.domain_shift import PHYSICS_COLLECTION, simulate_variants

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # as simulate: stop FEFF, keep what is written
    counts = simulate_variants(load_tasks(args.dataset), args.output, args.presets, n=args.n or None,
                               also_done=load_collection(PHYSICS_COLLECTION, include_failed=True),
                               n_workers=args.workers, scratch=args.scratch)
    print(json.dumps(counts))
    if args.shard:
        out = write_shard([args.output], PHYSICS_COLLECTION, data_dir=args.shard)
        print(f"{out['documents']} new task documents -> {out['shard']}")
    return 0


def _cmd_relax_corpus(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.datagen.derive import relax_corpus
    from pymatgen_xanes_nn.jsonio import PYMATGEN_CLASSES, read_json

    counts = relax_corpus(read_json(args.derived_corpus, PYMATGEN_CLASSES), args.output, limit=args.limit)
    print(f"relaxed {counts['relaxed']}, failed {counts['failed']}, already done {counts['done']} -> {args.output}")
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


def _cmd_demo(args: argparse.Namespace) -> int:
    import glob
    import time

    from pymatgen_xanes_nn.classifier import DEFAULT_MODEL
    from pymatgen_xanes_nn.paths import data_path
    from pymatgen_xanes_nn.pipeline.builders import pipeline_from_env

    examples = sorted(glob.glob(data_path(os.path.join("examples", "*"))))
    pipeline_model = args.model or DEFAULT_MODEL
    clf = _load_model(pipeline_model)
    md = clf.metadata
    oof = md.get("metrics", {}).get("out_of_fold", {})
    chosen = args.model or "each file's edge models"
    print(f"== 1. Classify the {len(examples)} example spectra shipped with the package ({chosen})")
    print(f"   {pipeline_model} {md.get('model_version', clf.name)}: {md.get('n_train', '?')} training spectra, "
          f"{len(clf.labels)} classes" + (f", out-of-fold accuracy {oof['accuracy']:.2f}" if oof else ""))
    _cmd_predict(argparse.Namespace(files=examples, model=args.model, json=False, latent=False, top=3, shift=0.0,
                                    smooth=None, png=None, columns=None, normalization=None))
    print(f"\n== 2. Builder pipeline on the shipped dataset (embedded default, {pipeline_model}) -> {args.output}/")
    env = dict(os.environ, XANES_NN_OUTPUT=args.output, XANES_NN_MODEL=pipeline_model)
    env.pop("XANES_NN_MONGO_URI", None)
    t0 = time.time()
    for builder in pipeline_from_env(env):
        builder.run(log_level=logging.WARNING)  # maggma's default is DEBUG on the root logger; prints its summary
    print(f"  done in {time.time() - t0:.1f} s; rerun it and nothing is rebuilt (incremental)")
    print('\nNext: `mrun "$(xanes-nn builders-file)"` (the same pipeline via maggma, from any folder), '
          "`xanes-nn predict your_spectrum.dat`, `xanes-nn models`")
    return 0


def _load_model(name_or_file: str):
    from pymatgen_xanes_nn.classifier import XANESClassifier

    return XANESClassifier.load(name_or_file)


def default_models(xas, shift: float = 0.0) -> list[str]:
    """The shipped models ``predict`` uses for a spectrum when none is named: its edge's, the default first.

    The edge comes from the file's element when its edge lies where that element's does, else from where it lies.

    Raises:
        SpectrumError: naming the edge the spectrum looks like when no shipped model reads it.
    """
    from pymatgen_xanes_nn.classifier import PRETRAINED
    from pymatgen_xanes_nn.edges import edge_for
    from pymatgen_xanes_nn.preprocessing import SpectrumError, find_e0, validate_arrays

    energy, mu = validate_arrays(xas.x, xas.y)
    e0 = float(find_e0(energy + shift, mu))
    element = getattr(xas.absorbing_element, "symbol", str(xas.absorbing_element))
    try:
        edge = edge_for(e0, element)
    except ValueError as exc:
        raise SpectrumError(str(exc)) from None
    shipped = [m for m in edge.models if m in PRETRAINED]
    if not shipped:
        raise SpectrumError(f"{edge.name} edge (e0 {e0:.1f} eV): no shipped model reads it yet")
    return shipped


def _shift_for(clf, shift: float | None) -> tuple[float, dict | None]:
    """The shift to use: the one given, else the saved calibration of the model's edge (recorded), else 0."""
    if shift is not None:
        return shift, None
    from pymatgen_xanes_nn.calibration import saved_shift

    return saved_shift(clf.edge)


def _summary(res: dict) -> dict:
    """What ``predict`` shows of a second model's answer."""
    return {k: res[k] for k in ("model", "label", "confidence", "prediction_set", "set_level", "dont_know", "reason")}


def _cmd_predict(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.preprocessing import SpectrumError
    from pymatgen_xanes_nn.result import verdict

    models: dict[str, object] = {}

    def model(name: str):
        if name not in models:
            models[name] = _load_model(name)
        return models[name]

    results, failed = [], 0
    for name, xas, notes, error in _read_files(args.files, args.columns):
        if not args.json:
            for note in notes:
                print(f"note: {note}", file=sys.stderr)
        if error is None:
            try:
                names = [args.model] if args.model else default_models(xas, args.shift or 0.0)
                shift, calibration = _shift_for(model(names[0]), args.shift)
                options = {"shift": shift, "smooth": args.smooth, "normalization": args.normalization}
                result = model(names[0]).classify(xas, **options)
                also = [_summary(model(n).classify(xas, evidence=False, **options)) for n in names[1:]]
            except SpectrumError as exc:
                error = exc
        if error is not None:  # one bad file never stops the others
            failed += 1
            results.append({"file": name, "error": str(error), "notes": notes})
            if not args.json:
                print(f"{name}: error: {error}", file=sys.stderr)
            continue
        res = {"file": name, **result, "also": also, "shift": shift, "calibration": calibration, "notes": notes}
        if args.png and result["evidence"]:
            from pymatgen_xanes_nn.plotting import pyplot

            root, ext = os.path.splitext(args.png)
            png = args.png if len(args.files) == 1 and not results else f"{root}_{len(results)}{ext or '.png'}"
            fig = result.figure(title=os.path.basename(name))
            fig.savefig(png, dpi=110)
            pyplot().close(fig)
            res["png"] = png
        if not args.latent:
            res.pop("latent")
        results.append(res)
        if not args.json:
            print(f"{name}: {verdict(result)}   [{result['model']}]")
            if shift:
                source = f"saved calibration, {calibration['compound']} standard" if calibration else "--shift"
                print(f"    energy shift {shift:+.2f} eV ({source})")
            for other in also:
                print(f"    {other['model']}: {verdict(other)}")
            top = sorted(result["probabilities"].items(), key=lambda kv: -kv[1])[: args.top]
            print("    probabilities: " + ", ".join(f"{lab} {p:.3f}" for lab, p in top))
            quality = result.get("quality") or {}
            print(f"    out-of-distribution p-value {result['ood_pvalue']:.3g} (flag below {result['ood_alpha']})"
                  + ("; input quality: " + ", ".join(f"{k} {v:.3g}" for k, v in quality.items()) if quality else ""))
            for ev in result["evidence"]:
                named = f" = {ev['class']}" if ev.get("class") and ev["class"] != ev["environment"] else ""
                print(f"    similar: {ev['formula']} {ev['environment']}{named} ({ev['task_id']}), "
                      f"similarity {ev['similarity']:.2f}")
            if "png" in res:
                print(f"    wrote {res['png']}")
    if args.json:
        print(json.dumps(results, indent=2, allow_nan=False))  # standard JSON: a NaN would be a bug, not output
    return 1 if failed else 0  # scripts must notice a file that was not classified


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.calibration import calibrate, save_calibration
    from pymatgen_xanes_nn.io.readers import read_spectrum

    record = calibrate(read_spectrum(args.standard, args.columns), args.compound, source=args.standard)
    print(f"{args.standard}: e0 {record['measured_e0']:.2f} eV; {args.compound} on the models' scale "
          f"{record['reference_e0']:.2f} eV ({record['reference_task']}): shift {record['shift']:+.2f} eV")
    if args.save:
        print(f"saved for the {record['edge']} K edge in {save_calibration(record)}: predict now uses it "
              "(--shift overrides)")
    else:
        print(f"use it: xanes-nn predict FILE --shift {record['shift']:.2f} (or calibrate again with --save)")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.classifier import PRETRAINED, XANESClassifier
    from pymatgen_xanes_nn.edges import EDGES

    for edge in EDGES.values():
        for i, name in enumerate(edge.models):
            if name not in PRETRAINED:
                print(f"{name} ({edge.name} edge): not shipped yet")
                continue
            clf = XANESClassifier.from_pretrained(name)
            oof = clf.metadata.get("metrics", {}).get("out_of_fold", {})
            accuracy = f"{100 * oof['accuracy']:.1f}% out of fold" if "accuracy" in oof else "accuracy not recorded"
            print(f"{name} ({edge.name} edge{', the default' if i == 0 else ''}): {len(clf.labels)} classes, "
                  f"{accuracy}")
            print(f"    answers: {MODEL_PURPOSE.get(name, clf.metadata.get('scheme', ''))}")
            print("    classes: " + ", ".join(clf.labels))
    return 0


#: What each shipped model answers, for ``xanes-nn models``.
MODEL_PURPOSE = {
    "si_k_environment": "the Si local environment (first shell: SiO4, SiO6, SiN4, SiC4, ...), what a Si K edge "
                        "encodes best",
    "si_k_chemsys": "the chemical system of a silicate or silicide (the seed's 12 classes); many SiO4 silicates "
                    "look alike, so expect sets of several labels",
    "s_k_oxidation": "the S oxidation state (S2-, S1-, S0, S4+, S6+)",
    "s_k_environment": "the S first-shell motif (SO4, SO3, S-S, S bonded to metals, ...)",
}


def _training_config(args: argparse.Namespace):
    """The :class:`TrainingConfig` of the training options (one place for train, evaluate and experiments)."""
    import dataclasses

    from pymatgen_xanes_nn.training.fit import TrainingConfig

    fields = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainingConfig) if f.name not in _NOT_OPTIONS}
    return TrainingConfig(name=getattr(args, "name", "custom"), **fields)


def _load_docs(args: argparse.Namespace) -> list[dict]:
    from pymatgen_xanes_nn.edges import SI_K, get_edge
    from pymatgen_xanes_nn.io.tasks import TASKS_FILE, load_tasks
    from pymatgen_xanes_nn.paths import data_path

    if getattr(args, "store_uri", None):
        from pymatgen_xanes_nn.pipeline.stores import mongo_store

        store = mongo_store(args.store_uri, args.collection, args.database)
        store.connect()
        docs = [d for d in store.query({"state": {"$ne": "failed"}}) if d.get("spectrum")]
        store.close()
    elif args.dataset:
        docs = load_tasks(args.dataset)
    elif getattr(args, "element", None) and args.element != SI_K.element:
        from pymatgen_xanes_nn.io.tasks import load_collection

        docs = load_collection(get_edge(args.element).tasks_collection)
    else:
        docs = load_tasks(data_path(TASKS_FILE))
    if getattr(args, "with_derived", False):
        from pymatgen_xanes_nn.io.tasks import load_collection

        edge = get_edge(getattr(args, "element", None) or SI_K.element)
        if not edge.derived_collection:
            raise SystemExit(f"No derived structures are shipped for the {edge.name} edge")
        docs += load_collection(edge.derived_collection)
    if getattr(args, "with_physics", None) is not None:
        from pymatgen_xanes_nn.io.tasks import load_collection
        from pymatgen_xanes_nn.studies.domain_shift import PHYSICS_COLLECTION, variant_preset

        wanted = set(args.with_physics)
        docs += [d for d in load_collection(PHYSICS_COLLECTION)
                 if not wanted or variant_preset(d["task_id"]) in wanted]
    return docs


def _preprocessing(args: argparse.Namespace):
    from pymatgen_xanes_nn.edges import DEFAULT_ELEMENT
    from pymatgen_xanes_nn.preprocessing import Preprocessing

    return Preprocessing.for_edge(getattr(args, "element", DEFAULT_ELEMENT), normalization=args.normalization,
                                  alignment=args.alignment, e0_column=args.e0_column)


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
        raise ValueError(f"--evidence-rule needs the environment scheme: the shipped evidence is named by "
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


def _add_dataset_options(p: argparse.ArgumentParser) -> None:
    """Where task documents come from: the shipped packed dataset by default, or a MongoDB store."""
    from pymatgen_xanes_nn.edges import EDGES, SI_K

    p.add_argument("--element", default=SI_K.element, choices=sorted(EDGES),
                   help="absorbing element: its edge's window, shipped task documents and label schemes")
    p.add_argument("--dataset", default=None, help="packed task documents (default: the element's shipped ones)")
    p.add_argument("--with-derived", action="store_true",
                   help="add the shipped spectra of the edge's substitution-derived structures (Si: relaxed cation/"
                        "anion substitutions; S: Se -> S analogues; training only: test and calibration folds hold "
                        "real crystals)")
    p.add_argument("--with-physics", nargs="*", default=None, metavar="PRESET",
                   help="add the shipped physics variants of these presets (none named: all; sites computed "
                        "without core hole, with RPA screening, Dirac-Hara exchange; training only)")
    p.add_argument("--store-uri", default=None, help="read task documents from this MongoDB instead")
    p.add_argument("--database", default="feff")
    p.add_argument("--collection", default="tasks")


#: Option names kept from before the options were generated from :class:`TrainingConfig` (field -> option).
_OPTION_NAMES = {"ae_config": "--ae", "fnn_config": "--fnn", "augment_copies": "--augment"}
#: Fields that are not options: the name has its own per command.
_NOT_OPTIONS = ("name",)


def _field_help(cls: type) -> dict[str, str]:
    """The ``Args:`` entries of a dataclass's Google-style docstring, one line each: the options' help."""
    import inspect
    import re

    doc = inspect.getdoc(cls) or ""
    args = doc.split("Args:", 1)[-1]
    out: dict[str, str] = {}
    for m in re.finditer(r"^    (\w+): (.*(?:\n {8,}.*)*)", args, flags=re.M):
        out[m.group(1)] = " ".join(m.group(2).split()).replace("%", "%%")
    return out


def _add_training_options(p: argparse.ArgumentParser) -> None:
    """One option per field of :class:`TrainingConfig`: its default, its type and its docstring as help.

    The CLI differs from the class in one default only: ``--augment`` is
    :data:`~pymatgen_xanes_nn.training.fit.DEFAULT_AUGMENT_COPIES` (the shipped recipe), where a bare
    ``TrainingConfig`` augments nothing (it has no raw spectra to perturb).
    """
    import dataclasses

    from pymatgen_xanes_nn.labels import LABEL_SCHEMES
    from pymatgen_xanes_nn.models import AE_CONFIGS, FNN_CONFIGS
    from pymatgen_xanes_nn.training.fit import DEFAULT_AUGMENT_COPIES, TrainingConfig
    from pymatgen_xanes_nn.trust.conformal import CONFORMAL_MODES
    from pymatgen_xanes_nn.trust.evidence import RULES
    from pymatgen_xanes_nn.trust.ood import OOD_SCORES

    p.add_argument("--scheme", default="chemsys", choices=LABEL_SCHEMES, help="label scheme")
    helps = _field_help(TrainingConfig)
    choices = {"ae_config": sorted(AE_CONFIGS), "fnn_config": sorted(FNN_CONFIGS), "conformal_mode": CONFORMAL_MODES,
               "ood_scores": OOD_SCORES, "evidence_rule": RULES}
    defaults = {"augment_copies": DEFAULT_AUGMENT_COPIES}
    for f in dataclasses.fields(TrainingConfig):
        if f.name in _NOT_OPTIONS:
            continue
        default = defaults.get(f.name, f.default)
        names = [f"--{f.name.replace('_', '-')}"]
        if f.name in _OPTION_NAMES:
            names.insert(0, _OPTION_NAMES[f.name])
        kw: dict = {"dest": f.name, "default": default, "help": helps.get(f.name, "") + " (default: %(default)s)"}
        if f.name in choices:
            kw["choices"] = choices[f.name]
        if isinstance(default, bool):
            kw["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, tuple):
            kw.update(nargs="+", default=list(default))
        elif f.name == "ood_alpha":
            kw["type"] = float
        elif f.name in ("augment_copies", "calibration_folds"):
            kw["type"] = _int_at_least(0)
        elif default is not None:
            kw["type"] = type(default)
        p.add_argument(*names, **kw)
    _add_preprocessing_options(p)
    _add_dataset_options(p)


def _add_preprocessing_options(p: argparse.ArgumentParser) -> None:
    """How spectra become model inputs (read back by :func:`_preprocessing`)."""
    from pymatgen_xanes_nn.preprocessing import ALIGNMENTS, DEFAULT_PREPROCESSING, NORMALIZATIONS

    p.add_argument("--normalization", default=DEFAULT_PREPROCESSING.normalization, choices=NORMALIZATIONS)
    p.add_argument("--alignment", default=DEFAULT_PREPROCESSING.alignment, choices=ALIGNMENTS,
                   help="absolute energies or every e0 moved to one energy")
    p.add_argument("--e0-column", action=argparse.BooleanOptionalAction, default=DEFAULT_PREPROCESSING.e0_column,
                   help="keep the absolute e0 of an e0-aligned input as one more input value (for --e0-input and "
                        "the edge_offset OOD score)")


def _cmd_builders_file(args: argparse.Namespace) -> int:
    from importlib.util import find_spec

    print(find_spec("pymatgen_xanes_nn.pipeline.mrun_xanes").origin)  # found, not imported: nothing is built here
    return 0


def _cmd_card(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.datagen.card import dataset_summary, derived_summary, render_card
    from pymatgen_xanes_nn.datagen.corpus import load_corpus
    from pymatgen_xanes_nn.edges import SI_K
    from pymatgen_xanes_nn.io.tasks import load_tasks
    from pymatgen_xanes_nn.jsonio import PYMATGEN_CLASSES, read_json

    if args.element != SI_K.element:  # another edge: its collection and corpus
        from pymatgen_xanes_nn.datagen.card import edge_card
        from pymatgen_xanes_nn.edges import get_edge
        from pymatgen_xanes_nn.io.tasks import load_collection

        edge = get_edge(args.element)
        docs = load_collection(edge.tasks_collection, include_failed=True)
        output = args.output if args.output != os.path.join("docs", "DATASET.md") else \
            os.path.join("docs", f"DATASET_{edge.element}.md")
        with open(output, "w") as f:
            f.write(edge_card(docs, edge, load_corpus(element=edge.element)))
        print(f"{sum(d.get('state') != 'failed' for d in docs)} {edge.name} spectra -> {output}")
        return 0
    study = json.load(open(args.study)) if args.study and os.path.exists(args.study) else None
    summary = dataset_summary(load_tasks(args.dataset, include_failed=True))
    derived = derived_summary(
        load_tasks(args.derived, include_failed=True),
        load_corpus(args.derived_corpus) if os.path.exists(args.derived_corpus) else None,
        read_json(args.relaxed_corpus, PYMATGEN_CLASSES) if os.path.exists(args.relaxed_corpus) else None)
    with open(args.output, "w") as f:
        f.write(render_card(summary, load_corpus(), study, derived))
    print(f"{summary['n_successful']} spectra, {summary['n_structures']} structures -> {args.output}")
    return 0


def _cmd_reference(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.io.tasks import load_tasks
    from pymatgen_xanes_nn.trust.evidence import build_reference, reference_file, save_reference

    pre = _preprocessing(args)
    output = args.output
    if os.path.basename(output) != reference_file(pre):
        print(f"note: classify() looks for this preprocessing's index as {reference_file(pre)} in the package data",
              file=sys.stderr)
    docs = [d for path in args.datasets for d in load_tasks(path)]
    ref = build_reference(docs, pre)
    save_reference(ref, output)
    print(f"{len(ref['task_id'])} reference spectra of {len(docs)} task documents -> {output}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.studies.report import update_readme, write_report

    for path in write_report(args.results, args.output):
        print(f"wrote {path}")
    if args.readme and os.path.exists(args.readme) and update_readme(args.readme, args.results, args.benchmarks):
        print(f"wrote {args.readme} (its generated tables)")
    return 0


# ---------------------------------------------------------------------------- option types, checked up front
SPECTRUM_FILES_HELP = "spectrum files: FEFF xmu.dat, XDI, text/CSV columns, Athena .prj, XAS or task JSON"

def _int_at_least(lowest: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"{value} is below {lowest}")
        return value

    parse.__name__ = f"integer >= {lowest}"
    return parse


def _finite_float(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _positive_float(text: str) -> float:
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not > 0")
    return value


def _column_names(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",")]
    if len(names) < 2 or not all(names):
        raise argparse.ArgumentTypeError(f"{text!r}: give a comma-separated name per column, e.g. energy,i0,it")
    return names


def _element(text: str) -> str:
    from pymatgen.core import Element

    if not Element.is_valid_symbol(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an element symbol")
    return text


def _existing_file(text: str) -> str:
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"{text!r}: no such file")
    return text


def _dataset_or_none(text: str) -> str | None:
    """A packed dataset that must exist (a typo would recompute everything), or 'none' for no dataset."""
    return None if text.lower() == "none" else _existing_file(text)


def _model_name_or_file(text: str) -> str:
    from pymatgen_xanes_nn.classifier import PRETRAINED

    if text in PRETRAINED or os.path.isfile(text):
        return text
    what = "a directory" if os.path.isdir(text) else "not a file"
    raise argparse.ArgumentTypeError(f"{text!r} is {what} and not one of {sorted(PRETRAINED)}")


def _writable_path(text: str) -> str:
    """An output file whose folder exists and is writable (checked before hours of work, not after)."""
    folder = os.path.dirname(os.path.abspath(text))
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a directory; give a file name")
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: folder {folder!r} is missing or not writable")
    return text


def build_parser() -> argparse.ArgumentParser:
    """Return the ``xanes-nn`` argument parser."""
    from pymatgen_xanes_nn import __version__
    from pymatgen_xanes_nn.datagen.analogues import HOMOLOGUES
    from pymatgen_xanes_nn.datagen.simulate import PHYSICS_VARIANTS, PRESETS
    from pymatgen_xanes_nn.edges import EDGES, SI_K
    from pymatgen_xanes_nn.io.tasks import (
        DERIVED_RELAXED_TASKS_FILE,
        DERIVED_TASKS_FILE,
        OTHER_EDGES_FILE,
        TASKS_FILE,
    )
    from pymatgen_xanes_nn.paths import data_path
    from pymatgen_xanes_nn.studies.domain_shift import CANDIDATES, N_SITES
    from pymatgen_xanes_nn.studies.ood_benchmark import LEAVE_OUT
    from pymatgen_xanes_nn.trust.ood import DEFAULT_OOD_SCORES, OOD_SCORES

    parser = argparse.ArgumentParser(prog="xanes-nn", description="Si K-edge XANES with neural networks",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="classify the shipped examples and run the builder pipeline on the shipped data")
    p.add_argument("--model", type=_model_name_or_file, default=None,
                   help="pretrained name or model file (default: the edge's models, as predict)")
    p.add_argument("--output", default="xanes_nn_demo",
                   help="folder of the JSON collections (its own: `mrun` writes to ./xanes_nn_output)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("show", help="print e0, range and points of spectra; plot raw and preprocessed")
    p.add_argument("files", nargs="+", help=SPECTRUM_FILES_HELP)
    p.add_argument("--columns", type=_column_names, default=None,
                   help="names of the columns when the header does not say, e.g. energy,i0,it or index,energy,mu")
    p.add_argument("--png", type=_writable_path, help="write a PNG of the raw and preprocessed spectrum")
    p.add_argument("--shift", type=_finite_float, default=0.0, help="energy shift in eV (calibration)")
    p.add_argument("--smooth", type=_positive_float, default=None, help="Savitzky-Golay window in eV")
    p.set_defaults(func=_cmd_show)

    p = sub.add_parser("predict", help="classify spectrum files with a pretrained or saved model")
    p.add_argument("files", nargs="+", help=SPECTRUM_FILES_HELP)
    p.add_argument("--columns", type=_column_names, default=None,
                   help="names of the columns when the header does not say, e.g. energy,i0,it or index,energy,mu")
    p.add_argument("--model", type=_model_name_or_file, default=None,
                   help="pretrained name or model file (default: the edge's models, found from the file: for Si K, "
                        "si_k_environment, with si_k_chemsys's set beside it; see xanes-nn models)")
    p.add_argument("--normalization", choices=["edge_step", "pre_edge"], default=None,
                   help="pre_edge removes a sloped background (Athena/larch pre-edge line and post-edge polynomial); "
                        "default: the model's own (edge_step)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--latent", action="store_true", help="include the latent code in JSON")
    p.add_argument("--top", type=_int_at_least(1), default=3, help="probabilities shown per spectrum")
    p.add_argument("--shift", type=_finite_float, default=None,
                   help="energy shift in eV added to the file's energies (default: the shift saved by "
                        "`xanes-nn calibrate --save` for the edge, else 0)")
    p.add_argument("--smooth", type=_positive_float, default=None, help="Savitzky-Golay window in eV")
    p.add_argument("--png", type=_writable_path, default=None,
                   help="plot each spectrum over its 3 most similar shipped spectra")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("calibrate", help="the energy shift that puts your beamline's spectra on the models' scale, "
                                          "from a measured standard")
    p.add_argument("--standard", required=True, type=_existing_file, help="the measured standard (any spectrum file)")
    p.add_argument("--compound", required=True, help="which reference it is, e.g. Si, SiO2, S8, FeS2")
    p.add_argument("--columns", type=_column_names, default=None, help="column names, as for predict")
    p.add_argument("--save", action="store_true",
                   help="save the shift for this edge: predict uses it when --shift is not given (file: "
                        "$XANES_NN_CALIBRATION or ~/.config/pymatgen-xanes-nn/calibration.json)")
    p.set_defaults(func=_cmd_calibrate)

    p = sub.add_parser("models", help="list the shipped models, what each answers, their classes and accuracy")
    p.set_defaults(func=_cmd_models)

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

    p = sub.add_parser("corpus", help="build the structure corpus of an edge (AMCSD + matbench_dielectric)")
    p.add_argument("--element", default=SI_K.element, choices=sorted(EDGES), help="the absorbing element")
    p.add_argument("--output", default="corpus.json.gz")
    p.set_defaults(func=_cmd_corpus)

    p = sub.add_parser("derive", help="derive structures by ion substitution (seed classes, mixed anions)")
    p.add_argument("--corpus", default=None, help="corpus file (default: shipped)")
    p.add_argument("--output", type=_writable_path, default="derived_corpus.json.gz",
                   help="where the derived corpus goes (never into the installed package unless you name it)")
    p.add_argument("--classes", nargs="+", default=None, help="chemical systems to fill (default: the chemsys model's)")
    p.add_argument("--target", type=int, default=45, help="materials per class to reach (real + derived)")
    p.add_argument("--max-atoms", type=int, default=40, help="largest parent cell")
    p.add_argument("--max-sites", type=int, default=2600, help="stop once this many unique Si sites are derived")
    p.add_argument("--existing", default=None, help="derived corpus of an earlier run: kept, only added to")
    p.add_argument("--no-outside-parents", action="store_true",
                   help="only corpus parents (default: also Si-free matbench_dielectric structures)")
    p.set_defaults(func=_cmd_derive)

    p = sub.add_parser("analogues", help="analogue structures of thin classes: a homologue's crystals (Se for S) with "
                                         "the absorber in its place, bonds shortened")
    p.add_argument("--element", default="S", choices=sorted(HOMOLOGUES), help="absorbing element")
    p.add_argument("--corpus", default=None, help="the element's corpus (default: shipped): known structures are "
                                                  "left out")
    p.add_argument("--classes", nargs="+", default=["S4+", "S0", "S1-"],
                   help="keep structures with a unique absorber site of these oxidation labels")
    p.add_argument("--max-atoms", type=int, default=60, help="largest cell")
    p.add_argument("--output", type=_writable_path, default="analogues.json.gz",
                   help="where the derived corpus goes (never into the installed package unless you name it)")
    p.set_defaults(func=_cmd_analogues)

    p = sub.add_parser("simulate", help="run FEFF10 on every unique Si site of the corpus (resumable)")
    p.add_argument("--corpus", default=None, help="corpus file (default: shipped)")
    p.add_argument("--settings", default="dataset", choices=sorted(PRESETS))
    p.add_argument("--workers", type=_int_at_least(1), default=os.cpu_count() or 1)
    p.add_argument("--output", default="feff_tasks", help="folder of finished task documents")
    p.add_argument("--scratch", default=None, help="folder for FEFF working directories")
    p.add_argument("--dataset", type=_dataset_or_none, default=data_path(TASKS_FILE),
                   help="packed dataset whose tasks are skipped ('none': none)")
    p.add_argument("--priority", type=int, default=12, help="simulate the N largest chemical systems first")
    p.add_argument("--only-priority", action="store_true", help="only the N largest chemical systems")
    p.add_argument("--limit", type=_int_at_least(0), default=0, help="at most this many sites (0: all)")
    p.add_argument("--retry-failed", action="store_true", help="rerun sites whose documents record a failure")
    p.add_argument("--absorber", default=None, type=_element,
                   help="another element's K edge than the corpus's (one site in each of the --limit smallest "
                        "structures, default 4): OOD test spectra")
    p.add_argument("--collection-done", default=None, metavar="NAME",
                   help="skip the sites a shipped collection already holds (base file and shards), e.g. s_k_tasks")
    p.add_argument("--interleave", default=None, metavar="KEY",
                   help="order sites round robin over this site annotation (e.g. oxidation), so a stopped run has "
                        "every class")
    p.add_argument("--task-ids", nargs="+", default=None, metavar="ID", help="only these sites (e.g. amcsd-1264-s16)")
    p.add_argument("--store-uri", default=None, help="MongoDB URI: write task documents to a store instead")
    p.add_argument("--database", default="feff")
    p.add_argument("--collection", default="tasks")
    p.set_defaults(func=_cmd_simulate)

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

    p = sub.add_parser("physics-variants", help="compute sites of the dataset again with other FEFF physics (core "
                                                "hole none / RPA, Dirac-Hara exchange): the domain-shift benchmark's "
                                                "spectra (resumable)")
    p.add_argument("--presets", nargs="+", default=list(PHYSICS_VARIANTS), choices=PHYSICS_VARIANTS)
    p.add_argument("--n", type=_int_at_least(0), default=N_SITES,
                   help="sites, one per material, stratified (0: every real site, the physics-diverse training set)")
    p.add_argument("--workers", type=_int_at_least(1), default=os.cpu_count() or 1)
    p.add_argument("--output", default="physics_variant_tasks", help="folder of finished task documents")
    p.add_argument("--scratch", default=None, help="folder for FEFF working directories")
    p.add_argument("--dataset", default=data_path(TASKS_FILE), help="the dataset preset's packed task documents")
    p.add_argument("--shard", default=None, metavar="DATA_DIR",
                   help="at the end, pack the new documents into the next shard file of the physics collection under "
                        "this data folder (e.g. pymatgen_xanes_nn/data)")
    p.set_defaults(func=_cmd_physics_variants)

    p = sub.add_parser("relax-corpus", help="relax every derived structure with CHGNet before FEFF (needs pip "
                                             "install '.[relax]'; resumable, written every 10 structures)")
    p.add_argument("--derived-corpus", default=data_path("derived_corpus.json.gz"))
    p.add_argument("--output", type=_writable_path, default="derived_corpus_relaxed.json.gz",
                   help="where the relaxed structures go, resumed from (never the installed package unless named)")
    p.add_argument("--limit", type=_int_at_least(1), default=None, help="relax at most this many now")
    p.set_defaults(func=_cmd_relax_corpus)

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

    p = sub.add_parser("card", help="write the dataset card (markdown) from the packed dataset")
    p.add_argument("--element", default=SI_K.element, choices=sorted(EDGES),
                   help="the edge (another edge's card goes to docs/DATASET_<element>.md)")
    p.add_argument("--dataset", default=data_path(TASKS_FILE))
    p.add_argument("--derived", default=data_path(DERIVED_RELAXED_TASKS_FILE),
                   help="packed task documents of the relaxed derived structures")
    p.add_argument("--derived-corpus", default=data_path("derived_corpus.json.gz"), help="planned derived structures")
    p.add_argument("--relaxed-corpus", default=data_path("derived_corpus_relaxed.json.gz"),
                   help="derived structures relaxed so far")
    p.add_argument("--study", default=os.path.join("docs", "feff_study.json"))
    p.add_argument("--output", default=os.path.join("docs", "DATASET.md"))
    p.set_defaults(func=_cmd_card)

    p = sub.add_parser("builders-file", help="print the path of the installed mrun file: "
                                              "mrun \"$(xanes-nn builders-file)\" runs the pipeline from any folder")
    p.set_defaults(func=_cmd_builders_file)

    p = sub.add_parser("reference", help="index the shipped spectra for the evidence of classify()")
    p.add_argument("--datasets", nargs="+", type=_existing_file, default=[data_path(TASKS_FILE)],
                   help="packed task documents to index")
    _add_preprocessing_options(p)
    p.add_argument("--output", required=True, type=_writable_path,
                   help="the index file (the shipped one is pymatgen_xanes_nn/data/reference_spectra.npz)")
    p.set_defaults(func=_cmd_reference)

    p = sub.add_parser("report", help="write docs/RESULTS.md and its figures from the committed result JSON")
    p.add_argument("--results", default=os.path.join("docs", "results"))
    p.add_argument("--output", default=os.path.join("docs", "RESULTS.md"))
    p.add_argument("--readme", default=None,
                   help="also rewrite this README's generated tables (the model and performance rows), e.g. README.md")
    p.add_argument("--benchmarks", default=os.path.join("benchmarks", "results"), help="benchmark results folder")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("load-tasks", help="load the shipped FEFF task documents into your MongoDB (upsert by task_id)")
    p.add_argument("uri", help="MongoDB URI, e.g. mongodb://localhost:27017")
    p.add_argument("--database", default="feff")
    p.add_argument("--collection", default="tasks")
    p.add_argument("--datasets", nargs="+", type=_existing_file, default=[data_path(TASKS_FILE)],
                   help="packed task documents (default: the shipped dataset)")
    p.set_defaults(func=_cmd_load_tasks)

    p = sub.add_parser("pack", help="pack the new documents of folders of finished task documents into the next "
                                     "shard file of a collection (committed files are never rewritten)")
    p.add_argument("directories", nargs="+")
    p.add_argument("--collection", required=True, help="e.g. s_k_tasks, si_k_tasks_physics")
    p.add_argument("--data-dir", required=True, help="the data folder to add the shard to, e.g. pymatgen_xanes_nn/data")
    p.set_defaults(func=_cmd_pack)
    for command in sub.choices.values():  # every command's --help shows its defaults
        command.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``xanes-nn``; returns the exit code."""
    from pymatgen_xanes_nn.preprocessing import SpectrumError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (SpectrumError, FileNotFoundError, ValueError) as exc:
        print(f"xanes-nn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `xanes-nn predict ... | head -1`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python would otherwise complain again while flushing at exit
        return 141


if __name__ == "__main__":
    sys.exit(main())
