"""The file audit log: day files, de-duplication across restarts, search filters and day boundaries."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from teleport.errors import BadParameter
from teleport.events.filelog import FileAuditLog, day_file_name
from teleport.events.schema import make_event


def ts(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, ms: int = 0) -> float:
    return datetime(y, mo, d, h, mi, s, ms * 1000, tzinfo=UTC).timestamp()


def ev(etype: str = "session.join", t: float | None = None, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sid": "s1", "user": "alice"}
    base.update(fields)
    if t is not None:
        base["time"] = t
    return make_event(etype, **base)


def test_day_file_name_and_mode(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    with FileAuditLog(str(log_dir)) as alog:
        assert alog.append(ev(t=ts(2017, 2, 3, 6, 54, 5)))
    name = "2017-02-03.00:00:00.log"
    assert day_file_name(ts(2017, 2, 3, 23, 59, 59, 999)) == name
    assert day_file_name(ts(2017, 2, 4)) == "2017-02-04.00:00:00.log"
    path = log_dir / name
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    lines = path.read_bytes().splitlines()
    assert len(lines) == 1
    stored = json.loads(lines[0])
    assert stored["event"] == "session.join" and stored["time"] == "2017-02-03T06:54:05.000Z"


def test_dedup_within_and_across_reopen(tmp_path: Path) -> None:
    e1, e2 = ev(), ev()
    alog = FileAuditLog(str(tmp_path))
    assert alog.append(e1) is True
    assert alog.append(e1) is False
    alog.close()
    # A new process: the index is rebuilt from today's file.
    alog = FileAuditLog(str(tmp_path))
    assert alog.append(dict(e1)) is False
    assert alog.append(e2) is True
    alog.close()
    got = FileAuditLog(str(tmp_path)).search()
    assert [g["uid"] for g in got] == [e1["uid"], e2["uid"]]


def test_dedup_of_late_event_for_an_old_day(tmp_path: Path) -> None:
    old = ev(t=ts(2016, 5, 1, 12))
    with FileAuditLog(str(tmp_path)) as alog:
        assert alog.append(old)
    # The old day is not among the days indexed at open, yet redelivery is still caught.
    with FileAuditLog(str(tmp_path), max_indexed_days=2) as alog:
        assert alog.append(ev()) is True  # today
        assert alog.append(dict(old)) is False
    assert len((tmp_path / "2016-05-01.00:00:00.log").read_bytes().splitlines()) == 1


def test_torn_last_line_is_skipped_and_not_glued(tmp_path: Path) -> None:
    t = ts(2020, 1, 1, 10)
    with FileAuditLog(str(tmp_path)) as alog:
        alog.append(ev(t=t))
    path = tmp_path / day_file_name(t)
    with open(path, "ab") as f:
        f.write(b'{"event":"session.join","uid":"torn')  # crash mid-write
    with FileAuditLog(str(tmp_path)) as alog:
        assert len(alog.search()) == 1
        e2 = ev(t=t + 1)
        assert alog.append(e2)
        got = alog.search()
    assert [g["uid"] for g in got][-1] == e2["uid"] and len(got) == 2


def test_search_filters(tmp_path: Path) -> None:
    base = ts(2021, 6, 1, 12)
    with FileAuditLog(str(tmp_path)) as alog:
        alog.append(ev("session.start", t=base, sid="a", user="alice", login="root", size="80:24"))
        alog.append(ev("session.join", t=base + 1, sid="a", user="bob"))
        alog.append(ev("exec", t=base + 2, sid="b", user="bob", command="ls", exitCode=0))
        alog.append(ev("session.leave", t=base + 3, sid="a", user="bob"))
        alog.append(ev("session.end", t=base + 4, sid="a", user="alice"))
        alog.append(ev("user.login", t=base + 5, user="carol", method="local", success=False,
                       sid=None))

        def kinds(**kw: Any) -> list[str]:
            return [e["event"] for e in alog.search(**kw)]

        assert kinds() == ["session.start", "session.join", "exec", "session.leave", "session.end",
                           "user.login"]
        assert kinds(user="bob") == ["session.join", "exec", "session.leave"]
        assert kinds(sid="a", user="bob") == ["session.join", "session.leave"]
        assert kinds(event_types=["session.start", "session.end"]) == ["session.start",
                                                                      "session.end"]
        assert kinds(since=base + 1, until=base + 3) == ["session.join", "exec"]  # until exclusive
        assert kinds(limit=2) == ["session.start", "session.join"]
        assert kinds(user="nobody") == []
        failed = alog.search(event_types=["user.login"])
        assert failed[0]["code"] == "T1000W"
        assert [e["event"] for e in alog.session_events("a")] == [
            "session.start", "session.join", "session.leave", "session.end"]
        with pytest.raises(BadParameter, match="ends"):
            alog.search(since=base + 1, until=base)
        with pytest.raises(BadParameter, match="limit"):
            alog.search(limit=-1)


def test_search_across_day_boundary_and_file_skipping(tmp_path: Path) -> None:
    midnight = ts(2022, 3, 2)
    with FileAuditLog(str(tmp_path)) as alog:
        before = ev(t=midnight - 0.001, sid="x")
        at = ev(t=midnight, sid="x")
        after = ev(t=midnight + 86400 + 5, sid="x")
        for e in (after, at, before):  # delivered out of order
            alog.append(e)
        assert sorted(alog.day_files()) == [
            "2022-03-01.00:00:00.log", "2022-03-02.00:00:00.log", "2022-03-03.00:00:00.log"]
        assert [e["uid"] for e in alog.search()] == [before["uid"], at["uid"], after["uid"]]
        assert [e["uid"] for e in alog.search(since=midnight)] == [at["uid"], after["uid"]]
        assert [e["uid"] for e in alog.search(until=midnight)] == [before["uid"]]
        assert [e["uid"] for e in alog.search(since=midnight, until=midnight + 86400)] == [at["uid"]]

    # Files outside the window are not even opened: one that cannot be read does not matter.
    (tmp_path / "2022-03-05.00:00:00.log").mkdir()
    alog = FileAuditLog(str(tmp_path))
    assert len(alog.search(since=midnight - 10, until=midnight + 10)) == 2
    with pytest.raises(IsADirectoryError):
        alog.search(since=midnight - 10)


def test_order_within_a_day_follows_event_time(tmp_path: Path) -> None:
    t = ts(2023, 7, 7, 7)
    with FileAuditLog(str(tmp_path)) as alog:
        late = ev(t=t + 10)
        early = ev(t=t)
        alog.append(late)
        alog.append(early)
        assert [e["uid"] for e in alog.search()] == [early["uid"], late["uid"]]


def test_append_rejects_invalid_event(tmp_path: Path) -> None:
    with FileAuditLog(str(tmp_path)) as alog:
        with pytest.raises(BadParameter, match="unknown audit event type"):
            alog.append({"event": "nope", "uid": "u", "code": "X", "time": "2020-01-01T00:00:00Z"})
        assert alog.search() == []
