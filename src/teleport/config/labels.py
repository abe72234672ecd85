"""The ``--labels`` flag: ``env=prod,uptime=[1m:"uptime -p"],kernel=[1h:"uname -r"]``. Pure."""

from __future__ import annotations

import shlex

from teleport.config.model import CommandLabel
from teleport.durations import parse_duration
from teleport.errors import BadParameter

_SYNTAX = 'expected key=value or key=[period:"command"], e.g. env=prod,uptime=[1m:"uptime -p"]'


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are outside [...] and outside quotes."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    quote: str | None = None
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(depth - 1, 0)
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    if quote:
        raise BadParameter(f"--labels: unterminated quote in {text!r}; {_SYNTAX}")
    if depth:
        raise BadParameter(f'--labels: missing "]" in {text!r}; {_SYNTAX}')
    parts.append("".join(current))
    return parts


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def parse_labels_flag(text: str) -> tuple[dict[str, str], list[CommandLabel]]:
    """Parse the --labels syntax into static labels and command labels.

    Bad syntax raises BadParameter naming the bad part.
    """
    # imported here: fileconf imports the model too, and this keeps the label-key rule in one place
    from teleport.config.fileconf import MIN_COMMAND_PERIOD, check_label_key

    static: dict[str, str] = {}
    commands: list[CommandLabel] = []
    if not text or not text.strip():
        return static, commands
    for raw in _split_top_level(text):
        part = raw.strip()
        if not part:
            continue  # tolerate "a=b," and "a=b,,c=d"
        if "=" not in part:
            raise BadParameter(f'--labels: bad label "{part}": missing "="; {_SYNTAX}')
        key, value = (s.strip() for s in part.split("=", 1))
        if not key:
            raise BadParameter(f'--labels: bad label "{part}": empty name; {_SYNTAX}')
        problem = check_label_key(key)
        if problem:
            raise BadParameter(f'--labels: bad label "{part}": {problem}')
        if key in static or any(c.name == key for c in commands):
            raise BadParameter(f'--labels: label "{key}" is given twice')
        if not value.startswith("["):
            static[key] = _unquote(value)
            continue
        if not value.endswith("]"):
            raise BadParameter(f'--labels: bad label "{part}": text after "]"; {_SYNTAX}')
        inner = value[1:-1].strip()
        if ":" not in inner:
            raise BadParameter(
                f'--labels: bad command label "{part}": expected [period:"command"], '
                f'e.g. [1h:"uname -r"]'
            )
        period_text, command_text = (s.strip() for s in inner.split(":", 1))
        try:
            period = parse_duration(period_text)
        except BadParameter as exc:
            raise BadParameter(f'--labels: bad period in "{part}": {exc.message}') from None
        if period < MIN_COMMAND_PERIOD:
            raise BadParameter(f'--labels: bad period in "{part}": expected at least 1s')
        try:
            # `"uname -r"` is one quoted command line, not one argument named "uname -r"
            argv = shlex.split(_unquote(command_text))
        except ValueError as exc:
            raise BadParameter(f'--labels: bad command in "{part}": {exc}') from None
        if not argv:
            raise BadParameter(f'--labels: bad command label "{part}": the command is empty')
        commands.append(CommandLabel(name=key, command=argv, period=period))
    return static, commands
