"""User commands: classify spectra, calibrate, run the builders (``xanes-nn demo|predict|show|...``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

from pymatgen_xanes_nn.cli.common import (
    SPECTRUM_FILES_HELP,
    _column_names,
    _existing_file,
    _finite_float,
    _int_at_least,
    _load_model,
    _model_name_or_file,
    _positive_float,
    _writable_path,
)


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


def _cmd_builders_file(args: argparse.Namespace) -> int:
    from importlib.util import find_spec

    print(find_spec("pymatgen_xanes_nn.pipeline.mrun_xanes").origin)  # found, not imported: nothing is built here
    return 0


def register(sub) -> None:
    """Add the user commands to the ``xanes-nn`` subparsers."""
    from pymatgen_xanes_nn.io.tasks import TASKS_FILE
    from pymatgen_xanes_nn.paths import data_path

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

    p = sub.add_parser("builders-file", help="print the path of the installed mrun file: "
                                              "mrun \"$(xanes-nn builders-file)\" runs the pipeline from any folder")
    p.set_defaults(func=_cmd_builders_file)

    p = sub.add_parser("load-tasks", help="load the shipped FEFF task documents into your MongoDB (upsert by task_id)")
    p.add_argument("uri", help="MongoDB URI, e.g. mongodb://localhost:27017")
    p.add_argument("--database", default="feff")
    p.add_argument("--collection", default="tasks")
    p.add_argument("--datasets", nargs="+", type=_existing_file, default=[data_path(TASKS_FILE)],
                   help="packed task documents (default: the shipped dataset)")
    p.set_defaults(func=_cmd_load_tasks)
