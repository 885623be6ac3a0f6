"""The dataset card: counts of task documents per class, source and route, rendered as Markdown."""

from __future__ import annotations

from pymatgen_xanes_nn.io.tasks import DERIVED_RELAXED_TASKS_FILE, DERIVED_TASKS_FILE

#: Non-hydrogen atoms closer than this (Angstrom) mark split positions or a corrupt CIF: no bond between
#: heavier atoms in a Si-bearing crystal is shorter (C-O in a carbonyl is 1.13-1.2 A, Si-O 1.6 A).
MIN_HEAVY_ATOM_DISTANCE = 1.1


def suspect_geometries(docs: list[dict], min_distance: float = MIN_HEAVY_ATOM_DISTANCE) -> dict[str, str]:
    """Structures whose closest non-H atoms are nearer than ``min_distance``: structure id -> description."""
    import numpy as np
    from pymatgen.core import Structure

    out, seen = {}, set()
    for d in docs:
        meta = d.get("metadata", {})
        sid = meta.get("structure_id", d["task_id"])
        if sid in seen:
            continue
        seen.add(sid)
        structure = Structure.from_dict(d["structure"])
        heavy = [i for i, site in enumerate(structure) if site.specie.symbol != "H"]
        if len(heavy) < 2:
            continue
        dmat = structure.distance_matrix[np.ix_(heavy, heavy)] + np.eye(len(heavy)) * 1e3
        i, j = np.unravel_index(np.argmin(dmat), dmat.shape)
        if dmat[i, j] < min_distance:
            a, b = structure[heavy[i]].specie.symbol, structure[heavy[j]].specie.symbol
            out[sid] = f"{meta.get('formula', structure.formula)}: {a}-{b} {dmat[i, j]:.2f} A"
    return out


def _counts(docs: list[dict], ok: list[dict]) -> dict:
    """The counts every summary shares: documents by state, structures, sites per chemical system and environment."""
    from collections import Counter

    return {
        "n_documents": len(docs),
        "n_successful": len(ok),
        "n_failed": len(docs) - len(ok),
        "n_structures": len({d["metadata"]["structure_id"] for d in ok}),
        "chemsys_sites": dict(Counter(d["metadata"]["chemsys"] for d in ok).most_common()),
        "chemsys_structures": dict(Counter(
            c for c, _ in {(d["metadata"]["chemsys"], d["metadata"]["structure_id"]) for d in ok}).most_common()),
        "environment_sites": dict(Counter(d["metadata"]["environment"] for d in ok).most_common()),
    }


def dataset_summary(docs: list[dict]) -> dict:
    """Counts of a task-document list: per state, chemical system, environment, source; cost; versions."""
    from collections import Counter

    ok = [d for d in docs if d.get("state") != "failed"]
    cpu = [d["metadata"]["timing"]["user_s"] + d["metadata"]["timing"]["sys_s"] for d in ok
           if d.get("metadata", {}).get("timing")]
    return {
        **_counts(docs, ok),
        "failed": {d["task_id"]: d.get("error", "")[:200] for d in docs if d.get("state") == "failed"},
        "n_groups": len({d["metadata"]["group_id"] for d in ok}),
        "source_structures": dict(Counter(
            s for s, _ in {(d["metadata"]["source"], d["metadata"]["structure_id"]) for d in ok}).most_common()),
        "ordered_from_disorder_sites": sum(bool(d["metadata"].get("ordered_from_disorder")) for d in ok),
        "cpu_s_per_site": {"mean": sum(cpu) / len(cpu), "max": max(cpu), "total_h": sum(cpu) / 3600} if cpu else {},
        "feff_settings": dict(Counter(d["metadata"]["feff_settings"]["name"] for d in ok).most_common()),
        "feff_versions": sorted({d["metadata"]["feff_version"] for d in ok}),
        "suspect_geometries": suspect_geometries(docs),
    }


def derived_summary(docs: list[dict], derived_corpus: dict | None = None, relaxed_corpus: dict | None = None) -> dict:
    """Counts of derived task documents: per route and substitution, environment and chemical system.

    Args:
        docs: the derived task documents (failed ones included).
        derived_corpus: the planned structures (``xanes-nn derive``), for the planned counts.
        relaxed_corpus: the structures relaxed so far (``xanes-nn relax-corpus``).
    """
    from collections import Counter

    ok = [d for d in docs if d.get("state") != "failed"]

    def swap(d: dict) -> str:
        sub = d["metadata"].get("substitution", {})
        if sub.get("route") == "anion":
            return f"anion {sub.get('site')}" + (f" + {sub['compensation']}" if sub.get("compensation") else "")
        return f"{sub.get('route')} " + ", ".join(f"{a}->{b}" for a, b in sorted(sub.get("map", {}).items()))

    out = {
        **_counts(docs, ok),
        "routes": dict(Counter(d["metadata"].get("substitution", {}).get("route", "?") for d in ok).most_common()),
        "substitutions": dict(Counter(swap(d) for d in ok).most_common()),
    }
    if derived_corpus:
        recs = derived_corpus["structures"]
        out["planned_structures"] = len(recs)
        out["planned_sites"] = sum(len(r["sites"]) for r in recs)
    if relaxed_corpus:
        out["relaxed_structures"] = len(relaxed_corpus["structures"])
    return out


def _derived_card(summary: dict, real: dict) -> list[str]:
    lines = ["", "## Derived structures (ion substitution)", "",
             "Made by `xanes-nn derive` from the corpus (`pymatgen_xanes_nn/data/derived_corpus.json.gz`): pymatgen's "
             "data-mined substitution probabilities, charge balance by oxidation states, volumes from pymatgen's "
             "ionic-radius predictor, StructureMatcher de-duplication; then relaxed with CHGNet (`xanes-nn "
             "relax-corpus`, chosen by the relaxation study) and computed with the `dataset` preset "
             f"(`pymatgen_xanes_nn/data/{DERIVED_RELAXED_TASKS_FILE}`). Each task document records "
             "`metadata.source = \"derived\"`, its parent, the substitution and the relaxation, and carries the "
             "parent's group, so no grouped split separates a derived structure from its parent. They are training "
             "data only: test and calibration folds hold real materials. The unrelaxed runs "
             f"(`{DERIVED_TASKS_FILE}`) served the relaxation study and train nothing.", "",
             f"- FEFF task documents: {summary['n_documents']} ({summary['n_successful']} successful, "
             f"{summary['n_failed']} failed) of {summary['n_structures']} structures"
             + (f"; planned: {summary['planned_sites']} sites of {summary['planned_structures']} structures"
                if "planned_sites" in summary else "")
             + (f"; relaxed so far: {summary['relaxed_structures']} structures" if "relaxed_structures" in summary
                else ""),
             "- routes (sites): " + ", ".join(f"{k} {v}" for k, v in summary["routes"].items()), "",
             "| chemical system | real structures | derived structures | derived sites |", "|---|---:|---:|---:|"]
    systems = sorted(set(real["chemsys_structures"]) | set(summary["chemsys_structures"]),
                     key=lambda c: (-real["chemsys_structures"].get(c, 0) - summary["chemsys_structures"].get(c, 0), c))
    lines += [f"| {c} | {real['chemsys_structures'].get(c, 0)} | {summary['chemsys_structures'].get(c, 0)} | "
              f"{summary['chemsys_sites'].get(c, 0)} |" for c in systems[:40]]
    lines += ["", "| substitution | sites |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in list(summary["substitutions"].items())[:40]]
    lines += ["", "| Si environment (derived) | sites |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in summary["environment_sites"].items()]
    return lines


def render_card(summary: dict, corpus: dict | None = None, study: dict | None = None,
                derived: dict | None = None) -> str:
    """The dataset card (markdown) from :func:`dataset_summary`, the corpus and the FEFF settings study."""
    lines = [
        "# Dataset card: FEFF10 Si K-edge XANES, one spectrum per symmetry-unique Si site",
        "",
        "Generated by `xanes-nn card` from the committed `pymatgen_xanes_nn/data/si_k_tasks.json.gz`;",
        "the tests check that the counts below match that file.",
        "",
        f"- task documents: {summary['n_documents']} ({summary['n_successful']} successful, "
        f"{summary['n_failed']} failed)",
        f"- structures: {summary['n_structures']} in {summary['n_groups']} material groups (StructureMatcher families)",
        f"- sites from structures ordered by majority occupancy (disorder off the Si sublattice): "
        f"{summary['ordered_from_disorder_sites']}",
        "- FEFF settings (sites): " + ", ".join(f"{k} ({v})" for k, v in summary["feff_settings"].items())
        + " (`_scfmix05`: rerun with SCF mixing 0.05 after FEFF's SCF stopped on bad electron counts); "
        f"FEFF versions: {', '.join(summary['feff_versions'])}",
    ]
    if summary["cpu_s_per_site"]:
        c = summary["cpu_s_per_site"]
        lines.append(f"- cost: {c['mean']:.1f} CPU s per site on average (max {c['max']:.0f} s), "
                     f"{c['total_h']:.1f} CPU hours in all")
    if corpus:
        n_sites = sum(len(r["sites"]) for r in corpus["structures"])
        lines += ["", "## Corpus", "",
                  f"{len(corpus['structures'])} unique structures with {n_sites} symmetry-unique Si sites "
                  f"(`pymatgen_xanes_nn/data/corpus.json.gz`). Rejected entries: "
                  + ", ".join(f"{k} {len(v)}" for k, v in corpus["rejected"].items()) + "."]
    lines += ["", "## Sites per chemical system", "", "| chemsys | structures | sites |", "|---|---:|---:|"]
    for chemsys, n in summary["chemsys_sites"].items():
        lines.append(f"| {chemsys} | {summary['chemsys_structures'][chemsys]} | {n} |")
    lines += ["", "## Sites per Si local environment (CrystalNN)", "", "| environment | sites |", "|---|---:|"]
    lines += [f"| {env} | {n} |" for env, n in summary["environment_sites"].items()]
    lines += ["", "## Sources", ""]
    lines += [f"- {src}: {n} structures" for src, n in summary["source_structures"].items()]
    if derived and derived["n_documents"]:
        lines += _derived_card(derived, summary)
    if summary["failed"]:
        lines += ["", "## Failed calculations", ""] + [f"- `{k}`: {v}" for k, v in summary["failed"].items()]
    if summary.get("suspect_geometries"):
        lines += ["", "## Suspect geometries", "",
                  f"Structures whose closest non-hydrogen atoms are nearer than {MIN_HEAVY_ATOM_DISTANCE} A: split "
                  "positions kept by majority ordering or a corrupt CIF. Their spectra (if FEFF ran) are kept but "
                  "should be read with care; the corpus's own overlap filter is 0.7 A for any pair.", ""]
        lines += [f"- `{k}`: {v}" for k, v in summary["suspect_geometries"].items()]
    if study and study.get("summary"):
        lines += ["", "## FEFF settings study", "",
                  f"Reference: `{study['reference']}` (pymatgen MPXANESSet defaults: cluster 10 A, SCF 4.5 A, "
                  "FMS 7.5 A; the LDOS card only writes DOS files). One Si site per structure.", "",
                  "Metrics on the reference's energies, as computed and after the rigid shift (0.1 eV steps) "
                  "that best aligns the two spectra (FEFF's edge position moves with the SCF settings).", "",
                  "| structure | preset | CPU s | cosine | max diff / peak | shift eV | cosine aligned | "
                  "max diff / peak aligned |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for key, runs in study["runs"].items():
            for preset, run in runs.items():
                if "cosine" in run:
                    lines.append(f"| {key} | {preset} | {run['cpu_s']:.0f} | {run['cosine']:.4f} | "
                                 f"{run['max_diff_over_peak']:.3f} | {run['best_shift_ev']:+.1f} | "
                                 f"{run['cosine_aligned']:.4f} | {run['max_diff_over_peak_aligned']:.3f} |")
                elif "error" in run:
                    lines.append(f"| {key} | {preset} | failed: {run['error'][:60]} | | | | | |")
        lines += ["", "| preset | mean CPU s | min cosine | max diff / peak | max shift eV | min cosine aligned | "
                  "max diff / peak aligned | n |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for preset, s in study["summary"].items():
            lines.append(f"| {preset} | {s['mean_cpu_s']:.0f} | {s['min_cosine']:.4f} | "
                         f"{s['max_diff_over_peak']:.3f} | {s['max_abs_shift_ev']:.1f} | "
                         f"{s['min_cosine_aligned']:.4f} | {s['max_diff_over_peak_aligned']:.3f} | {s['n']} |")
    lines += ["", "## Licences", "",
              "- AMCSD structures through `larixite` (MIT); American Mineralogist Crystal Structure Database.",
              "- Materials Project structures from the `matbench_dielectric` example shipped in `crystal-toolkit`"
              " (BSD-style).",
              "- Spectra computed with FEFF10 from `feff10-rs`.", ""]
    return "\n".join(lines)


def edge_card(docs: list[dict], edge, corpus: dict | None = None) -> str:
    """The dataset card of an edge other than the first (e.g. S K), as Markdown.

    Spectra per label of the edge's schemes, sources, cost and failures, against what its corpus plans.

    Args:
        docs: the edge's task documents (failed ones included).
        edge: its :class:`~pymatgen_xanes_nn.edges.Edge`.
        corpus: its structure corpus (the planned sites).
    """
    from collections import Counter

    from pymatgen_xanes_nn.labels import raw_label

    ok = [d for d in docs if d.get("state") != "failed"]
    summary = dataset_summary(docs)
    lines = [f"# Dataset card: FEFF10 {edge.name}-edge XANES, one spectrum per symmetry-unique {edge.element} site", "",
             f"Generated by `xanes-nn card --element {edge.element}` from the `{edge.tasks_collection}` collection "
             f"(`pymatgen_xanes_nn/data/shards/{edge.tasks_collection}/`); a test checks the counts against it.", "",
             f"- task documents: {summary['n_documents']} ({summary['n_successful']} successful, "
             f"{summary['n_failed']} failed) of {summary['n_structures']} structures in {summary['n_groups']} "
             "material groups",
             "- FEFF settings (sites): " + ", ".join(f"{k} ({v})" for k, v in summary["feff_settings"].items())]
    if summary["cpu_s_per_site"]:
        c = summary["cpu_s_per_site"]
        lines.append(f"- cost: {c['mean']:.1f} CPU s per site on average (max {c['max']:.0f} s), {c['total_h']:.1f} "
                     "CPU hours in all")
    planned: Counter = Counter()
    if corpus:
        recs = corpus["structures"]
        planned = Counter(site.get("oxidation") for r in recs for site in r["sites"])
        lines.append(f"- corpus (`pymatgen_xanes_nn/data/{edge.corpus_file}`): {len(recs)} structures, "
                     f"{sum(len(r['sites']) for r in recs)} unique {edge.element} sites; rejected: "
                     + ", ".join(f"{k} {len(v)}" for k, v in corpus.get("rejected", {}).items()))
    for scheme in edge.label_schemes:
        counts = Counter(raw_label(d, scheme) for d in ok)
        lines += ["", f"## Sites per {scheme} label", "", "| label | sites" + (" | planned |" if scheme ==
                                                                                "oxidation" and planned else " |"),
                  "|---|---:|" + ("---:|" if scheme == "oxidation" and planned else "")]
        for label, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:40]:
            extra = f" {planned.get(label, 0)} |" if scheme == "oxidation" and planned else ""
            lines.append(f"| {label} | {n} |{extra}")
    lines += ["", "## Sources", ""] + [f"- {src}: {n} structures" for src, n in summary["source_structures"].items()]
    if summary["failed"]:
        lines += ["", "## Failed calculations", ""] + [f"- `{k}`: {v}" for k, v in summary["failed"].items()]
    return "\n".join(lines) + "\n"
