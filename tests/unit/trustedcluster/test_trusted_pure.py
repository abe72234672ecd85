"""Pure parts of trusted clusters: the resource and its role_map, the static key_file, which
leaf proxy may hold a tunnel, the cluster channel's requests, the leaf's wanted tunnels, tsh's
cluster check, the exchange's certificate pin."""

from __future__ import annotations

from typing import Any

import pytest

from teleport.ca import keys, sshcert, tlsca
from teleport.ca.export import export_lines
from teleport.client.clusters import check_cluster, known_clusters
from teleport.errors import AccessDenied, BadParameter, NotFound
from teleport.reversetunnel import clusterchan
from teleport.reversetunnel.authz import check_agent_cert, check_cluster_agent_cert
from teleport.trustedcluster.agents import wanted_tunnels
from teleport.trustedcluster.exchange import cert_pin
from teleport.trustedcluster.resource import (
    RoleMapping,
    map_roles,
    parse_key_file,
    parse_role_map,
    parse_trusted_cluster,
)

VALID: dict[str, Any] = {
    "kind": "trusted_cluster",
    "version": "v2",
    "metadata": {"name": "main"},
    "spec": {
        "enabled": True,
        "token": "abc123",
        "web_proxy_addr": "main.example.com:3080",
        "tunnel_addr": "main.example.com:3024",
        "role_map": [{"remote": "admin", "local": ["access"]}, {"remote": "dev-*", "local": "dev"}],
    },
}


def _with(**spec: Any) -> dict[str, Any]:
    return {**VALID, "spec": {**VALID["spec"], **spec}}


def test_resource_parses_and_hides_its_token() -> None:
    tc = parse_trusted_cluster(VALID)
    assert tc.name == "main" and tc.enabled and tc.tunnel_addr == "main.example.com:3024"
    assert tc.role_map == (RoleMapping("admin", ("access",)), RoleMapping("dev-*", ("dev",)))
    assert "token" not in tc.to_dict()["spec"] and tc.to_dict(with_token=True)["spec"]["token"] == "abc123"
    assert parse_trusted_cluster(tc.to_dict(with_token=True)) == tc


@pytest.mark.parametrize("bad, match", [
    (_with(token=""), "spec.token"),
    (_with(web_proxy_addr="no-port"), "web_proxy_addr"),
    (_with(tunnel_addr="h:99999"), "tunnel_addr"),
    (_with(enabled="yes"), "spec.enabled"),
    (_with(ca_pin="md5:00"), "ca_pin"),
    (_with(role_map=[{"remote": "^(bad$", "local": ["x"]}]), "regular expression"),
    (_with(role_map=[{"remote": "a", "local": []}]), "local"),
    (_with(role_map=[{"remote": "a", "local": ["x"], "extra": 1}]), "only"),
    (_with(surprise=1), "unknown field"),
    ({**VALID, "metadata": {"name": "bad/name"}}, "cluster name"),
    ({**VALID, "kind": "role"}, "kind"),
])
def test_resource_errors_name_the_field(bad: dict[str, Any], match: str) -> None:
    with pytest.raises(BadParameter, match=match):
        parse_trusted_cluster(bad)


def test_role_map_exact_glob_regex_and_unmapped() -> None:
    rm = parse_role_map([{"remote": "admin", "local": ["a"]}, {"remote": "dev-*", "local": ["d"]},
                         {"remote": "^ops-[0-9]+$", "local": ["o", "a"]}])
    assert map_roles(rm, ["admin"]) == ["a"]
    assert map_roles(rm, ["dev-eu"]) == ["d"]
    assert map_roles(rm, ["ops-12", "admin"]) == ["o", "a"]
    assert map_roles(rm, ["ops-x", "devops", "Admin"]) == []  # no mapping: nothing at all
    assert map_roles((), ["admin"]) == []


def _ca_line() -> str:
    return keys.public_key_to_openssh(keys.generate_private_key())


def test_key_file_of_tctl_auth_export() -> None:
    user, host = _ca_line(), _ca_line()
    text = "\n".join(export_lines([("user", "main", user), ("host", "main", host), ("tls", "main", "x")],
                                  None, "openssh", None))
    cas = parse_key_file(text + "\n", "main.cas")
    assert cas.cluster == "main" and cas.user == [user] and cas.host == [host]
    ca_form = "\n".join(export_lines([("user", "main", user), ("host", "main", host)], None, "openssh-ca", None))
    assert parse_key_file(ca_form, "f") == cas


def test_key_file_errors() -> None:
    user = _ca_line()
    two = "\n".join(export_lines([("user", "a", user), ("user", "b", _ca_line())], None, "openssh", None))
    with pytest.raises(BadParameter, match="exactly one cluster"):
        parse_key_file(two, "two.cas")
    with pytest.raises(BadParameter, match="f:1: not a CA line"):
        parse_key_file("hello world\n", "f")
    with pytest.raises(BadParameter, match="exactly one cluster"):
        parse_key_file("", "f")


def _host_cert(ca: keys.PrivateKey, host_id: str, role: str, cluster: str) -> str:
    pub = keys.public_key_to_openssh(keys.generate_private_key())
    return sshcert.sign_host_cert(ca, pub, host_id=host_id, nodename="p1", cluster_name=cluster, role=role)


def test_leaf_proxy_tunnel_only_for_its_own_cluster() -> None:
    leaf_ca, other_ca = keys.generate_private_key(), keys.generate_private_key()
    trusted = {"leaf": [keys.public_key_to_openssh(leaf_ca)], "other": [keys.public_key_to_openssh(other_ca)]}
    line = _host_cert(leaf_ca, "p1", "Proxy", "leaf")
    info, cluster = check_cluster_agent_cert(line, "p1.leaf", trusted)
    assert cluster == "leaf" and info.key_id == "p1"
    with pytest.raises(AccessDenied, match="only as"):
        check_cluster_agent_cert(line, "p1.other", trusted)
    # the leaf's CA signing a certificate that names another cluster
    with pytest.raises(AccessDenied, match="cluster 'other' signed by the host CA of 'leaf'"):
        check_cluster_agent_cert(_host_cert(leaf_ca, "p1", "Proxy", "other"), "p1.other", trusted)
    # a leaf's node holds no cluster tunnel; an untrusted CA opens nothing
    with pytest.raises(AccessDenied, match="proxy's"):
        check_cluster_agent_cert(_host_cert(leaf_ca, "n1", "Node", "leaf"), "n1.leaf", trusted)
    with pytest.raises(AccessDenied, match="not signed"):
        check_cluster_agent_cert(_host_cert(keys.generate_private_key(), "p1", "Proxy", "leaf"), "p1.leaf", trusted)
    # and a leaf's certificate is no node tunnel of the root
    with pytest.raises(AccessDenied):
        check_agent_cert(line, "p1.leaf", "root", [_ca_line()])


def test_cluster_channel_requests() -> None:
    req = {"op": "dial", "host": "n1", "port": 3022, "client": "1.2.3.4:5", "cert": "c"}
    assert clusterchan.parse_request(clusterchan.encode_request(req).rstrip(b"\n")) == req
    for bad in (b"junk", b"[]", b'{"op":"shell","cert":"c"}', b'{"op":"nodes"}',
                b'{"op":"dial","cert":"c","host":"n","port":true,"client":""}',
                b'{"op":"dial","cert":"c","host":"n","port":70000,"client":""}'):
        with pytest.raises(BadParameter):
            clusterchan.parse_request(bad)


def test_leaf_wants_a_tunnel_per_enabled_root_with_an_address() -> None:
    recs = [
        {"cluster_name": "main", "type": "user", "relation": "root", "enabled": True, "tunnel_addr": "m:3024",
         "checking_keys": ["u"]},
        {"cluster_name": "main", "type": "host", "relation": "root", "enabled": True, "tunnel_addr": "m:3024",
         "checking_keys": ["h"]},
        {"cluster_name": "off", "type": "host", "relation": "root", "enabled": False, "tunnel_addr": "o:3024",
         "checking_keys": ["h"]},
        {"cluster_name": "leafy", "type": "host", "relation": "leaf", "enabled": True, "checking_keys": ["h"]},
        {"cluster_name": "noaddr", "type": "host", "relation": "root", "enabled": True, "checking_keys": ["h"]},
    ]
    assert wanted_tunnels(recs) == {"main": ("m:3024", ["h"])}


def test_tsh_cluster_check_with_leaves() -> None:
    leaves = [{"name": "leaf", "status": "online"}]
    assert check_cluster("leaf", "root", leaves) == "leaf"
    assert check_cluster("", "root", leaves) == "root"
    with pytest.raises(NotFound, match="'nope' is not known to this proxy, which knows 'root', 'leaf'"):
        check_cluster("nope", "root", leaves)
    assert [c["type"] for c in known_clusters("root", leaves)] == ["local", "leaf"]


def test_exchange_pin_is_the_tls_ca_pin_form() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    _, cert_pem = tlsca.self_signed_https_cert(["localhost"], ["127.0.0.1"])
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    assert cert_pin(der) == tlsca.ca_pin(cert_pem)


def test_which_trusted_clusters_are_our_leaves() -> None:
    from teleport.trustedcluster.proxyside import accepts_tunnel

    assert accepts_tunnel({"source": "dynamic", "relation": "leaf"})
    assert not accepts_tunnel({"source": "dynamic", "relation": "root", "tunnel_addr": "m:3024"})
    # static: the side that dials (tunnel_addr) is the leaf, whatever logins either side allows
    assert accepts_tunnel({"source": "static", "relation": "root", "allow_logins": ["x"]})
    assert not accepts_tunnel({"source": "static", "relation": "root", "tunnel_addr": "m:3024"})


def test_leaf_host_cas_in_known_hosts_name_only_the_leaf(tmp_path: Any) -> None:
    from teleport.client.trusted import leaves_in_known_hosts, remember_leaf_cas

    path = str(tmp_path / "known_hosts")
    with open(path, "w") as f:
        f.write("@cert-authority proxy,root,*.root,* ssh-ed25519 AAAA type=host clustername=root\n")
    key = _ca_line()
    remember_leaf_cas(path, [{"name": "leaf", "host_ca_keys": [key]}])
    remember_leaf_cas(path, [{"name": "leaf", "host_ca_keys": [key]}])  # replaced, not repeated
    lines = open(path).read().splitlines()
    assert lines[0].endswith("clustername=root") and len(lines) == 2
    assert lines[1].startswith("@cert-authority *.leaf,[*.leaf]:* ") and lines[1].endswith("clustername=leaf")
    assert leaves_in_known_hosts(path, "root") == ["leaf"]
