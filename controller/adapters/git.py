"""The git revision of the desired-state directory, and whether its working tree is dirty."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Revision:
    commit: str | None  # None: not in a git repository (or git is missing)
    dirty: bool | None  # uncommitted changes below the directory; None when unknown

    @property
    def short(self) -> str:
        if self.commit is None:
            return "(not a git checkout)"
        return self.commit[:12] + (" (dirty)" if self.dirty else "")


def _git(directory: Path, *args: str) -> str | None:
    try:
        r = subprocess.run(
            ["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def revision(directory: Path) -> Revision:
    if shutil.which("git") is None or not directory.is_dir():
        return Revision(None, None)
    commit = _git(directory, "rev-parse", "--verify", "-q", "HEAD")
    if commit is None:
        return Revision(None, None)
    status = _git(directory, "status", "--porcelain", "--untracked-files=normal", "--", ".")
    return Revision(commit, None if status is None else bool(status))
