"""Compose files as `dbstate import --compose` reads them, pure: compose's variable interpolation, and each service as
the container compose would make of it (its project and service labels, names, networks, volumes, env, ports), so that
the importer treats a service that is not running like one that is. Only what a desired state can declare is read."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from controller.core import live
from controller.core.adoption import COMPOSE_PROJECT, COMPOSE_SERVICE
from controller.core.importer import NOT_RUNNING, Found

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATOR = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?$", re.S)


class ComposeError(ValueError):
    pass


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose's rules: `$$` is a `$`; `${VAR}` and `$VAR`; `${VAR:-default}` (unset or empty), `${VAR-default}`
    (unset); `${VAR:?message}` and `${VAR?message}` fail; `${VAR:+other}` and `${VAR+other}`; defaults may nest."""
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch != "$" or i + 1 == len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            end = _closing(text, i + 1)
            out.append(_expand(text[i + 2 : end], variables))
            i = end + 1
        else:
            m = _NAME.match(text, i + 1)
            if m is None:
                out.append(ch)
                i += 1
            else:
                out.append(variables.get(m.group(0), ""))
                i = m.end()
    return "".join(out)


def _closing(text: str, start: int) -> int:
    depth = 0
    for j in range(start, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    raise ComposeError(f"unclosed ${{ in {text!r}")


def _expand(expr: str, variables: Mapping[str, str]) -> str:
    m = _OPERATOR.match(expr)
    if m is None:
        raise ComposeError(f"invalid interpolation ${{{expr}}}")
    name, op, arg = m.group("name"), m.group("op"), m.group("arg") or ""
    value = variables.get(name)
    if op is None:
        return value or ""
    if op == ":-":
        return value if value else interpolate(arg, variables)
    if op == "-":
        return value if value is not None else interpolate(arg, variables)
    if op in (":?", "?"):
        if value is None or (op == ":?" and not value):
            raise ComposeError(f"required variable {name} is missing: {arg or 'no message'}")
        return value
    if op == ":+":
        return interpolate(arg, variables) if value else ""
    return interpolate(arg, variables) if value is not None else ""


def interpolated(value: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, variables)
    if isinstance(value, list):
        return [interpolated(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: interpolated(v, variables) for k, v in value.items()}
    return value


def project_name(doc: Mapping[str, Any], directory: str) -> str:
    raw = str(doc.get("name") or PurePosixPath(directory).name or "default")
    return re.sub(r"[^a-z0-9_-]", "", raw.lower()).lstrip("_-") or "default"


def _named(key: str, project: str, top: Mapping[str, Any]) -> str:
    """The engine's name of a top-level volume or network `key`."""
    conf = top.get(key) or {}
    if not isinstance(conf, dict):
        conf = {}
    external = conf.get("external")
    if isinstance(external, dict) and external.get("name"):
        return str(external["name"])
    if conf.get("name"):
        return str(conf["name"])
    return key if external else f"{project}_{key}"


def _env(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    out = {}
    for item in value or []:
        key, sep, val = str(item).partition("=")
        if sep:
            out[key] = val
    return out


def _mounts(svc: Mapping[str, Any], project: str, top: Mapping[str, Any], directory: str) -> tuple[live.Mount, ...]:
    out = []
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            kind, source, target = str(v.get("type", "volume")), str(v.get("source", "")), str(v.get("target", ""))
        else:
            parts = str(v).split(":")
            if len(parts) < 2:
                continue  # an anonymous volume: nothing a desired state names
            source, target = parts[0], parts[1]
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        if kind == "bind":
            path = PurePosixPath(source) if source.startswith("/") else PurePosixPath(directory) / source
            out.append(live.Mount("bind", _normal(str(path)), target))
        elif kind == "volume" and source:
            out.append(live.Mount("volume", _named(source, project, top.get("volumes") or {}), target))
    return tuple(out)


def _normal(path: str) -> str:
    parts: list[str] = []
    for p in path.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if parts:
                parts.pop()
            continue
        parts.append(p)
    return "/" + "/".join(parts)


def _networks(svc: Mapping[str, Any], name: str, project: str, top: Mapping[str, Any]) -> tuple[live.Attachment, ...]:
    if svc.get("network_mode"):
        return ()
    nets = svc.get("networks") or {"default": None}
    if isinstance(nets, list):
        nets = {n: None for n in nets}
    out = []
    for key, conf in sorted(nets.items()):
        aliases = [name] + [str(a) for a in ((conf or {}).get("aliases") or [])]
        out.append(live.Attachment(_named(str(key), project, top.get("networks") or {}), tuple(aliases)))
    return tuple(out)


def _ports(svc: Mapping[str, Any]) -> tuple[live.Port, ...]:
    out = []
    for p in svc.get("ports") or []:
        text = str(p.get("published", "")) + ":" + str(p.get("target", "")) if isinstance(p, dict) else str(p)
        text, _, proto = text.partition("/")
        parts = text.rsplit(":", 2)
        if not parts[-1].isdigit():
            continue
        host_port = int(parts[-2]) if len(parts) >= 2 and parts[-2].isdigit() else None
        host_ip = parts[0].strip("[]") if len(parts) == 3 else ("" if host_port is not None else None)
        out.append(live.Port(int(parts[-1]), proto or "tcp", host_ip, host_port))
    return tuple(out)


_REFERENCE = re.compile(r"^\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\})$")


def references(svc: Any) -> dict[str, str]:
    """Env key -> the variable a service's environment takes its whole value from (`${PG_PASS}`, `$PG_PASS`,
    `${PG_PASS:-x}`), read before interpolation: import keeps the user's own names."""
    if not isinstance(svc, dict):
        return {}
    out = {}
    for key, value in _env(svc.get("environment")).items():
        m = _REFERENCE.match(value.strip())
        if m:
            out[key] = m.group(1) or m.group(2)
    return out


def services(doc: Mapping[str, Any], directory: str, variables: Mapping[str, str]) -> list[Found]:
    """Each service of one compose file (already parsed) that names an image, as compose would run it."""
    raw = doc.get("services") if isinstance(doc, dict) else None
    named = {str(k): references(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
    doc = interpolated(doc, variables)
    project = project_name(doc, directory)
    out = []
    for service, svc in sorted((doc.get("services") or {}).items()):
        if not isinstance(svc, dict) or not svc.get("image"):
            continue  # `build:` only: no image to declare
        command = svc.get("command") or ()
        if isinstance(command, str):
            command = shlex.split(command)
        container = live.Container(
            id=f"compose:{project}/{service}",
            name=str(svc.get("container_name") or f"{project}-{service}-1"),
            image=str(svc["image"]),
            state=NOT_RUNNING,
            labels={COMPOSE_PROJECT: project, COMPOSE_SERVICE: str(service)},
            networks=_networks(svc, str(service), project, doc),
            mounts=_mounts(svc, project, doc, directory),
            ports=_ports(svc),
            env=_env(svc.get("environment")),
            command=tuple(str(c) for c in command),
        )
        restart = str(svc.get("restart") or "")
        out.append(Found(container, container.command or (), {}, (), restart, named.get(str(service), {})))
    return out
