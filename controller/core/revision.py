"""The git revision a desired state was read at (what every pass records and every managed container carries), and
the desired state paired with it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controller.core.spec import Loaded


@dataclass(frozen=True, slots=True)
class Revision:
    commit: str | None  # None: not in a git repository (or git is missing)
    dirty: bool | None  # uncommitted changes below the directory; None when unknown

    @property
    def short(self) -> str:
        if self.commit is None:
            return "(not a git checkout)"
        return self.commit[:12] + (" (dirty)" if self.dirty else "")


@dataclass(frozen=True)
class Desired:
    """A desired state as read at one revision."""

    revision: Revision
    loaded: Loaded
