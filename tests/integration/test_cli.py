"""The command-line surface: help texts, version, configure, and clear start-up errors."""

from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

from tests.helpers import cli, env_with

pytestmark = pytest.mark.integration


def run(tool: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli(tool), *args], capture_output=True, text=True, env=env_with(),
                          timeout=timeout)


@pytest.mark.parametrize(
    "tool,args,expect",
    [
        ("teleport", [], "auth, proxy and node"),
        ("teleport", ["start"], "--roles"),
        ("teleport", ["configure"], "sample"),
        ("teleport", ["version"], "version"),
        ("tctl", [], "Administer"),
        ("tctl", ["users"], "add"),
        ("tctl", ["users", "add"], "signup URL"),
        ("tctl", ["users", "ls"], "List users"),
        ("tctl", ["users", "del"], "Delete"),
        ("tctl", ["nodes", "add"], "join token"),
        ("tctl", ["nodes", "ls"], "online"),
        ("tctl", ["tokens", "ls"], "List join tokens"),
        ("tctl", ["tokens", "del"], "Revoke"),
        ("tctl", ["auth", "export"], "authorized_keys"),
        ("tctl", ["auth", "ls"], "fingerprints"),
        ("tctl", ["auth", "sign"], "certificate"),
        ("tsh", [], "short-lived certificate"),
        ("tsh", ["login"], "password"),
        ("tsh", ["logout"], "Remove"),
        ("tsh", ["status"], "profile"),
        ("tsh", ["signup"], "invite"),
    ],
)
def test_help_says_what_it_does(tool: str, args: list[str], expect: str) -> None:
    res = run(tool, *args, "--help")
    assert res.returncode == 0, res.stderr
    assert expect.lower() in res.stdout.lower()


def test_version() -> None:
    res = run("teleport", "version")
    assert res.returncode == 0 and res.stdout.startswith("Teleport v")


def test_configure_output_is_accepted_by_start_validation() -> None:
    from teleport.config.fileconf import load_config_file

    res = run("teleport", "configure")
    assert res.returncode == 0 and "auth_service:" in res.stdout and "#" in res.stdout
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(res.stdout)
    try:
        cfg = load_config_file(f.name)
        assert cfg.roles() == ["auth", "node", "proxy"]
    finally:
        os.unlink(f.name)


@pytest.mark.parametrize(
    "text,needle",
    [
        ("teleport:\n  storge: {type: dir}\n", "teleport.storge"),
        ("auth_service:\n  listen_addr: 'abc:xyz'\n", "auth_service.listen_addr"),
        ("teleport:\n  storage: {type: mongo}\n", "teleport.storage"),
        ("auth_service:\n  authentication: {second_factor: yubikey}\n", "second_factor"),
        ("teleport: [\n", "invalid YAML"),
    ],
)
def test_bad_config_stops_start_with_one_clear_line(text: str, needle: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "teleport.yaml")
        with open(path, "w") as f:
            f.write(text)
        res = run("teleport", "start", "-c", path)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert path in lines[0] and needle in lines[0]
    assert "Traceback" not in res.stderr


def test_missing_config_file_says_how_to_make_one() -> None:
    res = run("teleport", "start", "-c", "/nonexistent/teleport.yaml")
    assert res.returncode != 0 and "teleport configure" in res.stderr


def test_bad_roles_flag() -> None:
    res = run("teleport", "start", "--roles=auth,bogus")
    assert res.returncode != 0 and "bogus" in res.stderr and "Traceback" not in res.stderr


def test_tctl_without_auth_service_explains() -> None:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "teleport.yaml")
        with open(path, "w") as f:
            f.write(f"teleport:\n  data_dir: {d}/data\n")
        res = run("tctl", "-c", path, "users", "ls")
    assert res.returncode != 0 and "must run on the host of" in res.stderr
