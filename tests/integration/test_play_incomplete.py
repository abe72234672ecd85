"""`tsh play` on a recording cut short in storage: it shows what it can, says on stderr that the
recording is incomplete, and exits non-zero; a whole recording still plays with exit code 0. A real
auth+proxy process; the recording files are put where auth keeps them, one of them cut in half."""

from __future__ import annotations

import io
import os
import re
import uuid

import pytest

from teleport.recording.asciicast import CastWriter
from tests.helpers import Cluster
from tests.integration.test_tsh_audit_cmds import Users

pytestmark = pytest.mark.integration

ROWS = 400


def recording() -> bytes:
    buf = io.BytesIO()
    with CastWriter(buf, flush_interval=0.2) as w:
        for i in range(ROWS):
            w.output(f"row {i:04d} {'.' * (i % 50)}\r\n".encode(), i * 0.001)
    return buf.getvalue()


def store(c: Cluster, data: bytes) -> str:
    sid = str(uuid.uuid4())
    d = os.path.join(c.data_dir, "log", "sessions", "default")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"{sid}.cast.gz"), "wb") as f:
        f.write(data)
    return sid


@pytest.mark.parametrize("fmt", ["text", "cast"])
def test_play_says_a_cut_recording_is_incomplete(cluster: Cluster, fmt: str) -> None:
    users = Users(cluster)
    if "aud" not in cluster.secrets:
        users.add("aud", "auditor")
    else:
        users.homes["aud"] = os.path.join(cluster.root, "home-aud")
    data = recording()
    whole, cut = store(cluster, data), store(cluster, data[: len(data) // 2])

    ok = users.tsh("aud", "play", f"--format={fmt}", "--speed=1000", whole, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "incomplete" not in ok.stderr
    assert f"row {ROWS - 1:04d}" in ok.stdout

    res = users.tsh("aud", "play", f"--format={fmt}", "--speed=1000", cut, check=False)
    assert res.returncode != 0
    assert f"the recording of session {cut} is incomplete" in res.stderr, res.stderr
    assert "stops after" in res.stderr and "what could be read was shown" in res.stderr
    assert "Traceback" not in res.stderr
    # what could be read was shown: a prefix of the rows, in order
    shown = re.findall(r"row (\d{4})", res.stdout)
    assert shown and len(shown) < ROWS
    assert shown == [f"{i:04d}" for i in range(len(shown))]
