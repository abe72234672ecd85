"""Small file helpers: secrets written 0600 atomically, private directories 0700."""

from __future__ import annotations

import os

from teleport import defaults


def write_secret(path: str, data: bytes | str) -> None:
    """Write a file only its owner can read (0600), atomically (no partial file on a crash)."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, defaults.SECRET_FILE_MODE)
    try:
        os.write(fd, raw)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, defaults.SECRET_FILE_MODE)
    os.replace(tmp, path)


def write_public(path: str, data: bytes | str, mode: int = 0o644) -> None:
    """Write a non-secret file atomically."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(raw)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def ensure_private_dir(path: str) -> str:
    """Create a directory (and parents) readable only by its owner; tighten it if it exists."""
    os.makedirs(path, mode=defaults.DATA_DIR_MODE, exist_ok=True)
    os.chmod(path, defaults.DATA_DIR_MODE)
    return path
