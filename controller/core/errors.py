"""One error tree for dbstate, so that callers decide by type whether to retry, stop or report.

    DbstateError
    ├── DesiredStateError        the desired state could not be read at all (no directory, unreadable env file)
    ├── EngineError              the Docker engine
    │   ├── EngineUnavailable    cannot be reached, or timed out            retryable
    │   ├── EngineTransient      a 5xx, a reset connection                  retryable
    │   └── EnginePermanent      4xx: invalid configuration, conflict, not found; retrying will not help
    │       ├── EngineNotFound   404: no such container, volume or network
    │       └── ImageNotFound    the image is not present and cannot be pulled
    ├── VolumeLost               a database's volume vanished or was replaced under it: nothing starts on it
    ├── StateError               the state database is not one (garbage, another program's file)
    ├── BackupError              a backup, its verification or a restore failed: the change it guards does not run
    │   └── ExecFailed           a database tool run in a container exited non-zero
    └── ProbeError               a database server did not answer as declared

`retryable(exc)` is the only place that decides what a retry policy may retry.
"""

from __future__ import annotations


class DbstateError(Exception):
    """Base of every error dbstate raises on purpose; its message is safe to print (no secret values)."""


class DesiredStateError(DbstateError):
    """The desired state cannot be read at all (as opposed to a file with errors, which is a diagnostic)."""


class EngineError(DbstateError):
    """Something went wrong talking to the Docker engine."""


class EngineUnavailable(EngineError):
    """The engine cannot be reached (socket missing, connection refused, timeout)."""


class EngineTransient(EngineError):
    """The engine answered with a transient failure (5xx); the same call may succeed later."""


class EnginePermanent(EngineError):
    """The engine refused the request for a reason that retrying will not change."""


class EngineNotFound(EnginePermanent):
    """The engine has no such object (404): a container, volume or network that is not there."""


class ImageNotFound(EnginePermanent):
    """The image is not present on the engine and cannot be pulled."""


class VolumeLost(DbstateError):
    """A database's volume vanished, or was replaced by a new empty one, between the plan and the change: the
    container is not created (or is removed before it ever starts). Retrying will not bring the data back."""


class LeaseLost(DbstateError):
    """This controller no longer holds the engine lease: it must not change the engine (fencing)."""


class LeaseHeld(DbstateError):
    """Another controller holds the engine lease and is alive: a one-shot writer does not act."""


class StateError(DbstateError):
    """The state database cannot be used: the file is not a dbstate state database."""


class BackupError(DbstateError):
    """A backup could not be taken or verified, or a restore failed: what it guards (a recreate, an upgrade) does not
    happen."""


class ExecFailed(BackupError):
    """A database tool run in a container (`docker exec`) exited non-zero; carries the end of its stderr."""

    def __init__(self, tool: str, container: str, code: int, stderr: str) -> None:
        self.tool, self.container, self.code, self.stderr = tool, container, code, stderr
        last = " / ".join(line for line in stderr.strip().splitlines()[-3:] if line.strip())
        super().__init__(f"{tool} in {container} exited {code}" + (f": {last}" if last else ""))


class ProbeError(DbstateError):
    """A database server could not be probed."""


def retryable(exc: BaseException) -> bool:
    """Whether a short transport-level retry may help."""
    return isinstance(exc, EngineUnavailable | EngineTransient)
