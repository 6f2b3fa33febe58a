"""What a backup is, whatever the engine: the manifest that describes it (never a secret: names, sizes, digests,
counts), and the comparisons of what a dump held with what a server holds. Each engine's own tools, dump formats
and counters are its module's (core/databases)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from controller.core.databases.base import parse_rows

__all__ = ["MANIFEST_VERSION", "Manifest", "compare_counts", "digest_of", "parse_rows", "plain_name"]

MANIFEST_VERSION = 1


def digest_of(lines: dict[str, str]) -> str:
    """One digest of a server's tables ("db/table" -> that table's digest)."""
    import hashlib

    body = "\n".join(f"{k}={v}" for k, v in sorted(lines.items()))
    return hashlib.sha256(body.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Manifest:
    """What a backup is; written beside its file and never holding a secret (names, sizes, digests, counts)."""

    id: str
    instance: str
    engine: str
    image: str
    server_version: str
    revision: str | None
    file: str
    format: str  # "sql.gz" (PostgreSQL, MariaDB) | "rdb.gz" (Redis)
    size_bytes: int  # of the compressed file
    raw_bytes: int  # of the dump as the tool wrote it
    sha256: str  # of the compressed file
    started: float
    finished: float
    counts: dict[str, int]  # "db/schema.table" (PostgreSQL), "db/table" (MariaDB), "keys" (Redis) -> rows
    databases: list[str] = field(default_factory=list)  # the databases the dump holds (none for Redis)
    reason: str = "manual"  # manual | schedule | before recreate ... | before restore | before upgrade
    verified: float | None = None  # when --verify restored it into a throw-away server and the counts matched
    version: int = MANIFEST_VERSION
    # HMAC-SHA256 of every other field (the file's sha256 among them) with the backup key, which is kept outside the
    # backup directory: a manifest and file changed or made by someone without the key are refused
    signature: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def signed_bytes(self) -> bytes:
        """What the signature covers: the manifest without its signature, canonical JSON."""
        body = {k: v for k, v in self.to_json().items() if k != "signature"}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        """A manifest as read from a file someone may have written by hand: ValueError for a field of the wrong type,
        or an id, instance or file that is not a plain name (a path would lead out of the backup directory)."""
        if not isinstance(data, Mapping):
            raise ValueError("a manifest is a JSON object")
        known = {f for f in cls.__dataclass_fields__}
        body = {k: v for k, v in data.items() if k in known}
        for key, value in body.items():
            if not _FIELD_CHECKS[key](value):
                raise ValueError(f"manifest field {key}: {type(value).__name__} is not what it holds")
        for key in ("id", "instance", "file"):
            if not plain_name(body.get(key)):
                raise ValueError(f"manifest field {key}: not a plain file name")
        return cls(**body)

    def with_verified(self, when: float, counts: Mapping[str, int] | None = None) -> Manifest:
        return replace(self, verified=when, counts=dict(counts) if counts is not None else self.counts)


def plain_name(text: object) -> bool:
    """A name that stays in its directory: no separator, not `.` or `..`, not hidden."""
    return (
        isinstance(text, str)
        and bool(text)
        and not text.startswith(".")
        and not any(c in text for c in ("/", "\\", "\0"))
    )


def _number(v: object) -> bool:
    """A time: a finite number of seconds since 1970, before the year 10000 (what a clock and `gmtime` take)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v < 253402300800


def _count(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63


def _text(v: object) -> bool:
    return isinstance(v, str)


_FIELD_CHECKS: dict[str, Any] = {
    "id": _text,
    "instance": _text,
    "engine": _text,
    "image": _text,
    "server_version": _text,
    "revision": lambda v: v is None or isinstance(v, str),
    "file": _text,
    "format": _text,
    "size_bytes": _count,
    "raw_bytes": _count,
    "sha256": _text,
    "started": _number,
    "finished": _number,
    "counts": lambda v: isinstance(v, dict) and all(isinstance(k, str) and _count(n) for k, n in v.items()),
    "databases": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "reason": _text,
    "verified": lambda v: v is None or _number(v),
    "version": _count,
    "signature": lambda v: v is None or isinstance(v, str),
}


def compare_counts(
    want: Mapping[str, int], got: Mapping[str, int], before: str = "in the backup", after: str = "restored"
) -> list[str]:
    """The differences, as lines a human reads (empty: equal): `want` is what was `before`, `got` what is `after`."""
    out = []
    for key in sorted(set(want) | set(got)):
        a, b = want.get(key), got.get(key)
        if a != b:
            out.append(f"{key}: {'missing' if a is None else a} {before}, {'missing' if b is None else b} {after}")
    return out
