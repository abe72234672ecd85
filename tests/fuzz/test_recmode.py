"""Fuzz: what recording proxy mode reads from others: the host names a proxy asks auth to sign
(check_host_principal, on the auth API), the mode auth announces, and the choice of the agent
certificate that may speak for a user."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from teleport.ca.sshcert import CertInfo
from teleport.errors import BadParameter
from teleport.proxy import recmode
from teleport.types.names import check_host_principal
from tests.fuzz.strategies import expect_ok_or_error

NOW = 1_700_000_000.0


@given(st.one_of(st.text(max_size=300), st.binary(max_size=40), st.none(), st.integers()))
@example("node-1.example.com")
@example("fd00::1")
@example("*.example.com")
@example("a,b")
@example("-oProxyCommand=x")
def test_host_principal_is_a_plain_name_or_a_refusal(value: object) -> None:
    """Accepted names are one host name or address: no wildcard, list, space or option."""
    out = expect_ok_or_error(check_host_principal, value, errors=(BadParameter,))
    if out is not None:
        assert out == value and isinstance(out, str)
        assert 0 < len(out) <= 253
        assert not any(c in out for c in "*?, \t\n\r/@[]")
        assert not out.startswith(("-", "."))


@given(st.one_of(st.text(max_size=20), st.none(), st.integers(), st.lists(st.text(max_size=3))))
def test_mode_is_always_a_known_one(value: object) -> None:
    assert recmode.parse_mode(value) in recmode.MODES


_certs = st.builds(
    CertInfo,
    cert_type=st.sampled_from(["user", "host"]),
    key_id=st.sampled_from(["alice", "bob", ""]),
    serial=st.integers(0, 10),
    principals=st.lists(st.sampled_from(["root", "alice", "admin"]), max_size=3),
    valid_after=st.integers(int(NOW) - 100, int(NOW) + 100),
    valid_before=st.integers(int(NOW) - 100, int(NOW) + 200),
)


@given(st.lists(_certs, max_size=6))
def test_agent_certificate_speaks_only_for_its_user(infos: list[CertInfo]) -> None:
    """The chosen certificate is a valid user certificate of exactly that user and login."""
    certs = [recmode.AgentCert(i, info) for i, info in enumerate(infos)]
    pick = recmode.pick_agent_cert(certs, "alice", "root", NOW)
    eligible = [c for c in certs if c.info.cert_type == "user" and c.info.key_id == "alice"
                and "root" in c.info.principals and c.info.valid_at(NOW)]
    if pick is None:
        assert not eligible
    else:
        assert pick in eligible
        assert pick.info.valid_before == max(c.info.valid_before for c in eligible)
