"""The backup directory: one compressed file and one manifest (JSON, no secret) per backup, under a directory per
instance, mode 0700 (a dump holds the database's password hashes). Files are written under a temporary name and
renamed only once complete and flushed, so a crash never leaves a file that looks like a backup. Each manifest is
signed (HMAC-SHA256, covering the file's sha256) with a key kept outside the directory: a restore replays a dump as
the database's superuser, so a backup is code, and only one this key signed is ever replayed."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from controller.core import errors
from controller.core.dumps import Manifest, plain_name

LEVEL = 3  # gzip level: most of level 6's ratio on SQL text at several times its speed (bench/backup.py)
CHUNK = 1 << 20


def default_dir(state: Path) -> Path:
    return state.parent / "backups"


def default_key(state: Path) -> Path:
    return state.parent / "backup.key"


class Written:
    """A backup file being written: compressed, digested and counted as the chunks come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self._fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._z = zlib.compressobj(LEVEL, zlib.DEFLATED, 31)  # 31: a gzip member, readable with gunzip
        self._sha = hashlib.sha256()
        self.raw_bytes = 0
        self.size_bytes = 0

    def write(self, chunk: bytes) -> None:
        self.raw_bytes += len(chunk)
        self._out(self._z.compress(chunk))

    def _out(self, data: bytes) -> None:
        if data:
            self._sha.update(data)
            self.size_bytes += len(data)
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]

    def finish(self) -> str:
        self._out(self._z.flush())
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        os.replace(self.partial, self.path)
        return self._sha.hexdigest()

    def abandon(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(FileNotFoundError):
            self.partial.unlink()


class BackupDir:
    """Implements `engine.ports.BackupStore`."""

    def __init__(self, root: Path, key: Path | None = None) -> None:
        self.root = root
        self.key_path = key if key is not None else root.parent / "backup.key"
        self._unreadable: list[Path] = []

    def _key(self, create: bool) -> bytes:
        """The signing key (32 random bytes, hex, mode 0600), made the first time a backup is written."""
        path = self.key_path
        if path.resolve().is_relative_to(self.root.resolve()):
            raise errors.BackupError(
                f"the backup key {path} is inside the backup directory {self.root}: keep it outside, so that a copy "
                "of the backups alone can never be replayed (--backup-key)"
            )
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            if not create:
                raise errors.BackupError(
                    f"no backup key at {path}: a backup is restored or verified only with the key that signed it "
                    "(--backup-key, $DBSTATE_BACKUP_KEY)"
                ) from None
            text = secrets.token_hex(32)
            try:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return self._key(create=False)  # another process made it first
            except OSError as e:
                raise errors.BackupError(f"cannot make the backup key {path}: {e.strerror or e}") from e
            with os.fdopen(fd, "w") as f:
                f.write(text + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise errors.BackupError(f"cannot read the backup key {path}: {e.strerror or e}") from e
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = b""
        if len(key) < 32:
            raise errors.BackupError(f"the backup key {path} is not 64 hex digits: refused")
        return key

    def sign(self, manifest: Manifest) -> Manifest:
        return replace(manifest, signature=self._mac(manifest, create=True))

    def _mac(self, manifest: Manifest, *, create: bool) -> str:
        return hmac.new(self._key(create), manifest.signed_bytes(), hashlib.sha256).hexdigest()

    def authenticate(self, manifest: Manifest) -> None:
        """The manifest (and through its sha256, the file) is as the key's holder wrote it."""
        if not manifest.signature:
            raise errors.BackupError(
                f"backup {manifest.id} is not signed (taken before backups were signed, or written by hand): it is "
                "not replayed; restore it by hand after reading it, or take a new backup"
            )
        if not hmac.compare_digest(self._mac(manifest, create=False), manifest.signature):
            raise errors.BackupError(
                f"backup {manifest.id} is not authentic: its manifest's signature does not match the key "
                f"{self.key_path} (the manifest or its file was changed, or another key signed it): refused"
            )

    def _dir(self, instance: str) -> Path:
        d = self.root / instance
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.root, 0o700)
            d.mkdir(mode=0o700, exist_ok=True)
        except OSError as e:
            raise errors.BackupError(f"cannot use the backup directory {self.root}: {e.strerror or e}") from e
        return d

    def new_id(self, instance: str, when: float) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))
        base, n = f"{instance}-{stamp}", 1
        taken = {m.id for m in self.manifests(instance)}
        ident = base
        while ident in taken or any(self._dir(instance).glob(f"{ident}.*")):
            n += 1
            ident = f"{base}-{n}"
        return ident

    @contextlib.contextmanager
    def writing(self, instance: str, ident: str, fmt: str) -> Iterator[Written]:
        w = Written(self._dir(instance) / f"{ident}.{fmt}")
        try:
            yield w
        except BaseException:
            w.abandon()
            raise

    def save(self, manifest: Manifest) -> Manifest:
        manifest = self.sign(manifest)
        path = self._dir(manifest.instance) / f"{manifest.id}.json"
        tmp = path.with_name(path.name + ".partial")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(manifest.to_json(), f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return manifest

    def manifests(self, instance: str | None = None) -> list[Manifest]:
        """The backups of `instance` (or all), oldest first. A manifest that is not one of ours (unreadable, a field
        of the wrong type, a path for a name, another instance's name) is never listed: `unreadable` names it."""
        dirs = [self.root / instance] if instance else sorted(p for p in self.root.glob("*") if p.is_dir())
        out = []
        unreadable = []
        for d in dirs:
            for path in sorted(d.glob("*.json")):
                try:
                    m = Manifest.from_json(json.loads(path.read_text()))
                except (OSError, ValueError, TypeError, RecursionError):
                    unreadable.append(path)
                    continue
                if m.instance != d.name:
                    unreadable.append(path)
                    continue
                out.append(m)
        self._unreadable = unreadable
        return sorted(out, key=lambda m: (m.started, m.id))

    def unreadable(self) -> list[Path]:
        """The manifests the last `manifests` call did not list, and why not is theirs: not one of ours."""
        return list(self._unreadable)

    def get(self, ident: str) -> Manifest:
        for m in self.manifests():
            if m.id == ident:
                return m
        raise errors.BackupError(f"no backup {ident} in {self.root} (dbstate backups lists them)")

    def path(self, manifest: Manifest) -> Path:
        """The backup's file: always inside its instance's directory (a manifest is data, its names are checked)."""
        inside = (self.root / manifest.instance).resolve()
        path = (inside / manifest.file).resolve()
        if not (plain_name(manifest.instance) and plain_name(manifest.file) and path.parent == inside):
            raise errors.BackupError(
                f"backup {manifest.id}: its file {manifest.file!r} is outside the backup directory: refused"
            )
        return path

    def check(self, manifest: Manifest) -> None:
        """The manifest is signed by this directory's key, and the file is there with the size and sha256 it says."""
        self.authenticate(manifest)
        path = self.path(manifest)
        sha = hashlib.sha256()
        size = 0
        try:
            with path.open("rb") as f:
                while chunk := f.read(CHUNK):
                    sha.update(chunk)
                    size += len(chunk)
        except OSError as e:
            raise errors.BackupError(f"backup {manifest.id}: cannot read {path}: {e.strerror or e}") from e
        if size != manifest.size_bytes or sha.hexdigest() != manifest.sha256:
            raise errors.BackupError(
                f"backup {manifest.id} is damaged: {path} has {size} bytes, sha256 {sha.hexdigest()[:16]}...; its "
                f"manifest says {manifest.size_bytes} bytes, {manifest.sha256[:16]}..."
            )

    def read(self, manifest: Manifest) -> Iterator[bytes]:
        """The dump as the tool wrote it (decompressed), in chunks; check() first."""
        z = zlib.decompressobj(31)
        with self.path(manifest).open("rb") as f:
            while chunk := f.read(CHUNK):
                out = z.decompress(chunk)
                if out:
                    yield out
            tail = z.flush()
            if tail:
                yield tail
        if not z.eof:
            raise errors.BackupError(f"backup {manifest.id}: the compressed file ends early")

    def prune(self, instance: str, keep: int) -> list[str]:
        """Remove all but the newest `keep` backups of `instance` (files first, then manifests). Only the backups
        this key signed count and go: a manifest written by anyone else is left where it is, and never pushes a real
        backup out."""
        mine = [m for m in self.manifests(instance) if self._authentic(m)]
        gone = mine[: max(0, len(mine) - keep)]
        for m in gone:
            with contextlib.suppress(FileNotFoundError):
                self.path(m).unlink()
            with contextlib.suppress(FileNotFoundError):
                (self.root / instance / f"{m.id}.json").unlink()
        return [m.id for m in gone]

    def _authentic(self, manifest: Manifest) -> bool:
        try:
            self.authenticate(manifest)
        except errors.BackupError:
            return False
        return True
