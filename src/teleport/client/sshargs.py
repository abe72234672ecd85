"""OpenSSH's `ssh` command line, translated to `tsh ssh` arguments; pure.

When tsh is installed (or linked) under the name `ssh`, it takes OpenSSH's command line so that
scripts and muscle memory keep working: `ssh [-AfNqtTv] [-e char] [-i file] [-L spec] [-R spec]
[-D port] [-l login] [-o Key=Value] [-p port] [user@]host [--] [command ...]`. As OpenSSH, options
may also follow the destination (up to the first word of the command), and an unknown option is
an error with OpenSSH's wording and exit status 255.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# OpenSSH's usage text (its options; tsh accepts the subset below and says so for the rest)
USAGE = """usage: ssh [-46AaCfGgKkMNnqsTtVvXxYy] [-B bind_interface] [-b bind_address]
           [-c cipher_spec] [-D [bind_address:]port] [-E log_file]
           [-e escape_char] [-F configfile] [-I pkcs11] [-i identity_file]
           [-J destination] [-L address] [-l login_name] [-m mac_spec]
           [-O ctl_cmd] [-o option] [-P tag] [-p port] [-Q query_option]
           [-R address] [-S ctl_path] [-W host:port] [-w local_tun[:remote_tun]]
           destination [command [argument ...]]
"""

# OpenSSH's own option letters: those taking an argument, and flags.
_WITH_ARG = set("BbcDEeFIiJLlmOoPpQRSWw")
_FLAGS = set("46AaCfGgKkMNnqsTtVvXxYy")
# What tsh implements (or harmlessly accepts: -4/-6/-C/-n/-q/-v/-x/-a change nothing here)
_SUPPORTED_ARG = set("DeiLlopR")
_SUPPORTED_FLAGS = set("46ACafNnqTtVvx")

# -o keys (lower case) tsh honours, and those accepted without effect because tsh already does
# what they ask for (host keys are checked against the cluster's host CA, keys come from ~/.tsh).
_IGNORED_OPTIONS = {
    "batchmode", "checkhostip", "compression", "connectionattempts", "connecttimeout",
    "controlmaster", "controlpath", "controlpersist", "globalknownhostsfile", "hashknownhosts",
    "identitiesonly", "kbdinteractiveauthentication", "loglevel", "passwordauthentication",
    "preferredauthentications", "pubkeyauthentication", "serveraliveinterval",
    "serveralivecountmax", "stricthostkeychecking", "tcpkeepalive", "updatehostkeys",
    "userknownhostsfile", "addkeystoagent", "certificatefile", "hostkeyalgorithms",
    "exitonforwardfailure", "forwardx11", "forwardx11trusted", "visualhostkey", "sendenv",
}


class SshUsageError(Exception):
    """A command line OpenSSH would refuse: `message` (may be empty) then the usage, exit 255."""

    def __init__(self, message: str, show_usage: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.show_usage = show_usage


@dataclass
class SshCommandLine:
    """What an OpenSSH command line asks for."""

    host: str = ""
    login: str | None = None
    port: int | None = None
    identity: str | None = None
    local: list[str] = field(default_factory=list)
    remote: list[str] = field(default_factory=list)
    dynamic: list[str] = field(default_factory=list)
    agent: bool = False
    tty: bool | None = None
    no_command: bool = False
    background: bool = False
    escape_char: str | None = "~"
    version: bool = False
    command: list[str] = field(default_factory=list)

    def tsh_args(self) -> list[str]:
        """The equivalent `tsh ssh ...` argument list (without the leading 'tsh')."""
        out = ["ssh"]
        if self.port is not None:
            out += ["-p", str(self.port)]
        if self.login is not None:
            out += ["-l", self.login]
        if self.identity is not None:
            out += ["-i", self.identity]
        for flag, specs in (("-L", self.local), ("-R", self.remote), ("-D", self.dynamic)):
            for spec in specs:
                out += [flag, spec]
        if self.agent:
            out.append("-A")
        if self.tty is True:
            out.append("-t")
        elif self.tty is False:
            out.append("-T")
        if self.no_command:
            out.append("-N")
        if self.background:
            out.append("-f")
        out += ["-e", self.escape_char if self.escape_char is not None else "none"]
        out += ["--", self.host, *self.command]
        return out


def _yes_no(key: str, value: str) -> bool:
    v = value.lower()
    if v in ("yes", "true"):
        return True
    if v in ("no", "false"):
        return False
    raise SshUsageError(f"command-line line 0: unsupported option \"{value}\" for {key}.", False)


def _port(value: str) -> int:
    if not value.isascii() or not value.isdigit() or not 0 < int(value) < 65536:
        raise SshUsageError(f"Bad port '{value}'", False)
    return int(value)


def _apply_option(cl: SshCommandLine, text: str) -> None:
    """-o Key=Value (or 'Key Value'), as ssh_config(5) writes it."""
    key, sep, value = text.partition("=")
    if not sep:
        key, _, value = text.strip().partition(" ")
    key, value = key.strip(), value.strip()
    k = key.lower()
    if not value:
        raise SshUsageError(f"command-line line 0: Missing argument for {key}.", False)
    if k == "port":
        cl.port = _port(value)
    elif k == "user":
        cl.login = value
    elif k == "identityfile":
        cl.identity = value
    elif k == "forwardagent":
        cl.agent = _yes_no(key, value)
    elif k == "requesttty":
        v = value.lower()
        if v not in ("yes", "no", "force", "auto"):
            raise SshUsageError(f"command-line line 0: unsupported option \"{value}\" for {key}.", False)
        cl.tty = {"yes": True, "force": True, "no": False, "auto": None}[v]
    elif k in ("localforward", "remoteforward"):
        # ssh_config's form is "[bind:]port host:hostport" (two words)
        spec = ":".join(value.split())
        (cl.local if k == "localforward" else cl.remote).append(spec)
    elif k == "dynamicforward":
        cl.dynamic.append(value)
    elif k == "escapechar":
        cl.escape_char = _escape(value)
    elif k == "sessiontype":
        if value.lower() == "none":
            cl.no_command = True
    elif k in _IGNORED_OPTIONS:
        pass
    else:
        raise SshUsageError(f"command-line line 0: Bad configuration option: {k}", False)


def _escape(value: str) -> str | None:
    from teleport.client.escape import parse_escape_char

    try:
        return parse_escape_char(value)
    except ValueError as exc:
        raise SshUsageError(str(exc), False) from None


def parse_ssh_argv(argv: list[str]) -> SshCommandLine:
    """Parse OpenSSH's `ssh` arguments (without argv[0]); SshUsageError for what ssh refuses."""
    cl = SshCommandLine()
    i = 0
    n = len(argv)
    while i < n:
        word = argv[i]
        if word == "--":
            i += 1
            if not cl.host:
                if i >= n:
                    raise SshUsageError("")
                cl.host = argv[i]
                i += 1
            cl.command = argv[i:]
            break
        if not word.startswith("-") or word == "-":
            if cl.host:
                cl.command = argv[i:]  # the command starts at the first word after the host
                break
            cl.host = word
            i += 1
            continue
        # a cluster of flags, possibly ending in an option with its argument (-p22, -tt, -NfL ...)
        j = 1
        while j < len(word):
            ch = word[j]
            if ch in _WITH_ARG:
                value = word[j + 1:]
                if not value:
                    i += 1
                    if i >= n:
                        raise SshUsageError(f"option requires an argument -- {ch}")
                    value = argv[i]
                if ch not in _SUPPORTED_ARG:
                    raise SshUsageError(f"option -{ch} is not supported by tsh", False)
                _apply_arg(cl, ch, value)
                break
            if ch not in _FLAGS:
                raise SshUsageError(f"unknown option -- {ch}")
            if ch not in _SUPPORTED_FLAGS:
                raise SshUsageError(f"option -{ch} is not supported by tsh", False)
            _apply_flag(cl, ch)
            j += 1
        i += 1
    if cl.version:
        return cl
    if not cl.host:
        raise SshUsageError("")
    login, at, host = cl.host.rpartition("@")
    if at:
        if not host or not login:
            raise SshUsageError(f"bad destination '{cl.host}'", False)
        cl.host = host
        if cl.login is None:
            cl.login = login
    return cl


def _apply_arg(cl: SshCommandLine, ch: str, value: str) -> None:
    if ch == "p":
        cl.port = _port(value)
    elif ch == "l":
        cl.login = value
    elif ch == "i":
        cl.identity = value
    elif ch == "L":
        cl.local.append(value)
    elif ch == "R":
        cl.remote.append(value)
    elif ch == "D":
        cl.dynamic.append(value)
    elif ch == "e":
        cl.escape_char = _escape(value)
    elif ch == "o":
        _apply_option(cl, value)


def _apply_flag(cl: SshCommandLine, ch: str) -> None:
    if ch == "A":
        cl.agent = True
    elif ch == "a":
        cl.agent = False
    elif ch == "t":
        cl.tty = True
    elif ch == "T":
        cl.tty = False
    elif ch == "N":
        cl.no_command = True
    elif ch == "f":
        cl.background = True
    elif ch == "V":
        cl.version = True
    # -4 -6 -C -n -q -v -x: nothing to change in tsh
