"""Several auth servers sharing one log directory (the reference's HA setup: data_dir/log on a
network file system): real processes append the same and different events at once, and every
event is stored exactly once, in whole lines; a fragment one of them left is cut by the next."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

from teleport.events.filelog import FileAuditLog, day_file_name
from teleport.events.schema import make_event

T0 = time.time()


def _events(prefix: str, n: int) -> list[dict[str, Any]]:
    # the same uid for the same (prefix, i): both writers deliver the "shared" ones
    return [make_event("session.join", sid="s1", user="alice", uid=f"{prefix}-{i:05d}",
                       time=T0 + i / 1000) for i in range(n)]


def _writer(log_dir: str, me: str, start: Any) -> None:
    start.wait()
    alog = FileAuditLog(log_dir)
    shared = _events("shared", 400)
    own = _events(me, 200)
    for k in range(0, 400, 20):  # interleave batches of the shared events with our own
        alog.append_many(shared[k:k + 20] + own[k // 2:k // 2 + 10])
    alog.close()


def test_two_processes_store_each_event_once(tmp_path: Path) -> None:
    log_dir = str(tmp_path / "log")
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(log_dir, name, start)) for name in ("a", "b")]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = (Path(log_dir) / day_file_name(T0)).read_bytes().split(b"\n")
    assert lines[-1] == b""  # ends with a newline: no fragment
    uids = [json.loads(raw)["uid"] for raw in lines[:-1]]
    assert len(uids) == len(set(uids)), "an event was stored twice"
    assert set(uids) == {f"shared-{i:05d}" for i in range(400)} | {
        f"{w}-{i:05d}" for w in ("a", "b") for i in range(200)}


def test_a_writer_sees_what_another_appended_and_cuts_its_fragment(tmp_path: Path) -> None:
    log_dir = str(tmp_path / "log")
    first, second = FileAuditLog(log_dir), FileAuditLog(log_dir)
    ev = _events("x", 3)
    assert first.append(ev[0])
    assert not second.append(ev[0])  # the other server stored it after second indexed the day
    path = os.path.join(log_dir, day_file_name(T0))
    with open(path, "ab") as f:
        f.write(b'{"uid":"torn')  # a writer that crashed mid-line
    assert second.append(ev[1]) and not first.append(ev[1])
    assert first.append(ev[2])
    raw = Path(path).read_bytes()
    assert raw.endswith(b"\n") and b"torn" not in raw
    assert [json.loads(x)["uid"] for x in raw.splitlines()] == ["x-00000", "x-00001", "x-00002"]
    assert b"torn" in Path(path + ".torn").read_bytes()
    first.close()
    second.close()
