"""Domain shift: the same sites computed with other FEFF physics, standing in for the gap to experiment.

The models learn FEFF spectra of the ``dataset`` preset. A measured spectrum differs from them in ways no
perturbation of the energy axis imitates: the core hole is screened differently (RPA instead of the final-state
rule, or none), exchange is modelled differently, the instrument broadens. This module picks a fixed set of sites
of the shipped dataset, computes them again with :data:`~pymatgen_xanes_nn.simulate.PHYSICS_VARIANTS` (resumable,
one document per site and preset) and packs them as a dataset of their own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from pymatgen_xanes_nn.labels import assign_labels, select_classes

if TYPE_CHECKING:
    from pymatgen_xanes_nn.simulate import SiteJob

#: Packed task documents of the physics variants (in ``pymatgen_xanes_nn/data``).
PHYSICS_TASKS_FILE = "si_k_tasks_physics.json.gz"
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
    ok = [d for d in docs if d.get("state", "successful") == "successful"]
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


def variant_jobs(docs: Sequence[dict], task_ids: Sequence[str], preset: str) -> list[SiteJob]:
    """The FEFF jobs of ``task_ids`` under ``preset``: same structure, site, labels and material group.

    Raises:
        ValueError: if a task id is not among ``docs``.
    """
    from pymatgen_xanes_nn.simulate import SiteJob

    by_id = {d["task_id"]: d for d in docs}
    missing = [t for t in task_ids if t not in by_id]
    if missing:
        raise ValueError(f"Task ids not in the dataset: {', '.join(missing[:5])}")
    jobs = []
    for t in task_ids:
        d = by_id[t]
        meta = {k: v for k, v in d["metadata"].items()
                if k not in ("feff_settings", "feff_version", "feff_env", "timing", "earlier_attempts")}
        meta["physics_of"] = t  # group_id is kept: a variant never sits across a split from its site
        jobs.append(SiteJob(variant_task_id(t, preset), d["structure"], d["absorbing_atom"], meta))
    return jobs


def simulate_variants(docs: Sequence[dict], output: str, presets: Sequence[str] = (), n: int = N_SITES,
                      chunk: int = 20, **simulate_kwargs) -> dict[str, int]:
    """Compute the picked sites with every physics variant, ``chunk`` sites at a time through all presets.

    Resumable: finished documents in ``output`` (one file per site and preset) are skipped, so an interrupted run
    leaves every preset done for the same leading sites.

    Args:
        docs: the ``dataset`` preset's task documents.
        output: folder of finished variant documents.
        presets: the variants (default :data:`~pymatgen_xanes_nn.simulate.PHYSICS_VARIANTS`).
        n: how many sites (:func:`pick_sites`).
        chunk: sites per round.
        simulate_kwargs: passed to :func:`~pymatgen_xanes_nn.simulate.simulate` (``n_workers``, ``scratch``, ...).

    Returns:
        Summed counts: ``skipped``, ``successful``, ``failed``.
    """
    from pymatgen_xanes_nn.simulate import PHYSICS_VARIANTS, DirectorySink, simulate

    sites = pick_sites(docs, n)
    sink = DirectorySink(output)
    totals = {"skipped": 0, "successful": 0, "failed": 0}
    for start in range(0, len(sites), chunk):
        for preset in presets or PHYSICS_VARIANTS:
            counts = simulate(variant_jobs(docs, sites[start:start + chunk], preset), sink, settings=preset,
                              **simulate_kwargs)
            for k, v in counts.items():
                totals[k] += v
    return totals
