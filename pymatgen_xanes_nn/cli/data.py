"""Data commands: corpora, FEFF runs, shards, dataset cards and the evidence reference."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

from pymatgen_xanes_nn.cli.common import (
    _add_preprocessing_options,
    _dataset_or_none,
    _element,
    _existing_file,
    _int_at_least,
    _load_model,
    _preprocessing,
    _writable_path,
)


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

    corpus = load_corpus(args.corpus, element=args.element)
    if args.existing:  # an earlier run's analogues are known structures too: a new homologue adds only new ones
        corpus = {**corpus, "structures": corpus["structures"] + load_corpus(args.existing)["structures"]}
    out = derive_analogues(corpus, args.element, args.classes, max_atoms=args.max_atoms, progress=True,
                           homologues=args.homologues)
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


def _cmd_pack(args: argparse.Namespace) -> int:
    from pymatgen_xanes_nn.io.tasks import write_shard

    out = write_shard(args.directories, args.collection, data_dir=args.data_dir)
    if out["shard"] is None:
        print(f"nothing new for {args.collection} in {', '.join(args.directories)}")
    else:
        print(f"packed {out['documents']} new task documents ({out['successful']} successful) -> {out['shard']}")
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
    from pymatgen_xanes_nn.edges import get_edge
    from pymatgen_xanes_nn.io.tasks import load_collection, load_tasks
    from pymatgen_xanes_nn.trust.evidence import build_reference, reference_file, save_reference, shipped_reference

    pre = _preprocessing(args)
    output = args.output
    current, generation = shipped_reference(pre)
    wanted = reference_file(pre, generation + 1 if os.path.exists(current) else generation)
    if os.path.basename(output) != wanted:  # the package is written only when asked to, by name
        print(f"note: classify() uses the newest generation of this preprocessing's index in the package data; "
              f"the next one is {wanted}", file=sys.stderr)
    docs = ([d for path in args.datasets for d in load_tasks(path)] if args.datasets
            else load_collection(get_edge(args.element).tasks_collection))
    ref = build_reference(docs, pre)
    save_reference(ref, output)
    print(f"{len(ref['task_id'])} reference spectra of {len(docs)} task documents -> {output}")
    return 0


def register(sub) -> None:
    """Add the data commands to the ``xanes-nn`` subparsers."""
    from pymatgen_xanes_nn.datagen.analogues import HOMOLOGUES
    from pymatgen_xanes_nn.datagen.simulate import PHYSICS_VARIANTS, PRESETS
    from pymatgen_xanes_nn.edges import EDGES, SI_K
    from pymatgen_xanes_nn.io.tasks import DERIVED_RELAXED_TASKS_FILE, TASKS_FILE
    from pymatgen_xanes_nn.paths import data_path
    from pymatgen_xanes_nn.studies.domain_shift import N_SITES

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

    p = sub.add_parser("analogues", help="analogue structures of thin classes: a homologue's crystals (Se, Te for "
                                         "S) with the absorber in its place, bonds shortened")
    p.add_argument("--element", default="S", choices=sorted(HOMOLOGUES), help="absorbing element")
    p.add_argument("--corpus", default=None, help="the element's corpus (default: shipped): known structures are "
                                                  "left out")
    p.add_argument("--classes", nargs="+", default=["S4+", "S0", "S1-"],
                   help="keep structures with a unique absorber site of these oxidation labels")
    p.add_argument("--max-atoms", type=int, default=60, help="largest cell")
    p.add_argument("--homologues", nargs="+", default=None, metavar="ELEMENT",
                   help="homologues to put the absorber in place of (default: all the element has, e.g. Se Te)")
    p.add_argument("--existing", default=None, metavar="FILE",
                   help="analogue corpus of an earlier run: its structures count as known and are not made again")
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

    p = sub.add_parser("reference", help="index the shipped spectra for the evidence of classify()")
    p.add_argument("--element", default=SI_K.element, choices=sorted(EDGES), help="absorbing element")
    p.add_argument("--datasets", nargs="+", type=_existing_file, default=None,
                   help="packed task documents to index (default: the element's shipped real crystals)")
    _add_preprocessing_options(p)
    p.add_argument("--output", required=True, type=_writable_path,
                   help="the index file; classify() uses the newest generation in the package data "
                        "(reference_spectra[_<fingerprint>][_NNNN].npz; committed ones are never rewritten)")
    p.set_defaults(func=_cmd_reference)

    p = sub.add_parser("pack", help="pack the new documents of folders of finished task documents into the next "
                                     "shard file of a collection (committed files are never rewritten)")
    p.add_argument("directories", nargs="+")
    p.add_argument("--collection", required=True, help="e.g. s_k_tasks, si_k_tasks_physics")
    p.add_argument("--data-dir", required=True, help="the data folder to add the shard to, e.g. pymatgen_xanes_nn/data")
    p.set_defaults(func=_cmd_pack)
