"""A local MongoDB-protocol server for tests and laptops: ``secantusdb`` (PyPI, beta, GPL-2.0).

No ``mongod`` is needed: ``with mongo_server() as uri:`` starts ``secantusd-py`` on a free
loopback port with its data in a folder, yields a ``mongodb://`` URI and stops it afterwards.
Users with a real MongoDB (local or Atlas) use its URI instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_command() -> list[str]:
    exe = shutil.which("secantusd-py") or os.path.join(os.path.dirname(sys.executable), "secantusd-py")
    if not os.path.exists(exe):
        raise FileNotFoundError("secantusd-py not found: pip install 'pymatgen-xanes-nn[server]'")
    return [exe]


@contextlib.contextmanager
def mongo_server(storage_path: str | None = None, port: int | None = None, timeout: float = 30.0) -> Iterator[str]:
    """Run a secantusdb server for the duration of the block and yield its URI.

    Args:
        storage_path: data folder (default: a temporary folder, deleted afterwards).
        port: TCP port (default: a free one).
        timeout: seconds to wait for the server to answer ``ping``.
    """
    import pymongo

    tmp = None
    if storage_path is None:
        tmp = storage_path = tempfile.mkdtemp(prefix="xanes-nn-mongo-")
    port = port or free_port()
    log = open(os.path.join(storage_path, "server.log"), "a")
    proc = subprocess.Popen(
        [*_server_command(), "--host", "127.0.0.1", "--port", str(port), "--storage-path", storage_path],
        stdout=log, stderr=subprocess.STDOUT,
    )
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"secantusdb exited with code {proc.returncode}; see {log.name}")
            try:
                pymongo.MongoClient(uri, serverSelectionTimeoutMS=500).admin.command("ping")
                break
            except pymongo.errors.PyMongoError:
                if time.time() > deadline:
                    raise RuntimeError(f"secantusdb did not answer within {timeout} s") from None
                time.sleep(0.2)
        yield uri
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
