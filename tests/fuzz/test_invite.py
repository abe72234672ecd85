"""Fuzz: the invite URL `tsh` reads from the user (its token goes into a request path)."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from teleport.client.session import parse_invite_url
from teleport.errors import BadParameter
from tests.fuzz.strategies import expect_ok_or_error, json_like, nasty_strings

_SAFE_TOKEN = re.compile(r"[A-Za-z0-9_-]+")

_url = st.one_of(
    nasty_strings,
    st.builds(lambda h, t: f"https://{h}/web/invite/{t}", st.text(max_size=20), st.text(max_size=30)),
    st.builds(lambda t: f"https://proxy:3080/web/invite/{t}",
              st.text(alphabet="abc012./%?#&=@:-_ ", max_size=30)),
    st.text(alphabet="htps:/webinvt.%?#0123 ", max_size=50),
)


@given(st.one_of(_url, json_like))
@example("https://proxy:3080/web/invite/..%2F..%2Fv1%2Fnodes")  # the review's path traversal
@example("https://proxy:3080/web/invite/abc?next=/v1/nodes")
@example("https://proxy:3080/web/invite/abc#x")
@example("https:///web/invite/abc")
@example("https://evil@proxy:3080/web/invite/abc")
@example("https://proxy:" + "9" * 5000 + "/web/invite/abc")
@example(None)
def test_parse_invite_url(url: Any) -> None:
    """Any input is (host, token) with a token that cannot alter a URL path, or BadParameter."""
    out = expect_ok_or_error(parse_invite_url, url, errors=(BadParameter,))
    if out is not None:
        host, token = out
        assert host and "/" not in host and "@" not in host
        assert _SAFE_TOKEN.fullmatch(token)
        assert url.strip() in (f"https://{host}/web/invite/{token}",
                               f"https://{host}/web/invite/{token}/")


@given(st.sampled_from(["proxy.example.com:3080", "10.0.0.1:3080", "[::1]:3080", "proxy"]),
       st.text(alphabet="0123456789abcdef", min_size=32, max_size=64))
def test_round_trip(host: str, token: str) -> None:
    """The URLs auth prints (https://<proxy public addr>/web/invite/<hex>) parse back."""
    assert parse_invite_url(f"https://{host}/web/invite/{token}") == (host, token)
    assert parse_invite_url(f"  https://{host}/web/invite/{token}/\n") == (host, token)
