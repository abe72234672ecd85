"""What a recording proxy keeps for the sessions it terminates (forward.py): an audit event spool
shipped to auth, a recording uploader, the forwarding host key and its certificates per host
name, and the live sessions it runs (by session id, for `tsh join`)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING, Any

import asyncssh

from teleport.ca import sshcert
from teleport.node.audit import AuditEmitter
from teleport.node.recorder import RecordingUploader

if TYPE_CHECKING:
    from teleport.proxy.fwdlive import LiveSession
    from teleport.proxy.sshproxy import ProxySSHService

log = logging.getLogger("teleport.proxy.forward")

CERT_RENEW_MARGIN = 300.0  # renew a forwarding host certificate this long before it expires


class ProxyRecorder:
    """What the proxy needs to audit and record sessions itself: an event spool shipped to auth
    and a recording uploader, in their own directories (a node in the same process keeps its
    own), plus the forwarding host key and its certificates per host name."""

    def __init__(self, svc: ProxySSHService, data_dir: str) -> None:
        base = os.path.join(data_dir, "log", "upload", "proxy")
        self.svc = svc
        self.emitter = AuditEmitter(os.path.join(base, "events.spool"), svc.auth.emit_events)
        self.uploader = RecordingUploader(
            os.path.join(base, "sessions"), svc.auth.upload_recording, self.emitter
        )
        self._key: asyncssh.SSHKey | None = None
        self._certs: dict[str, tuple[asyncssh.SSHCertificate, float]] = {}
        self._lock = asyncio.Lock()
        self._bg: set[asyncio.Task[Any]] = set()
        # the interactive sessions this proxy runs now, by session id: what `tsh join` attaches to
        self.live: dict[str, LiveSession] = {}

    def start(self) -> None:
        """Ship pending events and upload recordings a crashed proxy left behind."""
        self.emitter.start()
        self.uploader.start()

    async def close(self) -> None:
        """Stop the background work (what is left goes at the next start)."""
        await self.uploader.close()
        await self.emitter.close()

    def emit(self, event_type: str, **fields: Any) -> bool:
        """Spool one audit event as this proxy; never breaks a session. Whether it is spooled."""
        try:
            self.emitter.emit(event_type, server_id=self.svc.identity.host_id, **fields)
        except Exception as exc:
            log.error("cannot spool %s audit event: %s", event_type, exc)
            return False
        return True

    def background(self, coro: Any) -> None:
        """Run a best-effort coroutine (uploads) without awaiting it."""
        task = asyncio.ensure_future(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def host_key(self, principal: str) -> tuple[asyncssh.SSHKey, asyncssh.SSHCertificate]:
        """The proxy's forwarding key and a host certificate naming `principal` (auth signs it
        in recording proxy mode only; cached until shortly before it expires)."""
        async with self._lock:
            if self._key is None:
                self._key = asyncssh.generate_private_key("ssh-ed25519")
            cached = self._certs.get(principal)
            if cached is not None and cached[1] - CERT_RENEW_MARGIN > time.time():
                return self._key, cached[0]
            pub = self._key.export_public_key().decode().strip()
            line = await self.svc.auth.sign_forward_cert(pub, principal)
            cert = asyncssh.import_certificate(line)
            self._certs[principal] = (cert, float(sshcert.parse_cert(line).valid_before))
            return self._key, cert
