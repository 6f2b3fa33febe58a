"""Composition of what a command reads and writes on this machine, without an engine: the desired-state files, env
files, compose files, the state database and the backup directory. Each adapter is imported when asked for, so that
`validate`, `status`, `backups` and `--version` load no docker-py, no database client and no engine module."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from controller.core.options import Target

if TYPE_CHECKING:
    from controller.adapters.backups import BackupDir as BackupDir
    from controller.adapters.store import Store as Store
    from controller.core import spec
    from controller.core.diagnostics import Diagnostic
    from controller.core.importer import Document, Found


def state_path(given: Path | None = None) -> Path:
    """The state database: `given` (--state), else $DBSTATE_STATE, else .dbstate/state.db."""
    from controller.adapters import store

    return given or store.default_path()


def state(path: Path | None = None, *, readonly: bool = False) -> Store:
    """The state database at `path` (else the default one), opened (and migrated, unless `readonly`)."""
    from controller.adapters import store

    return store.Store(state_path(path), readonly=readonly)


def write_planfile(path: Path, text: str) -> None:
    from controller.adapters import planfiles

    planfiles.write(path, text)


def read_planfile(path: Path) -> dict[str, object]:
    from controller.adapters import planfiles

    return planfiles.read(path)


def default_backup_dir(state: Path | None) -> Path:
    """Where backups go when --backup-dir does not say: beside the state database."""
    from controller.adapters import backups

    return backups.default_dir(state_path(state))


def backup_dir(target: Target) -> BackupDir:
    """The backup directory of a command's target, with the key that signs its manifests."""
    from controller.adapters import backups

    state = state_path(target.state)
    return backups.BackupDir(
        target.backup_dir or backups.default_dir(state), target.backup_key or backups.default_key(state)
    )


def backups_in(directory: Path) -> BackupDir:
    """A backup directory to read manifests from (`backups`, `status`)."""
    from controller.adapters import backups

    return backups.BackupDir(directory)


def load(target: Target) -> spec.Loaded:
    """The desired state of a target as `plan` reads it from the working tree (`validate`)."""
    from controller.adapters import desired

    limits = desired.Limits.raised(target.max_file_bytes, target.max_total_bytes)
    return desired.load(target.directory, target.env_file, limits=limits)


def load_directory(directory: Path, env_file: Path | None, environ: Mapping[str, str] | None = None) -> spec.Loaded:
    """A desired-state directory with its env file and, over them, `environ` (`import` reading back what it wrote)."""
    from controller.adapters import desired

    return desired.load(directory, env_file, environ)


def read_env(path: Path) -> tuple[dict[str, str], list[Diagnostic]]:
    """An env file's variables, never interpolated, and what is wrong in it."""
    from controller.adapters import envfile

    return envfile.read(path)


def env_line(key: str, value: str) -> str:
    """One `KEY=VALUE` line that `read_env` reads back as exactly this value (import's env file)."""
    from controller.adapters import envfile

    return envfile.line(key, value)


def read_compose(files: Sequence[Path]) -> list[Found]:
    """The services of compose files, as `import` finds containers (with the names of their env's variables)."""
    from controller.adapters import compose

    return compose.read(files)


def render_yaml(documents: Sequence[Document], header: str) -> str:
    """Desired-state documents as the YAML `import` writes."""
    from controller.adapters import yamlwrite

    return yamlwrite.render(documents, header)


def notify_urls(specs: Sequence[str]) -> list[str]:
    """Apprise URLs from --notify's values (`env:NAME`, `file:PATH` or a URL), each checked before anything runs."""
    from controller.adapters import notify

    urls = notify.resolve(list(specs))
    notify.notifiers(urls)  # each understood by Apprise, or a clear error
    return urls
