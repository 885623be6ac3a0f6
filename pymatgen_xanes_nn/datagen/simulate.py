"""Simulate Si K-edge XANES with FEFF10 (``feff10-rs``): one calculation per symmetry-unique Si site.

structure + site -> pymatgen ``MPXANESSet`` input -> FEFF10 in a child process -> an
atomate-schema task document (``SpectrumToDbTask`` fields plus ``task_id`` and our metadata).

Runs are parallel (one FEFF process per core), resumable (finished task ids are skipped) and
failure-tolerant (a failed site becomes a ``state: "failed"`` document with the error).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
from monty.json import MSONable

from pymatgen_xanes_nn.edges import SI_K
from pymatgen_xanes_nn.errors import InputError
from pymatgen_xanes_nn.jsonio import PYMATGEN_CLASSES, iter_directory, write_json

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from pymatgen.core import Structure

#: FEFF's worker allocates and frees ~33.5 MB buffers ~70 times per second, just above glibc's
#: largest dynamic mmap threshold, so each becomes an mmap/munmap with fresh page faults: half
#: the CPU time went to the kernel. Disabling mmap for malloc and never trimming the heap keeps
#: the spectrum identical and halves the CPU time. Both variables are needed.
FEFF_MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "4294967296"}

#: The FEFF child: it leads its own process group (FEFF10 runs in a grandchild, ``feff10._worker``) and
#: asks the kernel for SIGTERM when its parent dies, on which it kills the whole group: a killed
#: ``simulate`` never leaves FEFF running. Its own session would put it in a new scheduler autogroup, where
#: the niceness it inherits counts for nothing against other sessions: it gives its autogroup that niceness.
_CHILD_GUARD = """
import ctypes, os, signal, sys
signal.signal(signal.SIGTERM, lambda *_: os.killpg(0, signal.SIGKILL))
try:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux)
except (AttributeError, OSError):
    pass
if os.getppid() != int(sys.argv[3]):  # the parent died before prctl
    os.killpg(0, signal.SIGKILL)
try:  # a new session gets a new scheduler autogroup at nice 0: keep the niceness `nice xanes-nn ...` asked for
    with open("/proc/self/autogroup", "w") as fh:
        fh.write(str(os.nice(0)))
except OSError:
    pass
"""
_CHILD = _CHILD_GUARD + """
import json, os, resource, sys, time
import feff10
t = time.time()
res = feff10.run(sys.argv[1], sys.argv[2])
ru_c, ru_s = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
json.dump({"wall_s": time.time() - t, "user_s": ru_c.ru_utime + ru_s.ru_utime,
           "sys_s": ru_c.ru_stime + ru_s.ru_stime,
           "stages": {str(s.stage).split(".")[-1]: s.duration_secs for s in res.stages}},
          open(os.path.join(sys.argv[2], "timing.json"), "w"))
"""


@dataclass(frozen=True)
class FeffSettings(MSONable):
    """FEFF card settings layered on pymatgen's ``MPXANESSet``.

    Args:
        name: preset name, recorded in every task document.
        radius: cluster radius in Angstrom.
        scf: SCF card (``rfms nscmt ca nmix icoul``; radius in Angstrom), or None to drop it.
        fms: FMS card (radius in Angstrom), or None to use MPXANESSet's default.
        ldos: keep the LDOS card (it only writes density-of-states files; ``xmu.dat`` is identical).
        corehole: COREHOLE card (``"none"``, ``"RPA"``), or None for MPXANESSet's final-state rule (FSR).
        exchange: EXCHANGE card (``ixc vr0 vi0 ixc0``), or None for MPXANESSet's Hedin-Lundqvist ``0 0.0 0.0 2``.
    """

    name: str
    radius: float = 10.0
    scf: str | None = "4.5 0 30 .2 1"
    fms: str | None = "7.5 0"
    ldos: bool = True
    corehole: str | None = None
    exchange: str | None = None

    def user_tag_settings(self) -> dict[str, Any]:
        """Return ``user_tag_settings`` for ``MPXANESSet``."""
        tags: dict[str, Any] = {}
        delete = []
        if self.scf is None:
            delete.append("SCF")
        else:
            tags["SCF"] = self.scf
        if self.fms is not None:
            tags["FMS"] = self.fms
        if not self.ldos:
            delete.append("LDOS")
        if self.corehole is not None:
            tags["COREHOLE"] = self.corehole
        if self.exchange is not None:
            tags["EXCHANGE"] = self.exchange
        if delete:
            tags["_del"] = delete
        return tags


#: Presets, listed once. ``dataset`` is the setting chosen by the study in docs/DATASET.md.
PRESETS: dict[str, FeffSettings] = {
    "mp_default": FeffSettings("mp_default"),
    # identical xmu.dat to mp_default (LDOS only writes DOS files) at about half the cost: the study's reference
    "mp_default_noldos": FeffSettings("mp_default_noldos", ldos=False),
    "fast": FeffSettings("fast", radius=7.0, scf="3.0 0 30 .2 1", fms="5.0 0", ldos=False),
    "fms6": FeffSettings("fms6", radius=7.0, scf="3.5 0 30 .2 1", fms="6.0 0", ldos=False),
    "scf4": FeffSettings("scf4", radius=7.0, scf="4.0 0 30 .2 1", fms="5.0 0", ldos=False),
    "dataset": FeffSettings("dataset", radius=7.0, scf="3.5 0 30 .2 1", fms="5.0 0", ldos=False),
    "reduced8": FeffSettings("reduced8", radius=8.0, scf="4.0 0 30 .2 1", fms="6.0 0", ldos=False),
    "tiny": FeffSettings("tiny", radius=4.5, scf="3.0 0 30 .2 1", fms="3.5 0", ldos=False),
    # other physics on the dataset's cluster: the domain-shift benchmark's stand-ins for experiment (issue 15)
    "dataset_nohole": FeffSettings("dataset_nohole", radius=7.0, scf="3.5 0 30 .2 1", fms="5.0 0", ldos=False,
                                   corehole="none"),
    "dataset_rpa": FeffSettings("dataset_rpa", radius=7.0, scf="3.5 0 30 .2 1", fms="5.0 0", ldos=False,
                                corehole="RPA"),
    # Dirac-Hara exchange has no imaginary part: sharper features, as measured white lines are sharper than FEFF's
    "dataset_dh": FeffSettings("dataset_dh", radius=7.0, scf="3.5 0 30 .2 1", fms="5.0 0", ldos=False,
                               exchange="2 0.0 0.0 2"),
}
#: The presets with physics other than the dataset's (the domain-shift benchmark).
PHYSICS_VARIANTS = ("dataset_nohole", "dataset_rpa", "dataset_dh")


def get_settings(settings: str | FeffSettings | dict) -> FeffSettings:
    """Resolve a preset name, a dict or a :class:`FeffSettings`."""
    if isinstance(settings, FeffSettings):
        return settings
    if isinstance(settings, dict):
        return FeffSettings(**{k: v for k, v in settings.items() if not k.startswith("@")})
    if settings not in PRESETS:
        raise InputError(f"Unknown FEFF settings preset {settings!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[settings]


def feff_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a FEFF process: the caller's plus :data:`FEFF_MALLOC_ENV`."""
    env = dict(os.environ if base is None else base)
    env.update(FEFF_MALLOC_ENV)
    return env


def write_feff_input(structure: Structure, site_index: int, settings: FeffSettings, directory: str,
                     element: str = SI_K.element) -> dict:
    """Write ``feff.inp`` (and pymatgen's split files) for one absorbing site (K edge).

    Args:
        structure: the crystal.
        site_index: index of the absorbing site in ``structure``.
        settings: FEFF card settings.
        directory: folder to write into.
        element: the absorber the site must hold (other elements' K edges serve the OOD benchmark).

    Returns:
        The FEFF tags as a dict (atomate's ``input_parameters``).
    """
    from pymatgen.io.feff.sets import MPXANESSet

    if structure[site_index].specie.symbol != element:
        raise InputError(f"Site {site_index} is {structure[site_index].specie}, not {element}")
    feff_set = MPXANESSet(
        site_index, structure, edge="K", radius=settings.radius, user_tag_settings=settings.user_tag_settings()
    )
    feff_set.write_input(directory)
    return feff_set.tags.as_dict()


def run_feff(input_file: str, work_dir: str, timeout: float | None = None) -> dict[str, Any]:
    """Run FEFF10 on ``input_file`` in ``work_dir`` in a child process (with :data:`FEFF_MALLOC_ENV`).

    Returns:
        Timing: ``wall_s``, ``user_s``, ``sys_s`` and per-stage seconds.

    Raises:
        RuntimeError: if FEFF times out.
        FeffError: if FEFF fails or writes no ``xmu.dat``; the message has FEFF's reason from its logs.
    """
    os.makedirs(work_dir, exist_ok=True)
    # feff10.run rewrites work_dir/feff.inp, so it gets its own copy
    inp = os.path.join(work_dir, "feff.inp")
    if os.path.abspath(input_file) != os.path.abspath(inp):
        shutil.copy(input_file, inp)
    log = os.path.join(work_dir, "feff.log")
    with open(log, "w") as out:
        proc = run_child([sys.executable, "-c", _CHILD, inp, work_dir, str(os.getpid())], out, timeout)
    if proc.returncode != 0 or not os.path.exists(os.path.join(work_dir, "xmu.dat")):
        raise FeffError(f"FEFF failed (exit code {proc.returncode}, no xmu.dat): {feff_failure_reason(work_dir)}")
    with open(os.path.join(work_dir, "timing.json")) as f:
        return json.load(f)


#: Process groups of running FEFF children, killed if this process is interrupted or terminated.
_LIVE_GROUPS: set[int] = set()


def run_child(cmd: list[str], out, timeout: float | None) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own process group; on timeout or interruption the whole group is killed.

    Raises:
        RuntimeError: on timeout (FEFF and its worker are killed, not left running).
    """
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=feff_env(), start_new_session=True)
    _LIVE_GROUPS.add(proc.pid)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"FEFF timed out after {timeout} s") from exc
    finally:
        if proc.poll() is None:
            kill_group(proc.pid)
            proc.wait()
        _LIVE_GROUPS.discard(proc.pid)
    return subprocess.CompletedProcess(cmd, proc.returncode)


def kill_group(pgid: int) -> None:
    """SIGKILL a process group (gone already is fine)."""
    import signal

    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def kill_children() -> None:
    """Kill every running FEFF child group (called when ``simulate`` is interrupted)."""
    for pgid in list(_LIVE_GROUPS):
        kill_group(pgid)


#: Scratch folders are named ``<task_id>-pid<PID>-<random>``: a later run removes those of dead processes.
_SCRATCH_PID = "-pid"


def remove_stale_scratch(scratch: str) -> list[str]:
    """Delete scratch folders left by ``simulate`` processes that no longer run; return their paths."""
    import re

    removed = []
    for name in os.listdir(scratch):
        m = re.search(rf"{_SCRATCH_PID}(\d+)-", name)
        path = os.path.join(scratch, name)
        if not m or not os.path.isdir(path):
            continue
        pid = int(m.group(1))
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


SCF_BAD_COUNTS = "bad counts"
#: Lines of FEFF's module logs that explain a crash (the first ones found are reported).
FEFF_FAILURE_WORDS = (SCF_BAD_COUNTS, "will exit", "fatal error", "very close")


class FeffError(RuntimeError):
    """FEFF ran but produced no spectrum; the message names FEFF's own reason where it gave one."""

    @property
    def scf_not_converged(self) -> bool:
        """True when the self-consistent potential stopped on bad electron counts (retry with gentler mixing)."""
        return SCF_BAD_COUNTS in str(self).lower()


def feff_failure_reason(work_dir: str, lines: int = 3) -> str:
    """FEFF's reason for a failed run, read from its module logs (``log1.dat`` ... and ``feff.log``).

    FEFF writes the cause (e.g. "Bad counts found repeatedly - pot will exit now.") to the log of the
    module that stopped, not to stdout; ``.feff.error`` only says which module was running.
    """
    logs = sorted(f for f in os.listdir(work_dir) if f.startswith("log") and f.endswith(".dat"))
    hits = []
    for name in logs + ["feff.log"]:
        path = os.path.join(work_dir, name)
        if not os.path.exists(path):
            continue
        with open(path, errors="replace") as f:
            hits += [f"{name}: {ln.strip()}" for ln in f if any(k in ln.lower() for k in FEFF_FAILURE_WORDS)]
    if hits:
        return " | ".join(list(dict.fromkeys(hits))[:lines])
    error_file = os.path.join(work_dir, ".feff.error")
    if os.path.exists(error_file):
        with open(error_file, errors="replace") as f:
            return ".feff.error: " + " ".join(f.read().split())[:200]
    return "no log explains it"


def gentler_scf(settings: FeffSettings) -> FeffSettings:
    """The same settings with SCF mixing 0.05 instead of 0.2 (FEFF's ``ca``).

    Cu(II) silicates stop in FEFF's SCF with "Bad counts found repeatedly"; smaller mixing lets the same
    potential converge (measured on Ba2CuSi2O7, amcsd-18759 site 6: fails at 0.2 and with a 4.5 A SCF
    radius, converges at 0.05). Only the path to self-consistency changes, not the physics.
    """
    if settings.scf is None:
        raise InputError(f"Settings {settings.name!r} have no SCF card to soften")
    parts = settings.scf.split()
    parts[3] = ".05"
    return FeffSettings(
        f"{settings.name}_scfmix05", radius=settings.radius, scf=" ".join(parts), fms=settings.fms, ldos=settings.ldos
    )


def read_xmu_rows(filename: str) -> list[list[float]]:
    """Read all columns of ``xmu.dat`` as rows (atomate's ``spectrum`` field).

    Raises:
        ValueError: if the file has no numeric rows, fewer than 6 columns or non-finite values.
    """
    try:
        rows = np.loadtxt(filename, ndmin=2)
    except ValueError as exc:
        raise InputError(f"Corrupt FEFF output {filename}: {exc}") from exc
    if rows.size == 0 or rows.shape[1] < 6:
        raise InputError(f"Corrupt FEFF output {filename}: expected >= 6 columns, got shape {rows.shape}")
    if not np.isfinite(rows).all():
        raise InputError(f"Corrupt FEFF output {filename}: non-finite values")
    return rows.tolist()


@dataclass
class SiteJob:
    """One FEFF calculation to run: a structure, an absorbing site (Si unless ``element`` says) and metadata."""

    task_id: str
    structure: dict
    site_index: int
    metadata: dict = field(default_factory=dict)
    element: str = SI_K.element


def simulate_site(job: SiteJob, settings: FeffSettings, scratch: str, timeout: float | None = None) -> dict:
    """Run one site and return its task document (``state`` is ``"successful"`` or ``"failed"``)."""
    import feff10
    from pymatgen.core import Structure
    from pymatgen.io.feff.inputs import Atoms

    structure = Structure.from_dict(job.structure)
    metadata = dict(job.metadata)
    metadata.update({"feff_version": feff10.__version__, "feff_env": FEFF_MALLOC_ENV, "absorbing_element": job.element})
    doc: dict[str, Any] = {
        "task_id": job.task_id,
        "structure": job.structure,
        "absorbing_atom": job.site_index,
        "spectrum_type": "XANES",
        "edge": "K",
        "metadata": metadata,
    }
    directory = tempfile.mkdtemp(prefix=f"{job.task_id}{_SCRATCH_PID}{os.getpid()}-", dir=scratch)
    attempts = [settings] + ([gentler_scf(settings)] if settings.scf is not None else [])
    errors = []
    try:
        for attempt, current in enumerate(attempts):
            metadata["feff_settings"] = asdict(current)
            input_dir, run_dir = os.path.join(directory, f"input{attempt}"), os.path.join(directory, f"run{attempt}")
            doc["input_parameters"] = write_feff_input(structure, job.site_index, current, input_dir, job.element)
            doc["cluster"] = Atoms.cluster_from_file(os.path.join(input_dir, "feff.inp")).as_dict()
            try:
                timing = run_feff(os.path.join(input_dir, "feff.inp"), run_dir, timeout=timeout)
            except FeffError as exc:
                errors.append(f"{current.name}: {exc}")
                if exc.scf_not_converged and attempt + 1 < len(attempts):
                    continue
                raise
            doc["spectrum"] = read_xmu_rows(os.path.join(run_dir, "xmu.dat"))
            metadata["timing"] = timing
            if errors:
                metadata["earlier_attempts"] = errors
            doc["state"] = "successful"
            break
    except Exception as exc:  # a failed site is recorded, never fatal for the run
        doc["state"] = "failed"
        doc["error"] = " ; ".join(errors) if errors else f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    doc["dir_name"] = directory
    doc["last_updated"] = datetime.now(timezone.utc)
    return doc


class TaskSink:
    """Where finished task documents go; implementations are :class:`DirectorySink` and :class:`StoreSink`."""

    def done_ids(self, include_failed: bool = True) -> set[str]:
        """Return task ids already stored."""
        raise NotImplementedError

    def write(self, doc: dict) -> None:
        """Store one document."""
        raise NotImplementedError


class DirectorySink(TaskSink):
    """One gzipped JSON file per task, written atomically (a killed run loses only sites in flight).

    Args:
        directory: folder of ``<task_id>.json.gz`` files.
        also_done: task documents already finished elsewhere (e.g. the shipped dataset).
    """

    def __init__(self, directory: str, also_done: Iterable[dict] = ()):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self._extra = {d["task_id"]: d.get("state", "successful") for d in also_done}

    def iter_docs(self):
        """Yield the documents in the directory (a truncated file is logged by name and counts as not done)."""
        for _, doc in iter_directory(self.directory, PYMATGEN_CLASSES):
            yield doc

    def done_ids(self, include_failed: bool = True) -> set[str]:
        """Task ids in the folder or in ``also_done``."""
        states = dict(self._extra)
        states.update({d["task_id"]: d.get("state", "successful") for d in self.iter_docs()})
        return {k for k, s in states.items() if include_failed or s != "failed"}

    def write(self, doc: dict) -> None:
        """Write ``<task_id>.json.gz`` atomically."""
        write_json(doc, os.path.join(self.directory, f"{doc['task_id']}.json.gz"))


class StoreSink(TaskSink):
    """A maggma store (e.g. a ``MongoStore`` on a ``tasks`` collection), keyed by ``task_id``."""

    def __init__(self, store):
        self.store = store
        self.store.connect()

    def done_ids(self, include_failed: bool = True) -> set[str]:
        """Task ids in the store."""
        criteria = {} if include_failed else {"state": {"$ne": "failed"}}
        return set(self.store.distinct("task_id", criteria))

    def write(self, doc: dict) -> None:
        """Upsert by ``task_id``."""
        self.store.update([doc], key="task_id")


def simulate(
    jobs: list[SiteJob],
    sink: TaskSink,
    settings: str | FeffSettings = "dataset",
    n_workers: int = 2,
    scratch: str | None = None,
    timeout: float | None = 3600.0,
    retry_failed: bool = False,
    progress: bool = True,
    callback: Callable[[dict], None] | None = None,
) -> dict[str, int]:
    """Run the FEFF jobs not yet in ``sink``, ``n_workers`` at a time, writing each as it finishes.

    Args:
        jobs: the site calculations, in priority order.
        sink: where documents go; its finished ids are skipped.
        settings: a preset name or :class:`FeffSettings`.
        n_workers: concurrent FEFF processes (FEFF10 is serial: use one per core).
        scratch: folder for working directories (default: system temp).
        timeout: seconds per site before it is recorded as failed.
        retry_failed: rerun sites whose stored document is failed.
        progress: show a progress bar with ETA.
        callback: called with each finished document (e.g. to commit chunks).

    Returns:
        Counts: ``skipped``, ``successful``, ``failed``.
    """
    from tqdm import tqdm

    settings = get_settings(settings)
    done = sink.done_ids(include_failed=not retry_failed)
    todo = [j for j in jobs if j.task_id not in done]
    counts = {"skipped": len(jobs) - len(todo), "successful": 0, "failed": 0}
    scratch = scratch or tempfile.gettempdir()
    os.makedirs(scratch, exist_ok=True)
    remove_stale_scratch(scratch)
    pool = ThreadPoolExecutor(max_workers=n_workers)
    try:
        with tqdm(total=len(todo), disable=not progress, desc="FEFF sites", unit="site") as bar:
            futures = [pool.submit(simulate_site, job, settings, scratch, timeout) for job in todo]
            for future in as_completed(futures):
                doc = future.result()
                sink.write(doc)
                counts[doc["state"]] += 1
                bar.set_postfix(failed=counts["failed"])
                bar.update()
                if callback:
                    callback(doc)
    except BaseException:  # Ctrl-C, SIGTERM (as SystemExit) or a sink error: stop FEFF, keep what is written
        pool.shutdown(wait=False, cancel_futures=True)
        kill_children()
        raise
    finally:
        pool.shutdown(wait=True)  # the killed sites' threads return and remove their scratch folders
    return counts


def jobs_from_corpus(corpus: dict, priority_chemsys: Iterable[str] = ()) -> list[SiteJob]:
    """One :class:`SiteJob` per unique absorber site of the corpus, sites of ``priority_chemsys`` first.

    The absorber is the corpus's ``element`` (Si for corpora that do not say). Si sites keep their task ids
    ``<structure_id>-s<index>``; other absorbers' are ``<structure_id>-<element><index>``.
    """
    element = corpus.get("element", SI_K.element)
    priority = {c: i for i, c in enumerate(priority_chemsys)}
    records = sorted(
        enumerate(corpus["structures"]), key=lambda ir: (priority.get(ir[1]["chemsys"], len(priority)), ir[0])
    )
    jobs = []
    for _, rec in records:
        meta = {k: rec[k] for k in ("structure_id", "source", "source_id", "mineral", "formula", "chemsys", "group_id")}
        meta["ordered_from_disorder"] = rec["ordered_from_disorder"]
        # provenance of structures made by pymatgen_xanes_nn.datagen.derive (and relaxed by derive.relax_corpus)
        meta.update({k: rec[k] for k in ("parent_structure_id", "substitution", "relaxation") if k in rec})
        for site in rec["sites"]:
            site_meta = dict(meta, **{k: site[k] for k in ("multiplicity", "cn", "neighbors", "environment",
                                                            "oxidation", "motif") if k in site})
            tag = "s" if element == SI_K.element else element
            jobs.append(SiteJob(f"{rec['structure_id']}-{tag}{site['site_index']}", rec["structure"],
                                site["site_index"], site_meta, element))
    return jobs


def interleave(jobs: list[SiteJob], key: str, seed: int = 0) -> list[SiteJob]:
    """Reorder jobs round robin over the values of ``metadata[key]`` (random within each).

    A run stopped part way then has every class; the classes with fewest sites are complete first.
    """
    rng = np.random.default_rng(seed)
    pools: dict[str, list[SiteJob]] = {}
    for job in jobs:
        pools.setdefault(str(job.metadata.get(key)), []).append(job)
    for pool in pools.values():
        rng.shuffle(pool)
    out: list[SiteJob] = []
    while len(out) < len(jobs):
        for name in sorted(pools):
            if pools[name]:
                out.append(pools[name].pop())
    return out


def jobs_for_absorber(corpus: dict, element: str, n_structures: int = 4) -> list[SiteJob]:
    """K-edge jobs of another element: one ``element`` site in the smallest structure of each chemical system.

    These spectra are not Si K edges; moved into the Si window they test the OOD flag
    (:mod:`pymatgen_xanes_nn.studies.ood_benchmark`).

    Args:
        corpus: a corpus (:func:`pymatgen_xanes_nn.datagen.corpus.load_corpus`).
        element: the absorbing element, e.g. ``"Al"``.
        n_structures: how many structures (chemical systems in order of their smallest structure).
    """
    from pymatgen.core import Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    if element == corpus.get("element", SI_K.element):
        raise InputError(f"{element} sites of a {element} corpus come from jobs_from_corpus")
    records = sorted((r for r in corpus["structures"] if element in r["chemsys"].split("-")),
                     key=lambda r: (len(r["structure"]["sites"]), r["structure_id"]))
    smallest: dict[str, dict] = {}
    for rec in records:
        smallest.setdefault(rec["chemsys"], rec)
    jobs = []
    for rec in list(smallest.values())[:n_structures]:
        structure = Structure.from_dict(rec["structure"])
        sym = SpacegroupAnalyzer(structure, symprec=0.01).get_symmetrized_structure()
        site = next(eq[0] for eq in sym.equivalent_indices if structure[eq[0]].specie.symbol == element)
        meta = {k: rec[k] for k in ("structure_id", "source", "source_id", "mineral", "formula", "chemsys", "group_id")}
        jobs.append(SiteJob(f"{rec['structure_id']}-{element}{site}", rec["structure"], site, meta, element))
    return jobs
