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
from collections.abc import Mapping
from typing import Any

from controller.core import live, plan
from controller.core.diagnostics import Diagnostic
from controller.core.health import ProbeResult

COLOURS = {"green": "32", "yellow": "33", "red": "31", "magenta": "35", "cyan": "36", "dim": "2", "bold": "1"}
ACTION_COLOUR = {
    plan.Action.CREATE: "green",
    plan.Action.START: "green",
    plan.Action.CONNECT: "yellow",
    plan.Action.RECREATE: "magenta",
    plan.Action.DISCONNECT: "yellow",
    plan.Action.REMOVE: "red",
    plan.Action.RESTART: "magenta",
}


def summary(p: plan.Plan, errors: tuple[Diagnostic, ...]) -> dict[str, int]:
    out = {a.value: p.count(a) for a in plan.Action}
    out["findings"] = len(p.findings)
    out["errors"] = len(errors)
    return out


def to_json(
    p: plan.Plan,
    errors: tuple[Diagnostic, ...],
    engine: live.EngineInfo,
    commit: str | None,
    dirty: bool | None,
    probes: Mapping[str, ProbeResult] | None = None,
) -> dict[str, Any]:
    doc = {
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
    if probes is not None:  # only with --probe
        doc["probes"] = [r.to_json() for _, r in sorted(probes.items())]
    return doc


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


def _header(paint: Painter, title: str, directory: str, revision: str, engine: live.EngineInfo) -> list[str]:
    return [
        paint(title, "bold"),
        f"  desired state  {directory} @ {revision}",
        f"  engine         {engine.host} (Docker {engine.version}, API {engine.api_version})",
        "",
    ]


def _finding_line(paint: Painter, f: plan.Finding) -> str:
    return f"  {paint('!', 'yellow')} {paint(f.type.value, 'yellow')} {f.kind}/{f.name}: {f.message}"


def probe_lines(probes: Mapping[str, ProbeResult], paint: Painter) -> list[str]:
    """One line per instance: up or down, the version the server reports, the round trip, or why it failed."""
    lines = []
    width = max((len(n) for n in probes), default=0)
    for name, r in sorted(probes.items()):
        rtt = f"{r.rtt_ms:.0f} ms" if r.rtt_ms is not None else "-"
        if r.reachable:
            note = r.facts.get("accounts", "")
            note = f"  ({note})" if note.startswith("accounts not checked") else ""
            lines.append(
                f"  {paint('up', 'green')}   {name.ljust(width)}  {r.version or '?'}  {rtt}  {r.address}{note}"
            )
        else:
            lines.append(f"  {paint('down', 'red')} {name.ljust(width)}  {r.error or 'no answer'} ({rtt})")
    return lines


def to_text(
    p: plan.Plan,
    errors: tuple[Diagnostic, ...],
    engine: live.EngineInfo,
    revision: str,
    directory: str,
    colour: bool,
    probes: Mapping[str, ProbeResult] | None = None,
) -> str:
    paint = Painter(colour)
    lines = _header(paint, "dbstate plan", directory, revision, engine)
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
    if probes:
        lines.append(paint("Probes (what the servers say):", "bold"))
        lines += probe_lines(probes, paint)
        lines.append("")
    if p.findings:
        lines.append(paint("Findings (need a human; dbstate does not act on them):", "bold"))
        for f in p.findings:
            lines.append(_finding_line(paint, f))
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


# -- audit ----------------------------------------------------------------------------------------------------------


def audit_json(
    report: Any, engine: live.EngineInfo, commit: str | None, dirty: bool | None, errors: tuple[Diagnostic, ...]
) -> dict[str, Any]:
    """`report` is a core.audit.Report."""
    return {
        "revision": commit,
        "dirty": dirty,
        "engine": {"host": engine.host, "version": engine.version, "api_version": engine.api_version},
        "databases": [d.to_json() for d in report.databases],
        "connections": [c.to_json() for c in report.connections],
        "findings": [f.to_json() for f in report.findings],
        "errors": [{k: v for k, v in e.to_json().items() if k != "severity"} for e in errors],
        "summary": audit_summary(report, errors),
    }


def audit_summary(report: Any, errors: tuple[Diagnostic, ...]) -> dict[str, Any]:
    dbs = report.databases
    return {
        "databases": len(dbs),
        "unmanaged": sum(1 for d in dbs if d.declared_as is None),
        "down": sum(1 for d in dbs if not d.health.startswith("up")),
        "orphan_suspects": sum(1 for d in dbs if d.orphan_criteria),
        "naming_violations": sum(1 for d in dbs if d.naming),
        "connections": len(report.connections),
        "connections_failing": sum(1 for c in report.connections if c.problem),
        "findings": len(report.findings),
        "errors": len(errors),
        "wrong": report.wrong or bool(errors),
    }


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def audit_text(
    report: Any,
    engine: live.EngineInfo,
    revision: str,
    directory: str,
    errors: tuple[Diagnostic, ...],
    colour: bool,
) -> str:
    from controller.core.audit import CRITERIA

    paint = Painter(colour)
    lines = [*_header(paint, "dbstate audit", directory, revision, engine), paint("Databases:", "bold")]
    rows = [["CONTAINER", "ENGINE", "VERSION", "HEALTH", "DECLARED AS", "NETWORKS", "VOLUMES", "CONSUMERS"]]
    for d in report.databases:
        version = f"{d.version} ({d.version_source})" if d.version else "?"
        if d.health == "up" and d.rtt_ms is not None:
            health = f"up {d.rtt_ms:.0f} ms"
        else:
            health = d.health if d.health.startswith("up") else "down" if d.state == "running" else d.state
        users = sorted(set(d.consumers_declared) | set(d.consumers_env))
        declared = d.declared_as or ("unmanaged" + (f" (compose {d.compose_project})" if d.compose_project else ""))
        rows.append(
            [
                d.container,
                d.engine or "?",
                version,
                health,
                declared,
                ",".join(d.networks) or "-",
                ",".join(d.volumes) or "-",
                ",".join(users) or "-",
            ]
        )
    lines += _table(rows) if report.databases else ["  (no database container on this engine)"]
    lines.append("")
    problems = [d for d in report.databases if d.problems]
    if problems:
        lines.append(paint("Problems:", "bold"))
        for d in problems:
            if not d.health.startswith("up"):
                lines.append(f"  {paint('x', 'red')} {d.container}: {d.health}")
            if d.orphan_criteria:
                why = "; ".join(CRITERIA[c] for c in d.orphan_criteria)
                lines.append(f"  {paint('!', 'yellow')} {d.container}: orphan suspect: {why}")
            for w in d.auth_weak:
                lines.append(f"  {paint('!', 'yellow')} {d.container}: auth-weak: {w}")
            if d.naming:
                lines.append(f"  {paint('!', 'yellow')} {d.container}: naming: {d.naming}")
        lines.append("")
    if report.connections:
        lines.append(paint("Connections (declared uses, verified live):", "bold"))
        for c in report.connections:
            via = f"{c.host_env}={c.host}" if c.host_env and c.host else "(no host setting declared)"
            if c.problem is None:
                rtt = f" {c.rtt_ms:.0f} ms" if c.rtt_ms is not None else ""
                lines.append(f"  {paint('ok', 'green')} {c.consumer} -> {c.instance} on {c.network}, {via}{rtt}")
            else:
                lines.append(f"  {paint('x', 'red')}  {c.consumer} -> {c.instance}: {c.problem}")
        lines.append("")
    if report.findings:
        lines.append(paint("Findings:", "bold"))
        for f in report.findings:
            lines.append(_finding_line(paint, f))
        lines.append("")
    if errors:
        lines.append(paint("Errors in the desired state:", "bold"))
        lines += [f"  {paint('x', 'red')} {e}" for e in errors]
        lines.append("")
    s = audit_summary(report, errors)
    head = paint("Nothing wrong:", "green") if not s["wrong"] else paint("Something is wrong:", "yellow")
    lines.append(
        f"{head} {s['databases']} databases ({s['unmanaged']} unmanaged, {s['down']} down, "
        f"{s['orphan_suspects']} orphan suspects, {s['naming_violations']} naming violations), "
        f"{s['connections']} connections ({s['connections_failing']} failing), {s['findings']} findings, "
        f"{s['errors']} errors."
    )
    return "\n".join(lines) + "\n"
