from __future__ import annotations

import os

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from pymatgen_xanes_nn.datagen.simulate import (
    FEFF_MALLOC_ENV,
    PRESETS,
    DirectorySink,
    FeffError,
    FeffSettings,
    SiteJob,
    feff_env,
    feff_failure_reason,
    gentler_scf,
    get_settings,
    jobs_for_absorber,
    read_xmu_rows,
    simulate,
    write_feff_input,
)
from pymatgen_xanes_nn.io.tasks import load_tasks, pack_tasks

from .conftest import diamond_si, test_file


def _sic() -> Structure:
    return Structure.from_spacegroup("F-43m", Lattice.cubic(4.36), ["Si", "C"], [[0, 0, 0], [0.25, 0.25, 0.25]])


def test_presets_and_settings():
    assert get_settings("dataset").user_tag_settings() == {"SCF": "3.5 0 30 .2 1", "FMS": "5.0 0", "_del": ["LDOS"]}
    assert get_settings("mp_default").user_tag_settings() == {"SCF": "4.5 0 30 .2 1", "FMS": "7.5 0"}
    assert get_settings({"name": "x", "radius": 6.0, "scf": None}).user_tag_settings()["_del"] == ["SCF"]
    assert FeffSettings.from_dict(PRESETS["dataset"].as_dict()) == PRESETS["dataset"]
    with pytest.raises(ValueError, match="Unknown FEFF settings preset 'turbo'"):
        get_settings("turbo")


def test_feff_failure_reason_reads_the_module_log(tmp_path):
    (tmp_path / ".feff.error").write_text("Starting FEFF9 module pot.  If this message is still here ...")
    assert feff_failure_reason(str(tmp_path)).startswith(".feff.error: Starting FEFF9 module pot")
    (tmp_path / "log1.dat").write_text("SCF ITERATION NUMBER  1\n  Found bad counts.\n"
                                      "Bad counts found repeatedly - pot will exit now.\nDone with module\n")
    reason = feff_failure_reason(str(tmp_path))
    assert reason.startswith("log1.dat:") and "pot will exit now" in reason
    assert FeffError(f"FEFF failed: {reason}").scf_not_converged
    assert not FeffError("FEFF failed: log2.dat: error in xsph").scf_not_converged


def test_gentler_scf():
    soft = gentler_scf(PRESETS["dataset"])
    assert soft.name == "dataset_scfmix05" and soft.scf == "3.5 0 30 .05 1"
    assert (soft.radius, soft.fms, soft.ldos) == (7.0, "5.0 0", False)
    with pytest.raises(ValueError, match="no SCF card"):
        gentler_scf(FeffSettings("noscf", scf=None))


def test_simulate_site_retries_scf_failure_once(tmp_path, monkeypatch):
    """Bad electron counts -> one rerun with gentler mixing, recorded; any other failure is not retried."""
    import shutil

    from pymatgen_xanes_nn.datagen import simulate as sim

    calls = []

    def fake_run(input_file, work_dir, timeout=None, fail=("bad counts", None)):
        calls.append(open(input_file).read())
        os.makedirs(work_dir, exist_ok=True)
        if len(calls) == 1 or fail[1]:
            raise FeffError(f"FEFF failed: log1.dat: {fail[1] or 'Bad counts found repeatedly - pot will exit now.'}")
        shutil.copy(test_file("feff", "Si_diamond", "xmu.dat"), os.path.join(work_dir, "xmu.dat"))
        return {"user_s": 1.0, "sys_s": 0.0}

    monkeypatch.setattr(sim, "run_feff", fake_run)
    job = SiteJob("diamond-s0", diamond_si().as_dict(), 0, {})
    doc = sim.simulate_site(job, PRESETS["dataset"], str(tmp_path))
    assert doc["state"] == "successful" and len(calls) == 2
    assert "SCF 3.5 0 30 .2 1" in calls[0] and "SCF 3.5 0 30 .05 1" in calls[1]
    assert doc["metadata"]["feff_settings"]["name"] == "dataset_scfmix05"
    assert doc["input_parameters"]["SCF"] == "3.5 0 30 .05 1"
    assert "dataset: FEFF failed" in doc["metadata"]["earlier_attempts"][0]

    calls.clear()
    monkeypatch.setattr(sim, "run_feff", lambda *a, **k: fake_run(*a, fail=(None, "error in xsph")))
    doc = sim.simulate_site(job, PRESETS["dataset"], str(tmp_path))
    assert doc["state"] == "failed" and len(calls) == 1 and "error in xsph" in doc["error"]


def test_malloc_environment():
    env = feff_env({"PATH": "/bin"})
    assert env["MALLOC_MMAP_MAX_"] == "0" and env["MALLOC_TRIM_THRESHOLD_"] == "4294967296"
    assert env["PATH"] == "/bin" and set(FEFF_MALLOC_ENV) <= set(env)


def test_read_xmu_rows(tmp_path):
    rows = read_xmu_rows(test_file("feff", "Si_diamond", "xmu.dat"))
    assert len(rows) == 100 and len(rows[0]) == 6
    (tmp_path / "xmu.dat").write_text("# only a header\n")
    with pytest.raises(ValueError, match="Corrupt FEFF output"):
        read_xmu_rows(str(tmp_path / "xmu.dat"))
    (tmp_path / "xmu.dat").write_text("1 2 3\n4 5 6\n")
    with pytest.raises(ValueError, match=">= 6 columns"):
        read_xmu_rows(str(tmp_path / "xmu.dat"))


def test_simulate_resume_failures_and_pack(tmp_path):
    """A real FEFF10 run on a tiny cluster, a failing site, resume, retry and packing."""
    jobs = [
        SiteJob("diamond-s0", diamond_si().as_dict(), 0, {"chemsys": "Si", "group_id": "g-d", "structure_id": "d"}),
        SiteJob("sic-s7", _sic().as_dict(), 7, {"chemsys": "C-Si", "group_id": "g-c", "structure_id": "c"}),  # a C site
    ]
    sink = DirectorySink(str(tmp_path / "tasks"))
    seen = []
    counts = simulate(jobs, sink, settings="tiny", n_workers=2, scratch=str(tmp_path / "scratch"), progress=False,
                      callback=seen.append)
    assert counts == {"skipped": 0, "successful": 1, "failed": 1} and len(seen) == 2
    docs = {d["task_id"]: d for d in sink.iter_docs()}
    ok, bad = docs["diamond-s0"], docs["sic-s7"]
    for field in ("input_parameters", "cluster", "structure", "absorbing_atom", "spectrum_type", "spectrum", "edge",
                  "metadata", "dir_name", "last_updated", "task_id"):
        assert field in ok, field
    assert ok["absorbing_atom"] == 0 and ok["spectrum_type"] == "XANES" and ok["edge"] == "K"
    spectrum = np.asarray(ok["spectrum"])
    assert spectrum.shape[1] == 6 and np.isfinite(spectrum).all() and 1830 < spectrum[0, 0] < 1850
    assert ok["metadata"]["feff_settings"]["name"] == "tiny" and ok["metadata"]["timing"]["user_s"] > 0
    assert ok["metadata"]["feff_env"] == FEFF_MALLOC_ENV
    assert bad["state"] == "failed" and "not Si" in bad["error"]
    assert not os.listdir(tmp_path / "scratch")  # working folders cleaned up

    # resume: nothing is rerun and finished results are not rewritten
    path = tmp_path / "tasks" / "diamond-s0.json.gz"
    mtime = path.stat().st_mtime_ns
    assert simulate(jobs, sink, settings="tiny", progress=False) == {"skipped": 2, "successful": 0, "failed": 0}
    assert path.stat().st_mtime_ns == mtime
    # retry_failed reruns only the failed site
    assert simulate(jobs, sink, settings="tiny", progress=False, retry_failed=True) == {
        "skipped": 1, "successful": 0, "failed": 1}

    # pack and load: structures stored once, failed documents kept but filtered by default
    pack_tasks(list(sink.iter_docs()), str(tmp_path / "pack.json.gz"))
    assert [d["task_id"] for d in load_tasks(str(tmp_path / "pack.json.gz"))] == ["diamond-s0"]
    assert len(load_tasks(str(tmp_path / "pack.json.gz"), include_failed=True)) == 2
    # the shipped dataset's finished ids count as done
    sink2 = DirectorySink(str(tmp_path / "other"), also_done=load_tasks(str(tmp_path / "pack.json.gz")))
    assert sink2.done_ids() == {"diamond-s0"}


def test_interrupted_run_keeps_finished_sites(tmp_path):
    jobs = [SiteJob(f"diamond-{i}", diamond_si().as_dict(), 0, {}) for i in range(3)]
    sink = DirectorySink(str(tmp_path / "tasks"))

    def stop(doc):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        simulate(jobs, sink, settings="tiny", n_workers=1, progress=False, callback=stop)
    done = sink.done_ids()
    assert 1 <= len(done) <= 2  # the finished one (and at most the one in flight)
    counts = simulate(jobs, sink, settings="tiny", n_workers=1, progress=False)
    assert counts["skipped"] == len(done) and counts["successful"] == 3 - len(done)


def test_compare_spectra_metrics():
    from pymatgen_xanes_nn.datagen.feff_study import compare_spectra, summarize_study

    rows = np.loadtxt(test_file("feff", "Si_diamond", "xmu.dat"))
    same = compare_spectra(rows.tolist(), rows.tolist())
    assert same["cosine"] == pytest.approx(1.0) and same["rms"] == 0 and same["max_diff_over_peak"] == 0
    bumped = rows.copy()
    bumped[40, 3] += 0.1 * rows[:, 3].max()
    m = compare_spectra(rows.tolist(), bumped.tolist())
    assert m["max_diff_over_peak"] == pytest.approx(0.1, rel=1e-6) and m["cosine"] < 1
    study = {"runs": {"Si": {"ref": {"spectrum": rows.tolist(), "cpu_s": 60.0},
                             "cheap": {"spectrum": bumped.tolist(), "cpu_s": 6.0}}}}
    summary = summarize_study(study, "ref")["summary"]
    assert summary["cheap"]["mean_cpu_s"] == 6.0 and summary["cheap"]["max_diff_over_peak"] == pytest.approx(0.1)


def test_study_picks_the_named_structures():
    from pymatgen_xanes_nn.datagen.corpus import load_corpus
    from pymatgen_xanes_nn.datagen.feff_study import pick_structures

    picked = {r["formula"]: r for r in pick_structures(load_corpus())}
    assert set(picked) == {"SiO2", "Si", "SiC", "Mg2SiO4", "Si3N4", "Mg2Si"}
    assert picked["SiO2"]["mineral"] == "Quartz" and picked["Si"]["sites"][0]["environment"] == "SiSi4"


_KILL_SCRIPT = """
import signal, sys
from pymatgen.core import Lattice, Structure
from pymatgen_xanes_nn.datagen import simulate as sim

# a fake FEFF behind the real guard: the child starts a sleeping grandchild, as feff10 starts its worker
sim._CHILD = sim._CHILD_GUARD + '''
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "feff-" + "{marker}"])
time.sleep(300)
'''
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # as `xanes-nn simulate` does
si = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.431), ["Si"], [[0, 0, 0]])
job = sim.SiteJob("diamond-s0", si.as_dict(), 0, {{}})
sim.simulate([job], sim.DirectorySink(sys.argv[1]), settings="tiny", n_workers=1, scratch=sys.argv[2], progress=False)
"""


def _marked(marker: str) -> list[int]:
    """PIDs of live processes whose command line contains ``marker``."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{pid}/stat") as f:
                zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            continue
        if marker.encode() in cmd and not zombie:
            pids.append(int(pid))
    return pids


def _wait(predicate, seconds: float = 30.0) -> bool:
    import time

    end = time.time() + seconds
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


@pytest.mark.skipif(not os.path.exists("/proc"), reason="needs Linux /proc")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_killed_simulate_leaves_no_feff_running_and_no_scratch(tmp_path, sig):
    """Killing `simulate` kills FEFF's child and grandchild; scratch is removed now (TERM) or by the next run (KILL)."""
    import signal
    import subprocess
    import sys

    from pymatgen_xanes_nn.datagen.simulate import remove_stale_scratch

    marker = f"marker-{tmp_path.name}"  # the grandchild's argument is "feff-" + marker: only it matches
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT.format(marker=marker), str(out), str(scratch)])
    marker = "feff-" + marker
    try:
        assert _wait(lambda: len(_marked(marker)) == 1), "fake FEFF grandchild never started"
        proc.send_signal(getattr(signal, sig))
        proc.wait(timeout=30)
        assert _wait(lambda: not _marked(marker), 10), f"FEFF processes survive {sig}: {_marked(marker)}"
    finally:
        proc.kill()
        for pid in _marked(marker):
            os.kill(pid, signal.SIGKILL)
    assert not list(out.glob("*.json.gz")), "an interrupted site must not be recorded"
    left = list(scratch.iterdir())
    if sig == "SIGTERM":
        assert left == []
    else:
        assert len(left) == 1 and remove_stale_scratch(str(scratch)) == [str(left[0])]
        assert list(scratch.iterdir()) == []


def test_truncated_task_file_is_skipped_by_name(tmp_path, caplog):
    """A truncated document in the output folder names its file and does not block resuming."""
    import gzip
    import logging

    sink = DirectorySink(str(tmp_path))
    sink.write({"task_id": "a-s0", "state": "successful"})
    data = gzip.compress(b'{"task_id": "b-s0", "state": "successful", "spectrum": [[1, 2, 3, 4, 5, 6]]}')
    (tmp_path / "b-s0.json.gz").write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING):
        assert sink.done_ids() == {"a-s0"}
    assert "b-s0.json.gz" in caplog.text and "truncated or corrupt" in caplog.text


def test_jobs_for_another_absorber(tmp_path):
    from pymatgen_xanes_nn.datagen.corpus import load_corpus

    corpus = load_corpus()
    jobs = jobs_for_absorber(corpus, "Al", 3)
    assert len(jobs) == 3 and len({j.metadata["chemsys"] for j in jobs}) == 3  # one per chemical system
    for job in jobs:
        structure = Structure.from_dict(job.structure)
        assert job.element == "Al" and structure[job.site_index].specie.symbol == "Al"
        assert job.task_id.endswith(f"-Al{job.site_index}")
    tags = write_feff_input(Structure.from_dict(jobs[0].structure), jobs[0].site_index, PRESETS["dataset"],
                            str(tmp_path / "in"), element="Al")
    absorber = next(line.split() for line in open(tmp_path / "in" / "feff.inp").read().split("POTENTIALS")[1]
                    .splitlines() if line.split()[:1] == ["0"])
    assert absorber[:3] == ["0", "13", "Al"]  # ipot 0 (the absorber) is aluminium
    assert tags["EDGE"] == "K"
    with pytest.raises(ValueError, match="not Si"):  # the default absorber is checked
        write_feff_input(Structure.from_dict(jobs[0].structure), jobs[0].site_index, PRESETS["dataset"],
                         str(tmp_path / "in2"))
    with pytest.raises(ValueError, match="jobs_from_corpus"):
        jobs_for_absorber(corpus, "Si")


@pytest.mark.skipif(not os.path.exists("/proc/self/autogroup"), reason="needs Linux scheduler autogroups")
def test_feff_child_keeps_the_niceness_asked_for(tmp_path):
    """The child leads a new session, hence a new autogroup: it must carry the niceness over, or `nice` does nothing."""
    import subprocess
    import sys

    from pymatgen_xanes_nn.datagen import simulate as sim

    out = tmp_path / "autogroup.txt"
    code = sim._CHILD_GUARD + f"\nopen({str(out)!r}, 'w').write(open('/proc/self/autogroup').read())\n"
    script = ("import os, sys, subprocess\nprint(os.nice(7))\n"  # 7 above whatever niceness the tests run at
              f"from pymatgen_xanes_nn.datagen.simulate import run_child\n"
              f"run_child([sys.executable, '-c', {code!r}, '', '', str(os.getpid())], subprocess.DEVNULL, 60)\n")
    asked = subprocess.run([sys.executable, "-c", script], check=True, timeout=120, capture_output=True,
                           text=True).stdout.split()[0]
    assert out.read_text().split()[-1] == asked


def test_measured_alignment_finds_one_offset_and_what_it_leaves():
    from pymatgen.analysis.xas.spectrum import XAS

    from pymatgen_xanes_nn.datagen.feff_study import measured_alignment

    from .conftest import synthetic_edge

    pairs = {}
    for name, e0, extra in (("a", 2470.0, 0.0), ("b", 2475.0, 0.0), ("c", 2480.0, 4.0)):
        e, mu = synthetic_edge(e0=e0, lo=e0 - 20, hi=e0 + 40)
        measured = XAS(e, mu, None, "S")
        feff = XAS(e - 2.0 - extra, mu, None, "S")  # FEFF 2 eV low, and c's chemical shift 4 eV short
        pairs[name] = (feff, measured)
    res = measured_alignment(pairs)
    assert res["white_line"]["offset"] == pytest.approx(2.0 + 4.0 / 3, abs=0.1)
    assert res["white_line"]["residuals"]["c"] == pytest.approx(4.0 - 4.0 / 3, abs=0.1)
    assert res["e0"]["max_abs_residual"] == pytest.approx(4.0 - 4.0 / 3, abs=0.1)


def test_simulate_skips_what_a_shipped_collection_holds(tmp_path, monkeypatch, capsys):
    from pymatgen_xanes_nn.cli import main
    from pymatgen_xanes_nn.datagen import simulate as sim
    from pymatgen_xanes_nn.paths import data_path

    def no_feff(*args, **kwargs):
        raise AssertionError("a site the collection holds was computed again")

    monkeypatch.setattr(sim, "simulate_site", no_feff)
    argv = ["simulate", "--corpus", data_path("corpus_s.json.gz"), "--task-ids", "amcsd-15833-S0", "--dataset",
            "none", "--output", str(tmp_path / "out"), "--workers", "1", "--collection-done", "s_k_tasks"]
    assert main(argv) == 0
    assert '"skipped": 1' in capsys.readouterr().out
