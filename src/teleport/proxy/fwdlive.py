"""Joinable sessions in recording proxy mode: an interactive session the proxy relays (its owner's
channel and the node's), shared with the parties that join it (`tsh join SID`, or OpenSSH
sending `TELEPORT_SESSION=<sid>` as an env request before its shell request).

What node/party.py does for a node, done on the proxy: the session is registered in auth's
session registry under the proxy's host id (with where the client asked to go, so that `tsh join`
comes back to this proxy and this host), the node's output goes to every party, what any party
types goes to the node, the last resize wins, and session.join/session.leave are logged. The
session ends for everyone when the node's channel closes; the last party leaving closes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import asyncssh

from teleport.errors import AccessDenied
from teleport.events import schema
from teleport.types import session as session_record

if TYPE_CHECKING:
    from teleport.proxy.fwdsession import ForwardSession

log = logging.getLogger("teleport.proxy.forward")

REFRESH_INTERVAL = 30.0  # re-register live sessions well within auth's 90 s TTL
_WRITE_ERRORS = (OSError, asyncssh.Error, BrokenPipeError, RuntimeError)


class LiveSession:
    """One interactive session relayed by this proxy, and the parties sharing it."""

    def __init__(self, owner: ForwardSession) -> None:
        fwd = owner.fwd
        self.owner = owner
        self.rec = fwd.rec
        self.sid = owner.sid
        self.login = fwd.login
        self.parties: list[ForwardSession] = [owner]
        self.participants: list[str] = [fwd.user]
        self.created = time.time()
        self.ended = False
        self._refresh: asyncio.Task[None] | None = None

    # registry ----------------------------------------------------------------------------
    def resource(self) -> dict[str, Any]:
        """The session as reported to auth (`tsh sessions ls`, `tsh join`)."""
        fwd = self.owner.fwd
        size = self.owner.size
        return {
            "sid": self.sid, "namespace": schema.DEFAULT_NAMESPACE, "login": self.login,
            "user": fwd.user, "server_id": fwd.svc.identity.host_id,
            "server_hostname": fwd.fields()["server_hostname"], "server_addr": fwd.target.shown,
            # where the owner asked to go: a joiner asks the proxy for the same host and port
            session_record.RECORDING_PROXY: session_record.proxy_target(fwd.req.host, fwd.req.port),
            "parties": [{"user": p.fwd.user, "remote_addr": p.fwd.addr_remote,
                         "joined": schema.format_time(p.joined)} for p in self.parties],
            "created": schema.format_time(self.created),
            "terminal": {"w": size[0] or 80, "h": size[1] or 24},
        }

    def start(self) -> None:
        """Make the session joinable: known to this proxy and registered with auth."""
        self.rec.live[self.sid] = self
        self._refresh = asyncio.ensure_future(self._refresh_loop())

    async def _upsert(self) -> None:
        if self.ended:
            return
        try:
            await self.rec.svc.auth.upsert_session(self.resource())
        except Exception as exc:
            log.warning("cannot register live session %s with auth: %s", self.sid, exc)

    async def _refresh_loop(self) -> None:
        while True:
            await self._upsert()
            await asyncio.sleep(REFRESH_INTERVAL)

    async def _unregister(self) -> None:
        try:
            await self.rec.svc.auth.delete_session(self.sid)
        except Exception as exc:
            log.warning("cannot remove live session %s from auth: %s", self.sid, exc)

    # access ------------------------------------------------------------------------------
    async def check_join(self, party: ForwardSession) -> dict[str, Any]:
        """AccessDenied unless `party` may join: it reached the same host through this proxy,
        and its roles allow the session's login there (as a node checks a joiner). Returns the
        options to enforce on the joiner (idle timeout, certificate expiry)."""
        mine, theirs = self.owner.fwd, party.fwd
        if self.ended:
            raise AccessDenied(f"session {self.sid} has ended")
        if (theirs.target.shown, _node_id(theirs)) != (mine.target.shown, _node_id(mine)):
            raise AccessDenied(
                f"session {self.sid} runs on {mine.target.shown}, not on {theirs.target.shown}: "
                "join it with 'tsh join SID' (it finds the session's node)"
            )
        if theirs.login != self.login and not _node_id(mine):
            raise AccessDenied(
                f"session {self.sid} runs as login {self.login!r}; join it as that login "
                f"(you logged in as {theirs.login!r})"
            )
        return await theirs.join_options(self.login)

    # parties -----------------------------------------------------------------------------
    def join(self, party: ForwardSession) -> None:
        """Add a party: it sees the output from now on; everyone sees the notice."""
        for p in self.parties:
            p.notice(f"{party.fwd.user} joined the session")
        self.parties.append(party)
        if party.fwd.user not in self.participants:
            self.participants.append(party.fwd.user)
        party.notice(f"joined session {self.sid} of {self.owner.fwd.user}; the screen may be "
                     "incomplete until the program redraws (Ctrl-L)")
        self.rec.emit(schema.SESSION_JOIN, sid=self.sid, **party.fwd.fields())
        if self.owner.recorder is not None:
            self.owner.recorder.update_meta(participants=self.participants)
        self.rec.background(self._upsert())

    def leave(self, party: ForwardSession) -> None:
        """A party's channel closed; the last one leaving closes the node's channel."""
        if party not in self.parties:
            return
        self.parties.remove(party)
        self.rec.emit(schema.SESSION_LEAVE, sid=self.sid, **party.fwd.fields())
        if self.ended:
            return
        self.flow_changed()  # a paused party that left holds the others no longer
        for p in self.parties:
            p.notice(f"{party.fwd.user} left the session")
        if not self.parties:
            if self.owner.node_chan is not None:
                self.owner.node_chan.close()  # the node hangs up the shell, as sshd does
        else:
            self.rec.background(self._upsert())

    def flow_changed(self) -> None:
        """Read the node only while every party and the recording can take more output (a slow
        party slows the session, as on a node, instead of buffering without bound)."""
        owner = self.owner
        chan = owner.node_chan
        if chan is None:
            return
        backlog = owner.recorder is not None and owner.recorder.backlogged
        if backlog or any(p.paused for p in self.parties):
            chan.pause_reading()
        else:
            chan.resume_reading()

    def has_joiners(self) -> bool:
        """Whether parties other than the owner still take part."""
        return any(p is not self.owner for p in self.parties)

    # data --------------------------------------------------------------------------------
    def output(self, data: bytes) -> None:
        """The node's output, for every party but the owner (which got it already)."""
        for p in self.parties:
            if p is not self.owner:
                p.write_out(data)

    def input(self, data: bytes) -> None:
        """Bytes a joined party typed, for the node."""
        chan = self.owner.node_chan
        if chan is not None and not self.ended:
            chan.write(data)

    def resize(self, party: ForwardSession, cols: int, rows: int, xpix: int, ypix: int) -> None:
        """A party's window changed: the last resize wins for the whole session."""
        self.owner.resize_session(party, cols, rows, xpix, ypix)

    def end(self, rc: int | None, signal_name: str | None) -> None:
        """The node's channel closed: finish every joined party with its exit status."""
        if self.ended:
            return
        self.ended = True
        self.rec.live.pop(self.sid, None)
        if self._refresh is not None:
            self._refresh.cancel()
        self.rec.background(self._unregister())
        for p in list(self.parties):
            if p is not self.owner:
                p.finish(rc, signal_name)
        fwd = self.owner.fwd
        if fwd.closing:
            fwd.close()  # the owner left before the joiners: its node connection goes now


def _node_id(fwd: Any) -> str:
    return str((fwd.target.node or {}).get("metadata", {}).get("name") or "")


