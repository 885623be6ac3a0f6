"""How fast a misconfigured pipeline fails, as a ratio against loading the default model in the same run.

    python benchmarks/bench_config.py

Target (issue 16): every wrong setting gives its error in under 2 s. Each case runs ``pipeline_from_env`` in
the current process after one warm-up (imports paid once), timed with ``time.perf_counter`` over 3 repeats; the
baseline is ``XANESClassifier.from_pretrained()``, the least any correct set-up does.
Writes ``benchmarks/results/config.json``.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

from common import write_results

TARGET_S = 2.0


def _time(env: dict, repeats: int = 3) -> tuple[float, str]:
    from pymatgen_xanes_nn.pipeline.builders import ConfigurationError, pipeline_from_env

    times, message = [], "ok"
    for _ in range(repeats):
        start = time.perf_counter()
        try:
            pipeline_from_env(env)
        except ConfigurationError as exc:
            message = str(exc)
        times.append(time.perf_counter() - start)
    return statistics.median(times), message


def main() -> None:
    out = tempfile.mkdtemp()
    base = {"XANES_NN_OUTPUT": out}
    bad_model = os.path.join(out, "broken.json.gz")
    with open(bad_model, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00broken")
    cases = {
        "tasks file typo": {"XANES_NN_TASKS_FILE": "/no/such/si_k_tasks.json.gz"},
        "unknown model name": {"XANES_NN_MODEL": "si_k_chemsyz"},
        "broken model file": {"XANES_NN_MODEL": bad_model},
        "exhaustive=maybe": {"XANES_NN_EXHAUSTIVE": "maybe"},
        "unreachable MongoDB": {"XANES_NN_MONGO_URI": "mongodb://127.0.0.1:1/?directConnection=true"},
        "unresolvable MongoDB host": {"XANES_NN_MONGO_URI": "mongodb://no-such-host.invalid:27017"},
    }
    from pymatgen_xanes_nn.classifier import XANESClassifier

    _time({**base, **cases["exhaustive=maybe"]}, repeats=1)  # warm-up: imports
    times = []
    for _ in range(3):
        start = time.perf_counter()
        XANESClassifier.from_pretrained()
        times.append(time.perf_counter() - start)
    baseline = statistics.median(times)
    res = {"target_s": TARGET_S, "baseline_load_default_model_s": round(baseline, 3), "cases": {}}
    for name, env in cases.items():
        seconds, message = _time({**base, **env})
        res["cases"][name] = {"seconds": round(seconds, 3), "ratio_to_model_load": round(seconds / baseline, 2),
                              "met": seconds < TARGET_S, "error": message[:160]}
    res["all_met"] = all(c["met"] for c in res["cases"].values())
    write_results("config", res)


if __name__ == "__main__":
    main()
