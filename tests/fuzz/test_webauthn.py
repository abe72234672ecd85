"""The security key parsers take whatever a browser (or an attacker) sends: junk must end in a
TeleportError that says what was wrong (AccessDenied or BadParameter), never another exception."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from teleport.auth import webauthn as wa
from teleport.errors import TeleportError

_b64 = st.binary(max_size=80).map(lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode())
_scalar = st.none() | st.booleans() | st.integers() | st.text(max_size=30) | _b64
_json = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=10)
_response = st.fixed_dictionaries({}, optional={
    "clientDataJSON": _b64 | _json, "attestationObject": _b64 | _json,
    "authenticatorData": _b64 | _json, "signature": _b64 | _json, "userHandle": _b64 | _json,
})
_credential = st.one_of(
    _json,
    st.text(max_size=60),
    st.fixed_dictionaries({}, optional={
        "id": _b64 | _json, "rawId": _b64 | _json, "type": st.just("public-key") | _json,
        "response": _response | _json, "clientExtensionResults": _json,
        "authenticatorAttachment": _json,
    }),
).map(lambda v: json.dumps(v) if isinstance(v, dict) and len(v) % 2 else v)

_DEVICE = {"id": "AAAA", "public_key": base64.urlsafe_b64encode(b"\xa1\x01\x02").decode(),
           "sign_count": 0}


def _only_teleport_errors(call: Any) -> None:
    try:
        call()
    except TeleportError as err:
        assert err.message
    else:
        raise AssertionError("junk was accepted")


@given(_credential)
def test_registration_junk(credential: Any) -> None:
    _only_teleport_errors(lambda: wa.verify_registration(
        credential, b"c" * 32, "localhost", ["https://localhost:3080"], "key"))


@given(_credential)
def test_authentication_junk(credential: Any) -> None:
    _only_teleport_errors(lambda: wa.verify_authentication(
        credential, b"c" * 32, "localhost", ["https://localhost:3080"], _DEVICE))


@given(_credential)
def test_credential_id_junk(credential: Any) -> None:
    try:
        assert wa.credential_id(credential)
    except TeleportError as err:
        assert err.message


@given(st.text(max_size=40))
def test_relying_party_names(text: str) -> None:
    for call in (lambda: wa.check_rp_id(text, "x"), lambda: wa.rp_from_u2f(text),
                 lambda: wa.unb64(text)):
        try:
            call()
        except TeleportError as err:
            assert err.message
    assert wa.origin_of(text).startswith("https://")
