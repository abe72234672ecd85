"""Fuzz: the signed Teleport-Proxy header a node reads from the network before the SSH banner.

parse_proxy_header documents AccessDenied for every header it does not accept."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from teleport.ca import keys, sshcert
from teleport.errors import AccessDenied
from teleport.node.proxyheader import PREFIX, make_proxy_header, parse_proxy_header
from tests.fuzz.strategies import expect_ok_or_error, json_like, json_objects, mutated

NOW = 1_700_000_000.0
CA = keys.generate_private_key()
CA_KEYS = [keys.public_key_to_openssh(CA)]
_PROXY_KEY = keys.generate_private_key()
PROXY_PRIV = keys.private_key_to_openssh(_PROXY_KEY)
PROXY_CERT = sshcert.sign_host_cert(CA, keys.public_key_to_openssh(_PROXY_KEY), host_id="p1",
                                    nodename="proxy", cluster_name="c", role="Proxy")
VALID = make_proxy_header("10.0.0.5:4242", "10.0.0.9:3022", PROXY_PRIV, PROXY_CERT, now=NOW)
VALID_FIELDS: dict[str, Any] = json.loads(base64.b64decode(VALID[len(PREFIX):].strip()))


def _line(fields: Any) -> bytes:
    return PREFIX + base64.b64encode(json.dumps(fields).encode()) + b"\r\n"


def _parse(line: bytes) -> dict[str, Any] | None:
    return expect_ok_or_error(parse_proxy_header, line, CA_KEYS, now=NOW, errors=(AccessDenied,))


def test_valid_header_is_accepted() -> None:
    """The base header the mutations start from is accepted, with the proxy's id."""
    out = parse_proxy_header(VALID, CA_KEYS, now=NOW)
    assert out["client_addr"] == "10.0.0.5:4242" and out["proxy_id"] == "p1"


@given(st.binary(max_size=400))
@example(b"")
@example(PREFIX)
@example(PREFIX + b"\xff\xfe\r\n")
@example(PREFIX + base64.b64encode(b"\xff\xfe"))  # base64 of bytes that are not UTF-8
@example(PREFIX + base64.b64encode(b"[" * 100000))  # nesting deeper than the recursion limit
def test_arbitrary_bytes(raw: bytes) -> None:
    """Arbitrary bytes, with or without the prefix, are refused with AccessDenied."""
    assert _parse(raw) is None
    assert _parse(PREFIX + raw) is None


@given(st.one_of(json_like, json_objects))
def test_arbitrary_json(fields: Any) -> None:
    """Any base64 JSON payload that is not a header signed by the proxy is refused."""
    assert _parse(_line(fields)) is None


@given(mutated(VALID_FIELDS))
@example({**VALID_FIELDS, "time": 10**400})  # float(now) - int once raised OverflowError
@example({**VALID_FIELDS, "time": True})
@example({**VALID_FIELDS, "client_addr": "6.6.6.6:1"})  # forged address, old signature
@example({k: v for k, v in VALID_FIELDS.items() if k != "sig"})  # missing signature
@example({**VALID_FIELDS, "sig": ""})
@example({**VALID_FIELDS, "sig": base64.b64encode(b"\0" * 64).decode()})
@example({**VALID_FIELDS, "proxy_cert": "x" * 20000})
@example({**VALID_FIELDS, "recording_proxy": True})  # "the proxy records": must be signed
@example({**VALID_FIELDS, "recording_proxy": False})
@example({**VALID_FIELDS, "recording_proxy": "yes"})
def test_forged_or_mutated_fields(fields: dict[str, Any]) -> None:
    """A header whose signed fields changed, or whose signature is missing or forged, is refused;
    only changes outside the signed fields (an extra key) may still pass, unchanged."""
    out = _parse(_line(fields))
    if out is not None:
        assert {k: out[k] for k in ("client_addr", "node_addr", "time", "proxy_cert")} == {
            k: VALID_FIELDS[k] for k in ("client_addr", "node_addr", "time", "proxy_cert")}
        assert fields["sig"] == VALID_FIELDS["sig"]
        # nobody but the proxy can tell a node to keep quiet about a connection
        assert out["recording_proxy"] is False


@given(st.binary(min_size=1, max_size=96))
def test_random_signature(sig: bytes) -> None:
    """A random signature over the valid fields never passes."""
    assert _parse(_line({**VALID_FIELDS, "sig": base64.b64encode(sig).decode()})) is None


@given(st.text(max_size=40), st.text(max_size=40), st.integers(-60, 60))
def test_sign_parse_round_trip(client: str, node: str, skew: int) -> None:
    """Whatever addresses a proxy signs come back unchanged within the allowed clock skew."""
    line = make_proxy_header(client, node, PROXY_PRIV, PROXY_CERT, now=NOW + skew)
    out = parse_proxy_header(line, CA_KEYS, now=NOW)
    assert (out["client_addr"], out["node_addr"], out["proxy_id"]) == (client, node, "p1")


def test_other_cluster_ca_is_refused() -> None:
    """A header signed by a proxy of another cluster is refused."""
    other = [keys.public_key_to_openssh(keys.generate_private_key())]
    assert expect_ok_or_error(parse_proxy_header, VALID, other, now=NOW,
                              errors=(AccessDenied,)) is None
