"""A full disk must not lose audit events: a write cut short leaves nothing behind (the next event
is not glued onto a fragment, and a redelivery of the failed one is stored, not dropped as a
duplicate), a torn tail left by a crash is cut back (and kept aside) when the log opens, and the
node's spool keeps every event it said it queued. Failures are made at the OS boundary (os.write
writes part of the buffer, then ENOSPC) and, as root, with a real full tmpfs."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from teleport.events.filelog import TORN_SUFFIX, FileAuditLog, day_file_name
from teleport.events.schema import make_event, parse_time
from teleport.events.spool import EventSpool


def ev(n: int = 0) -> dict[str, Any]:
    return make_event("session.join", sid="s1", user=f"user-{n}", time=1_600_000_000.0 + n)


def day_path(root: Path, e: dict[str, Any]) -> Path:
    return root / day_file_name(parse_time(e["time"]))


@pytest.fixture
def enospc_after_part(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Arm a one-shot failure for writes to files under a directory: the first write puts half of
    its buffer on disk and returns, the next raises ENOSPC (what a filling disk does)."""
    real_write = os.write

    def arm(under: Path) -> None:
        state = {"calls": 0}

        def write(fd: int, data: Any) -> int:
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                target = ""
            if not target.startswith(str(under)) or state["calls"] >= 2:
                return real_write(fd, data)
            state["calls"] += 1
            if state["calls"] == 1:
                return real_write(fd, bytes(data)[: max(1, len(data) // 2)])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "write", write)

    return arm


def assert_whole_lines(path: Path) -> None:
    data = path.read_bytes()
    assert data.endswith(b"\n"), data[-80:]
    for line in data.splitlines():
        assert line.startswith(b"{") and line.endswith(b"}"), line


def test_partial_write_leaves_nothing_and_redelivery_is_stored(
    tmp_path: Path, enospc_after_part: Callable[[Path], None]
) -> None:
    first, failed, after = ev(1), ev(2), ev(3)
    with FileAuditLog(str(tmp_path)) as alog:
        assert alog.append(first)
        enospc_after_part(tmp_path)
        with pytest.raises(OSError) as info:
            alog.append(failed)
        assert info.value.errno == errno.ENOSPC
        assert_whole_lines(day_path(tmp_path, first))
        # Space is back: the next event is whole, and the failed one (redelivered) is stored.
        assert alog.append(after) is True
        assert alog.append(dict(failed)) is True
        assert alog.append(dict(failed)) is False
    assert_whole_lines(day_path(tmp_path, first))
    with FileAuditLog(str(tmp_path)) as alog:
        uids = [e["uid"] for e in alog.search()]
    assert sorted(uids) == sorted([first["uid"], failed["uid"], after["uid"]])


def test_batch_is_stored_whole_or_not_at_all(
    tmp_path: Path, enospc_after_part: Callable[[Path], None]
) -> None:
    batch = [ev(i) for i in range(5)]
    with FileAuditLog(str(tmp_path)) as alog:
        before = ev(99)
        alog.append(before)
        enospc_after_part(tmp_path)
        with pytest.raises(OSError):
            alog.append_many(batch)
        assert [e["uid"] for e in alog.search()] == [before["uid"]]
        assert_whole_lines(day_path(tmp_path, before))
        assert alog.append_many(batch + [batch[0]]) == [True] * 5 + [False]
        assert alog.append_many(batch) == [False] * 5
    with FileAuditLog(str(tmp_path)) as alog:
        assert len(alog.search()) == 6


def test_torn_tail_is_cut_back_and_kept_aside_at_start(tmp_path: Path) -> None:
    e1 = ev(1)
    with FileAuditLog(str(tmp_path)) as alog:
        alog.append(e1)
    path = day_path(tmp_path, e1)
    fragment = b'{"event":"session.join","uid":"torn-by-a-crash'
    with open(path, "ab") as f:
        f.write(fragment)
    with FileAuditLog(str(tmp_path)) as alog:
        # Repaired at open, before anything is appended.
        assert path.read_bytes().endswith(b"}\n")
        assert (tmp_path / (path.name + TORN_SUFFIX)).read_bytes() == fragment + b"\n"
        e2 = ev(2)
        assert alog.append(e2)
    assert_whole_lines(path)
    assert [json_line.count(b'"uid"') for json_line in path.read_bytes().splitlines()] == [1, 1]
    # The kept fragment is not a day file: searches never see it.
    with FileAuditLog(str(tmp_path)) as alog:
        assert [e["uid"] for e in alog.search()] == [e1["uid"], e2["uid"]]


def test_spool_put_that_fails_leaves_no_fragment(
    tmp_path: Path, enospc_after_part: Callable[[Path], None]
) -> None:
    path = tmp_path / "events.spool"
    first, failed, after = ev(1), ev(2), ev(3)
    with EventSpool(str(path)) as spool:
        spool.put(first)
        enospc_after_part(tmp_path)
        with pytest.raises(OSError):
            spool.put(failed)
        assert [e["uid"] for e in spool.pending()] == [first["uid"]]
        spool.put(after)
    assert_whole_lines(path)
    with EventSpool(str(path)) as spool:
        # Everything put() returned for is still there after a restart.
        assert [e["uid"] for e in spool.pending()] == [first["uid"], after["uid"]]


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs mounted for the test and unmounted after (needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_real_full_disk_loses_no_event(tiny_tmpfs: Path) -> None:
    log_dir = tiny_tmpfs / "log"
    filler = tiny_tmpfs / "filler"
    filler.write_bytes(b"x" * 16 * 1024)
    stored: list[str] = []
    with FileAuditLog(str(log_dir)) as alog:
        failed = None
        for n in range(10_000):
            e = make_event("exec", user="alice", command="x" * 200 + str(n), time=1_600_000_000.0)
            try:
                alog.append(e)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                failed = e
                break
            stored.append(e["uid"])
        assert failed is not None, "the tmpfs never filled up"
        path = day_path(log_dir, failed)
        assert_whole_lines(path)
        filler.unlink()  # the operator frees space
        after = make_event("exec", user="alice", command="after", time=1_600_000_000.0)
        assert alog.append(after) is True
        assert alog.append(dict(failed)) is True  # the redelivery is not taken for a duplicate
    assert_whole_lines(path)
    with FileAuditLog(str(log_dir)) as alog:
        uids = [e["uid"] for e in alog.search()]
    assert sorted(uids) == sorted(stored + [after["uid"], failed["uid"]])
