"""WebAuthn ceremonies for the auth service, over the `webauthn` library (Duo Labs' py_webauthn).

Pure: no I/O. The auth service stores challenges (single use, short-lived) and devices; this
module only builds options and verifies answers with the library (attestation, assertion, origin,
RP id and sign counter checks are all the library's, never ours).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import webauthn
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from teleport import defaults
from teleport.auth.relyingparty import (  # noqa: F401 - re-exported for the auth code
    SECOND_FACTOR_ALIASES,
    SECOND_FACTORS,
    WebAuthnSettings,
    allows_otp,
    allows_webauthn,
    check_rp_id,
    host_of,
    origin_of,
    rp_from_u2f,
)
from teleport.errors import AccessDenied, BadParameter


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise BadParameter("bad base64url value") from None


def registration_options(rp_id: str, rp_name: str, user: str, existing: list[dict[str, Any]]) -> tuple[dict[str, Any], bytes]:
    """Options for navigator.credentials.create() (JSON-ready) and the challenge to keep."""
    opts = webauthn.generate_registration_options(
        rp_id=rp_id, rp_name=rp_name, user_name=user, user_display_name=user,
        user_id=user.encode(),
        timeout=int(defaults.WEBAUTHN_CHALLENGE_TTL * 1000),
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.DISCOURAGED,
            user_verification=UserVerificationRequirement.DISCOURAGED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=unb64(d["id"])) for d in existing],
    )
    return json.loads(webauthn.options_to_json(opts)), opts.challenge


def verify_registration(
    credential: Any, challenge: bytes, rp_id: str, origins: list[str], name: str
) -> dict[str, Any]:
    """Check a new key's answer; returns the device record to store."""
    try:
        v = webauthn.verify_registration_response(
            credential=_credential(credential), expected_challenge=challenge,
            expected_rp_id=rp_id, expected_origin=origins,
        )
    except WebAuthnException as exc:
        raise AccessDenied(f"security key registration refused: {exc}") from None
    return {
        "id": b64(v.credential_id), "public_key": b64(v.credential_public_key),
        "sign_count": v.sign_count, "name": name, "added": time.time(), "last_used": 0.0,
    }


def authentication_options(rp_id: str, devices: list[dict[str, Any]]) -> tuple[dict[str, Any], bytes]:
    """Options for navigator.credentials.get() and the challenge to keep."""
    opts = webauthn.generate_authentication_options(
        rp_id=rp_id, timeout=int(defaults.WEBAUTHN_CHALLENGE_TTL * 1000),
        allow_credentials=[PublicKeyCredentialDescriptor(id=unb64(d["id"])) for d in devices],
        user_verification=UserVerificationRequirement.DISCOURAGED,
    )
    return json.loads(webauthn.options_to_json(opts)), opts.challenge


def credential_id(credential: Any) -> str:
    """The key id an answer claims (to find the device; the library checks it against rawId)."""
    data = _credential(credential)
    cid = data.get("id") if isinstance(data, dict) else None
    if not isinstance(cid, str) or not cid:
        raise BadParameter("the security key's answer has no credential id")
    return cid.rstrip("=")


def verify_authentication(
    credential: Any, challenge: bytes, rp_id: str, origins: list[str], device: dict[str, Any]
) -> int:
    """Check a key's signature over the challenge; returns its new sign counter (the library
    refuses a counter that did not grow: a cloned key)."""
    try:
        v = webauthn.verify_authentication_response(
            credential=_credential(credential), expected_challenge=challenge,
            expected_rp_id=rp_id, expected_origin=origins,
            credential_public_key=unb64(device["public_key"]),
            credential_current_sign_count=int(device.get("sign_count", 0)),
        )
    except WebAuthnException as exc:
        raise AccessDenied(f"security key refused: {exc}") from None
    return int(v.new_sign_count)


def _credential(credential: Any) -> dict[str, Any]:
    if isinstance(credential, str):
        try:
            credential = json.loads(credential)
        except ValueError:
            raise BadParameter("the security key's answer is not JSON") from None
    if not isinstance(credential, dict):
        raise BadParameter("the security key's answer must be a JSON object")
    return credential
