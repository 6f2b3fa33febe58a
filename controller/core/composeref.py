"""Consumers named by their compose project and service instead of a container name: which container that is, read
from the observed state (compose's own labels), whatever compose named it."""

from __future__ import annotations

import dataclasses

from controller.core import live, spec
from controller.core.adoption import COMPOSE_PROJECT, COMPOSE_SERVICE


def resolve(state: spec.DesiredState, observed: live.LiveState) -> spec.DesiredState:
    """`state` with each `compose` consumer naming the container that carries its project and service labels (the
    first by name when compose runs several replicas); unchanged when none does (the diff then says it is missing)."""
    consumers = []
    for con in state.consumers:
        ref = con.spec.compose
        if ref is not None:
            matches = sorted(
                c.name
                for c in observed.containers
                if c.labels.get(COMPOSE_PROJECT) == ref.project and c.labels.get(COMPOSE_SERVICE) == ref.service
            )
            if matches and matches[0] != con.container_name:
                con = con.model_copy(update={"spec": con.spec.model_copy(update={"container_name": matches[0]})})
        consumers.append(con)
    if all(a is b for a, b in zip(consumers, state.consumers, strict=True)):
        return state
    return dataclasses.replace(state, consumers=tuple(consumers))
