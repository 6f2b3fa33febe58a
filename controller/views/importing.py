"""What `dbstate import` prints when it is done: the documents written, where the secret values went (and which
were reused), what was adopted and what was not, notes on guesses to check, and the `plan` command to run next."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controller.core.importer import Imported


def summary(
    imported: Imported,
    out: Path,
    files: int,
    env_file: Path,
    env_out: Path,
    given_env_file: Path | None,
    adopted: int,
    seconds: float,
) -> str:
    """What import wrote and adopted, the secrets it kept where, and the next command. `env_file`: where the
    variables are read from (--env-file, else --env-out); `given_env_file`: --env-file, which is never written."""
    lines: list[str] = []
    say = lines.append
    kinds: dict[str, int] = {}
    for d in imported.documents:
        kinds[d.body["kind"]] = kinds.get(d.body["kind"], 0) + 1
    counts = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    say(f"Imported {counts} into {out} ({files} files) in {seconds:.1f} s.")
    if imported.reused:
        say(f"  {len(imported.reused)} variables already in {env_file}, used as they are.")
    if imported.env:
        say(f"  {len(imported.env)} secret values in {env_out} (mode 0600; keep it out of git).")
    else:
        say("  no new secret value: no env file was written.")
    if given_env_file is not None and imported.env:
        say(
            f"  note: {given_env_file} lacks {', '.join(sorted(imported.env))} (it is not written): add them from "
            f"{env_out} to it (or to what writes it) before plan"
        )
    say(f"  {adopted} databases recorded as adopted: dbstate takes them over as they are.")
    if imported.not_running:
        names = ", ".join(imported.not_running)
        say(f"  from compose files, not running: {names} (dbstate creates them once committed).")
    if adopted < len(imported.adopt):
        say(f"  {len(imported.adopt) - adopted} not adopted: `dbstate plan` says what differs (adoption-blocked).")
    for note in imported.notes:
        say(f"  note: {note}")
    allow = f" --allow-compose-project {','.join(imported.compose_projects)}" if imported.compose_projects else ""
    allow += "".join(f" --allow-bind-root {root}" for root in imported.bind_roots)
    say("Next:")
    say(f"  dbstate plan --dir {out} --env-file {env_file}{allow}")
    say("  (nothing to change is expected; then commit the files and start `dbstate run` with the same flags)")
    return "\n".join(lines) + "\n"
