"""The `engine.ports.DesiredSource` of a directory: its files as they are on disk (worktree), or only what is
committed at HEAD (commit: exported with git, errors reported under the real paths)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from controller.adapters import desired, git
from controller.core import placement
from controller.core.revision import Desired

Mode = Literal["worktree", "commit"]


class DirectorySource:
    def __init__(
        self,
        directory: Path,
        env_file: Path | None = None,
        mode: Mode = "worktree",
        environ: Mapping[str, str] | None = None,
        limits: desired.Limits | None = None,
        host: str | None = None,
    ) -> None:
        """`host`: only the resources of this engine (core/placement.py); None: all of them."""
        self.host = host
        self.directory = directory
        self.env_file = env_file
        self.mode = mode
        self.environ = environ
        self.limits = limits

    def load(self) -> Desired:
        whole = self._load()
        if self.host is None:
            return whole
        return Desired(whole.revision, placement.slice_loaded(whole.loaded, self.host))

    def _load(self) -> Desired:
        rev = git.revision(self.directory)
        if self.mode == "commit":
            if rev.commit is None:
                raise git.GitError(f"--source commit: {self.directory} is not a git checkout with a commit")
            with tempfile.TemporaryDirectory(prefix="dbstate-commit-") as tmp:
                exported = git.export(self.directory, rev.commit, Path(tmp) / "desired")
                loaded = desired.load(exported, self.env_file, self.environ, self.directory, self.limits)
                return Desired(rev, loaded)
        return Desired(rev, desired.load(self.directory, self.env_file, self.environ, limits=self.limits))
