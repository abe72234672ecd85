"""A local AWS API for the tests: moto in server mode, a separate process on a free loopback port.

AWS itself cannot be reached from the test machines; moto's server is the standard local
stand-in for the DynamoDB and S3 APIs. The code under test talks to it through the real AWS SDK
(boto3) with ``endpoint_url``, exactly as it would talk to AWS or MinIO. Start it with
``moto_server()`` (a context manager); it is stopped by its pid on exit.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# Test credentials: moto accepts any; they are not secrets.
ACCESS_KEY = "AKIDTESTTESTTESTTEST"
SECRET_KEY = "test-secret-key-not-a-real-one"
REGION = "eu-west-1"


@dataclass
class MotoServer:
    endpoint: str
    pid: int

    def storage_yaml(self, table: str, **extra: str) -> str:
        """A teleport.storage flow mapping for a DynamoDB table on this server."""
        more = "".join(f", {k}: {v}" for k, v in extra.items())
        return (
            f"{{type: dynamodb, region: {REGION}, table_name: {table}, access_key: {ACCESS_KEY}, "
            f"secret_key: {SECRET_KEY}, endpoint: '{self.endpoint}'{more}}}"
        )

    def client(self, service: str) -> object:
        import boto3

        return boto3.client(
            service, endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: get SIGTERM if pytest dies without running teardown (Linux only)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@contextmanager
def moto_server() -> Iterator[MotoServer]:
    """Run ``python -m moto.server`` on a free loopback port until the block ends."""
    import pytest

    try:
        import moto.server  # noqa: F401
    except ImportError:
        pytest.fail("moto[server] is not installed: pip install -e '.[test]'")
    port = _free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
        env={**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"moto server exited with {proc.returncode}: {log.read()[-2000:]!r}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto server did not listen within 30 s") from None
                time.sleep(0.05)
        yield MotoServer(f"http://127.0.0.1:{port}", proc.pid)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
