"""OpenSSH's command line translated for tsh (tsh called as `ssh`)."""

from __future__ import annotations

import pytest

from teleport.client.sshargs import SshUsageError, parse_ssh_argv


def test_plain_host_and_command() -> None:
    cl = parse_ssh_argv(["root@node1", "uname", "-a"])
    assert (cl.login, cl.host, cl.command) == ("root", "node1", ["uname", "-a"])
    assert cl.tsh_args() == ["ssh", "-l", "root", "-e", "~", "--", "node1", "uname", "-a"]


def test_options_before_and_after_the_host() -> None:
    cl = parse_ssh_argv(["-p", "2222", "node1", "-l", "bob", "-tt", "ls", "-l"])
    assert (cl.port, cl.login, cl.tty, cl.command) == (2222, "bob", True, ["ls", "-l"])


def test_clustered_flags_and_attached_values() -> None:
    cl = parse_ssh_argv(["-NfL8080:web:80", "-R9000:localhost:22", "-D1080", "-A", "h"])
    assert cl.no_command and cl.background and cl.agent
    assert cl.local == ["8080:web:80"] and cl.remote == ["9000:localhost:22"] and cl.dynamic == ["1080"]
    args = cl.tsh_args()
    assert args[-2:] == ["--", "h"] and "-N" in args and "-f" in args


def test_double_dash_and_dash_words_in_the_command() -> None:
    cl = parse_ssh_argv(["-T", "--", "host", "-x", "--y"])
    assert (cl.host, cl.command, cl.tty) == ("host", ["-x", "--y"], False)


def test_o_options() -> None:
    cl = parse_ssh_argv([
        "-o", "Port=23", "-oUser=ann", "-o", "ForwardAgent yes", "-o", "RequestTTY=force",
        "-o", "LocalForward=5000 db:5432", "-o", "StrictHostKeyChecking=no",
        "-o", "EscapeChar=none", "-o", "DynamicForward=1081", "h",
    ])
    assert (cl.port, cl.login, cl.agent, cl.tty) == (23, "ann", True, True)
    assert cl.local == ["5000:db:5432"] and cl.dynamic == ["1081"] and cl.escape_char is None
    assert "-e" in cl.tsh_args() and cl.tsh_args()[cl.tsh_args().index("-e") + 1] == "none"


def test_identity_and_escape() -> None:
    cl = parse_ssh_argv(["-i", "/k/bot", "-e", "^]", "h"])
    assert cl.identity == "/k/bot" and cl.escape_char == "\x1d"


def test_user_option_wins_over_nothing_but_at_sign_sets_login() -> None:
    assert parse_ssh_argv(["-l", "x", "y@h"]).login == "x"  # OpenSSH: -l given first wins
    assert parse_ssh_argv(["y@h"]).login == "y"


@pytest.mark.parametrize("argv,message,usage", [
    (["-Z", "h"], "unknown option -- Z", True),
    (["-p"], "option requires an argument -- p", True),
    ([], "", True),
    (["-J", "jump", "h"], "option -J is not supported by tsh", False),
    (["-o", "Bogus=1", "h"], "Bad configuration option: bogus", False),
    (["-p", "99999", "h"], "Bad port '99999'", False),
    (["-e", "xx", "h"], "Bad escape character 'xx'.", False),
])
def test_errors_like_openssh(argv: list[str], message: str, usage: bool) -> None:
    with pytest.raises(SshUsageError) as err:
        parse_ssh_argv(argv)
    assert err.value.message.endswith(message) and err.value.show_usage == usage


def test_version_flag() -> None:
    assert parse_ssh_argv(["-V"]).version
