"""The SSH algorithms every Teleport SSH endpoint offers: the node and proxy servers and tsh.

One list, no weaker than a stock OpenSSH sshd's defaults, and with nothing `ssh-audit` fails:
no SHA-1 (diffie-hellman-group14-sha1, hmac-sha1, ssh-rsa signatures), no group exchange (asyncssh
would serve 1024-bit moduli), no encrypt-and-MAC @ssh.com MACs or umac-64, no secp256k1
(ecdh-sha2-1.3.132.0.10), and no NIST-curve key exchange (ssh-audit fails ecdh-sha2-nistp*;
curve25519 and the 4096/8192-bit groups cover every current client). Pure data plus two small
helpers that pass it to asyncssh: never re-implement the protocol, only choose its options.
"""

from __future__ import annotations

from typing import Any

# Key exchange, strongest first. mlkem768x25519 is the post-quantum hybrid of OpenSSH 9.9+;
# sntrup761x25519 would need liboqs, which asyncssh does not load here.
KEX_ALGS = (
    "mlkem768x25519-sha256",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group16-sha512",
)

# AES-GCM first: hardware accelerated through `cryptography`, faster than ChaCha20 here (the
# client's order decides, so this is tsh's preference; servers accept any of them).
ENCRYPTION_ALGS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)

# Encrypt-then-MAC only (the AEAD ciphers above need no MAC at all).
MAC_ALGS = (
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "umac-128-etm@openssh.com",
)

# Host keys and certificates: certificates first (Teleport hosts always present one), RSA only
# with SHA-2 signatures.
HOST_KEY_ALGS = (
    "ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
)

# Signatures accepted for user authentication and made by tsh: no SHA-1 "ssh-rsa".
SIGNATURE_ALGS = (
    "ssh-ed25519",
    "sk-ssh-ed25519@openssh.com",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "rsa-sha2-512",
    "rsa-sha2-256",
)


def connection_options() -> dict[str, Any]:
    """asyncssh keyword arguments fixing the algorithms, for servers and clients alike."""
    return {
        "kex_algs": list(KEX_ALGS),
        "encryption_algs": list(ENCRYPTION_ALGS),
        "mac_algs": list(MAC_ALGS),
        "signature_algs": list(SIGNATURE_ALGS),
    }


def client_options() -> dict[str, Any]:
    """connection_options() plus the host key algorithms a client asks for."""
    return {**connection_options(), "server_host_key_algs": list(HOST_KEY_ALGS)}


def restrict_server_host_keys(options: Any) -> Any:
    """Drop the host key algorithms not in HOST_KEY_ALGS from constructed asyncssh server options
    (asyncssh derives them from the key, e.g. SHA-1 "ssh-rsa" for an RSA host key, and has no
    option to narrow them); returns `options`. Raises ValueError when nothing would be left."""
    keys = options.server_host_keys
    for alg in [a for a in keys if a.decode("ascii") not in HOST_KEY_ALGS]:
        del keys[alg]
    if not keys:
        raise ValueError(
            "the host key supports none of the allowed host key algorithms "
            f"({', '.join(HOST_KEY_ALGS)})"
        )
    return options
