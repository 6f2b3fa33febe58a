"""Rendering a plan for people (text, like a good `terraform plan`) and for machines (stable JSON).

The JSON document (documented in the README):
    {"revision", "dirty", "engine": {"host", "version", "api_version"}, "in_sync",
     "changes": [{"action", "kind", "name", "target", "reason", "details"}],
     "findings": [{"type", "kind", "name", "message"}],
     "notes": [{"type", "kind", "name", "message"}],
     "errors": [{"file", "line", "column", "kind", "name", "field", "message"}],
     "summary": {"create", "start", "connect", "recreate", "disconnect", "remove", "findings", "errors"}}
"""

from __future__ import annotations

import json
from typing import Any

from controller.core import live, plan
from controller.core.diagnostics import Diagnostic

COLOURS = {"green": "32", "yellow": "33", "red": "31", "magenta": "35", "cyan": "36", "dim": "2", "bold": "1"}
ACTION_COLOUR = {
    plan.Action.CREATE: "green",
    plan.Action.START: "green",
    plan.Action.CONNECT: "yellow",
    plan.Action.RECREATE: "magenta",
    plan.Action.DISCONNECT: "yellow",
    plan.Action.REMOVE: "red",
}


def summary(p: plan.Plan, errors: tuple[Diagnostic, ...]) -> dict[str, int]:
    out = {a.value: p.count(a) for a in plan.Action}
    out["findings"] = len(p.findings)
    out["errors"] = len(errors)
    return out


def to_json(
    p: plan.Plan, errors: tuple[Diagnostic, ...], engine: live.EngineInfo, commit: str | None, dirty: bool | None
) -> dict[str, Any]:
    return {
        "revision": commit,
        "dirty": dirty,
        "engine": {"host": engine.host, "version": engine.version, "api_version": engine.api_version},
        "in_sync": p.in_sync and not errors,
        "changes": [c.to_json() for c in p.changes],
        "findings": [f.to_json() for f in p.findings],
        "notes": [n.to_json() for n in p.notes],
        "errors": [{k: v for k, v in e.to_json().items() if k != "severity"} for e in errors],
        "summary": summary(p, errors),
    }


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2) + "\n"


class Painter:
    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, text: str, colour: str) -> str:
        if not self.colour:
            return text
        return f"\033[{COLOURS[colour]}m{text}\033[0m"


def _details_line(c: plan.Change) -> str | None:
    d = c.details
    if c.action in (plan.Action.CREATE, plan.Action.RECREATE) and "image" in d:
        parts = [f"image {d['image']}"]
        nets = d.get("networks") or {}
        if nets:
            parts.append("networks " + ", ".join(f"{n}" + (f" ({', '.join(a)})" if a else "") for n, a in nets.items()))
        vols = d.get("volumes") or {}
        if vols:
            parts.append("volumes " + ", ".join(f"{s}:{t}" for s, t in vols.items()))
        if d.get("ports"):
            parts.append("ports " + ", ".join(d["ports"]))
        return "; ".join(parts)
    if c.action is plan.Action.CONNECT and d.get("aliases"):
        return f"aliases {', '.join(d['aliases'])}" + (" (disconnect, then connect)" if d.get("reconnect") else "")
    return None


def _verb(c: plan.Change) -> str:
    noun = {"Network": "network", "Volume": "volume"}.get(c.kind, "container")
    if c.action is plan.Action.CONNECT:
        return f"connect {c.target} to {c.details.get('network')}"
    if c.action is plan.Action.DISCONNECT:
        return f"disconnect {c.target} from {c.details.get('network')}"
    return f"{c.action.value} {noun} {c.target}"


def to_text(
    p: plan.Plan, errors: tuple[Diagnostic, ...], engine: live.EngineInfo, revision: str, directory: str, colour: bool
) -> str:
    paint = Painter(colour)
    lines = [
        paint("dbstate plan", "bold"),
        f"  desired state  {directory} @ {revision}",
        f"  engine         {engine.host} (Docker {engine.version}, API {engine.api_version})",
        "",
    ]
    if p.changes:
        lines.append(paint("Changes:", "bold"))
        width = max(len(f"{c.kind}/{c.name}") for c in p.changes)
        for c in p.changes:
            symbol = plan.SYMBOLS[c.action]
            head = f"  {paint(symbol.rjust(3), ACTION_COLOUR[c.action])} {f'{c.kind}/{c.name}'.ljust(width)}  "
            lines.append(head + f"{_verb(c)}: {c.reason}")
            extra = _details_line(c)
            if extra:
                lines.append(" " * 6 + paint(extra, "dim"))
        lines.append("")
    if p.findings:
        lines.append(paint("Findings (need a human; dbstate does not act on them):", "bold"))
        for f in p.findings:
            lines.append(f"  {paint('!', 'yellow')} {paint(f.type.value, 'yellow')} {f.kind}/{f.name}: {f.message}")
        lines.append("")
    if p.notes:
        lines.append(paint("Notes:", "bold"))
        for n in p.notes:
            lines.append(f"  {paint('-', 'dim')} {n.type.value} {n.kind}/{n.name}: {n.message}")
        lines.append("")
    if errors:
        lines.append(paint("Errors in the desired state (those resources are held back):", "bold"))
        for e in errors:
            lines.append(f"  {paint('x', 'red')} {e}")
        lines.append("")
    s = summary(p, errors)
    counts = ", ".join(f"{s[a.value]} to {a.value}" for a in plan.Action if s[a.value])
    if p.in_sync and not errors:
        head = paint("In sync:", "green") + " no changes."
    elif p.in_sync:
        head = paint("No changes", "yellow") + " for what loaded; the desired state has errors."
    else:
        head = paint("Plan:", "bold") + f" {counts}."
    tail = f" {s['findings']} finding{'s' * (s['findings'] != 1)}"
    if errors:
        tail += f", {len(errors)} error{'s' * (len(errors) != 1)}"
    lines.append(head + tail + ".")
    return "\n".join(lines) + "\n"
