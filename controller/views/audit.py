"""`dbstate audit`, for people (a table, the problems, the connections) and for machines (JSON)."""

from __future__ import annotations

from typing import Any

from controller.core import live
from controller.core.audit import CRITERIA, Report
from controller.core.diagnostics import Diagnostic
from controller.views.common import Painter, engine_json, finding_line, header, section
from controller.views.plan import error_lines, errors_json


def audit_json(
    report: Report, engine: live.EngineInfo, commit: str | None, dirty: bool | None, errors: tuple[Diagnostic, ...]
) -> dict[str, Any]:
    return {
        "revision": commit,
        "dirty": dirty,
        "engine": engine_json(engine),
        "databases": [d.to_json() for d in report.databases],
        "connections": [c.to_json() for c in report.connections],
        "findings": [f.to_json() for f in report.findings],
        "errors": errors_json(errors),
        "summary": audit_summary(report, errors),
    }


def audit_summary(report: Report, errors: tuple[Diagnostic, ...]) -> dict[str, Any]:
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
    report: Report,
    engine: live.EngineInfo,
    revision: str,
    directory: str,
    errors: tuple[Diagnostic, ...],
    colour: bool,
) -> str:
    paint = Painter(colour)
    lines = [*header(paint, "dbstate audit", directory, revision, engine), paint("Databases:", "bold")]
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
    lines += section(paint, "Findings:", [finding_line(paint, f) for f in report.findings])
    lines += error_lines(paint, "Errors in the desired state:", errors)
    s = audit_summary(report, errors)
    head = paint("Nothing wrong:", "green") if not s["wrong"] else paint("Something is wrong:", "yellow")
    lines.append(
        f"{head} {s['databases']} databases ({s['unmanaged']} unmanaged, {s['down']} down, "
        f"{s['orphan_suspects']} orphan suspects, {s['naming_violations']} naming violations), "
        f"{s['connections']} connections ({s['connections_failing']} failing), {s['findings']} findings, "
        f"{s['errors']} errors."
    )
    return "\n".join(lines) + "\n"
