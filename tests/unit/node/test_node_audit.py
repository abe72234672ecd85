"""The node's audit emitter (spool + shipper), recording uploader/crash recovery, and the pure
helpers that recognise scp and sftp transfers."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest

from teleport.errors import ConnectionProblem
from teleport.events.spool import EventSpool
from teleport.node.audit import AuditEmitter
from teleport.node.recorder import RecordingUploader, SessionRecorder
from teleport.node.sessions import scp_request, sftp_events
from teleport.recording.asciicast import read_cast


class FlakyAuth:
    """Refuses deliveries while down; stores what it accepts (by uid, counting duplicates)."""

    def __init__(self) -> None:
        self.down = True
        self.stored: list[dict[str, Any]] = []
        self.uploads: dict[str, bytes] = {}

    async def emit_events(self, events: list[dict[str, Any]]) -> None:
        if self.down:
            raise ConnectionProblem("auth is down")
        self.stored += events

    async def upload(self, sid: str, path: str) -> None:
        if self.down:
            raise ConnectionProblem("auth is down")
        with open(path, "rb") as f:
            self.uploads[sid] = f.read()


async def test_events_wait_on_disk_until_auth_is_back(tmp_path: Any) -> None:
    auth = FlakyAuth()
    path = str(tmp_path / "upload" / "events.spool")
    em = AuditEmitter(path, auth.emit_events, {"server_id": "node-1"})
    em.start()
    for i in range(5):
        em.emit("exec", user="alice", login="root", command=f"cmd{i}", exitCode=0)
    await asyncio.sleep(0.3)
    assert auth.stored == [] and len(EventSpool(path).pending()) == 5  # durable, readable by another
    auth.down = False
    assert await em.flush(10)
    assert [e["command"] for e in auth.stored] == [f"cmd{i}" for i in range(5)]
    assert all(e["server_id"] == "node-1" and e["code"] == "T3002I" for e in auth.stored)
    await em.close()
    assert os.path.getsize(path) == 0


async def test_spooled_events_of_a_previous_run_are_delivered(tmp_path: Any) -> None:
    auth = FlakyAuth()
    path = str(tmp_path / "events.spool")
    em = AuditEmitter(path, auth.emit_events)
    ev = em.emit("port", user="alice", addr="10.0.0.1:22")
    await em.close(flush_timeout=0.1)  # auth down: the event stays on disk
    auth.down = False
    em2 = AuditEmitter(path, auth.emit_events)
    em2.start()
    assert await em2.flush(10)
    assert [e["uid"] for e in auth.stored] == [ev["uid"]]
    await em2.close()


async def test_recorder_crash_recovery_and_upload(tmp_path: Any) -> None:
    auth = FlakyAuth()
    d = str(tmp_path / "sessions")
    em = AuditEmitter(str(tmp_path / "events.spool"), auth.emit_events)
    sid = "6f1c7a0e-1111-4222-8333-944455556666"
    rec = SessionRecorder(d, sid, 80, 25, {"fields": {"user": "alice", "login": "root"},
                                           "session_start": "2026-01-01T00:00:00.000Z",
                                           "participants": ["alice"]})
    rec.output(b"hello \xe2\x9c")
    rec.output(b"\x93 world\r\n")
    await asyncio.sleep(2.5)  # past the worker's one-second flush
    # the process "dies" here: no close(), no gzip trailer, no session.end
    up = RecordingUploader(d, auth.upload, em)
    assert up.recover() == [sid]
    rec.close()  # (only to stop this test's worker thread; the recovery already happened)
    rec.join(5)
    ends = [e for e in em.spool.pending() if e["event"] == "session.end"]
    assert len(ends) == 1 and ends[0]["sid"] == sid and ends[0]["user"] == "alice"
    assert up.recover() == []  # once only
    assert await up.upload_all() == 0  # auth down: kept
    assert os.path.exists(os.path.join(d, f"{sid}.cast.gz"))
    auth.down = False
    assert await up.upload_all() == 1
    _, events = read_cast(auth.uploads[sid])
    assert "".join(d for _, k, d in events if k == "o") == "hello ✓ world\r\n"
    assert os.listdir(d) == []
    assert any(e["event"] == "session.upload" and e["sid"] == sid for e in em.spool.pending())
    await em.close(flush_timeout=0.1)


async def test_active_recordings_are_not_uploaded(tmp_path: Any) -> None:
    auth = FlakyAuth()
    auth.down = False
    d = str(tmp_path)
    up = RecordingUploader(d, auth.upload, None)
    rec = SessionRecorder(d, "aaaaaaaa-bbbb", 80, 24, {})
    up.active.add("aaaaaaaa-bbbb")
    assert await up.upload_all() == 0
    up.active.discard("aaaaaaaa-bbbb")
    done = asyncio.Event()
    rec.close(done=done.set)
    await asyncio.wait_for(done.wait(), 5)
    with open(os.path.join(d, "aaaaaaaa-bbbb.json")) as f:
        assert json.load(f)["ended"] is True
    assert await up.upload_all() == 1


@pytest.mark.parametrize("cmd,want", [
    ("scp -t /tmp/x", ("upload", "/tmp/x")),
    ("scp -v -r -t -- /data/dir", ("upload", "/data/dir")),
    ("/usr/bin/scp -f '/tmp/a b'", ("download", "/tmp/a b")),
    ("scp -pf file.txt", ("download", "file.txt")),
    ("ls -t /tmp", None),
    ("scp", None),
    ("echo 'unterminated", None),
])
def test_scp_request(cmd: str, want: tuple[str, str] | None) -> None:
    assert scp_request(cmd) == want


def test_sftp_log_lines() -> None:
    assert sftp_events('close "/tmp/up" bytes read 0 written 1234') == [("upload", "/tmp/up", 1234)]
    assert sftp_events('close "/etc/hostname" bytes read 3 written 0') == [("download", "/etc/hostname", 3)]
    assert sftp_events('open "/tmp/up" flags WRITE,CREATE,TRUNCATE mode 0644') == []
    assert sftp_events('close "/tmp/x" bytes read 0 written 0') == []


async def test_upload_refusals(tmp_path: Any) -> None:
    """AlreadyExists means an earlier attempt was stored (done); BadParameter (e.g. over
    auth_service.max_recording_size) is final: the file is kept aside and never retried."""
    from teleport.errors import AlreadyExists, BadParameter
    from teleport.node.recorder import REJECTED_SUFFIX

    answers: dict[str, Exception] = {
        "aaaaaaaa-0001": AlreadyExists("stored already"),
        "aaaaaaaa-0002": BadParameter("larger than auth_service.max_recording_size"),
        "aaaaaaaa-0003": ConnectionProblem("auth is down"),
    }
    calls: list[str] = []

    async def upload(sid: str, path: str) -> None:
        calls.append(sid)
        raise answers[sid]

    d = str(tmp_path)
    for sid in answers:
        with open(os.path.join(d, f"{sid}.cast.gz"), "wb") as f:
            f.write(b"x")
    up = RecordingUploader(d, upload, None)
    assert await up.upload("aaaaaaaa-0001") is True
    assert await up.upload("aaaaaaaa-0002") is False
    assert await up.upload("aaaaaaaa-0003") is False
    assert sorted(os.listdir(d)) == ["aaaaaaaa-0002.cast.gz" + REJECTED_SUFFIX, "aaaaaaaa-0003.cast.gz"]
    calls.clear()
    await up.upload_all()
    assert calls == ["aaaaaaaa-0003"]  # the rejected one is not retried
