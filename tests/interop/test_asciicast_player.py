"""What `tsh play --format=cast` writes is played by Debian's asciinema (the real binary)."""

from __future__ import annotations

import errno
import fcntl
import os
import select
import shutil
import subprocess
import termios
import time
from pathlib import Path

import pytest

from teleport.recording.asciicast import CastWriter, read_cast, to_plain_cast

pytestmark = pytest.mark.interop

# Output a shell session could print: UTF-8 (split across reads below), colours, a resize between.
CHUNKS = [
    (0.10, "$ echo héllo ✓ 😀\r\n".encode()),
    (0.20, b"h\xc3"),
    (0.21, b"\xa9llo \xe2\x9c"),
    (0.22, b"\x93 " + "😀\r\n".encode()),
    (0.50, b"\x1b[1;31mred\x1b[0m\r\n"),
    (3.00, b"after a long pause\r\n"),
]
EXPECTED = b"".join(c for _, c in CHUNKS)


@pytest.fixture(scope="module")
def asciinema() -> str:
    found = shutil.which("asciinema")
    if not found:
        pytest.fail("asciinema not found: install it (e.g. apt-get install -y asciinema)")
    return found


@pytest.fixture()
def cast_file(tmp_path: Path) -> Path:
    gz = tmp_path / "session.cast.gz"
    with CastWriter(str(gz), 80, 24, title="alice@node-1",
                    env={"TERM": "xterm-256color", "SHELL": "/bin/bash"}) as w:
        for t, data in CHUNKS[:3]:
            w.output(data, t)
        w.resize(120, 40, 0.215)
        for t, data in CHUNKS[3:]:
            w.output(data, t)
    plain = tmp_path / "session.cast"
    plain.write_text(to_plain_cast(str(gz)), encoding="utf-8")
    return plain


def run_in_pty(cmd: list[str], timeout: float = 30.0) -> bytes:
    """Run cmd with a pseudo-terminal as its controlling tty (asciinema cat opens /dev/tty)."""
    master, slave = os.openpty()

    def take_tty() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        cmd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, preexec_fn=take_tty
    )
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError as exc:
                    if exc.errno == errno.EIO:  # the slave side closed: the program exited
                        break
                    raise
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        else:
            pytest.fail(f"{cmd} did not finish within {timeout} s")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)
    assert proc.returncode == 0, out.decode(errors="replace")
    return bytes(out)


def test_our_cast_reads_back(cast_file: Path) -> None:
    _, events = read_cast(cast_file)
    assert "".join(d for _, k, d in events if k == "o").encode() == EXPECTED
    assert [d for _, k, d in events if k == "r"] == ["120x40"]


def test_asciinema_cat_prints_the_output(asciinema: str, cast_file: Path) -> None:
    out = run_in_pty([asciinema, "cat", str(cast_file)])
    # The pty turns \n into \r\n; our data already has \r\n, so compare with the tty's translation.
    assert EXPECTED.replace(b"\r\n", b"\r\r\n") in out or EXPECTED in out, out


def test_asciinema_play_plays_it(asciinema: str, cast_file: Path) -> None:
    start = time.monotonic()
    # -i caps idle time (our 2.5 s pause), -s speeds up: the player honours our timing fields.
    proc = subprocess.run(
        [asciinema, "play", "-i", "0.2", "-s", "2", str(cast_file)],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert EXPECTED in proc.stdout
    assert elapsed < 2.5, f"idle cap not applied: playback took {elapsed:.2f} s"
