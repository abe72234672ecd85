"""Login benchmark: the login request's latency through the proxy, and tsh's wall time.

Starts a real single-host cluster (auth + proxy) on loopback, signs up N users, then measures:
  1. POST /v1/webapi/ssh/certs latency (password + one-time code + signing), p50/p95 over N logins;
  2. the wall time of whole `tsh login` and `tsh status` processes, with `python -c pass` (the
     interpreter's own start-up) and `ssh-keygen -L` (an OpenSSH tool reading the same cert)
     measured beside them as references.

Run: python bench/bench_login.py [--logins 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tests.helpers import cli, destroy, env_with, new_cluster  # noqa: E402


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


async def signup_users(cluster, n: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from teleport.auth.client import AuthClient, client_ssl_context
    from teleport.client.session import complete_signup, parse_invite_url, signup_info
    from teleport.client.webclient import WebClient

    keys = os.path.join(cluster.data_dir, "keys")
    with open(os.path.join(keys, "tls-ca.pem"), "rb") as f:
        ca = f.read()
    client = AuthClient([cluster.auth_addr], client_ssl_context(
        ca, os.path.join(keys, "admin-cert.pem"), os.path.join(keys, "admin-key.pem")))
    secrets = {}
    async with client:
        for i in range(n):
            name = f"bench{i}"
            inv = await client.create_invite(name, [name], [], None, "")
            proxy, token = parse_invite_url(inv["url"])
            web = WebClient(proxy, insecure=True)
            secret = signup_info(web, token)["otp_secret"]
            code = cluster.otp.code(name, secret)
            await asyncio.to_thread(complete_signup, web, token, "bench-password", code)
            secrets[name] = secret
    return secrets


def time_cmd(cmd: list[str], env: dict[str, str], runs: int, input: str | None = None) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, input=input, capture_output=True, text=True, check=True)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--logins", type=int, default=50)
    ap.add_argument("--runs", type=int, default=15, help="runs of each whole-process timing")
    args = ap.parse_args()

    cluster = new_cluster()
    try:
        cluster.start()
        secrets = asyncio.run(signup_users(cluster, args.logins))
        cluster.secrets.update(secrets)

        from teleport.ca import keys as cakeys
        from teleport.client.webclient import WebClient

        web = WebClient(cluster.web_addr, insecure=True)
        pub = cakeys.public_key_to_openssh(cakeys.generate_private_key("ed25519"))
        lat = []
        for name, secret in secrets.items():
            code = cluster.otp.code(name, secret)
            body = {"user": name, "password": "bench-password", "otp_token": code, "pub_key": pub, "ttl": 3600}
            t = time.perf_counter()
            web.call("POST", "/v1/webapi/ssh/certs", body)
            lat.append(time.perf_counter() - t)

        env = env_with(TELEPORT_HOME=cluster.home)
        name = "bench0"
        login_times = []
        users = list(secrets)
        for i in range(min(args.runs, len(users))):
            u = users[i]
            code = cluster.otp.code(u, secrets[u])
            t = time.perf_counter()
            subprocess.run([*cli("tsh"), "--insecure", f"--proxy={cluster.web_addr}", f"--user={u}", "login"],
                           input=f"bench-password\n{code}\n", env=env, capture_output=True, text=True, check=True)
            login_times.append(time.perf_counter() - t)
        status = time_cmd([*cli("tsh"), "status"], env, args.runs)
        python = time_cmd([sys.executable, "-c", "pass"], env, args.runs)
        cert = os.path.join(cluster.home, "keys", "127.0.0.1", f"{users[min(args.runs, len(users)) - 1]}-cert.pub")
        keygen = time_cmd(["ssh-keygen", "-L", "-f", cert], env, args.runs)
        del name

        ms = 1000
        print(f"login request (POST /v1/webapi/ssh/certs, {len(lat)} logins, argon2id + TOTP + signing):")
        print(f"  p50 {pct(lat, 50) * ms:.1f} ms   p95 {pct(lat, 95) * ms:.1f} ms   (aim: p50 < 150 ms)")
        print("whole processes (median of runs):")
        p_med = statistics.median(python)
        for label, vals in (("tsh login", login_times), ("tsh status", status),
                            ("python -c pass", python), ("ssh-keygen -L", keygen)):
            med = statistics.median(vals)
            print(f"  {label:16s} {med * ms:7.1f} ms   ({med / p_med:.2f}x python start-up)")
        print(f"  tsh status aim: < 150 ms wall -> {'met' if statistics.median(status) < 0.150 else 'NOT met'}")
    finally:
        destroy(cluster)


if __name__ == "__main__":
    main()
