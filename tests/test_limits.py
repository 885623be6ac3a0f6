"""Memory bounds: every input file is parsed within ~1 GB, however small its compressed form.

Each case runs in a child process whose address space is capped (``RLIMIT_AS``) at what the imports take plus
1 GiB: it must end in a clean error naming the file, never a ``MemoryError`` or a crash. The files are generated
here (a few hundred kB compressed), not committed.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import textwrap

import pytest

from .conftest import test_file

GIB = 1024**3
_CHILD = """
import resource, sys
{imports}
peak_kb = int(open("/proc/self/status").read().split("VmPeak:")[1].split()[0])
cap = peak_kb * 1024 + {budget}
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
try:
{body}
except MemoryError:
    print("MEMORYERROR")
    sys.exit(3)
except Exception as exc:
    print(f"ERROR {{type(exc).__name__}}: {{exc}}")
    sys.exit(2)
print("OK")
"""


def _run_capped(imports: str, body: str, budget: int = GIB) -> tuple[int, str]:
    code = _CHILD.format(imports=imports, body=textwrap.indent(body, "    "), budget=budget)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def _gz(path, data: bytes) -> str:
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(data)
    return str(path)


@pytest.mark.parametrize("pattern", [b"0,", b"[],", b'{"a":1},', b'"a",'])
def test_a_small_compressed_model_cannot_take_gigabytes(tmp_path, pattern):
    n = (200 * 2**20) // len(pattern)  # 200 MB decompressed, under the byte limit: the parse cost refuses it
    bomb = _gz(tmp_path / "model.json.gz", b'{"weights": [' + pattern * n + b'0]}')
    assert os.path.getsize(bomb) < 2 * 2**20
    code, out = _run_capped("from pymatgen_xanes_nn.classifier import XANESClassifier",
                            f"XANESClassifier.from_file({bomb!r})")
    assert code == 2 and "InvalidModelError" in out and "MB of memory" in out, out


def test_a_small_compressed_task_file_cannot_take_gigabytes(tmp_path):
    head = b'{"format": "1", "structures": {}, "tasks": ['
    bomb = _gz(tmp_path / "tasks.json.gz", head + b"[]," * 60_000_000 + b"[]]}")
    code, out = _run_capped("from pymatgen_xanes_nn.io.tasks import load_tasks", f"load_tasks({bomb!r})")
    assert code == 2 and "UnsafeDocumentError" in out and "MB of memory" in out, out


def test_a_feff_inp_beside_xmu_cannot_take_gigabytes(tmp_path):
    for name in ("xmu.dat", "feff.inp"):
        text = open(test_file("feff", "Si_diamond", name)).read()
        if name == "feff.inp":  # FEFF's repetition syntax: pymatgen's tag parser expands it in memory
            text = "\n".join("S02 100000000*0" if line.startswith("S02") else line for line in text.splitlines())
        (tmp_path / name).write_text(text)
    code, out = _run_capped("from pymatgen_xanes_nn.io.readers import read_xmu",
                            f"x = read_xmu({str(tmp_path / 'xmu.dat')!r})\nassert x.structure is not None")
    assert code == 0 and "OK" in out, out


def test_the_largest_shipped_file_loads_within_the_bound():
    from pymatgen_xanes_nn.io.tasks import DERIVED_RELAXED_TASKS_FILE
    from pymatgen_xanes_nn.paths import data_path

    path = data_path(DERIVED_RELAXED_TASKS_FILE)
    code, out = _run_capped("from pymatgen_xanes_nn.io.tasks import load_tasks",
                            f"assert len(load_tasks({path!r})) > 1000")
    assert code == 0, out
