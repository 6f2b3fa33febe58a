"""`dbstate status`: the last pass, each resource's state and each instance's last probe, as text or JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any


def _hms(t: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(t)) + "Z"


def to_json(
    last: Mapping[str, Any] | None,
    resources: Sequence[Mapping[str, Any]],
    health: Sequence[Any],
    backups: Sequence[Mapping[str, Any]] = (),
    engines: Mapping[str, Mapping[str, Any]] | None = None,
    jobs: Sequence[Mapping[str, Any]] = (),
) -> str:
    """`engines`: the last pass of each engine (Host), by name; `jobs`: the one-off commands handed to a controller."""
    body = {
        "last_pass": last,
        "engines": dict(engines or {}),
        "resources": list(resources),
        "health": list(health),
        "backups": list(backups),
        "jobs": list(jobs),
    }
    return json.dumps(body, indent=2) + "\n"


def backup_lines(backups: Sequence[Mapping[str, Any]]) -> list[str]:
    """The newest backup of each instance (manifests as JSON)."""
    if not backups:
        return []
    lines = ["backups (the newest of each instance):"]
    width = max(len(b["instance"]) for b in backups)
    for b in backups:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(b["finished"]))
        verified = "verified" if b.get("verified") else "not verified"
        lines.append(
            f"  {b['instance']:<{width}}  {when}Z  {b['size_bytes'] / 1048576:.1f} MiB  {verified}  {b['reason']}  "
            f"{b['id']}"
        )
    return lines


def job_lines(jobs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The one-off commands (restore, rollback, migrate-volume) handed to a running controller, newest first."""
    if not jobs:
        return []
    lines = ["jobs (handed to a running controller, newest first):"]
    for j in jobs:
        what = f"job {j['id']}  {j['command']} {j['instance']}  asked by {j['who']} at {_hms(j['requested'])}"
        if j["state"] in ("done", "failed"):
            what += f", ended {_hms(j['finished'])} (exit {j['exit_code']})"
        lines.append(f"  {j['state']:<9} {what}")
    return lines


def _pass_line(head: str, p: Mapping[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(p["started"]))
    if p.get("error"):  # the pass could not run: the engine unreachable, the desired state unreadable
        return f"{head}: {p['command']} at {when}Z FAILED: {p['error']}"
    rev = (p["revision"] or "(not a git checkout)")[:12] + (" (dirty)" if p["dirty"] else "")
    return (
        f"{head}: {p['command']} at {when}Z, revision {rev}: {p['changes'] or 0} changes, "
        f"{p['failed'] or 0} failed, {p['findings'] or 0} findings, {p['errors'] or 0} errors"
    )


def to_text(
    last: Mapping[str, Any] | None,
    resources: Sequence[Mapping[str, Any]],
    health: Sequence[Mapping[str, Any]],
    backups: Sequence[Mapping[str, Any]] = (),
    engines: Mapping[str, Mapping[str, Any]] | None = None,
    jobs: Sequence[Mapping[str, Any]] = (),
) -> str:
    if last is None:
        return "\n".join(["no pass recorded yet", *job_lines(jobs), *backup_lines(backups)]) + "\n"
    several = engines is not None and len(engines) > 1
    if several:
        assert engines is not None
        lines = [_pass_line(f"last pass on {host}", p) for host, p in sorted(engines.items())]
    else:
        lines = [_pass_line("last pass", last)]
    width = max((len(r["key"]) for r in resources), default=10)
    hosts = max((len(r.get("host") or "") for r in resources), default=0)
    for r in resources:
        line = f"  {r['status']:<9} {r['key']:<{width}}"
        if several:
            line = f"  {r['status']:<9} {r.get('host') or '':<{hosts}}  {r['key']:<{width}}"
        if r["status"] == "failing":
            retry = _hms(r["next_retry"]) if r["next_retry"] else "-"
            line += f"  attempts {r['attempts']}, next retry {retry}: {r['message']}"
        elif r["message"]:
            line += f"  {r['message']}"
        lines.append(line)
    if health:
        lines.append("health (last probe of each instance):")
        width = max(len(h["instance"]) for h in health)
        for h in health:
            if h["reachable"]:
                rtt = f"{h['rtt_ms']:.0f} ms" if h["rtt_ms"] is not None else "-"
                lines.append(
                    f"  up        {h['instance']:<{width}}  {h['version'] or '?'}  {rtt}  at {_hms(h['probed'])}"
                )
            else:
                since = "never up" if h["last_ok"] is None else "up last at " + _hms(h["last_ok"])
                lines.append(
                    f"  down      {h['instance']:<{width}}  {h['failures']} failed in a row ({since}): {h['error']}"
                )
    lines += job_lines(jobs)
    lines += backup_lines(backups)
    return "\n".join(lines) + "\n"
