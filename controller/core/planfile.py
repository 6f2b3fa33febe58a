"""A saved plan (`dbstate plan --out FILE`, `dbstate apply FILE`): the changes as they were reviewed and what they were
computed from, so that apply executes exactly those changes or refuses, resource by resource, when the engine moved
since. It holds no secret: the changes as the plan prints them (env redacted) with a digest of each one's details,
the observed facts of each resource a change touches (ids, images, states, networks, mounts), a digest of every
declaration, the revision, the engine and the version."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.core import live, spec
from controller.core.labels import REVISION
from controller.core.plan import Change, Plan

FORMAT = "dbstate-planfile/1"


class PlanfileError(ValueError):
    """The file is not a planfile this dbstate can apply (its own message says why); nothing was changed."""


def _name(path: str | None) -> str | None:
    """An env file as a planfile names it: its file name (the same file given by another path is the same)."""
    return path.replace("\\", "/").rsplit("/", 1)[-1] if path else None


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def change_id(c: Change) -> str:
    """What makes two changes the same change: action, resource, target and every detail (a declaration edited after
    the plan changes the details: its spec hash is among the labels) but the revision label, which any later commit
    moves (the container is then labelled with the commit apply read)."""
    details = dict(c.details)
    if isinstance(details.get("labels"), dict):
        details["labels"] = {k: v for k, v in details["labels"].items() if k != REVISION}
    return _digest([c.action.value, str(c.kind), c.name, c.target, details])


def declarations(state: spec.DesiredState) -> str:
    """A digest of every declaration as resolved (a changed secret counts: its spec hash changes, not its value)."""
    docs: list[Any] = []
    for inst in state.instances:
        docs.append(["DatabaseInstance", inst.metadata.name, spec.spec_hash(inst), inst.spec.policy.model_dump_json()])
    for con in state.consumers:
        docs.append(["Consumer", con.metadata.name, spec.spec_hash(con)])
    for net in state.networks:
        docs.append(["Network", net.metadata.name, net.spec.model_dump_json()])
    for vol in state.volumes:
        docs.append(["Volume", vol.metadata.name, vol.spec.model_dump_json()])
    return _digest(sorted(docs))


def facts(kind: str, target: str, observed: live.LiveState) -> dict[str, Any]:
    """What the engine holds for the object a change targets, as a planfile keeps it (no env, no secret)."""
    if kind == spec.Kind.NETWORK:
        n = observed.network(target)
        return {"exists": False} if n is None else {"exists": True, "id": n.id}
    if kind == spec.Kind.VOLUME:
        v = observed.volume(target)
        return {"exists": False} if v is None else {"exists": True, "identity": v.identity}
    c = observed.container(target)
    if c is None:
        return {"exists": False}
    return {
        "exists": True,
        "id": c.id,
        "image": c.image,
        "state": c.state,
        "networks": sorted([a.network, sorted(a.aliases)] for a in c.networks),
        "mounts": sorted([m.type, m.source, m.destination] for m in c.mounts),
    }


def moved(key: str, was: Mapping[str, Any], now: Mapping[str, Any]) -> str | None:
    """How the object of `key` moved between the plan and now, as one line; None when it did not."""
    if dict(was) == dict(now):
        return None
    if not was.get("exists"):
        return f"stale: {key} appeared since the plan"
    if not now.get("exists"):
        return f"stale: {key} was removed since the plan"
    if was.get("id") != now.get("id") or was.get("identity") != now.get("identity"):
        return f"stale: {key} was recreated since the plan"
    what = [k for k in ("image", "state", "networks", "mounts") if was.get(k) != now.get(k)]
    said = {"state": f"went from {was.get('state')} to {now.get('state')}"}
    return f"stale: {key} " + ", ".join(said.get(k, f"changed its {k}") for k in what) + " since the plan"


def build(
    plan: Plan,
    state: spec.DesiredState,
    observed: live.LiveState,
    commit: str | None,
    dirty: bool | None,
    version: str,
    env_file: str | None = None,
) -> dict[str, Any]:
    """The planfile of `plan` (a JSON document); `env_file`: the env file's name (never its values)."""
    return {
        "format": FORMAT,
        "dbstate": version,
        "engine": observed.engine.host,
        "revision": {"commit": commit, "dirty": dirty},
        "env_file": _name(env_file),
        "declarations": declarations(state),
        "changes": [
            {
                "id": change_id(c),
                "action": c.action.value,
                "kind": str(c.kind),
                "name": c.name,
                "target": c.target,
                "reason": c.reason,
                "observed": facts(str(c.kind), c.target, observed),
            }
            for c in plan.changes
        ],
    }


@dataclass(frozen=True)
class Verdict:
    """What a planfile allows now: the changes to apply (exactly the saved ones), or why not (`stale`: one line per
    resource that moved, or the file's own problem); and the current plan's changes it leaves for a later plan."""

    apply: tuple[Change, ...]
    stale: tuple[str, ...]
    left: tuple[Change, ...]
    declarations_moved: bool  # the declarations differ from the plan's (a commit since): only its changes are applied


def check(
    saved: Mapping[str, Any],
    plan: Plan,
    state: spec.DesiredState,
    observed: live.LiveState,
    version: str,
    env_file: str | None = None,
) -> Verdict:
    """The saved plan against the plan computed now from the same declarations and the engine as it is."""
    if saved.get("format") != FORMAT:
        raise PlanfileError(f"not a dbstate planfile ({FORMAT})")
    if saved.get("dbstate") != version:
        raise PlanfileError(f"made by dbstate {saved.get('dbstate')}, this is {version}: plan again")
    if saved.get("engine") != observed.engine.host:
        raise PlanfileError(f"made for the engine {saved.get('engine')}, this is {observed.engine.host}")
    if saved.get("env_file") != _name(env_file):
        raise PlanfileError(f"planned with the env file {saved.get('env_file')}, applied with {_name(env_file)}")
    entries: Sequence[Mapping[str, Any]] = saved.get("changes") or []
    now = {change_id(c): c for c in plan.changes}
    stale: list[str] = []
    todo: list[Change] = []
    for e in entries:
        key = f"{e.get('kind')}/{e.get('name')}"
        line = moved(key, e.get("observed") or {}, facts(str(e.get("kind")), str(e.get("target")), observed))
        if line is not None:
            stale.append(line)
        elif e.get("id") not in now:
            stale.append(f"stale: {key}: the plan now differs for it ({e.get('action')} {e.get('target')} planned)")
        else:
            todo.append(now[str(e.get("id"))])
    wanted = {id(c) for c in todo}
    left = tuple(c for c in plan.changes if id(c) not in wanted)
    return Verdict(tuple(todo), tuple(dict.fromkeys(stale)), left, saved.get("declarations") != declarations(state))
