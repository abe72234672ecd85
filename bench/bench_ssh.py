"""SSH path benchmark: tsh through the Teleport proxy vs OpenSSH through an OpenSSH jump host.

Side by side in one run on this machine:
  - a real single-host Teleport cluster (auth + proxy + node, loopback ports), user logged in;
  - two OpenSSH sshd (a bastion and a node) on loopback ports, a fresh key, `ssh -J`.
Measures:
  1. connection latency p50/p95 of whole processes: `tsh ssh root@testnode true` vs
     `ssh -J bastion node true`;
  2. throughput of a download and an upload of one file (default 1 GiB): `tsh scp` vs `scp -J`.
Prints the ratios (Teleport / OpenSSH for latency; Teleport / OpenSSH for throughput).

Run (as root, from the repository root):  python bench/bench_ssh.py [--runs 20] [--mib 1024]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tests.helpers import cli, destroy, env_with, free_port, kill_proc, new_cluster, wait_port  # noqa: E402


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def start_sshd(d: str, name: str, authorized: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    hostkey = os.path.join(d, f"{name}_host")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostkey], check=True)
    conf = os.path.join(d, f"{name}_sshd_config")
    with open(conf, "w") as f:
        f.write(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {hostkey}\nAuthorizedKeysFile {authorized}\n"
            f"PidFile {d}/{name}.pid\nPermitRootLogin yes\nUsePAM no\nStrictModes no\n"
            "PasswordAuthentication no\nSubsystem sftp /usr/lib/openssh/sftp-server\n"
        )
    os.makedirs("/run/sshd", exist_ok=True)
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", conf], stderr=subprocess.DEVNULL)
    wait_port(port, 10, proc)  # type: ignore[arg-type]
    return proc, port


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])}... failed: {res.stderr.strip()[-500:]}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--mib", type=int, default=1024)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: both sides log in as root on this machine")

    d = tempfile.mkdtemp(prefix="bench-ssh-")
    cluster = new_cluster(roles="auth,proxy,node")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # OpenSSH side
        ukey = os.path.join(d, "user")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", ukey], check=True)
        authorized = os.path.join(d, "authorized_keys")
        shutil.copy(ukey + ".pub", authorized)
        bastion, bport = start_sshd(d, "bastion", authorized)
        node, nport = start_sshd(d, "node", authorized)
        procs += [bastion, node]
        cfg = os.path.join(d, "ssh_config")
        with open(cfg, "w") as f:
            f.write(
                "Host *\n  User root\n  HostName 127.0.0.1\n  IdentityFile " + ukey + "\n"
                "  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
                "  LogLevel ERROR\n  BatchMode yes\n"
                f"Host bastion\n  Port {bport}\nHost node\n  Port {nport}\n  ProxyJump bastion\n"
            )
        ssh = ["ssh", "-F", cfg]

        # Teleport side
        cluster.start()
        wait_port(cluster.ports["node"], 20, cluster.proc)
        cluster.add_user("bench", "root")
        cluster.login("bench")
        env = env_with(TELEPORT_HOME=cluster.home)
        tsh = [*cli("tsh")]
        deadline = time.time() + 20
        while "testnode" not in subprocess.run([*tsh, "ls"], env=env, capture_output=True, text=True).stdout:
            if time.time() > deadline:
                raise RuntimeError("node not listed")
            time.sleep(0.3)
        node_port = str(cluster.ports["node"])

        # 1. latency, interleaved so that noise hits both alike
        t_lat, o_lat = [], []
        timed([*tsh, "ssh", "-p", node_port, "root@testnode", "true"], env)  # warm caches
        timed([*ssh, "node", "true"])
        for _ in range(args.runs):
            t_lat.append(timed([*tsh, "ssh", "-p", node_port, "root@testnode", "true"], env))
            o_lat.append(timed([*ssh, "node", "true"]))

        # 2. throughput
        src = os.path.join(d, "blob.bin")
        with open(src, "wb") as f:
            chunk = os.urandom(1 << 20)
            for _ in range(args.mib):
                f.write(chunk)
        size = args.mib * (1 << 20)
        rdir = tempfile.mkdtemp(prefix="bench-remote-")
        res = {}
        res["openssh upload"] = timed(["scp", "-q", "-F", cfg, "-J", "bastion", src, f"node:{rdir}/o.bin"])
        res["teleport upload"] = timed([*tsh, "scp", "-q", "-P", node_port, src, f"root@testnode:{rdir}/t.bin"], env)
        res["openssh download"] = timed(["scp", "-q", "-F", cfg, "-J", "bastion", f"node:{rdir}/o.bin", os.path.join(d, "o-back.bin")])
        res["teleport download"] = timed([*tsh, "scp", "-q", "-P", node_port, f"root@testnode:{rdir}/t.bin", os.path.join(d, "t-back.bin")], env)
        shutil.rmtree(rdir, ignore_errors=True)

        ms = 1000
        print(f"connection latency, whole processes, {args.runs} runs each:")
        print(f"  tsh ssh node true      p50 {pct(t_lat, 50) * ms:7.1f} ms   p95 {pct(t_lat, 95) * ms:7.1f} ms")
        print(f"  ssh -J bastion node    p50 {pct(o_lat, 50) * ms:7.1f} ms   p95 {pct(o_lat, 95) * ms:7.1f} ms")
        print(f"  ratio (tsh / OpenSSH)  p50 {pct(t_lat, 50) / pct(o_lat, 50):.2f}x   p95 {pct(t_lat, 95) / pct(o_lat, 95):.2f}x   (aim <= 1.5x)")
        print(f"throughput, {args.mib} MiB file:")
        for way in ("upload", "download"):
            t = size / res[f"teleport {way}"] / (1 << 20)
            o = size / res[f"openssh {way}"] / (1 << 20)
            print(f"  {way:8s}  tsh scp {t:7.1f} MiB/s   scp -J {o:7.1f} MiB/s   ratio {t / o:.2f}x   (aim >= 1.0x)")
        print(f"  median tsh latency {statistics.median(t_lat) * ms:.0f} ms; python start-up alone is part of it")
    finally:
        for p in procs:
            kill_proc(p)
        destroy(cluster)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
