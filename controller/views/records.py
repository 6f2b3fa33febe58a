"""What the commands that record a human's decision print (`ack`, `suspend`, `resume`, `adopt`): what was recorded,
and what the next pass does with it."""

from __future__ import annotations

from collections.abc import Sequence


def acknowledged(finding: str, name: str) -> str:
    return f"acknowledged {finding} {name}: the next apply creates an empty volume {name} and starts what uses it\n"


def suspended(key: str) -> str:
    return f"suspended {key}: observed and reported, not changed, until `dbstate resume`\n"


def resumed(key: str) -> str:
    return f"resumed {key}: the next pass converges it\n"


def not_suspended(key: str) -> str:
    return f"{key} was not suspended with `dbstate suspend`\n"


def adopted_already(container: str, key: str) -> str:
    return f"{container} is dbstate's already ({key})\n"


def not_adopted(container: str, key: str, differs: Sequence[str]) -> str:
    return f"not adopted: {container} differs from {key}:\n" + "".join(f"  - {d}\n" for d in differs)


def adopted(container: str, container_id: str, key: str, retire: str | None) -> str:
    text = f"adopted {container} ({container_id[:12]}) as {key}, as it is: nothing was recreated\n"
    if retire:
        text += f"compose still claims it: retire it with `{retire}` (keeps its volumes; never `down -v`)\n"
    return text
