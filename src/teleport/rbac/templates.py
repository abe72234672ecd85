"""Role templates: `{{internal.logins}}`, `{{external.groups}}` and friends, expanded from traits.

Grammar (one expression per string, optional literal prefix/suffix around it):
    [prefix]{{ NS.NAME }}[suffix]        NS is `internal` or `external`
    [prefix]{{ NS["NAME"] }}[suffix]     for trait names that are not identifiers (SAML URIs)
    [prefix]{{ email.local(NS.NAME) }}[suffix]   the part of each value before '@'
A string without `{{` or `}}` is a literal. Both namespaces read the same traits mapping: the
user's traits hold internal ones (logins) and external ones (from an identity provider) alike.
Pure module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from teleport.errors import BadParameter

NAMESPACES = ("internal", "external")
FUNCTIONS = ("email.local",)

_IDENT = r"[A-Za-z_][A-Za-z0-9_-]*"
_VAR = re.compile(
    rf"""(?P<ns>{_IDENT})\s*(?:\.\s*(?P<dotted>{_IDENT})|\[\s*(?P<q>["'])(?P<quoted>[^"']+)(?P=q)\s*\])"""
)
_CALL = re.compile(r"(?P<fn>[A-Za-z_][A-Za-z0-9_.]*)\s*\((?P<arg>.*)\)")

_FORMS = 'expected a literal or a template like "{{internal.logins}}" or "{{external.groups}}"'


@dataclass(frozen=True)
class Template:
    """A parsed value: a literal (namespace empty) or prefix + trait expansion + suffix."""

    text: str
    namespace: str = ""
    trait: str = ""
    function: str = ""
    prefix: str = ""
    suffix: str = ""

    @property
    def is_literal(self) -> bool:
        return not self.namespace

    def expand(self, traits: dict[str, list[str]]) -> list[str]:
        """Values this template stands for; a missing trait (or empty result) yields nothing."""
        if self.is_literal:
            return [self.text]
        out: list[str] = []
        for value in traits.get(self.trait) or []:
            if self.function == "email.local":
                value = value.split("@", 1)[0]
            if not value:
                continue
            out.append(f"{self.prefix}{value}{self.suffix}")
        return out


def parse_template(text: str, where: str = "value") -> Template:
    """Parse one value; BadParameter (naming `where`) on bad template syntax."""
    if not isinstance(text, str):
        raise BadParameter(f"{where}: {_FORMS}, got {type(text).__name__} {text!r}")
    opens = text.count("{{")
    closes = text.count("}}")
    if opens == 0 and closes == 0:
        return Template(text=text)
    if opens != 1 or closes != 1:
        raise BadParameter(
            f"{where}: {text!r} has unbalanced or repeated '{{{{'/'}}}}': "
            "a value may hold exactly one {{...}} expression"
        )
    start = text.index("{{")
    end = text.index("}}")
    if end < start:
        raise BadParameter(f"{where}: {text!r} closes '}}}}' before opening '{{{{'")
    prefix, body, suffix = text[:start], text[start + 2 : end].strip(), text[end + 2 :]
    if not body:
        raise BadParameter(f"{where}: {text!r} has an empty {{{{}}}} expression; {_FORMS}")
    function = ""
    call = _CALL.fullmatch(body)
    if call is not None:
        function = call.group("fn")
        if function not in FUNCTIONS:
            raise BadParameter(
                f"{where}: {text!r} calls unknown function {function!r}; "
                f"supported: {', '.join(FUNCTIONS)}"
            )
        body = call.group("arg").strip()
    var = _VAR.fullmatch(body)
    if var is None:
        raise BadParameter(f"{where}: {text!r} is not a valid template; {_FORMS}")
    namespace = var.group("ns")
    if namespace not in NAMESPACES:
        raise BadParameter(
            f"{where}: {text!r} uses unknown namespace {namespace!r}; "
            f"use one of {', '.join(NAMESPACES)}"
        )
    trait = var.group("dotted") or var.group("quoted")
    return Template(
        text=text,
        namespace=namespace,
        trait=trait,
        function=function,
        prefix=prefix,
        suffix=suffix,
    )


def expand(text: str, traits: dict[str, list[str]]) -> list[str]:
    """Parse and expand one value (literal or template) against traits."""
    return parse_template(text).expand(traits)


def expand_all(values: list[str], traits: dict[str, list[str]]) -> list[str]:
    """Expand every value, dropping missing traits and duplicates, keeping first-seen order."""
    seen: dict[str, None] = {}
    for value in values:
        for item in expand(value, traits):
            seen.setdefault(item, None)
    return list(seen)
