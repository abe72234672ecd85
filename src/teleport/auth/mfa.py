"""Security keys (WebAuthn) and the account's own actions: registering and removing keys, the
two halves of a key login, changing the password.

Challenges live in the backend (so any auth server finishes what another began), under the
digest of a random id, for WEBAUTHN_CHALLENGE_TTL; taking one deletes it, so each is used once.
A user's keys are a per-user secret ("webauthn"), updated by compare-and-swap so that concurrent
logins cannot roll a sign counter back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from typing import Any

from teleport import defaults
from teleport.auth import webauthn as wa
from teleport.auth.login import LoginMixin
from teleport.auth.store import _json, _user
from teleport.backend.base import Item
from teleport.errors import AccessDenied, BadParameter, CompareFailed, NotFound
from teleport.types.resources import User

log = logging.getLogger(__name__)

CHALLENGE_EXPIRED = "the security key challenge has expired or was already used: start again"


def _challenge_key(challenge_id: str) -> str:
    if not isinstance(challenge_id, str) or not 20 <= len(challenge_id) <= 64:
        raise AccessDenied(CHALLENGE_EXPIRED)
    return f"/webauthn/challenges/{hashlib.sha256(challenge_id.encode()).hexdigest()}"


def _device_name(name: Any, devices: list[dict[str, Any]]) -> str:
    text = str(name or "").strip() or f"key {len(devices) + 1}"
    if len(text) > 64 or not text.isprintable():
        raise BadParameter("a key name is at most 64 printable characters")
    if any(d.get("name") == text for d in devices):
        raise BadParameter(f"you already have a key named {text!r}: choose another name")
    return text


class MFAMixin(LoginMixin):
    """WebAuthn devices and ceremonies, password changes."""

    webauthn_settings: wa.WebAuthnSettings = wa.WebAuthnSettings()

    async def relying_party(self) -> tuple[str, list[str]]:
        """The RP id and the origins the browser's answers may come from."""
        s = self.webauthn_settings
        proxies = await self.store.list_nodes(kind="proxies")
        addrs = [str(p.spec["public_addr"]) for p in proxies if p.spec.get("public_addr")]
        if s.rp_id:
            rp_id = wa.check_rp_id(s.rp_id, "auth_service.authentication.webauthn.rp_id")
        elif addrs:
            rp_id = wa.check_rp_id(wa.host_of(addrs[0]), "the proxy's public address")
        else:
            raise BadParameter("no proxy has registered yet: security keys need the proxy's host name")
        origins = list(s.origins)
        for addr in addrs:
            host = wa.host_of(addr).lower()
            if host == rp_id or host.endswith("." + rp_id):
                origins.append(wa.origin_of(addr))
        return rp_id, sorted(set(origins))

    def _check_mode(self) -> None:
        if not wa.allows_webauthn(self.second_factor):
            raise BadParameter(
                f"this cluster's second factor is {self.second_factor!r}: security keys need "
                "auth_service.authentication.second_factor webauthn, on or optional"
            )

    # challenges -------------------------------------------------------------------------
    async def _put_challenge(self, challenge: bytes, **data: Any) -> str:
        challenge_id = secrets.token_urlsafe(32)
        value = json.dumps({**data, "challenge": wa.b64(challenge)}).encode()
        await self.store.backend.create(Item(
            _challenge_key(challenge_id), value, expires=time.time() + defaults.WEBAUTHN_CHALLENGE_TTL,
        ))
        return challenge_id

    async def _take_challenge(self, challenge_id: str, purpose: str, user: str) -> bytes:
        """The stored challenge, deleted first (single use); AccessDenied unless it was issued
        for this purpose and this user."""
        key = _challenge_key(challenge_id)
        try:
            item = await self.store.backend.get(key)
            # a tombstone first, so that of two concurrent uses only one wins
            await self.store.backend.compare_and_swap(item, Item(key, b"{}", expires=time.time() + 1))
        except (NotFound, CompareFailed):
            raise AccessDenied(CHALLENGE_EXPIRED) from None
        await self.store.backend.delete(key)
        data = json.loads(item.value)
        if item.expired() or data.get("purpose") != purpose or data.get("user") != user:
            raise AccessDenied(CHALLENGE_EXPIRED)
        return wa.unb64(str(data["challenge"]))

    # devices ------------------------------------------------------------------------------
    async def _devices_state(self, user: str) -> dict[str, Any] | None:
        try:
            return await self.store.get_user_secret(user, "webauthn")
        except NotFound:
            return None

    async def webauthn_devices(self, user: str) -> list[dict[str, Any]]:
        state = await self._devices_state(user)
        return list(state["devices"]) if state else []

    async def mfa_summary(self, user: str) -> dict[str, Any]:
        """What the account page shows: the keys (no key material) and whether TOTP is set."""
        devices = [{k: d[k] for k in ("id", "name", "added", "last_used")}
                   for d in await self.webauthn_devices(user)]
        return {"devices": devices, "totp": await self._has_secret(user, "totp"),
                "second_factor": self.second_factor}

    async def begin_registration(self, user: str, invite_digest: str = "") -> dict[str, Any]:
        """Options for a new key (of a user, or of an invite's future user)."""
        self._check_mode()
        existing = await self.webauthn_devices(user) if not invite_digest else []
        if len(existing) >= defaults.WEBAUTHN_MAX_DEVICES:
            raise BadParameter(f"you have {len(existing)} keys, the most allowed: remove one first")
        rp_id, _ = await self.relying_party()
        options, challenge = wa.registration_options(rp_id, self.cluster_name, user, existing)
        cid = await self._put_challenge(challenge, purpose="register", user=user, invite=invite_digest)
        return {"challenge_id": cid, "options": options}

    async def verify_new_device(self, user: str, reg: Any) -> dict[str, Any]:
        """Check a registration answer {challenge_id, credential, name}; returns the device."""
        if not isinstance(reg, dict):
            raise BadParameter("the key registration must be {challenge_id, credential, name}")
        challenge = await self._take_challenge(str(reg.get("challenge_id") or ""), "register", user)
        rp_id, origins = await self.relying_party()
        devices = await self.webauthn_devices(user)
        name = _device_name(reg.get("name"), devices)
        return wa.verify_registration(reg.get("credential"), challenge, rp_id, origins, name)

    async def store_device(self, user: str, device: dict[str, Any]) -> None:
        for _ in range(5):
            state = await self._devices_state(user)
            devices = list(state["devices"]) if state else []
            if any(d["id"] == device["id"] for d in devices):
                raise BadParameter("this security key is already registered")
            new = {"devices": [*devices, device]}
            try:
                if state is None:
                    await self.store.backend.create(
                        Item(f"{_user(user)}/webauthn", _json(new)))
                else:
                    await self.store.swap_user_secret(user, "webauthn", state, new)
                return
            except CompareFailed:
                continue
        raise AccessDenied("the user's keys changed meanwhile: try again")

    async def add_device(self, user: str, password: str, reg: Any) -> dict[str, Any]:
        """Register a key from the account page (the password proves it is the user)."""
        await self.check_password(user, password)
        device = await self.verify_new_device(user, reg)
        await self.store_device(user, device)
        return {k: device[k] for k in ("id", "name", "added")}

    async def remove_device(self, user: str, password: str, device_id: str) -> None:
        """Remove a key; the last one only where the cluster does not require keys alone."""
        await self.check_password(user, password)
        state = await self._devices_state(user)
        devices = list(state["devices"]) if state else []
        left = [d for d in devices if d["id"] != device_id]
        if state is None or len(left) == len(devices):
            raise NotFound("no such security key")
        if not left and self.second_factor == "webauthn":
            raise BadParameter("this is your only security key and the cluster requires one: add another first")
        if not left and self.second_factor == "on" and not await self._has_secret(user, "totp"):
            raise BadParameter("this is your only second factor: add another key first")
        try:
            if left:
                await self.store.swap_user_secret(user, "webauthn", state, {"devices": left})
            else:
                await self.store.backend.compare_and_swap(
                    Item(f"{_user(user)}/webauthn", _json(state)),
                    Item(f"{_user(user)}/webauthn", b"", expires=time.time() + 1))
                await self.store.backend.delete(f"{_user(user)}/webauthn")
        except (CompareFailed, NotFound):
            raise AccessDenied("the user's keys changed meanwhile: reload and try again") from None

    async def check_password(self, user: str, password: str) -> None:
        """AccessDenied unless this is the user's password (one argon2 check)."""
        try:
            encoded = (await self.store.get_user_secret(user, "pwd"))["hash"]
        except NotFound:
            raise AccessDenied("wrong password") from None
        if not await self.hasher.verify(encoded, password):
            raise AccessDenied("wrong password")

    # login with a key --------------------------------------------------------------------
    async def begin_key_login(self, user: str, password: str, remote_addr: str) -> dict[str, Any]:
        """The first half: the password (with the usual limits and lockout), then a challenge
        for the user's keys."""
        self._check_mode()
        checked = await self.check_credentials(user, password, "", remote_addr, password_only=True)
        devices = await self.webauthn_devices(checked.name)
        if not devices:
            raise AccessDenied("this user has no security key: log in with a one-time code")
        rp_id, _ = await self.relying_party()
        options, challenge = wa.authentication_options(rp_id, devices)
        cid = await self._put_challenge(challenge, purpose="login", user=checked.name)
        return {"challenge_id": cid, "options": options}

    async def finish_key_login(self, user: str, answer: Any) -> User:
        """The second half: the key's signature over the challenge of the first half; the sign
        counter must grow."""
        if not isinstance(answer, dict):
            raise BadParameter("the key's answer must be {challenge_id, credential}")
        challenge = await self._take_challenge(str(answer.get("challenge_id") or ""), "login", user)
        credential = answer.get("credential")
        cid = wa.credential_id(credential)
        rp_id, origins = await self.relying_party()
        for _ in range(5):
            state = await self._devices_state(user)
            devices = list(state["devices"]) if state else []
            device = next((d for d in devices if d["id"] == cid), None)
            if state is None or device is None:
                raise AccessDenied("this security key is not registered for this user")
            count = wa.verify_authentication(credential, challenge, rp_id, origins, device)
            updated = [{**d, "sign_count": count, "last_used": time.time()} if d is device else d
                       for d in devices]
            try:
                await self.store.swap_user_secret(user, "webauthn", state, {"devices": updated})
                return await self.store.get_user(user)
            except CompareFailed:
                continue  # another login moved the counter: check against the new one
        raise AccessDenied("the security key was used concurrently: try again")

    # password ----------------------------------------------------------------------------
    async def change_password(
        self, user: str, old: str, new: str, otp_code: str, key_answer: Any, remote_addr: str
    ) -> None:
        """The old password and the second factor (a code, or a key's answer to a challenge
        begun with the old password), then the new password."""
        wa_answer = isinstance(key_answer, dict) and key_answer.get("challenge_id")
        if wa_answer:
            await self.finish_key_login(user, key_answer)
            await self.check_password(user, old)
        else:
            await self.check_credentials(user, old, otp_code, remote_addr)
        from teleport.auth.secrets import check_password_strength

        check_password_strength(new)
        if new == old:
            raise BadParameter("the new password is the same as the old one")
        await self.store.put_user_secret(user, "pwd", {"hash": await self.hasher.hash(new)})
