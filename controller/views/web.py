"""The web view (`dbstate run --listen`, `dbstate serve`): the models of its pages, built from what the state
database and the backup directory hold (every text there is already redacted), and their HTML through Jinja2
templates with autoescaping. The JSON twin of a page under /api/ is its model as it is."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2

from controller.core.monitoring import JOB
from controller.core.spec import Kind

STATUSES = ("in-sync", "drifted", "failing", "findings", "suspended", "invalid")
REFRESH = 30  # seconds: the page reloads itself (no JavaScript)

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("controller.views", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) if t else "-"


def _health(h: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if h is None:
        return None
    if h["reachable"]:
        rtt = f"{h['rtt_ms']:.0f} ms" if h.get("rtt_ms") is not None else ""
        return {"state": "up", "summary": f"{h.get('version') or '?'} {rtt}".strip(), **dict(h)}
    since = "never up" if h.get("last_ok") is None else f"up last at {_when(h['last_ok'])}"
    return {"state": "down", "summary": f"{h['failures']} failed in a row ({since}): {h.get('error') or ''}", **dict(h)}


def _pass(p: Mapping[str, Any]) -> dict[str, Any]:
    took = f"{p['finished'] - p['started']:.2f} s" if p.get("finished") else "running"
    if p.get("finished") is None:
        outcome = "unknown"
    elif p.get("errors"):
        outcome = "error"
    elif p.get("failed"):
        outcome = "failed"
    else:
        outcome = "ok"
    counts = f"{p.get('changes') or 0} changes, {p.get('failed') or 0} failed, {p.get('findings') or 0} findings"
    if p.get("error"):  # a pass that could not run (engine unreachable, desired state unreadable)
        counts = str(p["error"])
    return {
        "id": p["id"],
        "host": p.get("host") or "-",
        "when": _when(p["started"]),
        "command": p["command"],
        "trigger": p.get("trigger") or "-",
        "revision": (p["revision"][:12] + ("+" if p.get("dirty") else "")) if p.get("revision") else "(worktree)",
        "took": took,
        "outcome": outcome,
        "counts": counts,
    }


def _backup(m: Mapping[str, Any]) -> dict[str, Any]:
    counts = m.get("counts") or {}
    holds = (
        f"{counts['keys']} keys" if set(counts) == {"keys"} else f"{len(counts)} tables, {sum(counts.values())} rows"
    )
    return {
        "id": m["id"],
        "when": _when(m["finished"]),
        "size": f"{m['size_bytes'] / 1048576:.1f} MiB",
        "holds": holds,
        "verified": bool(m.get("verified")),
        "reason": m.get("reason", ""),
    }


def overview_model(
    state_path: str,
    passes: Sequence[Mapping[str, Any]],
    resources: Sequence[Mapping[str, Any]],
    health: Sequence[Mapping[str, Any]],
    overview: Mapping[str, Any] | None,
    backups: Mapping[str, Sequence[Mapping[str, Any]]],
    engines: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """`engines`: the last pass of each engine (Host), by name."""
    probed = {h["instance"]: h for h in health}
    rows = []
    for r in resources:
        kind, _, name = r["key"].partition("/")
        h = _health(probed.get(name)) if kind == Kind.DATABASE_INSTANCE else None
        rows.append(
            {
                **dict(r),
                "kind": kind,
                "name": name,
                "health": h,
                "next_retry": _when(r.get("next_retry")) + "Z" if r.get("next_retry") else "-",
                "backups": len(backups.get(name, ())) if kind == Kind.DATABASE_INSTANCE else None,
            }
        )
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    last = passes[0] if passes else None
    ov = overview or {}
    return {
        "engines": _engines(rows, engines or {}),
        "state_path": state_path,
        "statuses": [s for s in STATUSES if s in counts or s in ("in-sync", "drifted", "failing")],
        "counts": counts,
        "last_pass": _pass(last) if last else None,
        "resources": rows,
        "findings": list(ov.get("findings", ())),
        "pending": list(ov.get("pending", ())),
        "notes": list(ov.get("notes", ())),
        "passes": [_pass(p) for p in passes],
    }


def _engines(rows: Sequence[Mapping[str, Any]], passes: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each engine (`kind: Host`) with its resources' states and its last pass; one line per engine when there are
    several (a down engine shows as a failed pass of its own, the others' passes go on)."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        e = out.setdefault(r.get("host") or "default", {"name": r.get("host") or "default", "counts": {}})
        e["counts"][r["status"]] = e["counts"].get(r["status"], 0) + 1
    for host, p in passes.items():
        out.setdefault(host, {"name": host, "counts": {}})["last_pass"] = _pass(p)
    return [{"last_pass": None, **e} for _, e in sorted(out.items())]


def merge_overviews(overviews: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """One overview of every engine's last pass: findings, pending changes and notes each say their engine."""
    if not overviews:
        return None
    merged: dict[str, Any] = {"findings": [], "pending": [], "notes": [], "instances": {}}
    for host, ov in sorted(overviews.items()):
        for part in ("findings", "pending", "notes"):
            merged[part] += [{**item, "host": host} for item in ov.get(part, ())]
        merged["instances"].update({n: {**i, "host": host} for n, i in ov.get("instances", {}).items()})
    return merged


def targets(overview: Mapping[str, Any] | None, controller: str | None) -> list[dict[str, Any]]:
    """Prometheus' HTTP service discovery (`http_sd_configs`; the same list is a `file_sd_configs` file): each
    instance's exporter, where its network reaches it, and the controller itself; labelled `instance` (the
    DatabaseInstance), `engine` and `host` (the Host it runs on)."""
    out = []
    for name, info in sorted((overview or {}).get("instances", {}).items()):
        exporter = info.get("exporter")
        if exporter:
            labels = {"instance": name, "engine": info["engine"], "host": info.get("host", ""), "job": JOB}
            out.append({"targets": [exporter["scrape"]], "labels": labels})
    if controller is not None:
        labels = {"instance": "dbstate", "engine": "dbstate", "host": "controller", "job": "dbstate"}
        out.append({"targets": [controller], "labels": labels})
    return out


def instance_model(
    name: str,
    resources: Sequence[Mapping[str, Any]],
    health: Sequence[Mapping[str, Any]],
    overview: Mapping[str, Any] | None,
    backups: Sequence[Mapping[str, Any]],
) -> dict[str, Any] | None:
    key = f"DatabaseInstance/{name}"
    row = next((r for r in resources if r["key"] == key), None)
    info = (overview or {}).get("instances", {}).get(name)
    if row is None and info is None:
        return None
    probed = next((h for h in health if h["instance"] == name), None)
    exporter = (info or {}).get("exporter")
    exporter_row = next((r for r in resources if r["key"] == f"{Kind.EXPORTER}/{name}"), None)
    return {
        "name": name,
        "status": row["status"] if row else "unknown",
        "message": row["message"] if row else "",
        "health": _health(probed),
        "info": info,
        "consumers": list((info or {}).get("consumers", ())),
        "exporter": {**exporter, "status": exporter_row["status"] if exporter_row else "unknown"} if exporter else None,
        "backups": [_backup(m) for m in reversed(backups)],
        "findings": [
            f for f in (overview or {}).get("findings", ()) if f["kind"] == Kind.DATABASE_INSTANCE and f["name"] == name
        ],
    }


def render(template: str, model: Mapping[str, Any]) -> str:
    return _templates.get_template(template).render(refresh=REFRESH, **model)
