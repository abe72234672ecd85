"""Reading secrets from the user: the terminal when there is one, else standard input lines
(so that scripts and tests can pipe answers)."""

from __future__ import annotations

import getpass
import sys

from teleport.errors import BadParameter


def ask_secret(prompt: str) -> str:
    """Ask without echo on a terminal; read a line from stdin otherwise."""
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    sys.stderr.write(prompt)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        sys.stderr.write("\n")
        raise BadParameter(f"no input for {prompt.strip().rstrip(':')!r} (standard input is closed)")
    sys.stderr.write("\n")
    return line.rstrip("\n")


def ask(prompt: str) -> str:
    """Ask with echo."""
    if sys.stdin.isatty():
        return input(prompt)
    return ask_secret(prompt)
