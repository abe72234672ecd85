"""The web API behind the session pages, without a browser, against real teleport processes:
live sessions, joining one over the terminal WebSocket, recordings and their playback data, and
the audit log, each answering exactly what the web session's user's roles allow (session list and
read, event list), 401 without a session."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.helpers import Cluster, destroy, new_cluster, os_account, wait_port
from tests.integration.test_web_sessions import COOKIE, _insecure, _req, login, req

pytestmark = pytest.mark.integration

OS_USER = "tpwebpages"
NOROLE = f"""kind: role
version: v3
metadata: {{name: reads-nothing}}
spec:
  allow: {{logins: [{OS_USER}], node_labels: {{'*': '*'}}}}
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with os_account(OS_USER):
        c = new_cluster(roles="auth,proxy,node")
        try:
            c.start()
            wait_port(c.ports["node"], 20, c.proc)
            c.add_user("ada", OS_USER)  # the access role: sessions, no events
            c.add_user("otto", OS_USER)
            c.tctl("users", "update", "otto", "--set-roles=access,auditor")
            path = os.path.join(c.root, "norole.yaml")
            with open(path, "w") as f:
                f.write(NOROLE)
            c.tctl("create", path)
            c.add_user("nina", OS_USER)
            c.tctl("users", "update", "nina", "--set-roles=reads-nothing")
            yield c
        finally:
            destroy(c)


def site(c: Cluster, rest: str) -> str:
    return f"/v1/webapi/sites/{c.cluster_name}/{rest}"


class Term:
    """A browser terminal over the WebSocket, as the page drives it."""

    def __init__(self, c: Cluster, cookie: str, csrf: str, query: str) -> None:
        self.c, self.cookie, self.csrf, self.query = c, cookie, csrf, query
        self.buf = b""
        self.notes: list[dict[str, Any]] = []

    async def __aenter__(self) -> Term:
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(
            f"https://{self.c.web_addr}{site(self.c, 'connect')}?{self.query}", ssl=_insecure(),
            headers={"Cookie": f"{COOKIE}={self.cookie}"})
        await self.ws.send_str(json.dumps({"type": "auth", "csrf_token": self.csrf}))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()
        await self.session.close()

    async def expect(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.buf and not any(text in n["message"] for n in self.notes):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {text!r} in {self.buf[-500:]!r} {self.notes}")
            msg = await self.ws.receive(timeout=left)
            if msg.type == aiohttp.WSMsgType.BINARY:
                self.buf += msg.data
            elif msg.type == aiohttp.WSMsgType.TEXT:
                self.notes.append(json.loads(msg.data))
            else:
                raise AssertionError(f"closed before {text!r}: {self.buf[-500:]!r} {self.notes}")

    async def type(self, text: str) -> None:
        await self.ws.send_bytes(text.encode())


def _poll(what: str, fn: Any, timeout: float = 30) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_pages_need_a_session(cluster: Cluster) -> None:
    for rest in ("sessions", "recordings", "events", "recordings/" + "0" * 8 + "-0000-4000-8000-" + "0" * 12):
        a = req(cluster, "GET", site(cluster, rest))
        assert a.status == 401, (rest, a.body)
        assert req(cluster, "GET", f"/v1/webapi/sites/other/{rest}", cookie="A" * 43).status == 401


def test_roles_decide_what_each_user_reads(cluster: Cluster) -> None:
    ada, _, _ = login(cluster, "ada")
    otto, _, _ = login(cluster, "otto")
    nina, _, _ = login(cluster, "nina")
    # access: live sessions and recordings, but not the audit log
    assert req(cluster, "GET", site(cluster, "sessions"), cookie=ada).status == 200
    assert req(cluster, "GET", site(cluster, "recordings"), cookie=ada).status == 200
    denied = req(cluster, "GET", site(cluster, "events"), cookie=ada)
    assert denied.status == 403 and "'list' on 'event'" in denied.body["message"]
    # auditor: the audit log, newest first, filtered
    a = req(cluster, "GET", site(cluster, "events"), cookie=otto)
    assert a.status == 200 and a.headers["Cache-Control"] == "no-store"
    times = [e["time"] for e in a.body["items"]]
    assert times and times == sorted(times, reverse=True)
    logins = req(cluster, "GET", site(cluster, "events?type=user.login&user=ada"), cookie=otto).body["items"]
    assert logins and {(e["event"], e["user"]) for e in logins} == {("user.login", "ada")}
    assert req(cluster, "GET", site(cluster, "events?limit=1"), cookie=otto).body["items"] == a.body["items"][:1]
    assert req(cluster, "GET", site(cluster, f"events?since={time.time() + 3600}"), cookie=otto).body["items"] == []
    for bad in ("since=x", "since=nan", "until=-1", "limit=0", "limit=100000", "since=20&until=10"):
        b = req(cluster, "GET", site(cluster, f"events?{bad}"), cookie=otto)
        assert b.status == 400 and b.body["message"], (bad, b.body)
    # no rules: nothing at all
    for rest in ("sessions", "recordings", "events"):
        r = req(cluster, "GET", site(cluster, rest), cookie=nina)
        assert r.status == 403 and "access denied to perform action" in r.body["message"], (rest, r.body)
    # another cluster's name is not served
    assert req(cluster, "GET", "/v1/webapi/sites/other/events", cookie=otto).status == 404


def test_join_and_play_back_a_browser_session(cluster: Cluster) -> None:
    c = cluster
    ada, ada_body, _ = login(c, "ada")
    otto, otto_body, _ = login(c, "otto")
    nina, nina_body, _ = login(c, "nina")

    async def go() -> str:
        async with Term(c, ada, ada_body["csrf_token"], f"node=testnode&login={OS_USER}") as owner:
            await owner.type("echo owner-$((2+3))\n")
            await owner.expect("owner-5")
            live: list[Any] = []
            for _ in range(100):
                live = (await _req(c, "GET", site(c, "sessions"), cookie=otto)).body["items"]
                if live:
                    break
                await asyncio.sleep(0.3)
            assert live, "the session never showed as live"
            sess = live[0]
            assert sess["node"] == "testnode" and sess["login"] == OS_USER and sess["user"] == "ada"
            assert sess["parties"] == ["ada"]
            sid = str(sess["sid"])
            # nina's roles may not read sessions: her join is refused before anything is dialled
            async with Term(c, nina, nina_body["csrf_token"], f"sid={sid}") as refused:
                await refused.expect("you may not join session")
            async with Term(c, otto, otto_body["csrf_token"], f"sid={sid}") as joiner:
                await joiner.expect("joined session")
                await owner.expect("otto joined the session")
                await joiner.type("echo joiner-$((6+1))\n")
                await owner.expect("joiner-7")
                await joiner.expect("joiner-7")
            await owner.type("exit\n")
            await owner.expect("session ended (exit status 0)")
            # an ended session cannot be joined
            async with Term(c, otto, otto_body["csrf_token"], f"sid={sid}") as late:
                await late.expect("is not active")
            return sid

    sid = asyncio.run(go())

    def recorded() -> list[Any]:
        items = req(c, "GET", site(c, "recordings"), cookie=ada).body["items"]
        return [r for r in items if r["sid"] == sid]

    rec = _poll("the recording", recorded)[0]
    assert rec["user"] == "ada" and rec["login"] == OS_USER and rec["node"] == "testnode"
    assert rec["duration"] is not None and rec["duration"] >= 0
    play = req(c, "GET", site(c, f"recordings/{sid}"), cookie=ada)
    assert play.status == 200, play.body
    out = "".join(d for _, kind, d in play.body["events"] if kind == "o")
    assert "owner-5" in out and "joiner-7" in out
    assert {kind for _, kind, _ in play.body["events"]} <= {"o", "r"}  # never the typed input
    assert play.body["width"] > 0 and play.body["problems"] == []
    assert req(c, "GET", site(c, f"recordings/{sid}"), cookie=nina).status == 403
    assert req(c, "GET", site(c, "recordings/not-a-sid"), cookie=ada).status == 400
