"""`dbstate validate`: every diagnostic with its place, then what the desired state declares; or one JSON document."""

from __future__ import annotations

import json
from pathlib import Path

from controller.core import spec
from controller.core.spec import Kind


def declared(state: spec.DesiredState) -> dict[Kind, list[str]]:
    hosts = {Kind.HOST: [h.metadata.name for h in state.hosts]} if state.hosts else {}  # engines, when declared
    return (
        hosts
        | {
            Kind.DATABASE_INSTANCE: [r.metadata.name for r in state.instances],
            Kind.NETWORK: [r.metadata.name for r in state.networks],
            Kind.VOLUME: [r.metadata.name for r in state.volumes],
            Kind.CONSUMER: [r.metadata.name for r in state.consumers],
        }
        | ({Kind.EXPORTER: [e.metadata.name for e in state.exporters]} if state.exporters else {})
    )  # spec.monitoring


def to_json(directory: Path, loaded: spec.Loaded, valid: bool) -> str:
    doc = {
        "valid": valid,
        "directory": str(directory),
        "env_file": loaded.variables_from,
        "files": list(loaded.files),
        "resources": declared(loaded.state),
        "held_back": sorted(f"{k}/{n}" for k, n in loaded.state.held_back),
        "errors": [d.to_json() for d in loaded.errors],
        "warnings": [d.to_json() for d in loaded.warnings],
    }
    return json.dumps(doc, indent=2) + "\n"


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def problems_text(directory: Path, loaded: spec.Loaded) -> str:
    """The diagnostics, one a line, and (with errors) the count: for stderr."""
    lines = [str(d) for d in loaded.diagnostics]
    if loaded.errors:
        lines.append(
            f"{directory}: {_count(len(loaded.errors), 'error')}, {_count(len(loaded.warnings), 'warning')} "
            f"in {len(loaded.files)} files; held back: {len(loaded.state.held_back)} resources"
        )
    return "".join(line + "\n" for line in lines)


def summary_text(directory: Path, loaded: spec.Loaded) -> str:
    """What a valid desired state declares: for stdout."""
    resources = declared(loaded.state)
    total = sum(len(v) for k, v in resources.items() if k != Kind.EXPORTER)  # exporters are derived, not written
    n_warn = len(loaded.warnings)
    lines = [
        f"{directory}: valid, {total} resources in {len(loaded.files)} files"
        + (f", {_count(n_warn, 'warning')}" if n_warn else "")
    ]
    lines += [
        f"  {kind} ({len(names)}{', from spec.monitoring' if kind == Kind.EXPORTER else ''}): "
        + (", ".join(names) if names else "-")
        for kind, names in resources.items()
    ]
    return "\n".join(lines) + "\n"
