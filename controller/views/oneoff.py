"""What the one-off commands (`restore`, `rollback`, `migrate-volume`) print: what they are about to do, then what
they did. The same text whether the command performs the work or hands it to a running controller (then it is the
job's output, printed by the command that asked)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controller.engine.migrating import Move


def restore_intent(backup: str, container: str, replaces: str, new_volume: str | None) -> str:
    if new_volume:
        return f"restore {backup} into a new {container} on volume {new_volume}\n"
    return f"restore {backup} into {container}: replaces {replaces}\n"


def restored(container: str, backup: str, safety: str) -> str:
    return f"restored: {container} holds {backup}; what it held before is backup {safety}\n"


def restored_to_new_volume(container: str, name: str, backup: str, volume: str, target: str, kept: str) -> str:
    return (
        f"restored: {container} runs on volume {volume} with {backup}; the old container is {kept}, stopped, on its "
        f"untouched volume.\nNow declare it: in DatabaseInstance/{name}, volumes: [{{source: {volume}, target: "
        f"{target}}}], and a Volume {volume} (until then, plan reports data-moved and nothing recreates it)\n"
    )


def rollback_intent(container: str, kept: str, image: str) -> str:
    return f"roll {container} back to {kept} ({image})\n"


def rolled_back(container: str, image: str, seconds: float, safety: str) -> str:
    return (
        f"rolled back: {container} runs {image} on its data again ({seconds:.1f} s); the newer server's data is "
        f"backup {safety} and its kept container\n"
    )


def nothing_to_move(container: str) -> str:
    return f"{container} already mounts what its declaration names: nothing to move\n"


def moves(todo: Sequence[Move]) -> str:
    return "".join(
        f"  {mv.target}: {mv.source.type} {mv.source.source} -> {mv.to.type} {mv.to.source}\n" for mv in todo
    )


def moved(container: str) -> str:
    return f"moved: {container} runs on its declared mounts; the old data is still where it was\n"


def handed_over(summary: str, holder: str) -> str:
    return f"{summary}: handed to the running controller {holder}, which holds the engine lease\n"
