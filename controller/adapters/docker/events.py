"""The engine's event stream, reduced to what can mean drift (a container died, a network detached, a volume went),
followed with reconnection and backoff while the controller runs."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

from controller.adapters.docker.client import TLSFiles
from controller.adapters.docker.observe import DockerEngine
from controller.core.labels import MARKER_PREFIXES
from controller.core.text import printable

EVENT_ACTIONS = {
    "container": {"die", "stop", "kill", "oom", "destroy", "pause"},
    "network": {"connect", "disconnect", "destroy"},
    "volume": {"destroy"},
    # a swarm manager's: a service scaled, changed or removed by hand; a node drained, down or back (the tasks of
    # other nodes are not containers of this engine, so their deaths reach it only through these)
    "service": {"update", "remove"},
    "node": {"update", "remove"},
}


def trigger_of(event: Mapping[str, Any]) -> tuple[str, str, str, str] | None:
    """(kind, action, name, container ID) of an engine event that should trigger a pass, or None: only what can mean
    drift, and never dbstate's own lease markers (each renewal makes and removes one: they would trigger a pass every
    few seconds). The container ID is the container's, or for a network event the container (dis)connected."""
    kind, action = str(event.get("Type", "")), str(event.get("Action", "")).split(":")[0]
    if action not in EVENT_ACTIONS.get(kind, ()):
        return None
    actor = event.get("Actor") or {}
    name = (actor.get("Attributes") or {}).get("name") or (actor.get("ID", "") if kind == "volume" else "")
    if str(name).startswith(MARKER_PREFIXES):
        return None
    attrs = actor.get("Attributes") or {}
    container = str(actor.get("ID", "")) if kind == "container" else str(attrs.get("container", ""))
    return kind, action, printable(str(name)), container


def follow_events(
    host: str,
    on_event: Callable[[str, str, str, str], None],
    on_connection: Callable[[bool], None],
    stop: threading.Event,
    tls: TLSFiles | None = None,
) -> None:
    """Block until `stop`, calling `on_event(kind, action, name, container)` for the events that can mean drift. When
    the engine
    goes away it reconnects with backoff (0.5 s growing to 10 s) and reports the connection state through
    `on_connection`."""
    delay = 0.5
    holder: dict[str, Any] = {}

    def closer() -> None:
        stop.wait()
        stream = holder.get("stream")
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()

    threading.Thread(target=closer, name="dbstate-events-closer", daemon=True).start()
    while not stop.is_set():
        engine = None
        try:
            engine = DockerEngine(host, timeout=60, tls=tls)
            engine.preflight()
            stream = engine.api.events(decode=True, filters={"type": list(EVENT_ACTIONS)})
            holder["stream"] = stream
            on_connection(True)
            delay = 0.5
            for event in stream:
                if stop.is_set():
                    break
                found = trigger_of(event)
                if found is not None:
                    on_event(*found)
        except Exception:  # noqa: S110 - any failure of the stream means: reconnect
            pass
        finally:
            holder.pop("stream", None)
            if engine is not None:
                engine.close()
        if stop.is_set():
            break
        on_connection(False)
        stop.wait(delay)
        delay = min(10.0, delay * 2)
