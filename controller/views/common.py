"""What every view shares: colour (only on a terminal), the header naming the desired state and the engine, finding
lines, stable JSON, and the last-resort scrubber of secret values."""

from __future__ import annotations

import json
import os
from typing import Any, TextIO

from controller.core import live, plan, secrets
from controller.core.text import terminal_safe

COLOURS = {"green": "32", "yellow": "33", "red": "31", "magenta": "35", "cyan": "36", "dim": "2", "bold": "1"}


def colour(mode: str, stream: TextIO) -> bool:
    """--color: always, never, or auto (a terminal, unless NO_COLOR is set)."""
    if mode == "always":
        return True
    if mode == "never" or os.environ.get("NO_COLOR"):
        return False
    return stream.isatty()


def scrub(text: str, known: frozenset[str]) -> str:
    """The last safety net before anything is printed: every known secret value replaced, and no control character
    but dbstate's own newlines, tabs and colours."""
    return terminal_safe(secrets.scrub(text, set(known)))


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2) + "\n"


def host_heading(name: str, endpoint: str) -> str:
    """Where one engine's part begins in the text of a command over several engines (`kind: Host`)."""
    return f"== Host {name} ({endpoint}) ==\n"


def host_error(name: str, error: object) -> str:
    """One engine of several that failed (on stderr): the others are still worked on."""
    return f"dbstate: error: Host {name}: {error}\n"


def host_part(name: str, endpoint: str | None, body: dict[str, Any]) -> dict[str, Any]:
    """One engine's part of the JSON of a command over several engines: its name, its endpoint, its document."""
    return {"host": name, **({"endpoint": endpoint} if endpoint is not None else {}), **body}


def several(summary: dict[str, Any], hosts: list[dict[str, Any]]) -> str:
    """The JSON of a command over several engines (`kind: Host`): what holds for all of them, then one part each."""
    return dumps({**summary, "hosts": hosts})


def engine_json(engine: live.EngineInfo) -> dict[str, str]:
    return {"host": engine.host, "version": engine.version, "api_version": engine.api_version}


class Painter:
    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, text: str, colour: str) -> str:
        if not self.colour:
            return text
        return f"\033[{COLOURS[colour]}m{text}\033[0m"


def header(paint: Painter, title: str, directory: str, revision: str, engine: live.EngineInfo) -> list[str]:
    return [
        paint(title, "bold"),
        f"  desired state  {directory} @ {revision}",
        f"  engine         {engine.host} (Docker {engine.version}, API {engine.api_version})",
        "",
    ]


def finding_line(paint: Painter, f: plan.Finding) -> str:
    return f"  {paint('!', 'yellow')} {paint(f.type.value, 'yellow')} {f.kind}/{f.name}: {f.message}"


def section(paint: Painter, title: str, body: list[str]) -> list[str]:
    """A titled block of lines and a blank line; nothing at all when there is nothing to say."""
    return [paint(title, "bold"), *body, ""] if body else []
