"""SSH path benchmark: tsh through the Teleport proxy vs OpenSSH through an OpenSSH jump host.

Side by side in one run on this machine:
  - a real single-host Teleport cluster (auth + proxy + node, loopback ports), user logged in;
  - two OpenSSH sshd (a bastion and a node) on loopback ports, a fresh key, `ssh -J`.
Measures:
  1. connection latency p50/p95 of whole processes: `tsh ssh root@testnode true` vs
     `ssh -J bastion node true`;
  2. throughput of an upload and a download of one file (default 1 GiB): `tsh scp` vs `scp -J`,
     several rounds with the sides interleaved, medians compared (and each round's ratio shown);
  3. interactive output through a PTY: `cat` of a text file in `tsh ssh -t` vs `ssh -tt -J`.
Both sides log in as a dedicated OS user whose shell is /bin/sh with no rc files, so that a login
shell's start-up does not hide the SSH path's own cost.
Prints the ratios (Teleport / OpenSSH for latency; Teleport / OpenSSH for throughput).

Run (as root, from the repository root):  python bench/bench_ssh.py [--runs 20] [--mib 1024] [--rounds 3] [--pty-mib 200]
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
from collections.abc import Callable

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


BENCH_USER = "tpbenchssh"


def make_user(name: str) -> str:
    """A dedicated OS account with /bin/sh and an empty home (no rc files), so that neither side's
    timings include a login shell's start-up; returns its home."""
    subprocess.run(["userdel", "-r", "-f", name], capture_output=True)
    subprocess.run(["useradd", "-m", "-k", "/dev/null", "-s", "/bin/sh", name], check=True)
    # "!" (locked, useradd's default) makes sshd refuse even key logins without PAM
    subprocess.run(["usermod", "-p", "*", name], check=True)
    return os.path.expanduser(f"~{name}")


def interleaved(rounds: int, sides: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Run each side once per round, alternating which goes first, so drift hits both alike."""
    out: dict[str, list[float]] = {k: [] for k in sides}
    names = list(sides)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            out[name].append(sides[name]())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20, help="latency runs per side")
    ap.add_argument("--mib", type=int, default=1024, help="file size for scp")
    ap.add_argument("--rounds", type=int, default=3, help="scp and PTY rounds per side")
    ap.add_argument("--pty-mib", type=int, default=200, help="bytes printed through a PTY")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark creates an OS user and runs two sshd")

    d = tempfile.mkdtemp(prefix="bench-ssh-")
    os.chmod(d, 0o755)
    home = make_user(BENCH_USER)
    cluster = new_cluster(roles="auth,proxy,node")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # OpenSSH side
        ukey = os.path.join(d, "user")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", ukey], check=True)
        authorized = os.path.join(d, "authorized_keys")
        shutil.copy(ukey + ".pub", authorized)
        os.chmod(authorized, 0o644)
        bastion, bport = start_sshd(d, "bastion", authorized)
        node, nport = start_sshd(d, "node", authorized)
        procs += [bastion, node]
        cfg = os.path.join(d, "ssh_config")
        with open(cfg, "w") as f:
            f.write(
                f"Host *\n  User {BENCH_USER}\n  HostName 127.0.0.1\n  IdentityFile " + ukey + "\n"
                "  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
                "  LogLevel ERROR\n  BatchMode yes\n"
                f"Host bastion\n  Port {bport}\nHost node\n  Port {nport}\n  ProxyJump bastion\n"
            )
        ssh = ["ssh", "-F", cfg]

        # Teleport side
        cluster.start()
        wait_port(cluster.ports["node"], 20, cluster.proc)
        cluster.add_user("bench", BENCH_USER)
        cluster.login("bench")
        env = env_with(TELEPORT_HOME=cluster.home)
        tsh = [*cli("tsh")]
        deadline = time.time() + 20
        while "testnode" not in subprocess.run([*tsh, "ls"], env=env, capture_output=True, text=True).stdout:
            if time.time() > deadline:
                raise RuntimeError("node not listed")
            time.sleep(0.3)
        node_port = str(cluster.ports["node"])
        target = f"{BENCH_USER}@testnode"

        # 1. latency, interleaved so that noise hits both alike
        timed([*tsh, "ssh", "-p", node_port, target, "true"], env)  # warm caches
        timed([*ssh, "node", "true"])
        lat = interleaved(args.runs, {
            "tsh": lambda: timed([*tsh, "ssh", "-p", node_port, target, "true"], env),
            "openssh": lambda: timed([*ssh, "node", "true"]),
        })
        t_lat, o_lat = lat["tsh"], lat["openssh"]

        # 2. scp throughput, rounds interleaved, medians compared
        src = os.path.join(d, "blob.bin")
        with open(src, "wb") as f:
            chunk = os.urandom(1 << 20)
            for _ in range(args.mib):
                f.write(chunk)
        os.chmod(src, 0o644)
        size = args.mib * (1 << 20)
        back = os.path.join(d, "back.bin")
        up = interleaved(args.rounds, {
            "teleport": lambda: timed([*tsh, "scp", "-q", "-P", node_port, src, f"{target}:{home}/t.bin"], env),
            "openssh": lambda: timed(["scp", "-q", "-F", cfg, "-J", "bastion", src, f"node:{home}/o.bin"]),
        })
        down = interleaved(args.rounds, {
            "teleport": lambda: timed([*tsh, "scp", "-q", "-P", node_port, f"{target}:{home}/t.bin", back], env),
            "openssh": lambda: timed(["scp", "-q", "-F", cfg, "-J", "bastion", f"node:{home}/o.bin", back]),
        })

        # 3. interactive output through a PTY: the same text file printed by cat in a PTY session
        text = os.path.join(home, "listing.txt")
        with open(text, "w") as f:
            line = "-rw-r--r-- 1 root root  4096 Dec  2 12:00 some-file-name.txt\n"
            f.write(line * (args.pty_mib * (1 << 20) // len(line)))
        pty_size = os.path.getsize(text)
        pty = interleaved(args.rounds, {
            "teleport": lambda: timed([*tsh, "ssh", "-t", "-p", node_port, target, "cat", text], env),
            "openssh": lambda: timed([*ssh, "-tt", "node", "cat", text]),
        })

        ms = 1000
        med = statistics.median
        print(f"connection latency, whole processes, {args.runs} runs each (login shell {BENCH_USER}: /bin/sh, no rc files):")
        print(f"  tsh ssh node true      p50 {pct(t_lat, 50) * ms:7.1f} ms   p95 {pct(t_lat, 95) * ms:7.1f} ms")
        print(f"  ssh -J bastion node    p50 {pct(o_lat, 50) * ms:7.1f} ms   p95 {pct(o_lat, 95) * ms:7.1f} ms")
        print(f"  ratio (tsh / OpenSSH)  p50 {pct(t_lat, 50) / pct(o_lat, 50):.2f}x   p95 {pct(t_lat, 95) / pct(o_lat, 95):.2f}x   (aim <= 1.5x)")
        print(f"throughput, medians of {args.rounds} interleaved rounds (per-round ratios in brackets):")
        for way, res, n in (("upload", up, size), ("download", down, size), ("PTY output", pty, pty_size)):
            t = n / med(res["teleport"]) / (1 << 20)
            o = n / med(res["openssh"]) / (1 << 20)
            rounds = ", ".join(f"{b / a:.2f}" for a, b in zip(res["teleport"], res["openssh"], strict=True))
            tool = "tsh ssh -t" if way == "PTY output" else "tsh scp"
            ref = "ssh -tt -J" if way == "PTY output" else "scp -J"
            print(f"  {way:10s} {tool} {t:7.1f} MiB/s   {ref} {o:7.1f} MiB/s   ratio {t / o:.2f}x [{rounds}]   (aim >= 1.0x)")
    finally:
        for p in procs:
            kill_proc(p)
        destroy(cluster)
        shutil.rmtree(d, ignore_errors=True)
        subprocess.run(["userdel", "-r", "-f", BENCH_USER], capture_output=True)


if __name__ == "__main__":
    main()
