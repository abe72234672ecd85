"""Session recording format: write throughput and size of gzipped asciicast v2 vs the raw bytes.

Run: python bench/bench_recording.py [--mb 40] [--level 6]

Feeds realistic terminal output (real `ls -laR --color=always` and `find` listings, source code as
`cat` prints it, syslog-style lines, `seq`), with LF turned into CRLF as a pty does, in pty-sized
chunks (1..4096 bytes) to a CastWriter on the writer's own clock, as a node's recorder would. For
each kind of output, and for all of them interleaved, it prints the writer's throughput beside
plain file writes of the same chunks and one-shot zlib of the same bytes (the ceilings), and the
recording's size against the raw bytes and against gzip of the raw bytes. Temporary files are removed at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import sysconfig
import tempfile
import time
import zlib
from collections.abc import Callable

from teleport.recording.asciicast import CastWriter, read_cast

MB = 1024 * 1024


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\n", b"\r\n")


def _cycle(data: bytes, size: int) -> bytes:
    if not data:
        raise SystemExit("a corpus source produced no output")
    reps = size // len(data) + 1
    return (data * reps)[:size]


def _cmd(args: list[str], size: int) -> bytes:
    out = subprocess.run(args, capture_output=True, check=False).stdout
    return _crlf(out[: size * 2])


def src_ls(size: int) -> bytes:
    return _cmd(["ls", "-laR", "--color=always", "/usr"], size)


def src_find(size: int) -> bytes:
    return _cmd(["find", "/usr", "-xdev"], size)


def src_source_code(size: int) -> bytes:
    root = sysconfig.get_paths()["stdlib"]
    parts: list[bytes] = []
    total = 0
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name.endswith(".py"):
                with open(os.path.join(dirpath, name), "rb") as f:
                    data = f.read()
                parts.append(f"$ cat {name}\n".encode() + data)
                total += len(data)
                if total >= size:
                    return _crlf(b"".join(parts))
    return _crlf(b"".join(parts))


def src_syslog(size: int) -> bytes:
    rng = random.Random(7)
    hosts = ["web-1", "web-2", "db-1", "cache-3"]
    procs = ["sshd", "nginx", "postgres", "kernel", "systemd", "cron"]
    msgs = [
        "Accepted publickey for {u} from 10.{a}.{b}.{c} port {p} ssh2: ED25519 SHA256:{h}",
        "GET /api/v1/items/{p} HTTP/1.1 200 {n} \"-\" \"curl/7.88.1\" rt={f}",
        "connection received: host=10.{a}.{b}.{c} port={p}",
        "pam_unix(cron:session): session opened for user {u}(uid={n}) by (uid=0)",
        "TCP: request_sock_TCP: Possible SYN flooding on port {p}. Sending cookies.",
        "Started Session {n} of User {u}.",
        "checkpoint complete: wrote {n} buffers ({f}%); 0 WAL file(s) added, 1 removed",
    ]
    out: list[str] = []
    t = 1_700_000_000
    total = 0
    while total < size:
        t += rng.randint(0, 3)
        tm = time.gmtime(t)
        line = "{} {} {}[{}]: {}\n".format(
            time.strftime("%b %d %H:%M:%S", tm),
            rng.choice(hosts),
            rng.choice(procs),
            rng.randint(100, 99999),
            rng.choice(msgs).format(
                u=rng.choice(["alice", "bob", "deploy", "root"]),
                a=rng.randint(0, 255), b=rng.randint(0, 255), c=rng.randint(0, 255),
                p=rng.randint(1024, 65535), n=rng.randint(1, 100000),
                f=f"{rng.random() * 100:.3f}", h=f"{rng.getrandbits(128):032x}",
            ),
        )
        out.append(line)
        total += len(line)
    return _crlf("".join(out).encode())


def src_seq(size: int) -> bytes:
    return _crlf("".join(f"{i}\n" for i in range(1, size // 6)).encode())


SOURCES: dict[str, Callable[[int], bytes]] = {
    "ls -laR --color": src_ls,
    "find /usr": src_find,
    "cat *.py": src_source_code,
    "syslog lines": src_syslog,
    "seq": src_seq,
}


def chunks_of(data: bytes, seed: int) -> list[bytes]:
    """Split like pty reads: mostly full 4 KiB reads, some short ones."""
    rng = random.Random(seed)
    out: list[bytes] = []
    i = 0
    while i < len(data):
        n = 4096 if rng.random() < 0.6 else rng.randint(1, 4096)
        out.append(data[i : i + n])
        i += n
    return out


def run_raw(chunks: list[bytes], path: str) -> float:
    start = time.perf_counter()
    with open(path, "wb") as f:
        for c in chunks:
            f.write(c)
        f.flush()
        os.fsync(f.fileno())
    return time.perf_counter() - start


def run_cast(chunks: list[bytes], path: str, level: int) -> tuple[float, int]:
    start = time.perf_counter()
    w = CastWriter(path, 80, 24, compresslevel=level)
    for c in chunks:
        w.output(c)
    w.close()
    return time.perf_counter() - start, w.events_written


def measure(name: str, data: bytes, tmp: str, level: int) -> None:
    chunks = chunks_of(data, seed=len(data))
    raw_path = os.path.join(tmp, "raw.bin")
    cast_path = os.path.join(tmp, "rec.cast.gz")
    raw_s = run_raw(chunks, raw_path)
    cast_s, events = run_cast(chunks, cast_path, level)
    rec = os.path.getsize(cast_path)
    t0 = time.perf_counter()
    gz = len(zlib.compress(data, level))
    gz_s = time.perf_counter() - t0
    mb = len(data) / MB
    print(
        f"{name:<17} {mb:7.1f} {mb / raw_s:9.0f} {mb / gz_s:9.1f} {mb / cast_s:9.1f} {rec / MB:9.2f} "
        f"{rec / len(data):8.3f} {gz / len(data):8.3f} {events:8d}"
    )
    # Sanity: the recording reads back to exactly the text that went in.
    _, evs = read_cast(cast_path)
    text = "".join(d for _, k, d in evs if k == "o")
    assert text == data.decode("utf-8", errors="replace"), f"{name}: recording does not read back"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=40.0, help="total raw MB for the mixed run")
    ap.add_argument("--level", type=int, default=6, help="gzip level of the recording")
    args = ap.parse_args()
    size = int(args.mb * MB)
    per = size // len(SOURCES)
    print(f"python {platform.python_version()} on {platform.machine()}, zlib {zlib.ZLIB_VERSION}, "
          f"gzip level {args.level}; chunks 1..4096 bytes, writer clock, merge 10 ms")
    corpus = {name: _cycle(fn(per), per) for name, fn in SOURCES.items()}
    print(f"{'output':<17} {'raw MB':>7} {'raw MB/s':>9} {'gzip MB/s':>9} {'rec MB/s':>9} {'rec MB':>9} "
          f"{'rec/raw':>8} {'gzip/raw':>8} {'events':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in corpus.items():
            measure(name, data, tmp, args.level)
        # All kinds interleaved in 256 KiB stretches, as a working session would print them.
        stretch = 256 * 1024
        mixed = b"".join(
            data[i : i + stretch] for i in range(0, per, stretch) for data in corpus.values()
        )
        measure("mixed (all)", mixed, tmp, args.level)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
