"""What the command modules share: argument types, the training, preprocessing and dataset options."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

def _load_model(name_or_file: str):
    from pymatgen_xanes_nn.classifier import XANESClassifier

    return XANESClassifier.load(name_or_file)


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


def _add_dataset_options(p: argparse.ArgumentParser) -> None:
    """Where task documents come from: the shipped packed dataset by default, or a MongoDB store."""
    from pymatgen_xanes_nn.edges import EDGES, SI_K

    p.add_argument("--element", default=SI_K.element, choices=sorted(EDGES),
                   help="absorbing element: its edge's window, shipped task documents and label schemes")
    p.add_argument("--dataset", default=None, help="packed task documents (default: the element's shipped ones)")
    p.add_argument("--with-derived", action="store_true",
                   help="add the shipped spectra of the edge's substitution-derived structures (Si: relaxed cation/"
                        "anion substitutions; S: Se and Te -> S analogues; training only: test and calibration folds "
                        "hold real crystals)")
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
