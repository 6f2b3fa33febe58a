"""The `engine.ports.DesiredSource` of a directory: its files as they are on disk (worktree), or only what is
committed at HEAD (commit: exported with git, errors reported under the real paths)."""

from __future__ import annotations

import tempfile
import threading
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
    ) -> None:
        self.directory = directory
        self.env_file = env_file
        self.mode = mode
        self.environ = environ
        self.limits = limits

    def fingerprint(self) -> tuple[object, ...] | None:
        """What a reading depends on: the revision, and each file's (and the env file's) size and mtime; None when
        it cannot be told (then it is read again)."""
        rev = git.revision(self.directory)
        env = self.env_file or Path(desired.DEFAULT_ENV_FILE)
        try:
            files = desired.find_files(self.directory) if self.mode == "worktree" else []
            stats = [(str(f), st.st_mtime_ns, st.st_size) for f in files for st in (f.stat(),)]
            env_stat = (env.stat().st_mtime_ns, env.stat().st_size) if env.exists() else None
        except OSError:
            return None
        return (rev, tuple(stats), env_stat)

    def load(self) -> Desired:
        rev = git.revision(self.directory)
        if self.mode == "commit":
            if rev.commit is None:
                raise git.GitError(f"--source commit: {self.directory} is not a git checkout with a commit")
            with tempfile.TemporaryDirectory(prefix="dbstate-commit-") as tmp:
                exported = git.export(self.directory, rev.commit, Path(tmp) / "desired")
                loaded = desired.load(exported, self.env_file, self.environ, self.directory, self.limits)
                return Desired(rev, loaded)
        return Desired(rev, desired.load(self.directory, self.env_file, self.environ, limits=self.limits))


class SharedSource:
    """One reading of the directory for every engine's reconciler: read again only when its fingerprint (revision,
    files, env file) changed, so that N engines do not parse the same files N times per pass."""

    def __init__(self, inner: DirectorySource) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._last: tuple[tuple[object, ...], Desired] | None = None

    def load(self) -> Desired:
        with self._lock:
            key = self.inner.fingerprint()
            if key is not None and self._last is not None and self._last[0] == key:
                return self._last[1]
            loaded = self.inner.load()
            self._last = (key, loaded) if key is not None else None
            return loaded


class EngineSource:
    """The part of the desired state that one engine's reconciler works on (core/placement.py)."""

    def __init__(self, whole: DirectorySource | SharedSource, host: str) -> None:
        self.whole, self.host = whole, host

    def load(self) -> Desired:
        d = self.whole.load()
        return Desired(d.revision, placement.slice_loaded(d.loaded, self.host))
