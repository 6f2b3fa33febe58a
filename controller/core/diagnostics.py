"""A located message about the desired state: `FILE:LINE:COLUMN: Kind/name: field.path: message`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from controller.core.secrets import redact_credentials

Severity = Literal["error", "warning"]


def field_path(path: tuple[str | int, ...]) -> str:
    """`("spec", "networks", 0, "name")` -> `spec.networks[0].name`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True, slots=True)
class Diagnostic:
    file: str
    line: int  # 1-based
    column: int  # 1-based
    message: str
    kind: str | None = None
    name: str | None = None
    field: str | None = None
    severity: Severity = "error"

    def __str__(self) -> str:
        out = f"{self.file}:{self.line}:{self.column}: "
        if self.severity == "warning":
            out += "warning: "
        if self.kind:
            out += f"{self.kind}/{self.name or '?'}: "
        if self.field:
            out += f"{self.field}: "
        return redact_credentials(out + self.message)  # a key or value quoted back may hold a credential

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "kind": self.kind,
            "name": self.name,
            "field": redact_credentials(self.field) if self.field else self.field,
            "message": redact_credentials(self.message),
            "severity": self.severity,
        }
