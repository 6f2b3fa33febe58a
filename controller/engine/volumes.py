"""What a data directory holds, looked at by a throw-away helper of the server's own image (no network, the directory
mounted read-only): the one check before a move, a restore to a new volume or an upgrade writes into a destination."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from controller.core import errors


class Helpers(Protocol):
    def run_once(self, image: str, mounts: Sequence[tuple[str, str, bool]], script: str) -> tuple[int, str]: ...


def entries(helpers: Helpers, image: str, source: str) -> list[str]:
    """The names at the top of `source` (a volume's name or a host directory); an error when it cannot be looked
    into (`EngineError`'s kind is the caller's to say)."""
    code, out = helpers.run_once(image, [(source, "/v", True)], "ls -A /v")
    if code != 0:
        raise errors.DbstateError(f"cannot look into {source}: {out.strip()[-200:]}")
    return out.split()
