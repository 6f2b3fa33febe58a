"""The plan, for people (text, like a good `terraform plan`), for a merge request's comment (Markdown: a summary line
and collapsible sections, the changes as a diff) and for machines (stable JSON).

The JSON document (documented in the README):
    {"revision", "dirty", "engine": {"host", "version", "api_version"}, "in_sync",
     "changes": [{"action", "kind", "name", "target", "reason", "details"}],
     "findings": [{"type", "kind", "name", "message"}],
     "notes": [{"type", "kind", "name", "message"}],
     "errors": [{"file", "line", "column", "kind", "name", "field", "message"}],
     "summary": {"create", "start", "connect", "recreate", "disconnect", "remove", "findings", "errors"}}
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from controller.core import disruption, live, plan, spec
from controller.core.diagnostics import Diagnostic
from controller.core.health import ProbeResult
from controller.views.common import Painter, engine_json, finding_line, header, section

ACTION_COLOUR = {
    plan.Action.CREATE: "green",
    plan.Action.START: "green",
    plan.Action.CONNECT: "yellow",
    plan.Action.RECREATE: "magenta",
    plan.Action.DISCONNECT: "yellow",
    plan.Action.REMOVE: "red",
    plan.Action.RESTART: "magenta",
    plan.Action.ADOPT: "cyan",
    plan.Action.UPGRADE: "magenta",
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
    disruptions: Sequence[disruption.Disruption] = (),
) -> dict[str, Any]:
    """`disruptions`: one per change, in order (none: the key is left out)."""
    doc = {
        "revision": commit,
        "dirty": dirty,
        "engine": engine_json(engine),
        "in_sync": p.in_sync and not errors,
        "changes": [
            c.to_json() | ({"disruption": d.to_json()} if d is not None else {})
            for c, d in zip(p.changes, _aligned(p, disruptions), strict=True)
        ],
        "findings": [f.to_json() for f in p.findings],
        "notes": [n.to_json() for n in p.notes],
        "errors": errors_json(errors),
        "summary": summary(p, errors),
    }
    if probes is not None:  # only with --probe
        doc["probes"] = [r.to_json() for _, r in sorted(probes.items())]
    return doc


def _details_line(c: plan.Change) -> str | None:
    made, d = c.container, c.payload
    if c.action in (plan.Action.CREATE, plan.Action.RECREATE) and made is not None:
        parts = [f"image {made.image}"]
        if made.networks:
            parts.append(
                "networks " + ", ".join(f"{n}" + (f" ({', '.join(a)})" if a else "") for n, a in made.networks.items())
            )
        if made.instance is not None and made.instance.volumes:
            parts.append("volumes " + ", ".join(f"{s}:{t}" for s, t in made.instance.volumes.items()))
        if made.instance is not None and made.instance.ports:
            parts.append("ports " + ", ".join(made.instance.ports))
        return "; ".join(parts)
    if isinstance(d, plan.Attach) and d.aliases:
        return f"aliases {', '.join(d.aliases)}" + (" (disconnect, then connect)" if d.reconnect else "")
    return None


def _verb(c: plan.Change) -> str:
    noun = {spec.Kind.NETWORK: "network", spec.Kind.VOLUME: "volume"}.get(c.kind, "container")
    if isinstance(c.payload, plan.Attach | plan.Detach):
        to = "to" if c.action is plan.Action.CONNECT else "from"
        return f"{c.action.value} {c.target} {to} {c.payload.network}"
    return f"{c.action.value} {noun} {c.target}"


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


def disruptions(p: plan.Plan, state: spec.DesiredState, durations: disruption.Durations) -> list[disruption.Disruption]:
    """What each change of `p` interrupts, in order (core/disruption.py)."""
    return [disruption.of(c, state, durations) for c in p.changes]


def _aligned(p: plan.Plan, disruptions: Sequence[disruption.Disruption]) -> list[disruption.Disruption | None]:
    return list(disruptions) if len(disruptions) == len(p.changes) else [None] * len(p.changes)


def to_text(
    p: plan.Plan,
    errors: tuple[Diagnostic, ...],
    engine: live.EngineInfo,
    revision: str,
    directory: str,
    colour: bool,
    probes: Mapping[str, ProbeResult] | None = None,
    disruptions: Sequence[disruption.Disruption] = (),
) -> str:
    paint = Painter(colour)
    lines = header(paint, "dbstate plan", directory, revision, engine)
    if p.changes:
        lines.append(paint("Changes:", "bold"))
        width = max(len(f"{c.kind}/{c.name}") for c in p.changes)
        for c, d in zip(p.changes, _aligned(p, disruptions), strict=True):
            symbol = plan.SYMBOLS[c.action]
            head = f"  {paint(symbol.rjust(3), ACTION_COLOUR[c.action])} {f'{c.kind}/{c.name}'.ljust(width)}  "
            lines.append(head + f"{_verb(c)}: {c.reason}")
            extra = _details_line(c)
            if extra:
                lines.append(" " * 6 + paint(extra, "dim"))
            if d is not None and d.interrupts:
                lines.append(" " * 6 + paint(d.line(), "yellow"))
        lines.append("")
    if probes:
        lines.append(paint("Probes (what the servers say):", "bold"))
        lines += probe_lines(probes, paint)
        lines.append("")
    findings = [finding_line(paint, f) for f in p.findings]
    lines += section(paint, "Findings (need a human; dbstate does not act on them):", findings)
    if p.notes:
        lines.append(paint("Notes:", "bold"))
        for n in p.notes:
            lines.append(f"  {paint('-', 'dim')} {n.type.value} {n.kind}/{n.name}: {n.message}")
        lines.append("")
    lines += error_lines(paint, "Errors in the desired state (those resources are held back):", errors)
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


# in a ```diff block: what adds shows green, what takes away red, what replaces or touches plain
DIFF_SIGN = {
    plan.Action.CREATE: "+",
    plan.Action.START: "+",
    plan.Action.CONNECT: "+",
    plan.Action.ADOPT: "+",
    plan.Action.REMOVE: "-",
    plan.Action.DISCONNECT: "-",
    plan.Action.RECREATE: "!",
    plan.Action.RESTART: "!",
    plan.Action.UPGRADE: "!",
}


def to_markdown(
    p: plan.Plan,
    errors: tuple[Diagnostic, ...],
    engine: live.EngineInfo,
    revision: str,
    directory: str,
    disruptions: Sequence[disruption.Disruption] = (),
) -> str:
    """The plan as a merge request's comment: one summary line, then each part in a collapsible section (the changes
    as a diff, the findings, the notes, the errors in the desired state). Text from outside sits in code spans or a
    fenced block, so that nothing in it renders as Markdown."""
    s = summary(p, errors)
    counts = ", ".join(f"{s[a.value]} to {a.value}" for a in plan.Action if s[a.value]) or "no changes"
    extra = f", {s['findings']} finding{'s' * (s['findings'] != 1)}" + (f", {len(errors)} errors" if errors else "")
    mark = ":white_check_mark:" if p.in_sync and not errors else (":x:" if errors else ":warning:")
    out = [
        f"### {mark} dbstate plan: {counts}{extra}",
        "",
        f"{_code(directory)} @ {_code(revision)} against {_code(engine.host)} (Docker {engine.version})",
        "",
    ]
    if p.changes:
        width = max(len(f"{c.kind}/{c.name}") for c in p.changes)
        body = []
        for c, d in zip(p.changes, _aligned(p, disruptions), strict=True):
            body.append(f"{DIFF_SIGN[c.action]} {f'{c.kind}/{c.name}'.ljust(width)}  {_verb(c)}: {c.reason}")
            if d is not None and d.interrupts:
                body.append(f"  {' ' * width}  {d.line()}")
        out += _details(f"Changes ({len(p.changes)})", ["````diff", *body, "````"], opened=True)
    if p.findings:
        out += _details(
            f"Findings ({len(p.findings)}): need a human",
            [f"- **{f.type.value}** {_code(f'{f.kind}/{f.name}')}: {_code(f.message)}" for f in p.findings],
        )
    if p.notes:
        notes = [f"- {n.type.value} {_code(f'{n.kind}/{n.name}')}: {_code(n.message)}" for n in p.notes]
        out += _details(f"Notes ({len(p.notes)})", notes)
    if errors:
        lines = [f"- {_code(f'{e.file}:{e.line}')} {_code(e.message)}" for e in errors]
        out += _details(f"Errors in the desired state ({len(errors)}): those resources are held back", lines)
    return "\n".join(out) + "\n"


def _details(title: str, body: list[str], opened: bool = False) -> list[str]:
    return [f"<details{' open' if opened else ''}><summary>{title}</summary>", "", *body, "", "</details>", ""]


def _code(text: str) -> str:
    """`text` as a code span that no backtick in it can end (CommonMark: a longer fence)."""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def errors_json(errors: tuple[Diagnostic, ...]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.to_json().items() if k != "severity"} for e in errors]


def error_lines(paint: Painter, title: str, errors: tuple[Diagnostic, ...]) -> list[str]:
    return section(paint, title, [f"  {paint('x', 'red')} {e}" for e in errors])
