"""Domain shift: the same sites computed with other FEFF physics, standing in for the gap to experiment.

The models learn FEFF spectra of the ``dataset`` preset. A measured spectrum differs from them in ways no
perturbation of the energy axis imitates: the core hole is screened differently (RPA instead of the final-state
rule, or none), exchange is modelled differently, the instrument broadens. This module picks a fixed set of sites
of the shipped dataset, computes them again with
:data:`~pymatgen_xanes_nn.datagen.simulate.PHYSICS_VARIANTS` (resumable,
one document per site and preset) and packs them as a dataset of their own.
"""

from __future__ import annotations

import dataclasses
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pymatgen_xanes_nn.errors import InputError
from pymatgen_xanes_nn.labels import assign_labels, select_classes, training_only
from pymatgen_xanes_nn.training.metrics import one_standard_error_choice

if TYPE_CHECKING:
    from pymatgen_xanes_nn.classifier import XANESClassifier
    from pymatgen_xanes_nn.datagen.simulate import SiteJob
    from pymatgen_xanes_nn.preprocessing import Preprocessing
    from pymatgen_xanes_nn.training.fit import SpectraSet, TrainingConfig

#: Packed task documents of the physics variants (in ``pymatgen_xanes_nn/data``).
PHYSICS_TASKS_FILE = "si_k_tasks_physics.json.gz"
#: The collection (base file + shards, :func:`~pymatgen_xanes_nn.io.tasks.load_collection`) of every physics variant.
PHYSICS_COLLECTION = "si_k_tasks_physics"
#: Sites picked: one per material, half stratified by chemical system (the seed's classes), the rest by
#: Si environment, so both models have their classes covered.
N_SITES = 160


def pick_sites(docs: Sequence[dict], n: int = N_SITES, seed: int = 0) -> list[str]:
    """Task ids of ``n`` sites of ``docs``, one per material, stratified by class (round robin, random within).

    Args:
        docs: task documents of the ``dataset`` preset (the shipped dataset).
        n: how many sites.
        seed: random seed of the picks.

    Returns:
        Task ids in the order picked (the order the variants are computed in).
    """
    rng = np.random.default_rng(seed)
    ok = [d for d in docs if d.get("state", "successful") == "successful"
          and not training_only(d)]  # real crystals only, as every test fold
    picked: list[str] = []
    used_groups: set[str] = set()
    for scheme, quota in (("chemsys", n // 2), ("environment", n)):
        labels = assign_labels(ok, scheme, select_classes(ok, scheme))
        pools: dict[str, list[dict]] = defaultdict(list)
        for d, lab in zip(ok, labels):
            if lab is not None:
                pools[lab].append(d)
        for pool in pools.values():
            rng.shuffle(pool)
        target = min(len(picked) + quota, n)
        while len(picked) < target and any(pools.values()):
            for lab in sorted(pools):
                while pools[lab]:
                    d = pools[lab].pop()
                    group = d["metadata"].get("group_id", d["task_id"])
                    if group not in used_groups:
                        used_groups.add(group)
                        picked.append(d["task_id"])
                        break
                if len(picked) >= target:
                    break
    return picked


def variant_task_id(task_id: str, preset: str) -> str:
    """The task id of a site computed with another preset, e.g. ``amcsd-10754-s4+dataset_rpa``."""
    return f"{task_id}+{preset}"


def split_variant(task_id: str) -> tuple[str, str]:
    """``(site task id, preset)`` of a physics variant's task id (:func:`variant_task_id`).

    A site of the dataset gives ``(task_id, "")``.
    """
    site, _, preset = task_id.rpartition("+")
    return (site, preset) if "+" in task_id else (task_id, "")


def variant_preset(task_id: str) -> str:
    """The preset of a physics variant's task id (:func:`variant_task_id`); ``""`` for a site of the dataset."""
    return split_variant(task_id)[1]


def variant_jobs(docs: Sequence[dict], task_ids: Sequence[str], preset: str) -> list[SiteJob]:
    """The FEFF jobs of ``task_ids`` under ``preset``: same structure, site, labels and material group.

    Raises:
        ValueError: if a task id is not among ``docs``.
    """
    from pymatgen_xanes_nn.datagen.simulate import SiteJob

    by_id = {d["task_id"]: d for d in docs}
    missing = [t for t in task_ids if t not in by_id]
    if missing:
        raise InputError(f"Task ids not in the dataset: {', '.join(missing[:5])}")
    jobs = []
    for t in task_ids:
        d = by_id[t]
        meta = {k: v for k, v in d["metadata"].items()
                if k not in ("feff_settings", "feff_version", "feff_env", "timing", "earlier_attempts")}
        meta["physics_of"] = t  # group_id is kept: a variant never sits across a split from its site
        jobs.append(SiteJob(variant_task_id(t, preset), d["structure"], d["absorbing_atom"], meta))
    return jobs


def all_sites(docs: Sequence[dict], seed: int = 0) -> list[str]:
    """Every real site of ``docs``: first :func:`pick_sites` (one per material, stratified), then the rest shuffled.

    A run stopped part way through therefore still covers classes and materials evenly.
    """
    ok = [d["task_id"] for d in docs if d.get("state", "successful") == "successful" and not training_only(d)]
    first = pick_sites(docs, len(ok), seed)
    rest = sorted(set(ok) - set(first))
    np.random.default_rng(seed).shuffle(rest)
    return first + rest


def simulate_variants(docs: Sequence[dict], output: str, presets: Sequence[str] = (), n: int | None = N_SITES,
                      chunk: int = 20, also_done: Sequence[dict] = (), **simulate_kwargs) -> dict[str, int]:
    """Compute the picked sites with every physics variant, ``chunk`` sites at a time through all presets.

    Resumable: finished documents in ``output`` (one file per site and preset) and ``also_done`` are skipped, so an
    interrupted run leaves every preset done for the same leading sites.

    Args:
        docs: the ``dataset`` preset's task documents.
        output: folder of finished variant documents.
        presets: the variants (default :data:`~pymatgen_xanes_nn.datagen.simulate.PHYSICS_VARIANTS`).
        n: how many sites (:func:`pick_sites`); None: every real site (:func:`all_sites`), the training set of
            physics-diverse models.
        chunk: sites per round.
        also_done: variant documents already stored elsewhere (the shipped collection).
        simulate_kwargs: passed to :func:`~pymatgen_xanes_nn.datagen.simulate.simulate` (``n_workers``,
            ``scratch``, ...).

    Returns:
        Summed counts: ``skipped``, ``successful``, ``failed``.
    """
    from pymatgen_xanes_nn.datagen.simulate import PHYSICS_VARIANTS, DirectorySink, simulate

    sites = all_sites(docs) if n is None else pick_sites(docs, n)
    presets = list(presets or PHYSICS_VARIANTS)
    if len(presets) == 1:  # nothing to keep in step: one round keeps every worker busy to the end
        chunk = max(len(sites), 1)
    sink = DirectorySink(output, also_done=also_done)
    totals = {"skipped": 0, "successful": 0, "failed": 0}
    for start in range(0, len(sites), chunk):
        for preset in presets:
            counts = simulate(variant_jobs(docs, sites[start:start + chunk], preset), sink, settings=preset,
                              **simulate_kwargs)
            for k, v in counts.items():
                totals[k] += v
    return totals


#: The preprocessing of the aligned recipes (fields of :class:`~pymatgen_xanes_nn.preprocessing.Preprocessing`).
ALIGNED_INPUTS: dict[str, Any] = {"alignment": "e0", "e0_column": True, "normalization": "pre_edge"}
#: Recipes compared: overrides of the training recipe ("shipped" is today's), under ``"preprocessing"`` of the
#: model inputs (e0-aligned inputs discard the edge position, which a missing core hole moves by ~3 eV) and, with
#: ``"physics": True``, training on the physics variants of the training materials too (leave one physics out: a
#: preset's variants are classified by a model that never saw that preset, so the benchmark still stands in for
#: physics it does not know, as a measurement's is).
CANDIDATES: dict[str, dict[str, Any]] = {
    "no_augmentation": {"augment_copies": 0},
    "shipped": {},
    "white_line": {"augment_white_line": 0.5},
    "white_line_shift3": {"augment_white_line": 0.5, "augment_shift": 3.0},
    "e0_aligned": {"preprocessing": {"alignment": "e0"}},
    "e0_aligned_white_line": {"augment_white_line": 0.5, "preprocessing": {"alignment": "e0"}},
    "physics": {"physics": True},
    "physics_no_augmentation": {"physics": True, "augment_copies": 0},
    # issue 31: calibration-proof inputs: the spectrum e0-aligned, larch-normalized (a sloped background removed
    # where a pre-edge exists), its absolute e0 kept as a side column for the edge_offset OOD score; trained on
    # broadened, white-line-scaled, sloped and noisy copies (the shift moves only the e0 column)
    "aligned": {"augment_white_line": 0.6, "augment_slope": 0.003, "augment_shift": 3.0,
                "preprocessing": ALIGNED_INPUTS},
    # ... and the FNN reads that e0 beside the code (the chemical shift, calibration-dependent)
    "aligned_e0_input": {"augment_white_line": 0.6, "augment_slope": 0.003, "augment_shift": 3.0, "e0_input": True,
                         "preprocessing": ALIGNED_INPUTS},
    # ... and trained on what the experiment-like suite found it weak on: self-absorbed copies, broader resolution
    "aligned_robust": {"augment_white_line": 0.6, "augment_slope": 0.003, "augment_shift": 3.0,
                       "augment_self_absorption": 0.3, "augment_fwhm": 3.0, "preprocessing": ALIGNED_INPUTS},
}
#: Instrument broadenings (eV FWHM, Gaussian) applied to the dataset spectra of the picked sites; 3 eV stands for
#: an EELS-like energy resolution.
BROADENINGS = (0.5, 1.0, 2.0, 3.0)
#: What a beamline does to a spectrum, applied to the picked sites too (issue 31's experiment-like suite):
#: calibration shifts (eV), white-line scaling, background slopes (edge steps per eV), a curved background (edge
#: steps at 50 eV from e0), sharper features than FEFF's (unsharp mask of this FWHM, eV), fluorescence
#: self-absorption (strength, :func:`~pymatgen_xanes_nn.training.perturb.self_absorb`: 0.2 takes FEFF's quartz
#: white line from 3.4 to 2.4 edge steps) and noise (edge step / SNR).
SHIFTS = (-5.0, -3.0, -2.0, -1.0, 1.0, 2.0, 3.0, 5.0)
WHITE_LINES = (0.6, 1.6)
SLOPES = (-0.002, 0.002)
CURVATURES = (0.1,)
SHARPENINGS = (1.0,)
SELF_ABSORPTION = (0.2,)
NOISE_SNR = (20.0,)


def unshippable(overrides: dict[str, Any], config: TrainingConfig) -> str | None:
    """Why a recipe may not ship whatever its accuracy (None: it may).

    The ``edge_offset`` OOD score reads where the edge lies: on e0-aligned inputs every edge lies at the same energy,
    so a model combining that score with aligned inputs would keep a flag part that measures nothing (shifted
    spectra and foreign edges moved into the window pass it).
    """
    pre = overrides.get("preprocessing", {})
    if pre.get("alignment", "absolute") == "e0" and not pre.get("e0_column") and "edge_offset" in config.ood_scores:
        return "e0-aligned inputs leave the edge_offset OOD score nothing to measure"
    return None


def shifted_inputs(data: SpectraSet, physics: SpectraSet, sites: Sequence[str],
                   preprocessing: Preprocessing) -> dict[str, dict[int, np.ndarray]]:
    """Model inputs of the picked sites under each shift: ``{variant: {row of data: input}}``.

    Variants are ``"dataset"`` (the training physics itself), each physics preset and ``"broaden_<fwhm>"``.
    ``physics`` holds the preprocessed physics variants (the set the ``physics`` recipes train on, so each variant
    is preprocessed once). Sites outside ``data`` (e.g. outside the chemsys classes) and spectra that failed
    preprocessing are left out.
    """
    from pymatgen_xanes_nn.preprocessing import SpectrumError
    from pymatgen_xanes_nn.training.perturb import (
        add_curvature,
        add_noise,
        add_slope,
        broaden,
        scale_white_line,
        self_absorb,
        sharpen,
        shift,
    )

    def noise(e: np.ndarray, mu: np.ndarray, snr: float, i: int) -> tuple[np.ndarray, np.ndarray]:
        return add_noise(e, mu, snr, np.random.default_rng(i))  # the same noise for a site in every candidate

    row = {t: i for i, t in enumerate(data.task_ids)}
    picked = [row[t] for t in sites if t in row]
    out: dict[str, dict[int, np.ndarray]] = {"dataset": {i: data.x[i] for i in picked}}
    perturbations = {**{f"broaden_{v:g}": (broaden, v) for v in BROADENINGS},
                     **{f"shift_{v:+g}": (shift, v) for v in SHIFTS},
                     **{f"white_line_{v:g}": (scale_white_line, v) for v in WHITE_LINES},
                     **{f"slope_{v:+g}": (add_slope, v) for v in SLOPES},
                     **{f"curved_{v:g}": (add_curvature, v) for v in CURVATURES},
                     **{f"sharpen_{v:g}": (sharpen, v) for v in SHARPENINGS},
                     **{f"self_absorption_{v:g}": (self_absorb, v) for v in SELF_ABSORPTION},
                     **{f"noise_snr{v:g}": (noise, v) for v in NOISE_SNR}}
    for name, (perturb, value) in perturbations.items():
        out[name] = {}
        for i in picked:
            try:
                extra = (i,) if perturb is noise else ()
                out[name][i] = preprocessing.transform_arrays(*perturb(*data.raw[i], value, *extra))
            except SpectrumError:  # e.g. shifted off the window: not scored
                continue
    for task_id, x in zip(physics.task_ids, physics.x):
        site, preset = split_variant(task_id)
        if preset and site in row and row[site] in out["dataset"]:
            out.setdefault(preset, {})[row[site]] = x
    return out


def _accuracy_table(predictions: dict[str, dict[str, str]], truth: dict[str, str], sites: set[str]) -> dict[str, Any]:
    """Per variant: accuracy on the sites that have it, against the dataset physics on the same sites."""
    def accuracy(pred: dict[str, str], ids: list[str]) -> float:
        return float(np.mean([pred[t] == truth[t] for t in ids]))

    table = {}
    for variant, pred in predictions.items():
        common = sorted(set(pred) & set(predictions["dataset"]) & sites)
        if variant == "dataset" or not common:
            continue
        base, acc = accuracy(predictions["dataset"], common), accuracy(pred, common)
        table[variant] = {"n": len(common), "accuracy_dataset": base, "accuracy": acc, "drop": base - acc}
    physics = [v for k, v in table.items() if k.startswith("dataset_")]
    table["mean"] = {key: float(np.mean([v[key] for v in table.values()])) for key in ("accuracy", "drop")}
    table["mean_physics"] = ({key: float(np.mean([v[key] for v in physics])) for key in ("accuracy", "drop")}
                             if physics else {})
    clean = sorted(set(predictions["dataset"]) & sites)
    table["dataset"] = {"n": len(clean), "accuracy": accuracy(predictions["dataset"], clean)}
    return table


def _fold_models(train_set: SpectraSet, physics: SpectraSet | None, test_groups: set[str], config: TrainingConfig,
                 preprocessing: Preprocessing, seed: int, path: str | None) -> dict[str, XANESClassifier]:
    """The models of one (candidate, fold): ``{"": model}``, or with physics variants one more per preset.

    With ``physics``, the variants of the training materials (those outside ``test_groups``) join the training
    set: ``""`` trains on every preset (it classifies the dataset physics and the broadened spectra) and each
    preset's model on all presets but that one (it classifies that preset's variants).
    """
    def name(tag: str) -> str | None:
        return f"{path}{tag}.json.gz" if path else None

    if physics is None:
        return {"": _fold_model(train_set, config, preprocessing, seed, name(""))}
    rows = [i for i, g in enumerate(physics.groups) if g not in test_groups]
    presets = [variant_preset(physics.task_ids[i]) for i in rows]
    models = {}
    for left_out in ["", *sorted(set(presets))]:
        keep = [i for i, p in zip(rows, presets) if p != left_out]
        models[left_out] = _fold_model(train_set.concatenate(physics.subset(keep)), config, preprocessing, seed,
                                       name(f"-physics-without-{left_out or 'none'}"))
    return models


def _fold_model(train_set: SpectraSet, config: TrainingConfig, preprocessing: Preprocessing, seed: int,
                path: str | None) -> XANESClassifier:
    """The model of one (candidate, fold): loaded from ``path`` if a finished one is there, else trained (and kept)."""
    from pymatgen_xanes_nn.classifier import InvalidModelError, XANESClassifier
    from pymatgen_xanes_nn.training.fit import train

    if path and os.path.exists(path):
        try:
            return XANESClassifier.from_file(path)
        except InvalidModelError:  # a damaged file is refitted, never trusted
            pass
    clf = train(train_set.x, train_set.labels, train_set.groups, config, preprocessing=preprocessing,
                raw=train_set.raw, seed=seed)
    if path:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        clf.to(path)
    return clf


def benchmark(
    scheme: str,
    docs: Sequence[dict],
    variant_docs: Sequence[dict],
    config: TrainingConfig,
    candidates: dict[str, dict[str, Any]] | None = None,
    n_folds: int = 5,
    seed: int = 0,
    preprocessing: Preprocessing | None = None,
    cache: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Accuracy of models trained on the ``dataset`` physics on the picked sites computed otherwise.

    Grouped folds over all materials (fixed by material group, so every candidate, whatever its inputs, is tested
    on the same materials); each fold trains one model per candidate (no calibration: accuracy only) and classifies
    the fold's picked sites under every shift. The picked sites are split in two halves (alternating in pick order,
    so both hold every class): the candidate is *chosen* on the selection half by its mean accuracy over the
    shifted sets and the dataset physics, and *reported* on the other half.

    Args:
        scheme: label scheme.
        docs: the ``dataset`` preset's task documents.
        variant_docs: the physics variants' task documents (:func:`simulate_variants`).
        config: the training recipe (the shipped one); candidates override some fields.
        candidates: ``{name: overrides}`` (default :data:`CANDIDATES`); ``overrides["preprocessing"]`` replaces
            fields of ``preprocessing``; ``overrides["physics"]`` adds the variants of each fold's training
            materials to its training set, one physics left out per model (:func:`_fold_models`).
        n_folds: grouped folds.
        seed: split and training seed.
        preprocessing: the shipped inputs (default: the package's).
        cache: folder keeping each (candidate, fold) model; a rerun loads them instead of training, so the
            benchmark can start before every variant is computed and be rescored cheaply when more are.
        progress: called with a status line after each fit.

    Returns:
        ``candidates`` (per candidate: ``selection``, ``report`` and ``all`` accuracy tables), the site counts,
        ``best`` (highest selection criterion), ``unshippable`` (:func:`unshippable`) and ``chosen`` (the best of
        the others).
    """
    from pymatgen_xanes_nn.preprocessing import DEFAULT_PREPROCESSING
    from pymatgen_xanes_nn.training.fit import SpectraSet, dataset_for_scheme, run_key
    from pymatgen_xanes_nn.training.splits import grouped_folds

    preprocessing = preprocessing or DEFAULT_PREPROCESSING
    candidates = dict(candidates or CANDIDATES)
    sites = pick_sites(docs)
    prepared: dict[Preprocessing, tuple[SpectraSet, dict[str, dict[int, np.ndarray]]]] = {}

    classes = select_classes(docs, scheme)  # the class order dataset_for_scheme uses (folds stratify by it)
    physics_sets: dict[Preprocessing, SpectraSet] = {}

    def physics_set(pre: Preprocessing) -> SpectraSet:
        """The physics variants as labelled spectra under ``pre`` (once per preprocessing)."""
        if pre not in physics_sets:
            ok = [d for d in variant_docs if d.get("state", "successful") == "successful"]
            physics_sets[pre] = SpectraSet.from_docs(ok, assign_labels(ok, scheme, classes), pre).labelled()
        return physics_sets[pre]

    def prepare(pre: Preprocessing) -> tuple[SpectraSet, dict[str, dict[int, np.ndarray]]]:
        """The labelled spectra and the picked sites' shifted inputs under ``pre`` (once per preprocessing)."""
        if pre not in prepared:
            data = dataset_for_scheme(scheme, docs, pre)[0].labelled()
            prepared[pre] = (data, shifted_inputs(data, physics_set(pre), sites, pre))
        return prepared[pre]

    base, shifted = prepare(preprocessing)
    truth = dict(zip(base.task_ids, base.labels))
    y = np.array([classes.index(lab) for lab in base.labels])
    tested_groups = [{base.groups[i] for i in te} for _, te in grouped_folds(base.groups, y, n_folds, seed,
                                                                               base.testable)]
    order = [t for t in sites if t in truth]
    halves = {"selection": set(order[0::2]), "report": set(order[1::2]), "all": set(order)}
    out: dict[str, Any] = {"scheme": scheme, "classes": classes, "n_folds": len(tested_groups), "seed": seed,
                           "n_sites": {k: len(v) for k, v in shifted.items()}, "candidates": {}}
    for name, overrides in candidates.items():
        fields = {k: v for k, v in overrides.items() if k not in ("preprocessing", "physics")}
        pre = dataclasses.replace(preprocessing, **overrides.get("preprocessing", {}))
        data, shifted = prepare(pre)
        physics = physics_set(pre) if overrides.get("physics") else None
        cfg = config.replace(calibration_folds=0, **fields)
        if unshippable(overrides, config):  # scored for accuracy only: its flag may not read what it lacks
            cfg = cfg.replace(ood_scores=tuple(s for s in cfg.ood_scores if s != "edge_offset") or ("knn",))
        # with physics the variants train too: more of them, other models
        trained = data if physics is None else data.concatenate(physics)
        key = run_key(trained.x, trained.labels, trained.groups, "domain_shift", cfg, n_folds, seed, pre)
        groups = np.array(data.groups)
        predictions: dict[str, dict[str, str]] = {k: {} for k in shifted}
        for f, test_groups in enumerate(tested_groups):
            in_test = np.isin(groups, sorted(test_groups))
            tr, test = np.flatnonzero(~in_test), set(np.flatnonzero(in_test & np.array(data.testable)).tolist())
            models = _fold_models(data.subset(tr), physics, test_groups, cfg, pre, seed + 100 * f,
                                  os.path.join(cache, f"{key[:20]}-fold{f}") if cache else None)
            for variant, inputs in shifted.items():
                rows = [i for i in inputs if i in test]
                if rows:
                    clf = models.get(variant, models[""])
                    x = np.stack([inputs[i] for i in rows]).astype(np.float32)
                    best = clf.probabilities(x).argmax(axis=1)
                    predictions[variant].update((data.task_ids[i], clf.labels[k]) for i, k in zip(rows, best))
            if progress:
                progress(f"{scheme} {name} fold {f + 1}/{len(tested_groups)}")
        out["candidates"][name] = {"overrides": overrides,
                                   **{h: _accuracy_table(predictions, truth, ids) for h, ids in halves.items()}}

    return choose(out, config)


def choose(result: dict[str, Any], config: TrainingConfig) -> dict[str, Any]:
    """Add the choice to a :func:`benchmark` result (from its tables alone, so an older result can be rescored).

    ``selection_criterion``: per candidate, the mean accuracy over the selection half's sets (dataset physics,
    perturbations, physics variants); ``best``: the highest; ``unshippable``: {candidate: why}
    (:func:`unshippable` under ``config``); ``chosen``: by the one-standard-error rule among the others: of the
    candidates whose criterion lies within one binomial standard error (of the best one's clean accuracy on the
    selection half's sites) of the best, the one whose worst set drops least, i.e. the most robust of those the
    selection half cannot tell apart; ``standard_error`` and ``tied`` record it.
    """
    def criterion(name: str) -> float:
        sel = result["candidates"][name]["selection"]
        return float(np.mean([v["accuracy"] for k, v in sel.items() if k not in ("mean", "mean_physics")]))

    def worst_drop(name: str) -> float:
        sel = result["candidates"][name]["selection"]
        return max(v["drop"] for k, v in sel.items() if k not in ("mean", "mean_physics", "dataset"))

    names = list(result["candidates"])
    result["selection_criterion"] = {name: criterion(name) for name in names}
    result["unshippable"] = {name: why for name in names
                             if (why := unshippable(result["candidates"][name]["overrides"], config))}
    score = result["selection_criterion"].get
    result["best"] = max(names, key=score)
    shippable = [n for n in names if n not in result["unshippable"]]
    if not shippable:
        result.update(chosen=None, tied=[], standard_error=None)
        return result
    clean = result["candidates"][max(shippable, key=score)]["selection"]["dataset"]
    drops = {n: worst_drop(n) for n in names}
    chosen, tied, se = one_standard_error_choice({n: score(n) for n in shippable}, drops, clean["accuracy"], clean["n"])
    result.update(standard_error=se, tied=tied, worst_drop=drops, chosen=chosen)
    return result
