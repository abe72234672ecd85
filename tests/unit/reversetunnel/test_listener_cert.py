"""The agent's check of the tunnel server's certificate: a proxy of its own cluster only."""

from __future__ import annotations

import pytest

from teleport.ca import keys, sshcert
from teleport.errors import AccessDenied
from teleport.reversetunnel.authz import check_proxy_cert

CLUSTER = "example"


def _cert(ca: keys.PrivateKey, role: str, cluster: str = CLUSTER) -> str:
    pub = keys.public_key_to_openssh(keys.generate_private_key())
    return sshcert.sign_host_cert(ca, pub, host_id="p1", nodename="proxy", cluster_name=cluster, role=role)


def test_a_proxy_of_the_cluster_is_accepted() -> None:
    ca = keys.generate_private_key()
    info = check_proxy_cert(_cert(ca, "Proxy"), CLUSTER, [keys.public_key_to_openssh(ca)])
    assert info.key_id


@pytest.mark.parametrize("role", ["Node", "Auth", ""])
def test_other_hosts_of_the_cluster_are_refused(role: str) -> None:
    ca = keys.generate_private_key()
    with pytest.raises(AccessDenied, match="not of a proxy"):
        check_proxy_cert(_cert(ca, role), CLUSTER, [keys.public_key_to_openssh(ca)])


def test_another_ca_or_cluster_is_refused() -> None:
    ca, other = keys.generate_private_key(), keys.generate_private_key()
    with pytest.raises(AccessDenied, match="not trusted"):
        check_proxy_cert(_cert(other, "Proxy"), CLUSTER, [keys.public_key_to_openssh(ca)])
    with pytest.raises(AccessDenied, match="cluster 'elsewhere'"):
        check_proxy_cert(_cert(ca, "Proxy", "elsewhere"), CLUSTER, [keys.public_key_to_openssh(ca)])


def test_a_user_certificate_is_refused() -> None:
    ca = keys.generate_private_key()
    pub = keys.public_key_to_openssh(keys.generate_private_key())
    line = sshcert.sign_user_cert(ca, pub, username="joe", principals=["joe"], ttl=3600, roles=["access"])
    with pytest.raises(AccessDenied, match="user certificate"):
        check_proxy_cert(line, CLUSTER, [keys.public_key_to_openssh(ca)])
