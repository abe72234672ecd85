"""User certificates signed per second by one process (Ed25519 CA), beside the raw Ed25519 rate.

Run: python bench/bench_certs.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import base64
import platform
import time

import cryptography
from cryptography.hazmat.primitives.asymmetric import ed25519

from teleport import defaults
from teleport.ca import keys, sshcert

N_USERS = 100  # distinct keys and names, so nothing is accidentally reused between signings


def bench_certs(
    ca: keys.PrivateKey, users: list[tuple[str, str]], seconds: float
) -> tuple[int, float, str]:
    n = 0
    last = ""
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        # Check the clock every 100 certs to keep its cost out of the figure.
        for i in range(100):
            name, pub = users[(n + i) % len(users)]
            last = sshcert.sign_user_cert(
                ca,
                pub,
                username=name,
                principals=[name, "root"],
                ttl=defaults.USER_CERT_TTL,
                roles=["admin", "dev"],
                traits={"logins": [name, "root"]},
                route_to_cluster="example.com",
            )
        n += 100
        now = time.perf_counter()
        if now >= deadline:
            return n, now - start, last


def bench_raw(ca: ed25519.Ed25519PrivateKey, message: bytes, seconds: float) -> tuple[int, float]:
    sign = ca.sign
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            sign(message)
        n += 100
        now = time.perf_counter()
        if now >= deadline:
            return n, now - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement")
    args = parser.parse_args()

    ca = keys.generate_private_key("ed25519")
    assert isinstance(ca, ed25519.Ed25519PrivateKey)
    users = [
        (f"user{i}", keys.public_key_to_openssh(keys.generate_private_key("ed25519")))
        for i in range(N_USERS)
    ]
    # Warm up (imports, caches) before timing.
    bench_certs(ca, users, 0.2)

    n, elapsed, last = bench_certs(ca, users, args.seconds)
    # The certificate must be a correct one, or the figure means nothing.
    info = sshcert.verify_cert_signature(last, [keys.public_key_to_openssh(ca)])
    assert info.roles == ["admin", "dev"] and info.key_id.startswith("user")

    # The raw limit: one Ed25519 signature over a message the size of a certificate's signed body.
    body_len = len(base64.b64decode(last.split()[1])) - (4 + 11 + 4 + 64 + 4)  # minus the signature
    raw_n, raw_elapsed = bench_raw(ca, b"\x00" * body_len, args.seconds)

    certs_per_s = n / elapsed
    sigs_per_s = raw_n / raw_elapsed
    print(
        f"python {platform.python_version()}, cryptography {cryptography.__version__}, {platform.machine()}"
    )
    print(
        f"user certificates signed (Ed25519 CA, one process): {certs_per_s:,.0f}/s  ({n:,} in {elapsed:.1f} s)"
    )
    print(f"raw Ed25519 signatures over {body_len} bytes (the limit): {sigs_per_s:,.0f}/s")
    print(f"ratio certificates / raw signatures: {certs_per_s / sigs_per_s:.2f}")
    print(f"target 5,000 certs/s: {'met' if certs_per_s >= 5000 else 'NOT met'}")


if __name__ == "__main__":
    main()
