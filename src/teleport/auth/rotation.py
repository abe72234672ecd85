"""CA rotation: the phase machine (pure functions over a CA's spec) and the auth service's part.

A CA's spec holds its keys as two parallel lists, `checking_keys` (public, OpenSSH lines) and
`signing_keys` (private PEM, auth-only), and the key at index 0 is the one that signs. Every
consumer trusts all of `checking_keys`, so trusting a new key during a rotation is just listing it:

    phase           checking / signing     meaning
    standby         [cur]                  no rotation
    init            [old, new]             new keys trusted everywhere, old keys still sign
    update_clients  [new, old]             new keys sign (clients get new certs), both trusted
    update_servers  [new, old]             servers re-issue their host certs under new; both trusted
    standby         [new]                  rotation complete: old certificates refused
    rollback        [old, new]             old keys sign again; servers re-issue back under old
    standby         [old]                  rollback complete: the new keys are gone

`spec.rotation` = {state: standby|in_progress, phase, mode: manual|auto, started, grace_period,
last_rotated, schedule: {phase: unix time}} records where a rotation is and, in auto mode, when it
moves on (at a third, two thirds and all of the grace period, as the original product does).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from typing import Any

from teleport import defaults
from teleport.auth.core import _now
from teleport.auth.hosts import HostIdentity, HostsMixin
from teleport.ca import keys as cakeys
from teleport.ca import tlsca
from teleport.errors import AccessDenied, BadParameter, NotFound

log = logging.getLogger(__name__)

STANDBY, INIT, UPDATE_CLIENTS, UPDATE_SERVERS, ROLLBACK = (
    "standby", "init", "update_clients", "update_servers", "rollback",
)
PHASES = (STANDBY, INIT, UPDATE_CLIENTS, UPDATE_SERVERS, ROLLBACK)
MANUAL, AUTO = "manual", "auto"
# CAs that rotate. The TLS CA anchors every internal mTLS connection (and the CA pins of join
# commands); rotating it is not supported yet, and saying so beats a half-rotation.
ROTATABLE = ("user", "host")

# phase -> the phases a manual step may move to from it
NEXT: dict[str, tuple[str, ...]] = {
    STANDBY: (INIT,),
    INIT: (UPDATE_CLIENTS, ROLLBACK),
    UPDATE_CLIENTS: (UPDATE_SERVERS, ROLLBACK),
    UPDATE_SERVERS: (STANDBY, ROLLBACK),
    ROLLBACK: (STANDBY,),
}
# the order auto mode walks
AUTO_ORDER = (INIT, UPDATE_CLIENTS, UPDATE_SERVERS, STANDBY)

NewKeys = Callable[[], tuple[str, str]]  # () -> (checking key, signing key PEM)


def rotation_of(spec: dict[str, Any]) -> dict[str, Any]:
    """The rotation record of a CA spec (standby when the CA has never rotated)."""
    rot = spec.get("rotation")
    if not isinstance(rot, dict):
        return {"state": STANDBY, "phase": STANDBY, "mode": "", "started": 0.0,
                "grace_period": 0.0, "last_rotated": 0.0, "schedule": {}}
    return rot


def phase_of(spec: dict[str, Any]) -> str:
    return str(rotation_of(spec).get("phase") or STANDBY)


def check_phase(phase: str) -> str:
    if phase not in PHASES:
        raise BadParameter(f"unknown rotation phase {phase!r}: expected one of {', '.join(PHASES)}")
    return phase


def schedule(started: float, grace_period: float) -> dict[str, float]:
    """When an auto rotation started at `started` enters each later phase."""
    return {
        UPDATE_CLIENTS: started + grace_period / 3,
        UPDATE_SERVERS: started + 2 * grace_period / 3,
        STANDBY: started + grace_period,
    }


def transition(
    spec: dict[str, Any],
    target: str,
    now: float,
    new_keys: NewKeys | None = None,
    mode: str = MANUAL,
    grace_period: float = 0.0,
) -> dict[str, Any]:
    """The spec after moving the CA's rotation to `target`; the input is not modified.

    Raises BadParameter for a move the phase machine does not allow (naming the allowed ones).
    `new_keys` generates the new key pair (needed to leave standby); `mode` and `grace_period`
    are recorded when a rotation starts.
    """
    check_phase(target)
    current = phase_of(spec)
    if target not in NEXT[current]:
        allowed = " or ".join(NEXT[current])
        raise BadParameter(
            f"cannot move the rotation from phase {current!r} to {target!r}: from {current!r} "
            f"the next phase is {allowed}"
        )
    out = copy.deepcopy(spec)
    checking = list(out.get("checking_keys") or [])
    signing = list(out.get("signing_keys") or [])
    rot = copy.deepcopy(rotation_of(spec))
    if target == INIT:
        if new_keys is None:
            raise BadParameter("starting a rotation needs new keys")
        if len(checking) != 1 or len(signing) != 1:
            raise BadParameter("a CA in standby must hold exactly one key pair")
        pub, priv = new_keys()
        checking, signing = [checking[0], pub], [signing[0], priv]
        rot = {"state": "in_progress", "phase": INIT, "mode": mode, "started": now,
               "grace_period": float(grace_period), "last_rotated": rot.get("last_rotated", 0.0),
               "schedule": schedule(now, grace_period) if mode == AUTO else {}}
    elif target == UPDATE_CLIENTS:
        # the new pair (index 1 in init) becomes the signer; the old one stays trusted
        checking, signing = [checking[1], checking[0]], [signing[1], signing[0]]
    elif target == ROLLBACK:
        if current != INIT:  # in the update phases the old pair is at index 1: it signs again
            checking, signing = [checking[1], checking[0]], [signing[1], signing[0]]
        rot["mode"] = MANUAL  # a rollback is always an administrator's step
        rot["schedule"] = {}
    elif target == STANDBY:
        checking, signing = checking[:1], signing[:1]
        if current == UPDATE_SERVERS:
            rot["last_rotated"] = now
        rot["state"] = STANDBY
        rot["schedule"] = {}
    rot["phase"] = target
    out["checking_keys"], out["signing_keys"], out["rotation"] = checking, signing, rot
    return out


def due_phase(spec: dict[str, Any], now: float) -> str | None:
    """In auto mode, the phase the rotation should move to now (None: nothing is due)."""
    rot = rotation_of(spec)
    if rot.get("mode") != AUTO or rot.get("state") != "in_progress":
        return None
    phase = phase_of(spec)
    if phase not in AUTO_ORDER[:-1]:
        return None
    nxt = AUTO_ORDER[AUTO_ORDER.index(phase) + 1]
    at = (rot.get("schedule") or {}).get(nxt)
    if at is None or now >= float(at):
        return nxt
    return None


def start_auto(spec: dict[str, Any], now: float, new_keys: NewKeys, grace_period: float) -> dict[str, Any]:
    """Start an automatic rotation; a grace period of 0 walks every phase at once (the old
    certificates are refused immediately, as the original product's `--grace-period=0`)."""
    out = transition(spec, INIT, now, new_keys, AUTO, grace_period)
    if grace_period <= 0:
        while (nxt := due_phase(out, now)) is not None:
            out = transition(out, nxt, now)
    return out


def status_line(ca_type: str, spec: dict[str, Any], now: float) -> str:
    """One line of `tctl status`: the CA's rotation state, phase and when it moves on."""
    rot = rotation_of(spec)
    phase = phase_of(spec)
    if rot.get("state") != "in_progress":
        last = float(rot.get("last_rotated") or 0.0)
        when = _utc(last) if last else "never"
        return f"{ca_type} CA: standby (not rotating), last rotated: {when}"
    text = f"{ca_type} CA: rotating ({rot.get('mode') or MANUAL}), phase: {phase}"
    nxt = due_phase(spec, float("inf"))
    at = (rot.get("schedule") or {}).get(nxt or "")
    if nxt and at is not None:
        text += f", moves to {nxt} at {_utc(float(at))} (in {max(0, int(float(at) - now))}s)"
    else:
        text += f", next: tctl auth rotate --manual --type={ca_type} --phase={'|'.join(NEXT[phase])}"
    return text


def _utc(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# the auth service's part ---------------------------------------------------------------------
class RotationMixin(HostsMixin):
    """`tctl auth rotate` on the auth server: moves CAs through the phases in the store, and the
    signers of this auth server follow the store (so several auth servers agree). Hosts re-issue
    their own identities here when the host CA's signer changed."""

    async def reissue_host_identity(
        self, caller: tlsca.Identity, addresses: list[str]
    ) -> HostIdentity:
        """A node's or proxy's identity signed by the current signing keys, for the host that
        proves it holds the current one (`caller`, from its client certificate): only ever its
        own host id and role, under the name it registered with."""
        if caller.system_role not in ("Node", "Proxy") or not caller.host_id:
            raise AccessDenied(
                f"only a node or a proxy re-issues its own identity, not a "
                f"{caller.system_role.lower()} identity"
            )
        if caller.cluster_name != self.cluster_name:
            raise AccessDenied(f"identity of cluster {caller.cluster_name!r}, not {self.cluster_name!r}")
        try:
            record = await self.store.get_host(caller.host_id)
        except NotFound:
            raise AccessDenied(
                f"host {caller.host_id} has no registration record: join it again with a token"
            ) from None
        if caller.system_role not in record.get("roles", []):
            raise AccessDenied(f"host {caller.host_id} holds no {caller.system_role} identity")
        if len(addresses) > 32 or not all(isinstance(a, str) and 0 < len(a) <= 255 for a in addresses):
            raise BadParameter("addresses must be at most 32 host names or IP addresses")
        return await self.issue_host_identity(
            caller.system_role, caller.host_id, str(record.get("nodename", "")), addresses
        )

    def _new_ssh_keys(self) -> tuple[str, str]:
        key = cakeys.generate_private_key(self.ca_key_type)
        return cakeys.public_key_to_openssh(key), cakeys.private_key_to_pem(key).decode()

    async def rotate_ca(
        self, ca_type: str, mode: str = AUTO, phase: str = "", grace_period: float | None = None
    ) -> list[dict[str, Any]]:
        """Start a rotation (auto, or manual with phase=init) or move a manual one to `phase`
        for `ca_type` (user, host or all); returns the new rotation records (no secrets)."""
        if mode not in (AUTO, MANUAL):
            raise BadParameter(f"rotation mode must be {AUTO} or {MANUAL}, not {mode!r}")
        types = list(ROTATABLE) if ca_type == "all" else [ca_type]
        for t in types:
            if t not in ROTATABLE:
                raise BadParameter(
                    f"cannot rotate the {t!r} CA: expected --type=user, host or all (rotating the "
                    "internal TLS CA is not supported yet)"
                )
        grace = defaults.ROTATION_GRACE_PERIOD if grace_period is None else float(grace_period)
        if grace < 0:
            raise BadParameter("the grace period cannot be negative")
        if mode == MANUAL:
            check_phase(phase)
        # refuse up front rather than rotate one CA of "all" and fail on the other
        for t in types:
            current = phase_of((await self.store.get_ca(t)).spec)
            if mode == AUTO and current != STANDBY:
                raise BadParameter(
                    f"the {t} CA is already rotating (phase {current}): finish it with "
                    f"'tctl auth rotate --manual --type={t} --phase=...' or wait for it"
                )
            if mode == MANUAL and phase not in NEXT[current]:
                transition((await self.store.get_ca(t)).spec, phase, _now())  # raises, says why
        out = []
        for t in types:
            now = _now()
            if mode == AUTO:
                spec = await self.store.swap_ca(
                    t, lambda s, now=now: start_auto(s, now, self._new_ssh_keys, grace)  # type: ignore[misc]
                )
            else:
                spec = await self.store.swap_ca(
                    t, lambda s, now=now: transition(s, phase, now, self._new_ssh_keys, MANUAL, grace)  # type: ignore[misc]
                )
            log.warning("%s CA rotation: phase %s (%s)", t, phase_of(spec), rotation_of(spec).get("mode"))
            out.append({"type": t, "rotation": rotation_of(spec)})
        await self._load_signers()
        return out

    async def rotation_tick(self) -> None:
        """Move auto rotations whose time has come; load the signers the store holds now (another
        auth server may have moved a phase)."""
        for t in ROTATABLE:
            spec = (await self.store.get_ca(t)).spec
            now = _now()
            if due_phase(spec, now) is not None:

                def step(s: dict[str, Any], now: float = now) -> dict[str, Any]:
                    nxt = due_phase(s, now)
                    return s if nxt is None else transition(s, nxt, now)

                spec = await self.store.swap_ca(t, step)
                log.warning("%s CA rotation: phase %s (auto)", t, phase_of(spec))
            await self._load_signers()

    async def run_rotations(self) -> None:
        """The auth service's background task: tick every ROTATION_TICK seconds until cancelled."""
        while True:
            await asyncio.sleep(defaults.ROTATION_TICK)
            try:
                await self.rotation_tick()
            except Exception as exc:  # a storage hiccup: try again at the next tick
                log.warning("CA rotation check failed: %s", exc)
