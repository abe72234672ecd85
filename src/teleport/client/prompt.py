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


def check_new_password(password: str, again: str) -> str:
    """Why a new password cannot be used ("" when it can): the auth service's length bounds
    (defaults.py), checked at once so that nobody scans a QR code for a refused password."""
    from teleport import defaults

    if len(password) < defaults.MIN_PASSWORD_LENGTH:
        return f"the password is too short: use at least {defaults.MIN_PASSWORD_LENGTH} characters"
    if len(password) > defaults.MAX_PASSWORD_LENGTH:
        return f"the password is too long: use at most {defaults.MAX_PASSWORD_LENGTH} characters"
    if password != again:
        return "the passwords do not match"
    return ""


def ask_new_password(attempts: int = 3) -> str:
    """Ask for a new password twice, again while it is refused; BadParameter after `attempts`."""
    for _ in range(attempts):
        password = ask_secret("Password: ")
        problem = check_new_password(password, ask_secret("Password (again): "))
        if not problem:
            return password
        sys.stderr.write(f"{problem}; try again.\n")
    raise BadParameter(f"no acceptable password after {attempts} tries; run 'tsh signup' again")
