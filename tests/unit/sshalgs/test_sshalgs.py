"""The one algorithm list: supported by asyncssh, nothing weak, RSA host keys without SHA-1."""

from __future__ import annotations

import asyncssh
import pytest

from teleport import sshalgs

WEAK = ("sha1", "group-exchange", "1.3.132.0.10", "@ssh.com", "umac-64", "nistp256-sha256",
        "ecdh-sha2-nistp", "cbc", "arcfour", "md5")


def test_every_algorithm_is_known_to_asyncssh_and_none_is_weak() -> None:
    from asyncssh.encryption import get_encryption_algs
    from asyncssh.kex import get_kex_algs
    from asyncssh.mac import get_mac_algs

    for algs, known in ((sshalgs.KEX_ALGS, get_kex_algs()), (sshalgs.ENCRYPTION_ALGS, get_encryption_algs()),
                        (sshalgs.MAC_ALGS, get_mac_algs())):
        for alg in algs:
            assert alg.encode() in known, alg
            assert not any(w in alg for w in WEAK), alg
    assert "ssh-rsa" not in sshalgs.SIGNATURE_ALGS and "ssh-rsa" not in sshalgs.HOST_KEY_ALGS


@pytest.mark.parametrize("alg", ["ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256"])
async def test_server_options_offer_only_listed_host_key_algorithms(alg: str) -> None:
    key = asyncssh.generate_private_key(alg, key_size=2048) if alg == "ssh-rsa" else asyncssh.generate_private_key(alg)
    options = await asyncssh.SSHServerConnectionOptions.construct(
        server_host_keys=[key], **sshalgs.connection_options()
    )
    sshalgs.restrict_server_host_keys(options)
    offered = [a.decode() for a in options.server_host_keys]
    assert offered and all(a in sshalgs.HOST_KEY_ALGS for a in offered), offered
    if alg == "ssh-rsa":
        assert set(offered) == {"rsa-sha2-256", "rsa-sha2-512"}
