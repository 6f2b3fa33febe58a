"""Reads a dotenv file (`KEY=VALUE`, `export KEY=VALUE`, quotes, comments) into variables for interpolation."""

from __future__ import annotations

import re
from pathlib import Path

from controller.core.diagnostics import Diagnostic

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def parse(text: str, file: str) -> tuple[dict[str, str], list[Diagnostic]]:
    """Variables and located problems; a problem names the line, never its value."""
    out: dict[str, str] = {}
    problems: list[Diagnostic] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _LINE.match(raw)
        if m is None:
            problems.append(Diagnostic(file, number, 1, "not a KEY=VALUE line"))
            continue
        key, value = m.group(1), m.group(2)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = value.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[key] = value
    return out, problems


def read(path: Path) -> tuple[dict[str, str], list[Diagnostic]]:
    return parse(path.read_text(encoding="utf-8-sig"), str(path))
