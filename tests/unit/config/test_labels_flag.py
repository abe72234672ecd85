"""The --labels flag syntax."""

from __future__ import annotations

import pytest

from teleport.config.labels import parse_labels_flag
from teleport.config.model import CommandLabel
from teleport.errors import BadParameter


@pytest.mark.parametrize(
    ("text", "static", "commands"),
    [
        ("", {}, []),
        ("env=prod", {"env": "prod"}, []),
        ("env=prod,role=db", {"env": "prod", "role": "db"}, []),
        (
            'env=prod,uptime=[1m:"uptime -p"],kernel=[1h:"uname -r"]',
            {"env": "prod"},
            [
                CommandLabel("uptime", ["uptime", "-p"], 60),
                CommandLabel("kernel", ["uname", "-r"], 3600),
            ],
        ),
        (
            "a=1, b = two ,c=[30s:uname -r]",
            {"a": "1", "b": "two"},
            [CommandLabel("c", ["uname", "-r"], 30)],
        ),
        (
            'x=[1h:"sh -c \'echo a,b\'"],y="p,q"',
            {"y": "p,q"},
            [CommandLabel("x", ["sh", "-c", "echo a,b"], 3600)],
        ),
        ("k=v=w", {"k": "v=w"}, []),
        ("env=prod,", {"env": "prod"}, []),
        ("team/app=web", {"team/app": "web"}, []),
    ],
)
def test_parse_labels_flag(text: str, static: dict[str, str], commands: list[CommandLabel]) -> None:
    assert parse_labels_flag(text) == (static, commands)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("env", '"env": missing "="'),
        ("=prod", '"=prod": empty name'),
        ("a b=c", '"a b=c"'),
        ('up=[1m:"uptime]', "unterminated quote"),
        ("up=[1m:uptime", 'missing "]"'),
        ("up=[uptime]", '"up=[uptime]"'),
        ("up=[xx:uptime]", 'bad period in "up=[xx:uptime]"'),
        ("up=[-1m:uptime]", 'bad period in "up=[-1m:uptime]"'),
        ("up=[10ms:uptime]", "at least 1s"),
        ("up=[1m:]", "the command is empty"),
        ("up=[1m:a]b", 'text after "]"'),
        ("a=1,a=2", 'label "a" is given twice'),
    ],
)
def test_parse_labels_flag_rejects(text: str, needle: str) -> None:
    with pytest.raises(BadParameter) as err:
        parse_labels_flag(text)
    msg = str(err.value)
    assert msg.startswith("--labels:")
    assert needle in msg
    assert "\n" not in msg
