"""One relayed session channel of a connection the recording proxy terminates (forward.py): the
client's channel, its channel on the node, and what a node would log and record about it."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

import asyncssh

from teleport.errors import AccessDenied, TeleportError
from teleport.events import schema
from teleport.node.party import _plain
from teleport.node.recorder import SessionRecorder
from teleport.node.sessions import JOIN_ENV, PROXY_SID_ENV, scp_request
from teleport.proxy import recmode
from teleport.proxy.fwdlive import _WRITE_ERRORS, LiveSession
from teleport.proxy.sftpaudit import SftpAudit

if TYPE_CHECKING:
    from teleport.proxy.forward import Forwarder

log = logging.getLogger("teleport.proxy.forward")


class _NodeSide(asyncssh.SSHClientSession[bytes]):
    """The node's end of one relayed session: output to the client (and the recording)."""

    def __init__(self, session: ForwardSession) -> None:
        self.session = session

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.session.from_node(data, datatype)

    def eof_received(self) -> bool:
        self.session.node_eof()
        return True

    def pause_writing(self) -> None:
        self.session.chan.pause_reading()

    def resume_writing(self) -> None:
        self.session.chan.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.node_closed(exc)


class ForwardSession(asyncssh.SSHServerSession[bytes]):
    """One session channel of the client, relayed to a session channel on the node; what a node
    would log about it is logged here (session.start/end and resize for a terminal, exec and scp
    for commands) and a terminal session is recorded."""

    def __init__(self, fwd: Forwarder) -> None:
        self.fwd = fwd
        self.chan: asyncssh.SSHServerChannel[bytes] = None  # type: ignore[assignment]
        self.node_chan: asyncssh.SSHClientChannel[bytes] | None = None
        self.command: str | None = None
        self.subsystem: str | None = None
        self.term: str | None = None
        self.size = (0, 0, 0, 0)
        self.modes: dict[int, int] = {}
        self.sid = str(uuid.uuid4())
        self.pending: list[bytes] = []
        self.pending_eof = False
        self.recorder: SessionRecorder | None = None
        self.started = 0.0
        self.bytes_in = 0
        self.bytes_out = 0
        self.task: asyncio.Task[None] | None = None
        self.done = False
        # the sftp subsystem: files read and written, from the relayed SFTP packets
        self.sftp: SftpAudit | None = None
        self.tx = 0  # bytes sent to the client on this channel (session.data)
        # an interactive session: the one this channel runs (owner) or joined (joiner)
        self.live: LiveSession | None = None
        self.joined = 0.0  # when this channel joined (or started) its live session
        self.left = False  # this channel's client is gone (its live session may go on)
        self.paused = False  # this channel's client cannot take more output now
        self.node_audits = False  # a join of the node's own session: the node logs it

    # requests ------------------------------------------------------------------------------
    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self.chan = chan
        self.fwd.sessions.add(self)

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Any) -> bool:
        self.term = term_type or "xterm"
        self.size = term_size
        self.modes = dict(term_modes or {})
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self.command = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        self.subsystem = subsystem
        if subsystem == "sftp":
            self.sftp = SftpAudit()
        return True

    def _audit_sftp(self, files: list[tuple[str, str, int]]) -> None:
        """scp events for the files an SFTP session closed, as a node logs them."""
        for action, path, n in files:
            self.fwd.rec.emit(schema.SCP, sid=self.sid, path=path, action=action, len=n,
                              **self.fwd.fields())

    def session_started(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        fwd = self.fwd
        env = {k: v for k, v in self.chan.get_environment().items()}
        join = env.get(JOIN_ENV) if self.command is None and self.subsystem is None else None
        if join and (str(join) in fwd.rec.live or fwd.target.node is None):
            await self._join(str(join))
            return
        # a session a teleport node runs itself (it reached the node another way, e.g. the
        # browser terminal): the node attaches this channel and audits it, the proxy relays
        self.node_audits = bool(join)
        try:
            node = await fwd.node_conn()
            if fwd.target.node is not None and not self.node_audits:
                env[PROXY_SID_ENV] = self.sid  # the teleport node's $TELEPORT_SESSION: ours
            kw: dict[str, Any] = {"env": env, "encoding": None}
            if self.term is not None:
                kw.update(term_type=self.term, term_size=self.size, term_modes=self.modes)
            chan, _ = await node.create_session(
                lambda: _NodeSide(self), command=self.command, subsystem=self.subsystem, **kw
            )
        except (TeleportError, OSError, asyncssh.Error) as exc:
            msg = exc.reason if isinstance(exc, asyncssh.Error) else str(exc)
            self._fail(msg)
            return
        except Exception as exc:  # the client must always learn why its session closed
            log.exception("recording proxy session failed")
            self._fail(f"internal proxy error: {exc}")
            return
        self.node_chan = chan
        self._begin()
        for data in self.pending:
            chan.write(data)
        self.pending = []
        if self.pending_eof:
            chan.write_eof()

    async def _join(self, sid: str) -> None:
        """Attach this channel to live session `sid` of this proxy (`tsh join`)."""
        live = self.fwd.rec.live.get(sid)
        try:
            if live is None:
                raise AccessDenied(
                    f"session {sid} is not active on this proxy (it ended, or runs elsewhere: "
                    "see 'tsh sessions ls')"
                )
            options = await live.check_join(self)
        except TeleportError as exc:
            self._fail(str(exc))
            return
        except Exception as exc:  # the joiner must always learn why
            log.exception("recording proxy: join of session %s failed", sid)
            self._fail(f"internal proxy error: {exc}")
            return
        self.fwd.enforce(options)
        if self.left:
            return
        self.sid = sid
        self.live = live
        self.joined = time.time()
        live.join(self)
        for data in self.pending:
            live.input(data)
        self.pending = []

    def _fail(self, message: str) -> None:
        log.info("recording proxy: session of %s refused: %s", self.fwd.user, message)
        try:
            self.chan.write_stderr(f"ERROR: {message}\r\n".encode())
            self.chan.exit(255)
        except _WRITE_ERRORS:
            pass

    def notice(self, text: str) -> None:
        """A line for this party's terminal only (never sent to the node, never recorded)."""
        self.write_out(f"\r\n[{text}]\r\n".encode())

    def write_out(self, data: bytes) -> None:
        """Output for this channel's client, counted for session.data; dropped once it left."""
        if self.left:
            return
        try:
            self.chan.write(data)
        except _WRITE_ERRORS:
            return
        self.tx += len(data)

    def finish(self, rc: int | None, signal_name: str | None) -> None:
        """The live session this channel joined ended: pass on the node's exit status."""
        try:
            if signal_name:
                self.chan.exit_with_signal(signal_name, False, "", "")
            else:
                self.chan.exit(rc if rc is not None else 0)
        except _WRITE_ERRORS:
            pass

    # audit ---------------------------------------------------------------------------------
    def _interactive(self) -> bool:
        return self.term is not None and self.subsystem is None

    def _begin(self) -> None:
        fwd = self.fwd
        if self.node_audits:
            return
        self.started = time.time()
        if not self._interactive():
            return
        cols, rows = (self.size[0] or 80), (self.size[1] or 24)
        fwd.rec.emit(schema.SESSION_START, sid=self.sid, size=(cols, rows), **fwd.fields())
        self.joined = self.started
        self.live = LiveSession(self)
        self.live.start()
        if fwd.svc.mode != recmode.PROXY:
            return
        f = fwd.fields()
        meta = {
            "fields": {**_plain({k: f[k] for k in ("user", "login", "addr_local", "addr_remote")}),
                       "server_id": fwd.svc.identity.host_id,
                       "server_hostname": f["server_hostname"]},
            "session_start": schema.format_time(self.started),
            "participants": [fwd.user],
        }
        try:
            self.recorder = SessionRecorder(
                fwd.rec.uploader.dir, self.sid, cols, rows, meta,
                env={"TERM": self.term or "xterm", "SHELL": "/bin/sh"},
                on_backlog=self._backlog,
            )
            fwd.rec.uploader.active.add(self.sid)
        except OSError as exc:
            log.error("cannot record session %s: %s", self.sid, exc)

    def _backlog(self, on: bool) -> None:
        # the recording falls behind: stop reading the node until it caught up
        self.flow_changed()

    def _end(self, rc: int | None, signal_name: str | None) -> None:
        fwd = self.fwd
        if self.sftp is not None:
            self._audit_sftp(self.sftp.close())
        if self.command is not None:
            scp = scp_request(self.command)
            if scp is not None:
                action, path = scp
                n = self.bytes_in if action == "upload" else self.bytes_out
                fwd.rec.emit(schema.SCP, sid=self.sid, path=path, action=action, len=n, **fwd.fields())
            if scp is None or rc != 0:
                code = rc if rc is not None else -1
                fwd.rec.emit(schema.EXEC, sid=self.sid, command=self.command, exitCode=code,
                             exitError=f"signal: SIG{signal_name}" if signal_name else None,
                             **fwd.fields())
        if not self._interactive() or not self.started:
            return
        live = self.live
        if live is not None:
            live.end(rc, signal_name)
        participants = list(live.participants) if live is not None else [fwd.user]
        logged = fwd.rec.emit(
            schema.SESSION_END, sid=self.sid, participants=participants, interactive=True,
            session_start=schema.format_time(self.started),
            session_stop=schema.format_time(time.time()), **fwd.fields())
        if self.recorder is not None:
            uploader = fwd.rec.uploader
            sid = self.sid

            def recorded() -> None:
                uploader.active.discard(sid)
                if logged:
                    fwd.rec.background(uploader.upload(sid))

            self.recorder.close(done=recorded, ended=logged)
            self.recorder = None

    # client -> node ------------------------------------------------------------------------
    def _joiner(self) -> bool:
        return self.live is not None and self.live.owner is not self

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.bytes_in += len(data)
        self.fwd.touch()
        if self.live is not None and self._joiner():
            self.live.input(data)
            return
        if self.sftp is not None:
            self._audit_sftp(self.sftp.client(data))
        if self.node_chan is not None:
            self.node_chan.write(data)
        else:
            self.pending.append(data)

    def eof_received(self) -> bool:
        if self._joiner():
            return True  # a joiner's EOF is its own business; the shell goes on
        if self.node_chan is not None:
            self.node_chan.write_eof()
        else:
            self.pending_eof = True
        return True

    def pause_writing(self) -> None:
        self.paused = True
        self.flow_changed()

    def resume_writing(self) -> None:
        self.paused = False
        self.flow_changed()

    def flow_changed(self) -> None:
        """Read the node only while every party's channel and the recording can take more."""
        if self.live is not None:
            self.live.flow_changed()
            return
        if self.node_chan is not None:
            backlog = self.recorder is not None and self.recorder.backlogged
            if self.paused or backlog:
                self.node_chan.pause_reading()
            else:
                self.node_chan.resume_reading()

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        if self.live is not None and self._joiner():
            self.live.resize(self, width, height, pixwidth, pixheight)
            return
        self.resize_session(self, width, height, pixwidth, pixheight)

    def resize_session(self, party: ForwardSession, width: int, height: int, pixwidth: int,
                       pixheight: int) -> None:
        """The window of `party` (this channel, or one that joined its session) changed: the
        last resize wins, recorded and logged as a resize event of that party."""
        if not width or not height or (width, height) == self.size[:2]:
            return
        self.size = (width, height, pixwidth, pixheight)
        if self.node_chan is not None:
            self.node_chan.change_terminal_size(width, height, pixwidth, pixheight)
        if self.recorder is not None:
            self.recorder.resize(width, height)
        if self._interactive() and self.started:
            self.fwd.rec.emit(schema.SESSION_RESIZE, sid=self.sid, size=(width, height),
                              **party.fwd.fields())

    def signal_received(self, signal: str) -> None:
        if self.node_chan is not None:
            self.node_chan.send_signal(signal)

    def break_received(self, msec: int) -> bool:
        if self.node_chan is not None:
            self.node_chan.send_break(msec)
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.fwd.sessions.discard(self)
        self.left = True
        if self.node_audits:
            pass
        elif self.command is not None or self.subsystem is not None or self.term is not None \
                or self.bytes_in or self.tx:
            # one per session channel: bytes the proxy sent to and received from the client
            self.fwd.rec.emit(schema.SESSION_DATA, sid=self.sid, tx=self.tx, rx=self.bytes_in,
                              **self.fwd.fields())
        live = self.live
        if live is not None:
            live.leave(self)
            if live.has_joiners() and not live.ended:
                return  # the others carry on; the node's channel closes with the last of them
        if self._joiner():
            return
        if self.node_chan is not None:
            self.node_chan.close()
        elif self.task is not None and not self.task.done():
            self.task.cancel()
        if not self.done:
            self.done = True
            self._end(None, None)

    # node -> client ------------------------------------------------------------------------
    def from_node(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if datatype == asyncssh.EXTENDED_DATA_STDERR:
            if not self.left:
                try:
                    self.chan.write_stderr(data)
                    self.tx += len(data)
                except _WRITE_ERRORS:
                    pass
            return
        self.bytes_out += len(data)
        self.write_out(data)
        if self.sftp is not None:
            self._audit_sftp(self.sftp.server(data))
        if self.live is not None:
            self.live.output(data)
        if self.recorder is not None:
            self.recorder.output(data)

    def node_eof(self) -> None:
        try:
            self.chan.write_eof()
        except _WRITE_ERRORS:
            pass

    def node_closed(self, exc: Exception | None) -> None:
        chan = self.node_chan
        rc = chan.get_exit_status() if chan is not None else None
        sig = chan.get_exit_signal() if chan is not None else None
        if not self.done:
            self.done = True
            self._end(rc, sig[0] if sig else None)
        try:
            if sig:
                self.chan.exit_with_signal(sig[0], sig[1], sig[2], sig[3])
            elif rc is not None:
                self.chan.exit(rc)
            else:
                if exc is not None:
                    self.chan.write_stderr(f"ERROR: the connection to the node was lost: {exc}\r\n".encode())
                self.chan.close()
        except _WRITE_ERRORS:
            pass
