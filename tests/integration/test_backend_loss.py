"""A lost or damaged database never silently becomes a new cluster. A real cluster runs once (a
user is added, so the backend holds real state), then copies of its data_dir are damaged in the
ways an operator meets (backend.sqlite deleted, truncated to nothing, a page overwritten, a CA row
made unreadable; on etcd, a prefix that holds nothing) and `teleport start` is run on each: it must
exit non-zero with one line naming the backend and saying how to restore or reset, create no new
CA, and start again once the backup is put back."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Cluster, cli, destroy, env_with, new_cluster

pytestmark = pytest.mark.integration

START_TIMEOUT = 40


@pytest.fixture(scope="module")
def held() -> Iterator[Cluster]:
    """A cluster that has run (auth+proxy, one user) and was stopped cleanly."""
    c = new_cluster()
    try:
        c.start()
        c.add_user("keeper")
        c.stop()
        yield c
    finally:
        destroy(c)


@pytest.fixture
def copy(held: Cluster) -> Iterator[Cluster]:
    """A fresh copy of the held cluster's data_dir under new ports (stopped)."""
    c = new_cluster()
    shutil.copytree(held.data_dir, c.data_dir)
    try:
        yield c
    finally:
        destroy(c)


def backend_file(c: Cluster) -> Path:
    return Path(c.data_dir) / "backend.sqlite"


def start_expecting_refusal(c: Cluster) -> str:
    """Run `teleport start` (auth only) and return its output; fail if it keeps running."""
    c.write_config()
    proc = subprocess.Popen(
        [*cli("teleport"), "start", "-c", c.config_path, "--roles=auth"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env_with(),
    )
    try:
        out, _ = proc.communicate(timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"teleport started on a lost or damaged backend:\n{out}\n{c.log()}")
    assert proc.returncode != 0, out
    return out


def one_error_line(out: str) -> str:
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert "Traceback" not in out, out
    errors = [ln for ln in lines if ln.startswith("ERROR: ")]
    assert len(errors) == 1, out
    return errors[0]


def ca_rows(path: Path) -> dict[str, bytes]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT key, value FROM kv WHERE key LIKE '/authorities/%'").fetchall()
    return {k: bytes(v) for k, v in rows}


def assert_restore_or_reset_advice(line: str, c: Cluster) -> None:
    assert str(backend_file(c)) in line, line
    assert "backup" in line and "move" in line and c.data_dir in line, line
    assert "re-join" in line, line


@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_lost_database_refuses_to_start(copy: Cluster, held: Cluster, how: str) -> None:
    path = backend_file(copy)
    if how == "deleted":
        path.unlink()
    else:
        with open(path, "r+b") as f:
            f.truncate(0)
    line = one_error_line(start_expecting_refusal(copy))
    assert "holds no cluster" in line and "has held a cluster" in line, line
    assert_restore_or_reset_advice(line, copy)
    assert ca_rows(path) == {}  # no new CA was made
    assert not Path(str(path) + "-wal").exists() or Path(str(path) + "-wal").stat().st_size == 0
    # the advice works: put the backup back and the same cluster starts
    shutil.copy(backend_file(held), path)
    copy.start()
    users = copy.tctl("users", "ls").stdout.splitlines()
    assert any(row.split()[:1] == ["keeper"] for row in users), users


def test_damaged_page_gives_one_line(copy: Cluster) -> None:
    path = backend_file(copy)
    size = path.stat().st_size
    page = 4096
    assert size >= 4 * page, size  # a real cluster's database has pages past the schema
    with open(path, "r+b") as f:
        f.seek((size // page // 2) * page)
        f.write(b"\xa5" * page)
    line = one_error_line(start_expecting_refusal(copy))
    assert "damaged" in line, line
    assert_restore_or_reset_advice(line, copy)


@pytest.mark.parametrize("damage", ["not json", "bad key"])
def test_bad_ca_row_gives_one_line(copy: Cluster, damage: str) -> None:
    path = backend_file(copy)
    with sqlite3.connect(path) as db:
        (value,) = db.execute("SELECT value FROM kv WHERE key = '/authorities/host'").fetchone()
        if damage == "not json":
            new = b'{"kind": "cert_authority", "spec": {'
        else:
            ca = json.loads(value)
            ca["spec"]["signing_keys"] = ["-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"]
            new = json.dumps(ca).encode()
        db.execute("UPDATE kv SET value = ? WHERE key = '/authorities/host'", (new,))
    line = one_error_line(start_expecting_refusal(copy))
    assert "host certificate authority" in line, line
    assert_restore_or_reset_advice(line, copy)


def test_missing_ca_row_refuses_to_start(copy: Cluster) -> None:
    path = backend_file(copy)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM kv WHERE key = '/authorities/user'")
    line = one_error_line(start_expecting_refusal(copy))
    assert "lost the user certificate authority" in line, line
    assert ca_rows(path).keys() == {"/authorities/host", "/authorities/tls"}


def test_node_keys_do_not_count_as_a_held_cluster(tmp_path: Path) -> None:
    """Guard for the marker: a data_dir with only a node's or proxy's identity (it joined some
    cluster, it never ran auth) may become the auth server of a new cluster."""
    c = new_cluster()
    try:
        keys = Path(c.data_dir) / "keys"
        keys.mkdir(parents=True, mode=0o700)
        (keys / "node.json").write_text("{}")
        (keys / "node-cert.pem").write_text("x")
        (Path(c.data_dir) / "host_uuid").write_text("5b0c4a1e-0000-4000-8000-000000000000")
        c.start()
        assert (keys / "admin-cert.pem").exists()
    finally:
        destroy(c)


@pytest.mark.etcd
def test_empty_etcd_prefix_refuses_to_start() -> None:
    from tests.unit.backend.conftest import _require_etcd, _start_etcd, _stop

    _require_etcd()
    directory = Path(tempfile.mkdtemp(prefix="teleport-etcd-loss-"))
    proc, url = _start_etcd(directory, None)
    c = new_cluster(storage=f'{{type: etcd, peers: ["{url}"], prefix: /tp-held}}')
    try:
        c.start()
        c.stop()
        # the same data_dir pointed at a prefix that holds nothing (a wiped or different etcd)
        c.storage = f'{{type: etcd, peers: ["{url}"], prefix: /tp-empty}}'
        line = one_error_line(start_expecting_refusal(c))
        assert "etcd" in line and "/tp-empty" in line and "holds no cluster" in line, line
        assert "re-join" in line and c.data_dir in line, line
        c.storage = f'{{type: etcd, peers: ["{url}"], prefix: /tp-held}}'
        c.start()
    finally:
        destroy(c)
        _stop(proc)
        shutil.rmtree(directory, ignore_errors=True)
