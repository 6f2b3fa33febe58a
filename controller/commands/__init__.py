"""The registry of `dbstate` commands (pip's `commands/` is the model): each command's name, one-line summary and
module. A module is imported only when its command runs, so `dbstate validate` never loads docker-py and `dbstate
plan` without `--probe` never loads a database client.

A command module has `DESCRIPTION`, `add_arguments(parser)`, `options(namespace) -> Options` (a frozen dataclass)
and `run(options, out, err) -> exit code`.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class CommandInfo:
    module: str
    summary: str


COMMANDS: dict[str, CommandInfo] = {
    "validate": CommandInfo(
        "validate", "check the desired state: every error with its file, line and field; nothing live is touched"
    ),
    "schema": CommandInfo("schema", "print the JSON Schema of a desired-state document, for editors"),
    "plan": CommandInfo("plan", "the dry run: what would change on the engine, and what needs a human (findings)"),
    "apply": CommandInfo("apply", "converge the engine to the desired state (asks first; --yes for automation)"),
    "run": CommandInfo("run", "the controller: watch git, the files and Docker, and repair drift on its own"),
    "audit": CommandInfo(
        "audit", "every database container on the engine: versions, health, consumers, orphans, connections"
    ),
    "status": CommandInfo("status", "per resource: in sync, drifted, failing, or with findings; the last pass"),
    "ack": CommandInfo("ack", "acknowledge a finding that needs a human decision (volume-lost)"),
    "suspend": CommandInfo("suspend", "maintenance: keep watching an instance, change nothing of it (--why)"),
    "resume": CommandInfo("resume", "end a suspension: the next pass converges the instance again"),
    "adopt": CommandInfo("adopt", "take over one declared database whose container someone else made, as it is"),
    "migrate-volume": CommandInfo(
        "migrate_volume", "move a database's data to the mounts its declaration names: stopped, copied, verified"
    ),
    "serve": CommandInfo("serve", "the read-only web view of a state database, without a controller"),
    "backup": CommandInfo(
        "backup", "back up running databases with their own tools (pg_dumpall, mariadb-dump, BGSAVE)"
    ),
    "backups": CommandInfo("backups", "the backups kept, with what each holds and whether it was verified"),
    "verify-backup": CommandInfo(
        "verify_backup", "check kept backups: each restored into a throw-away server and compared with its manifest"
    ),
    "restore": CommandInfo("restore", "put a backup back into a running database (after backing up what it holds)"),
    "rollback": CommandInfo("rollback", "go back to the server an upgrade kept, once the declaration names it again"),
    "import": CommandInfo(
        "importing", "write the desired state of a host as it runs, and take its databases over in place"
    ),
}


def load(name: str) -> ModuleType:
    return importlib.import_module(f"controller.commands.{COMMANDS[name].module}")


def parser(name: str, module: ModuleType) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"dbstate {name}",
        description=module.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # `plan --out F` must never be taken as `--output F`: an option is spelled in full
    )
    module.add_arguments(p)
    return p
