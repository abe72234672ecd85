"""The same cluster, on etcd: a real etcd server, a real teleport process, login end to end.

Nothing above the backend layer knows which backend it runs on; this proves it with processes.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Cluster, destroy, new_cluster
from tests.unit.backend.conftest import _require_etcd, _start_etcd, _stop

pytestmark = [pytest.mark.integration, pytest.mark.etcd]


@pytest.fixture(scope="module")
def etcd_cluster() -> Iterator[tuple[Cluster, str]]:
    _require_etcd()
    directory = Path(tempfile.mkdtemp(prefix="teleport-etcd-it-"))
    proc, url = _start_etcd(directory, None)
    c = new_cluster(storage=f'{{type: etcd, peers: ["{url}"], prefix: /tp-it}}', cluster_name="etcd-cluster")
    try:
        c.start()
        yield c, url
    finally:
        destroy(c)
        _stop(proc)
        shutil.rmtree(directory, ignore_errors=True)


def test_login_on_etcd_and_state_survives_restart(etcd_cluster: tuple[Cluster, str]) -> None:
    import os

    cluster, _url = etcd_cluster
    assert not os.path.exists(os.path.join(cluster.data_dir, "backend.sqlite"))
    cluster.add_user("etcduser", "etcduser,root")
    cluster.add_user("later")
    res = cluster.login("etcduser")
    assert "Logged in as: etcduser" in res.stdout
    before = cluster.tctl("auth", "export", "--type=user").stdout
    # a restart finds the cluster name, CAs and users in etcd
    cluster.stop()
    cluster.start()
    assert cluster.tctl("auth", "export", "--type=user").stdout == before
    users = cluster.tctl("users", "ls").stdout
    assert any(line.split() == ["etcduser", "etcduser,root"] for line in users.splitlines())
    res = cluster.login("later")  # password hash and TOTP enrolment came back from etcd
    assert "Logged in as: later" in res.stdout
