"""tctl's resource files and tables: YAML/JSON documents in, `tctl get` and `tctl events ls`
output out. Pure: no network, no files."""

from __future__ import annotations

from typing import Any

from teleport.cli import tctl_trust
from teleport.cli.common import table
from teleport.errors import BadParameter

# resource files and output (pure helpers) -------------------------------------------------
CREATE_KINDS = ("role", "user", "github", "oidc", "trusted_cluster")
GET_KINDS = ("role", "user", "node", "token", "connector", "github", "oidc", "trusted_cluster")
RM_KINDS = ("role", "user", "token", "github", "oidc", "trusted_cluster")
CONNECTOR_KINDS = ("github", "oidc")


def parse_documents(text: str, where: str) -> list[dict[str, Any]]:
    """The resources in a YAML/JSON text (several documents separated by '---', or JSON lists):
    each checked to be a mapping of a kind tctl can create, with a metadata.name."""
    import yaml

    try:
        raw = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise BadParameter(f"{where}: not valid YAML or JSON: {exc}") from None
    docs: list[Any] = []
    for d in raw:
        docs.extend(d if isinstance(d, list) else [d])
    if not docs:
        raise BadParameter(f"{where}: no resources found (expected kind: role or kind: user documents)")
    out = []
    for i, doc in enumerate(docs, 1):
        if not isinstance(doc, dict):
            raise BadParameter(f"{where}: document {i} is not a mapping (kind, version, metadata, spec)")
        kind = doc.get("kind")
        if kind not in CREATE_KINDS:
            raise BadParameter(
                f"{where}: document {i}: cannot create kind {kind!r}; tctl create accepts "
                f"{', '.join(CREATE_KINDS)} (tokens: 'tctl nodes add'; users: also 'tctl users add')"
            )
        meta = doc.get("metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
            raise BadParameter(f"{where}: document {i} ({kind}): metadata.name is missing")
        out.append(doc)
    return out


def parse_ref(ref: str, kinds: tuple[str, ...]) -> tuple[str, str]:
    """'roles' -> ('role', ''), 'role/dev' -> ('role', 'dev'); plural and singular accepted."""
    kind, _, name = ref.partition("/")
    kind = kind.strip().lower()
    if kind.endswith("s") and kind[:-1] in kinds:
        kind = kind[:-1]
    if kind not in kinds:
        raise BadParameter(
            f"unknown resource {ref!r}: expected one of "
            + ", ".join(f"{k}s, {k}/NAME" for k in kinds)
        )
    return kind, name.strip()


def token_resource(tok: dict[str, Any]) -> dict[str, Any]:
    """A token listing entry in resource form (kind token)."""
    from datetime import UTC, datetime

    from teleport.types.resources import format_time

    meta: dict[str, Any] = {"name": tok["token"]}
    if tok.get("expires"):
        meta["expires"] = format_time(datetime.fromtimestamp(tok["expires"], UTC))
    return {"kind": "token", "version": "v2", "metadata": meta,
            "spec": {"roles": list(tok["roles"]), "static": bool(tok.get("static"))}}


def _labels_text(selector: dict[str, Any]) -> str:
    if not selector:
        return "<none>"
    if set(selector) == {"*"} and selector["*"] in ("*", ["*"]):
        return "<all nodes>"
    parts = []
    for key, value in sorted(selector.items()):
        values = value if isinstance(value, list) else [value]
        parts.append(f"{key}={'|'.join(str(v) for v in values)}")
    return ",".join(parts)


def _rules_text(rules: list[dict[str, Any]]) -> str:
    pairs = sorted({f"{r}:{v}" for rule in rules for r in rule["resources"] for v in rule["verbs"]})
    return ",".join(pairs) or "<none>"


def roles_table(roles: list[dict[str, Any]]) -> str:
    """`tctl get roles` text: the reference's columns, deny conditions shown after 'deny:'."""
    rows = []
    for r in roles:
        allow, deny = r["spec"]["allow"], r["spec"]["deny"]
        logins = ",".join(allow.get("logins") or [])
        labels = _labels_text(allow.get("node_labels") or {})
        rules = _rules_text(allow.get("rules") or [])
        if deny.get("logins"):
            logins += f" deny:{','.join(deny['logins'])}"
        if deny.get("node_labels"):
            labels += f" deny:{_labels_text(deny['node_labels'])}"
        if deny.get("rules"):
            rules += f" deny:{_rules_text(deny['rules'])}"
        rows.append([r["metadata"]["name"], logins.strip(), labels, rules])
    return table(["Role", "Allowed to login as", "Node Labels", "Access to resources"], rows)


def render(kind: str, items: list[dict[str, Any]], fmt: str, single: bool = False) -> str:
    """Resources as text (a table), YAML ('---' between documents; feeds 'tctl create -f') or
    JSON (a list, or one object for kind/NAME)."""
    import json

    import yaml

    if fmt == "json":
        return json.dumps(items[0] if single and items else items, indent=2) + "\n"
    if fmt == "yaml":
        return "---\n".join(yaml.safe_dump(i, sort_keys=False, default_flow_style=False) for i in items)
    if kind == "role":
        return roles_table(items) + "\n"
    if kind == "user":
        rows = [
            [u["metadata"]["name"], ",".join(u["spec"].get("roles") or []),
             ",".join((u["spec"].get("traits") or {}).get("logins") or [])]
            for u in items
        ]
        return table(["User", "Roles", "Allowed to login as"], rows) + "\n"
    if kind in ("connector", *CONNECTOR_KINDS):
        rows = [[i["kind"], i["metadata"]["name"], i["spec"].get("display") or "",
                 i["spec"].get("issuer_url") or i["spec"].get("endpoint_url") or "github.com"]
                for i in items]
        return table(["Kind", "Name", "Display", "Provider"], rows) + "\n"
    if kind == "trusted_cluster":
        return tctl_trust.render_table(items)
    if kind == "node":
        rows = []
        for n in items:
            labels = dict(n["metadata"].get("labels") or {})
            for name, cmd in (n["spec"].get("cmd_labels") or {}).items():
                labels[name] = str(cmd.get("result", "")).strip()
            text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            rows.append([n["spec"].get("hostname", ""), n["metadata"]["name"], n["spec"].get("addr", ""), text])
        return table(["Node Name", "Node ID", "Address", "Labels"], rows) + "\n"
    token_rows = []
    for t in items:
        exp = t["metadata"].get("expires")
        token_rows.append([t["metadata"]["name"], ",".join(r.capitalize() for r in t["spec"]["roles"]),
                           "never" if not exp else exp.replace("T", " ").replace("Z", " UTC")])
    return table(["Token", "Role", "Expiry Time (UTC)"], token_rows) + "\n"


def _event_details(ev: dict[str, Any]) -> str:
    kind = ev.get("event", "")
    if kind == "user.login":
        ok = ev.get("success")
        return f"{ev.get('method', '')} {'success' if ok else 'failure: ' + str(ev.get('error', ''))}".strip()
    if kind == "exec":
        return f"{ev.get('command', '')!r} exit={ev.get('exitCode', '')}"
    if kind == "scp":
        return f"{ev.get('action', '')} {ev.get('path', '')}"
    if kind == "port":
        return str(ev.get("addr", ""))
    if kind == "auth":
        return str(ev.get("error", ""))
    if kind in ("resize", "session.start"):
        return f"size={ev.get('size', '')}"
    if kind == "session.end":
        return f"participants={','.join(ev.get('participants') or [])}"
    return str(ev.get("addr.remote", ""))


def events_table(events: list[dict[str, Any]]) -> str:
    """`tctl events ls` text: time, event (code), user, login, node/session, short details."""
    rows = []
    for ev in events:
        where = ev.get("server_hostname") or ev.get("server_id") or ""
        sid = ev.get("sid") or ""
        node = f"{where}/{sid[:8]}" if sid else where
        details = _event_details(ev)
        if len(details) > 60:
            details = details[:57] + "..."
        rows.append([str(ev.get("time", "")), f"{ev.get('event', '')} ({ev.get('code', '')})",
                     str(ev.get("user", "")), str(ev.get("login", "")), node, details])
    return table(["Time", "Event", "User", "Login", "Node/Session", "Details"], rows)
