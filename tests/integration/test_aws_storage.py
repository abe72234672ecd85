"""A whole cluster with no local state: cluster state and audit events in DynamoDB, recordings in
S3, all on a moto server (the local AWS API) reached through the real AWS SDK. Real `teleport
start` processes; a recorded PTY session is played back with `tsh play`; a restart loses
nothing; a second auth server on the same table, events table and bucket serves the same
cluster; a held data_dir pointed at an empty table refuses to start."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.awsmock import MotoServer, moto_server
from tests.helpers import Cluster, cli, destroy, env_with, new_cluster, wait_port
from tests.integration.test_recording import Shell, connect, wait_for
from tests.integration.test_tsh_audit_cmds import Users

pytestmark = pytest.mark.integration

BUCKET = "tp-recordings"
PREFIX = "cluster-a"
EVENTS_TABLE = "tp-events"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with moto_server() as server:
        yield server


def aws_storage(moto: MotoServer, table: str) -> str:
    return moto.storage_yaml(
        table,
        audit_events_uri=f"'dynamodb://{EVENTS_TABLE}'",
        audit_sessions_uri=f"'s3://{BUCKET}/{PREFIX}'",
    )


@pytest.fixture(scope="module")
def aws_cluster(moto: MotoServer) -> Iterator[tuple[Cluster, Users]]:
    if os.geteuid() != 0:
        pytest.skip("the node serves the root login only when run as root")
    c = new_cluster(roles="auth,proxy,node", storage=aws_storage(moto, "tp-state"),
                    cluster_name="aws-cluster")
    try:
        c.start()
        wait_port(c.ports["node"], 20, c.proc)
        users = Users(c)
        users.add("ada", "admin", "root")
        yield c, users
    finally:
        destroy(c)


def recording_key(sid: str) -> str:
    return f"{PREFIX}/{sid}.cast.gz"


async def record_session(c: Cluster, users: Users, marker: str) -> str:
    key = os.path.join(users.homes["ada"], "keys", "127.0.0.1", "ada")
    async with await connect(c, key=key) as conn:
        sh = await Shell.open(conn, size=(90, 20))
        sid = await sh.sid()
        sh.send(f"printf '%s-%s\\n' {marker} in-s3\n")
        await sh.expect(f"{marker}-in-s3")
        await sh.exit()
    return sid


def test_no_local_state_and_a_session_played_back_from_s3(
    aws_cluster: tuple[Cluster, Users], moto: MotoServer
) -> None:
    c, users = aws_cluster
    s3: Any = moto.client("s3")
    sid = asyncio.run(record_session(c, users, "first"))

    def uploaded() -> bool:
        return s3.list_objects_v2(Bucket=BUCKET, Prefix=recording_key(sid)).get("KeyCount", 0) == 1

    wait_for(uploaded, 30, "the recording in S3")
    head = s3.head_object(Bucket=BUCKET, Key=recording_key(sid))
    assert head["ServerSideEncryption"] == "AES256"
    cast = users.tsh("ada", "play", "--format=cast", sid).stdout
    assert "first-in-s3" in cast and json.loads(cast.splitlines()[0])["width"] == 90
    # events in DynamoDB, searched by tctl with time, type and user filters
    events = json.loads(c.tctl("events", "ls", "--since=1h", "--type=session.start",
                               "--user=ada", "--format=json").stdout)
    assert [e["sid"] for e in events] == [sid]
    wait_for(lambda: sid in users.tsh("ada", "recordings", "ls").stdout, 20, "recordings ls")
    # nothing of the cluster is on this host's disk but its identities
    log_dir = os.path.join(c.data_dir, "log")
    assert not os.path.exists(os.path.join(c.data_dir, "backend.sqlite"))
    assert not [n for n in os.listdir(log_dir) if n.endswith(".log")]
    assert not os.path.exists(os.path.join(log_dir, "sessions"))


def test_restart_loses_nothing(aws_cluster: tuple[Cluster, Users]) -> None:
    c, users = aws_cluster
    before = c.tctl("auth", "export", "--type=user").stdout
    events_before = json.loads(c.tctl("events", "ls", "--format=json").stdout)
    recorded = [e["sid"] for e in events_before if e["event"] == "session.start"]
    assert recorded
    c.stop()
    c.start()
    wait_port(c.ports["node"], 20, c.proc)
    assert c.tctl("auth", "export", "--type=user").stdout == before
    after = json.loads(c.tctl("events", "ls", "--format=json").stdout)
    assert {e["uid"] for e in events_before} <= {e["uid"] for e in after}
    assert "first-in-s3" in users.tsh("ada", "play", "--format=cast", recorded[0]).stdout
    # the user's password hash and TOTP enrolment came back from DynamoDB
    res = users.cluster.tsh("--insecure", f"--proxy={c.web_addr}", "--user=ada", "login",
                            input=f"secret-pass-1\n{c.otp.code('ada', c.secrets['ada'])}\n",
                            env=users.env("ada"))
    assert "Logged in as: ada" in res.stdout


def test_second_auth_server_shares_state_events_and_recordings(
    aws_cluster: tuple[Cluster, Users], moto: MotoServer
) -> None:
    c, users = aws_cluster
    second = new_cluster(roles="auth", storage=aws_storage(moto, "tp-state"),
                         cluster_name=c.cluster_name)
    try:
        second.start()
        # the same CAs and users, read from the same table
        assert second.tctl("auth", "export", "--type=user").stdout == \
            c.tctl("auth", "export", "--type=user").stdout
        assert "ada" in second.tctl("users", "ls").stdout
        # a session recorded through the first auth server is searchable and playable here
        sid = asyncio.run(record_session(c, users, "shared"))
        wait_for(lambda: [e for e in json.loads(second.tctl(
            "events", "ls", "--type=session.upload", "--format=json").stdout) if e["sid"] == sid],
            30, "the upload event, seen by the second auth server")
        from tests.integration.test_recording import admin_client

        async def fetch() -> bytes:
            client = admin_client(second)
            try:
                return bytes(await client.get_recording(sid))
            finally:
                await client.close()

        import gzip

        assert b"shared-in-s3" in gzip.decompress(asyncio.run(fetch()))
        # an invite made through the second auth server is known to the first
        assert "bea" not in c.tctl("tokens", "ls").stdout
        second.tctl("users", "add", "bea", "--roles=access", "--logins=root")
        assert "bea" in c.tctl("tokens", "ls").stdout
    finally:
        destroy(second)


def test_held_data_dir_with_an_empty_table_refuses_to_start(moto: MotoServer) -> None:
    c = new_cluster(storage=aws_storage(moto, f"tp-held-{uuid.uuid4().hex[:8]}"))
    try:
        c.start()
        c.stop()
        c.storage = aws_storage(moto, "tp-empty-table")  # a wiped or different table
        c.write_config()
        res = subprocess.run([*cli("teleport"), "start", "-c", c.config_path, "--roles=auth,proxy"],
                             capture_output=True, text=True, timeout=60, env=env_with())
        assert res.returncode != 0
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        text = lines[-1]
        assert "DynamoDB table 'tp-empty-table'" in text and "holds no cluster" in text, res.stderr
        assert "re-join" in text and c.data_dir in text, text
        assert "test-secret-key" not in res.stderr + res.stdout  # the secret key is never shown
    finally:
        destroy(c)
