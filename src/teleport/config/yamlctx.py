"""teleport.yaml's reading machinery: a YAML loader that refuses duplicate keys, and the
validation context whose every error is one line naming the file, the key path and what is
expected (with a "did you mean" for near misses). Pure module."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, TypeVar

import yaml

from teleport.config.addr import HostPort, parse_host_port
from teleport.durations import parse_duration
from teleport.errors import BadParameter, ConfigError

T = TypeVar("T")
_BYTE_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?", re.IGNORECASE)
_BYTE_UNITS = {
    "": 1, "b": 1,
    "k": 1024, "kib": 1024, "kb": 1000, "ki": 1024,
    "m": 1024**2, "mib": 1024**2, "mb": 1000**2, "mi": 1024**2,
    "g": 1024**3, "gib": 1024**3, "gb": 1000**3, "gi": 1024**3,
    "t": 1024**4, "tib": 1024**4, "tb": 1000**4, "ti": 1024**4,
}
_BOOL_WORDS = {"yes": True, "no": False, "true": True, "false": False, "on": True, "off": False}

# --- YAML loading ----------------------------------------------------------------------------


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:
            duplicate = False
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f'duplicate key "{key}"', key_node.start_mark
            )
        try:
            seen.add(key)
        except TypeError:
            pass
    return loader.construct_mapping(node, deep=True)


StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def load_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
        what = exc.problem or exc.context or "syntax error"
        lines = text.splitlines()
        if mark and mark.line < len(lines) and re.search(r":\s*\[[0-9a-fA-F]*:", lines[mark.line]):
            what += ' (quote IPv6 addresses: "[::1]:3025")'
        raise config_error(f"{source}: {where}: invalid YAML: {what}") from None
    except yaml.YAMLError as exc:
        one_line = " ".join(str(exc).split())
        raise config_error(f"{source}: invalid YAML: {one_line}") from None
    except RecursionError:
        # PyYAML recurses once per nesting level: "[[[[..." thousands deep overflows the stack
        raise config_error(
            f"{source}: invalid YAML: lists or mappings nested too deeply; "
            "teleport.yaml needs only a few levels"
        ) from None


# --- validation helpers ----------------------------------------------------------------------


def one_line(message: str) -> str:
    """The message with control characters (a newline in a key or value the file holds)
    escaped, so that every error stays the one line the module promises."""
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def config_error(message: str) -> ConfigError:
    """The ConfigError for a message, kept on one line."""
    return ConfigError(one_line(message))


def describe(value: Any) -> str:
    """How a wrong value is shown in a message."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{value!r}" if isinstance(value, int | float) else type(value).__name__


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


class Ctx:
    """Carries the source name so every error says which file it is about."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str) -> NoReturn:
        raise config_error(f"{self.source}: {path}: {message}")

    def mapping(self, value: Any, path: str, allowed: Iterable[str]) -> dict[str, Any]:
        """A mapping whose keys are all in ``allowed``; null is an empty mapping."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping of keys, got {describe(value)}")
        allowed = tuple(allowed)
        for key in value:
            if not isinstance(key, str):
                self.fail(path, f"keys must be strings, got {describe(key)}")
            if key not in allowed:
                self.fail(
                    join_path(path, key),
                    f"unknown key{suggest(key, allowed)}; valid keys: {', '.join(allowed)}",
                )
        return value

    def boolean(self, value: Any, path: str) -> bool:
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            # a quoted "yes" still means yes
            return _BOOL_WORDS[value.strip().lower()]
        if not isinstance(value, bool):
            self.fail(path, f"expected yes/no (or true/false), got {describe(value)}")
        return value

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            self.fail(path, f'expected a string, got {describe(value)} (quote it: "...")')
        if not value.strip():
            self.fail(path, "expected a non-empty string")
        return value

    def positive_int(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self.fail(path, f"expected a positive integer, got {describe(value)}")
        return value

    def byte_size(self, value: Any, path: str) -> int:
        """A positive size: bytes as an integer, or a number with a unit (100MiB, 1GB, 512K)."""
        if isinstance(value, str):
            m = _BYTE_SIZE.fullmatch(value.strip())
            if m is not None and float(m.group(1)) > 0:
                return int(float(m.group(1)) * _BYTE_UNITS[(m.group(2) or "").lower()])
        elif not isinstance(value, bool) and isinstance(value, int) and value > 0:
            return value
        self.fail(path, f"expected a size such as 100MiB, 1GB or 1048576 (bytes), got {describe(value)}")

    def choice(self, value: Any, path: str, choices: Iterable[str], *, upper: bool = False) -> str:
        choices = tuple(choices)
        if value is False and "off" in choices:
            # YAML 1.1 reads a bare `off` as the boolean false
            return "off"
        text = self.string(value, path).strip()
        text = text.upper() if upper else text.lower()
        if text not in choices:
            self.fail(
                path,
                f"expected one of {', '.join(choices)}, got {describe(value)}"
                f"{suggest(text, choices)}",
            )
        return text

    def addr(self, value: Any, path: str, default_port: int, *, listen: bool) -> HostPort:
        if isinstance(value, int) and not isinstance(value, bool):
            # a bare port number: an easy slip, say what to write instead
            self.fail(
                path, f'expected host:port, got {value} (write ":{value}" or "0.0.0.0:{value}")'
            )
        if isinstance(value, list):
            # unquoted "[::1]:3025" is a YAML list followed by junk, or just a list
            self.fail(path, 'expected host:port, got a list (quote IPv6 addresses: "[::1]:3025")')
        if not isinstance(value, str):
            self.fail(path, f"expected host:port, got {describe(value)}")
        try:
            return parse_host_port(value, default_port, allow_zero=listen)
        except BadParameter as exc:
            message = exc.message
        self.fail(path, message)

    def duration(self, value: Any, path: str) -> float:
        try:
            return parse_duration(value)
        except BadParameter as exc:
            message = exc.message
        self.fail(path, message)

    def get(
        self,
        data: dict[str, Any],
        key: str,
        path: str,
        convert: Callable[[Any, str], T],
        default: T,
    ) -> T:
        """Convert ``data[key]`` when present; absent (or null) keeps the default."""
        if key not in data or data[key] is None:
            return default
        return convert(data[key], join_path(path, key))


def join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
