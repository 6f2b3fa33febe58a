"""What `backup`, `backups` and `verify-backup` print: a backup taken (one line, or the manifests as JSON), the
backup directory's listing (a table, or JSON), a backup verified."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from controller.core.dumps import Manifest


def taken(m: Manifest) -> str:
    """One backup taken by `dbstate backup`: id, instance, size, verified or not."""
    state = "verified" if m.verified else "not verified"
    return f"{m.id}  {m.instance}  {m.size_bytes / 1048576:.1f} MiB  {state}\n"


def manifests_json(found: Sequence[Manifest]) -> str:
    """Manifests as a JSON list (`backup --output json`, `backups --output json`)."""
    return json.dumps([m.to_json() for m in found], indent=2) + "\n"


def listing(found: Sequence[Manifest], directory: Path, name: str | None) -> str:
    """`dbstate backups`: one line per backup, newest last."""
    if not found:
        return f"no backups in {directory}" + (f" for {name}" if name else "") + "\n"
    lines = [f"{'ID':<40} {'INSTANCE':<16} {'TAKEN (UTC)':<20} {'SIZE':>10}  {'HOLDS':<24} VERIFIED  REASON"]
    for m in found:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(m.started))
        holds = f"{m.counts['keys']} keys" if set(m.counts) == {"keys"} else f"{len(m.counts)} tables"
        if not m.counts and not m.databases:  # an RDB file verified before counts were kept
            holds = m.format.split(".", 1)[0]
        verified = "yes" if m.verified else "no"
        lines.append(
            f"{m.id:<40} {m.instance:<16} {when:<20} {m.size_bytes / 1048576:>8.1f}Mi  {holds:<24} {verified:<9} "
            f"{m.reason}"
        )
    return "\n".join(lines) + "\n"


def verified(ident: str) -> str:
    """One backup restored into a throw-away server and found to hold what its manifest says."""
    return f"{ident}  verified\n"


def failed(what: str, reason: object) -> str:
    """One backup (or instance) that could not be taken or verified: on stderr, the others go on."""
    return f"failed: {what}: {reason}\n"
