"""`tsh agent`: an OpenSSH `ssh-agent` holding the logged-in key and certificate.

The agent protocol is OpenSSH's own: we start `ssh-agent` and load the key with `ssh-add -t`
(it picks up `<key>-cert.pub` next to the key), so the key leaves the agent when the
certificate expires.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

from teleport.errors import BadParameter, TeleportError


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise BadParameter(f"'{tool}' is not installed: tsh agent uses OpenSSH's {tool}")
    return path


def start_agent(key_path: str, cert_valid_before: int) -> dict[str, str]:
    """Start ssh-agent, add the key + certificate for the certificate's remaining lifetime;
    returns {"SSH_AUTH_SOCK": ..., "SSH_AGENT_PID": ...}."""
    remaining = int(cert_valid_before - time.time())
    if remaining <= 0:
        raise BadParameter("your certificate has expired: run 'tsh login' first")
    out = subprocess.run(
        [_need("ssh-agent"), "-s"], capture_output=True, text=True, timeout=10, check=False
    )
    if out.returncode != 0:
        raise TeleportError(f"ssh-agent failed: {out.stderr.strip()}")
    env = dict(re.findall(r"(SSH_AUTH_SOCK|SSH_AGENT_PID)=([^;]+);", out.stdout))
    if "SSH_AUTH_SOCK" not in env or "SSH_AGENT_PID" not in env:
        raise TeleportError(f"unexpected ssh-agent output: {out.stdout!r}")
    add = subprocess.run(
        [_need("ssh-add"), "-t", str(remaining), key_path],
        capture_output=True,
        text=True,
        timeout=10,
        env={**os.environ, "SSH_AUTH_SOCK": env["SSH_AUTH_SOCK"]},
        check=False,
    )
    if add.returncode != 0:
        try:
            os.kill(int(env["SSH_AGENT_PID"]), 15)
        except (OSError, ValueError):
            pass
        raise TeleportError(f"ssh-add could not load {key_path}: {add.stderr.strip()}")
    return env


def shell_lines(env: dict[str, str]) -> str:
    """The lines ssh-agent prints, for `eval $(tsh agent)`."""
    return (
        f"SSH_AUTH_SOCK={env['SSH_AUTH_SOCK']}; export SSH_AUTH_SOCK;\n"
        f"SSH_AGENT_PID={env['SSH_AGENT_PID']}; export SSH_AGENT_PID;\n"
        f"echo Agent pid {env['SSH_AGENT_PID']};\n"
    )
