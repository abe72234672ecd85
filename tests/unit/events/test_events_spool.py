"""The node-side event spool: durability, ack compaction, recovery after a crash."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from teleport.errors import BadParameter
from teleport.events.schema import make_event
from teleport.events.spool import EventSpool


def test_put_pending_ack_and_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "spool" / "events.jsonl")
    evs = [make_event("session.join", sid="s", user=f"u{i}") for i in range(5)]
    with EventSpool(path) as sp:
        for e in evs:
            sp.put(e)
        sp.put(evs[0])  # duplicate put is a no-op
        assert [e["uid"] for e in sp.pending()] == [e["uid"] for e in evs]
        assert sp.ack([evs[1]["uid"], evs[3]["uid"], "unknown"]) == 2
        assert sp.ack([]) == 0
        # After compaction, appends still go to the live file.
        extra = make_event("session.leave", sid="s", user="u9")
        sp.put(extra)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not os.path.exists(path + ".tmp")
    with EventSpool(path) as sp:
        assert [e["uid"] for e in sp.pending()] == [evs[0]["uid"], evs[2]["uid"], evs[4]["uid"],
                                                    extra["uid"]]
        assert len(sp) == 4
        sp.ack(e["uid"] for e in sp.pending())
        assert sp.pending() == []
    assert os.path.getsize(path) == 0


def test_torn_last_line_is_dropped_and_truncated(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    good = make_event("exec", user="u", command="ls", exitCode=0)
    with EventSpool(str(path)) as sp:
        sp.put(good)
    with open(path, "ab") as f:
        f.write(b'{"event":"exec","uid":"half-writ')
    with EventSpool(str(path)) as sp:
        assert [e["uid"] for e in sp.pending()] == [good["uid"]]
        nxt = make_event("exec", user="u", command="pwd", exitCode=0)
        sp.put(nxt)
    # The torn bytes were cut, so the new line is intact and parseable.
    lines = path.read_bytes().splitlines()
    assert [json.loads(line)["uid"] for line in lines] == [good["uid"], nxt["uid"]]


def test_garbage_middle_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    a = make_event("session.join", sid="s", user="a")
    b = make_event("session.join", sid="s", user="b")
    path.write_text(json.dumps(a) + "\nnot json\n" + json.dumps(b) + "\n")
    with EventSpool(str(path)) as sp:
        assert [e["uid"] for e in sp.pending()] == [a["uid"], b["uid"]]


def test_put_needs_uid_and_open_spool(tmp_path: Path) -> None:
    sp = EventSpool(str(tmp_path / "s"))
    with pytest.raises(BadParameter, match="uid"):
        sp.put({"event": "exec"})
    sp.close()
    with pytest.raises(BadParameter, match="closed"):
        sp.put(make_event("session.join", sid="s", user="a"))


CHILD = textwrap.dedent(
    """
    import sys
    from teleport.events.schema import make_event
    from teleport.events.spool import EventSpool
    sp = EventSpool(sys.argv[1])
    i = 0
    while True:
        e = make_event("session.join", sid="s", user="u%d" % i, filler="x" * 5000)
        sp.put(e)
        print(e["uid"], flush=True)  # only after put returned: the event is promised durable
        i += 1
        if i % 7 == 0:
            sp.ack([e["uid"]])
            print("ACK", e["uid"], flush=True)
    """
)


def test_survives_sigkill_mid_write(tmp_path: Path) -> None:
    path = str(tmp_path / "spool.jsonl")
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, path], stdout=subprocess.PIPE, text=True
    )
    put: list[str] = []
    acked: set[str] = set()

    def consume(line: str) -> None:
        if line.startswith("ACK "):
            acked.add(line.split()[1])
        elif line.strip():
            put.append(line.strip())

    try:
        assert proc.stdout is not None
        while len(put) < 60:
            line = proc.stdout.readline()
            assert line, "spool child exited early"
            consume(line)
        os.kill(proc.pid, signal.SIGKILL)
        # Whatever it printed before dying is still in the pipe.
        for line in proc.stdout:
            consume(line)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    with EventSpool(path) as sp:
        left = [e["uid"] for e in sp.pending()]
    expected = [u for u in put if u not in acked]
    # Exactly the events whose put returned and whose ack did not, in order, give or take the one
    # call in flight when the kill landed: a put done but not reported (one extra at the end) or
    # an ack done but not reported (the last reported put missing).
    assert left == expected or (
        left[:-1] == expected and left[-1] not in put
    ) or (left == expected[:-1] and expected[-1] == put[-1]), (len(left), len(expected))
