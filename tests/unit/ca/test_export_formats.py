"""tctl auth export's formats: openssh (reference), openssh-ca (TrustedUserCAKeys), --compat=1.0."""

from __future__ import annotations

import pytest

from teleport.ca import keys
from teleport.ca.export import export_lines
from teleport.errors import BadParameter


def _pub() -> str:
    return keys.public_key_to_openssh(keys.generate_private_key("ed25519"))


def test_formats() -> None:
    u, h = _pub(), _pub()
    cas = [("user", "c1", u), ("host", "c1", h), ("tls", "c1", "ignored")]
    ref = export_lines(cas, None, "openssh", None)
    assert ref == [f"cert-authority {u} clustername=c1&type=user", f"@cert-authority * {h} type=host"]
    bare = export_lines(cas, "user", "openssh-ca", None)
    assert bare == [f"{u} user-ca@c1"]
    compat = export_lines(cas, "user", "openssh", "1.0")
    assert compat == [f"@cert-authority * {u} type=user"]
    with pytest.raises(BadParameter):
        export_lines(cas, None, "pem", None)
