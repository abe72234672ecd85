"""Interactive sessions that several SSH channels (parties) share: one PTY and child, one recording,
one entry in the cluster's list of active sessions.

The first party starts the session; another SSH connection that sends ``TELEPORT_SESSION=<sid>``
as an ``env`` request before its shell request joins it. Output goes to every party and to the
recording; what any party types goes to the shell. Join/leave notices are written to the parties'
channels only (never to the shell, never recorded). Window size: the last resize from any party
wins (as in Teleport 4), recorded and logged as a ``resize`` event. The session ends for everyone
when the shell exits; when the last party disconnects the shell gets SIGHUP, as with sshd.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import signal
import struct
import termios
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from teleport.events import schema
from teleport.node.audit import AuditEmitter
from teleport.node.recorder import RecordingUploader, SessionRecorder

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
PTY_DRAIN_TIMEOUT = 2.0  # after the child exits, wait this long for the last PTY output
REFRESH_INTERVAL = 30.0  # re-register active sessions well within auth's 90 s TTL


def set_ctty() -> None:  # runs in the child between fork and exec
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def set_winsize(fd: int, cols: int, rows: int, xpix: int = 0, ypix: int = 0) -> None:
    """Set a terminal's window size (ignored when unknown)."""
    if cols and rows:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, xpix, ypix))


@dataclass
class SessionServices:
    """What sessions need from the node: audit, recording, the session registry, access checks."""

    server_id: str = ""
    server_hostname: str = ""
    server_addr: str = ""
    emitter: AuditEmitter | None = None
    uploader: RecordingUploader | None = None
    upload_dir: str = ""
    recording_enabled: Callable[[], bool] = lambda: False
    upsert: Callable[[dict[str, Any]], Awaitable[Any]] | None = None
    delete: Callable[[str], Awaitable[Any]] | None = None
    check_access: Callable[[str, str], Awaitable[dict[str, Any]]] | None = None
    active: dict[str, ActiveSession] = field(default_factory=dict)
    # where a join request looks for the session (None: `active`): a recording proxy's joiner of
    # a session the node runs itself reaches it from the proxy's quiet connection
    joinable: dict[str, ActiveSession] | None = None
    _bg: set[asyncio.Task[Any]] = field(default_factory=set)

    def emit(self, event_type: str, **fields: Any) -> bool:
        """Log an audit event (spooled durably); never lets an audit problem break a session.
        Returns whether the event is safely spooled."""
        if self.emitter is None:
            return True
        try:
            self.emitter.emit(event_type, server_id=self.server_id,
                              server_hostname=self.server_hostname, **fields)
        except Exception as exc:
            log.error("cannot spool %s audit event: %s", event_type, exc)
            return False
        return True

    def background(self, coro: Awaitable[Any]) -> None:
        """Run a best-effort coroutine (registry calls, uploads) without awaiting it."""
        task = asyncio.ensure_future(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)


@dataclass
class Party:
    """One SSH channel taking part in an interactive session."""

    user: str
    login: str
    remote_addr: str
    local_addr: str
    chan: Any
    finish: Callable[[int], None]  # send exit status and close the channel
    joined: float = field(default_factory=time.time)
    paused: bool = False

    def fields(self) -> dict[str, Any]:
        """Common audit fields for this party."""
        return {"user": self.user, "login": self.login, "addr_local": self.local_addr,
                "addr_remote": self.remote_addr}

    def notice(self, text: str) -> None:
        try:
            self.chan.write(f"\r\n[{text}]\r\n".encode())
        except (BrokenPipeError, OSError, RuntimeError):
            pass


class ActiveSession:
    """One shared PTY session."""

    def __init__(self, services: SessionServices, sid: str, owner: Party, term: str,
                 size: tuple[int, int, int, int]) -> None:
        self.services = services
        self.sid = sid
        self.owner = owner
        self.login = owner.login
        self.term = term
        self.size = size
        self.parties: list[Party] = [owner]
        self.participants: list[str] = [owner.user]
        self.created = time.time()
        self.proc: asyncio.subprocess.Process | None = None
        self.master: int | None = None
        self.recorder: SessionRecorder | None = None
        self._out_buf = bytearray()
        self._pending: list[bytes] = []
        self._pty_eof = asyncio.Event()
        self._reading = False
        self._refresh: asyncio.Task[None] | None = None
        self.ended = False

    # registry ----------------------------------------------------------------------------
    def resource(self) -> dict[str, Any]:
        """The session as reported to auth (`tsh sessions ls`, `tsh join`)."""
        s = self.services
        return {
            "sid": self.sid, "namespace": schema.DEFAULT_NAMESPACE, "login": self.login,
            "user": self.owner.user, "server_id": s.server_id, "server_hostname": s.server_hostname,
            "server_addr": s.server_addr,
            "parties": [{"user": p.user, "remote_addr": p.remote_addr,
                         "joined": schema.format_time(p.joined)} for p in self.parties],
            "created": schema.format_time(self.created),
            "terminal": {"w": self.size[0], "h": self.size[1]},
        }

    async def _upsert(self) -> None:
        if self.services.upsert is None or self.ended:
            return
        try:
            await self.services.upsert(self.resource())
        except Exception as exc:
            log.warning("cannot register active session %s with auth: %s", self.sid, exc)

    async def _refresh_loop(self) -> None:
        while True:
            await self._upsert()
            await asyncio.sleep(REFRESH_INTERVAL)

    async def _unregister(self) -> None:
        if self.services.delete is None:
            return
        try:
            await self.services.delete(self.sid)
        except Exception as exc:
            log.warning("cannot remove active session %s from auth: %s", self.sid, exc)

    # running -----------------------------------------------------------------------------
    def _start_recording(self, env: dict[str, str]) -> None:
        s = self.services
        if not s.recording_enabled() or not s.upload_dir:
            return
        meta = {
            "fields": {**_plain(self.owner.fields()), "server_id": s.server_id,
                       "server_hostname": s.server_hostname},
            "session_start": schema.format_time(self.created),
            "participants": self.participants,
        }
        try:
            self.recorder = SessionRecorder(
                s.upload_dir, self.sid, self.size[0] or 80, self.size[1] or 24, meta,
                env={"TERM": self.term or "xterm", "SHELL": env.get("SHELL", "/bin/sh")},
                on_backlog=lambda _: self.flow_changed(),
            )
        except OSError as exc:
            log.error("cannot record session %s: %s", self.sid, exc)
            return
        if s.uploader is not None:
            s.uploader.active.add(self.sid)

    async def run(self, argv: list[str], kw: dict[str, Any]) -> int:
        """Start the child on a new PTY, serve it until it exits, end the session; returns its
        exit status (negative for a signal)."""
        s = self.services
        s.active[self.sid] = self
        s.emit(schema.SESSION_START, sid=self.sid, size=(self.size[0] or 80, self.size[1] or 24),
               **self.owner.fields())
        self._start_recording(kw["env"])
        master, slave = os.openpty()
        try:
            set_winsize(slave, *self.size)
            os.set_blocking(master, False)
            kw["env"]["SSH_TTY"] = os.ttyname(slave)
            self.proc = await asyncio.create_subprocess_exec(
                *argv, stdin=slave, stdout=slave, stderr=slave, preexec_fn=set_ctty, **kw
            )
        except BaseException:
            os.close(master)
            self._end(255)
            raise
        finally:
            os.close(slave)  # only the child holds the slave now, so its exit gives EIO on master
        self.master = master
        loop = asyncio.get_running_loop()
        self._set_reading(True)
        for data in self._pending:
            self.input(data)
        self._pending = []
        self._refresh = asyncio.create_task(self._refresh_loop())
        try:
            rc = await self.proc.wait()
            try:  # background jobs may keep the terminal open; do not wait for them forever
                await asyncio.wait_for(self._pty_eof.wait(), PTY_DRAIN_TIMEOUT)
            except TimeoutError:
                pass
        finally:
            self._set_reading(False)
            loop.remove_writer(master)
            self.master = None
            os.close(master)
        self._end(rc)
        return rc

    def _end(self, rc: int) -> None:
        if self.ended:
            return
        self.ended = True
        s = self.services
        s.active.pop(self.sid, None)
        if self._refresh is not None:
            self._refresh.cancel()
        now = time.time()
        logged = s.emit(schema.SESSION_END, sid=self.sid, participants=list(self.participants),
               interactive=True, session_start=schema.format_time(self.created),
               session_stop=schema.format_time(now), **self.owner.fields())
        if self.recorder is not None:
            uploader = s.uploader

            def recorded() -> None:
                if uploader is not None:
                    uploader.active.discard(self.sid)
                    if logged:  # else the next start logs session.end, then uploads
                        s.background(uploader.upload(self.sid))

            # If session.end could not be spooled (node shutting down), the next start logs it.
            self.recorder.close(done=recorded, ended=logged)
        s.background(self._unregister())
        for p in list(self.parties):
            try:
                p.finish(rc)
            except Exception:  # the channel may already be gone
                pass

    # output ------------------------------------------------------------------------------
    def _set_reading(self, on: bool) -> None:
        if self.master is None or on == self._reading:
            return
        loop = asyncio.get_running_loop()
        if on:
            if self._pty_eof.is_set():
                return
            loop.add_reader(self.master, self._pty_readable)
        else:
            loop.remove_reader(self.master)
        self._reading = on

    def _pty_readable(self) -> None:
        assert self.master is not None
        # A PTY hands out at most ~4 KiB per read; take whatever is already there (never wait)
        # so that a burst of output leaves as a few large SSH packets, not thousands of small
        # ones, each with its own encryption and callbacks on every hop.
        chunks: list[bytes] = []
        size = 0
        ended = False
        while size < READ_SIZE:
            try:
                chunk = os.read(self.master, READ_SIZE - size)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.EIO:
                    log.debug("pty read: %s", exc)
                chunk = b""
            if not chunk:
                ended = True
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
        if ended and not data:  # every slave fd is closed: the session's output is complete
            self._set_reading(False)
            self._pty_eof.set()
            return
        if not data:
            return
        for p in self.parties:
            try:
                p.chan.write(data)
            except (BrokenPipeError, OSError, RuntimeError):
                pass
        if self.recorder is not None:
            self.recorder.output(data)

    def flow_changed(self) -> None:
        """A party's channel or the recorder paused or resumed: read the PTY only while every party
        and the recorder can take data."""
        backlog = self.recorder is not None and self.recorder.backlogged
        self._set_reading(not backlog and not any(p.paused for p in self.parties))

    # input -------------------------------------------------------------------------------
    def input(self, data: bytes) -> None:
        """Bytes typed by any party, for the shell."""
        if self.master is None:
            self._pending.append(data)
            return
        had = bool(self._out_buf)
        self._out_buf += data
        if not had:
            self._pty_flush()

    def _pty_flush(self) -> None:
        if self.master is None:
            return
        loop = asyncio.get_running_loop()
        try:
            n = os.write(self.master, self._out_buf)
            del self._out_buf[:n]
        except BlockingIOError:
            pass
        except OSError:
            self._out_buf.clear()
        if self._out_buf:
            loop.add_writer(self.master, self._pty_flush)
        else:
            loop.remove_writer(self.master)

    def resize(self, party: Party, cols: int, rows: int, xpix: int = 0, ypix: int = 0) -> None:
        """A party's window changed: the last resize wins for the whole session."""
        if not cols or not rows or (cols, rows) == self.size[:2]:
            return
        self.size = (cols, rows, xpix, ypix)
        if self.master is not None:
            set_winsize(self.master, cols, rows, xpix, ypix)
        if self.recorder is not None:
            self.recorder.resize(cols, rows)
        self.services.emit(schema.SESSION_RESIZE, sid=self.sid, size=(cols, rows), **party.fields())

    def signal(self, sig: signal.Signals) -> None:
        """Deliver a signal to the session's process group."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    # parties -----------------------------------------------------------------------------
    def join(self, party: Party) -> None:
        """Add a party: it sees the output from now on; everyone sees the notice."""
        for p in self.parties:
            p.notice(f"{party.user} joined the session")
        self.parties.append(party)
        if party.user not in self.participants:
            self.participants.append(party.user)
        party.notice(f"joined session {self.sid} of {self.owner.user}; the screen may be "
                     "incomplete until the program redraws (Ctrl-L)")
        self.services.emit(schema.SESSION_JOIN, sid=self.sid, **party.fields())
        if self.recorder is not None:
            self.recorder.update_meta(participants=self.participants)
        # Full-screen programs repaint on SIGWINCH: the joiner gets a whole screen.
        if self.master is not None:
            try:
                os.killpg(os.tcgetpgrp(self.master), signal.SIGWINCH)
            except OSError:
                pass
        self.services.background(self._upsert())

    def leave(self, party: Party) -> None:
        """A party's channel closed; the last one leaving hangs up the shell."""
        if party not in self.parties:
            return
        self.parties.remove(party)
        self.services.emit(schema.SESSION_LEAVE, sid=self.sid, **party.fields())
        if self.ended:
            return
        for p in self.parties:
            p.notice(f"{party.user} left the session")
        if not self.parties:
            self.signal(signal.SIGHUP)
        else:
            self.flow_changed()
            self.services.background(self._upsert())


def _plain(fields: dict[str, Any]) -> dict[str, Any]:
    # the recovery metadata stores event field names, not the Python keyword spellings
    out = dict(fields)
    for k, v in (("addr_local", "addr.local"), ("addr_remote", "addr.remote")):
        if k in out:
            out[v] = out.pop(k)
    return out
