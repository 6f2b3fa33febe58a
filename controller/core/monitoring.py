"""Exporters as sidecars: from each monitored DatabaseInstance, the exporter dbstate runs beside it (its image, its
network, its login and the environment that points it at the server). Pure: the loader calls it once per reading."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from controller.core import databases, spec
from controller.core.secrets import Secret, reveal

SUFFIX = "-exporter"  # the exporter of container `pg-db` is `pg-db-exporter`
# a site-wide default for instances that do not say `monitoring` (a site whose exporters are made elsewhere): "off"
DEFAULT_VARIABLE = "DBSTATE_MONITORING"
JOB = "dbstate-exporters"  # the job label of the exporters' scrape targets


def image_variable(exporter: databases.Exporter) -> str:
    """The variable (env file or environment) that names a site's own image of this exporter (a mirror)."""
    return f"DBSTATE_{exporter.name.upper()}_IMAGE"


def settings(inst: spec.DatabaseInstance, variables: Mapping[str, str]) -> spec.Monitoring | None:
    """The instance's monitoring, or None when it has none."""
    m = inst.spec.monitoring
    if m is True and "monitoring" not in inst.spec.model_fields_set:
        m = variables.get(DEFAULT_VARIABLE, "on").strip().lower() not in ("off", "false", "0", "no")
    if m is False:
        return None
    if m is True:
        return spec.Monitoring()
    return m if m.enabled else None


def derived_password(inst: spec.DatabaseInstance, user: str) -> str | None:
    """The monitoring login's password when none is declared: a keyed digest of the instance's own password, so that
    changing that one in the env file changes this one too, and nobody has to keep a second secret. None when the
    instance declares no password (a server that asks for none)."""
    own = inst.spec.auth.password
    if own is None:
        return None
    msg = f"dbstate monitoring {inst.metadata.name} {user}".encode()
    return hmac.new(reveal(own).encode(), msg, hashlib.sha256).hexdigest()[:32]


def exporter(inst: spec.DatabaseInstance, variables: Mapping[str, str]) -> spec.Exporter | None:
    """The exporter beside `inst`, or None (monitoring off, or an engine without one)."""
    m = settings(inst, variables)
    db = databases.of(inst.spec.engine)
    facts = db.exporter
    if m is None or facts is None:
        return None
    declared = reveal(m.password) if m.password is not None else None
    password = declared if declared is not None else derived_password(inst, m.user)
    user = m.user if password is not None else None  # no password: the server asks for none, nor makes a login
    network = inst.spec.networks[0]
    env: dict[str, str | Secret] = {
        k: Secret(v) if password and password in v else v
        for k, v in db.exporter_env(inst.container_name, db.port, user, password or "").items()
    }
    image = m.image or variables.get(image_variable(facts)) or facts.image
    name = inst.container_name + SUFFIX
    return spec.Exporter(
        api_version="dbstate.io/v1",
        kind=spec.Kind.EXPORTER,
        metadata=spec.Metadata(name=inst.metadata.name, labels=dict(inst.metadata.labels)),
        spec=spec.ExporterSpec(
            host=inst.spec.host,
            instance=inst.metadata.name,
            engine=inst.spec.engine,
            image=image,
            container_name=name,
            networks=(spec.NetworkAttachment(name=network.name),),
            env=env,
            command=facts.args,
            port=facts.port,
            user=user,
            password=Secret(password) if password else None,
        ),
        instance=inst,
    )


def exporters(state: spec.DesiredState, variables: Mapping[str, str]) -> tuple[spec.Exporter, ...]:
    return tuple(e for inst in state.instances for e in (exporter(inst, variables),) if e is not None)


def target(exp: spec.Exporter) -> str:
    """Where Prometheus scrapes it, from the instance's network."""
    return f"{exp.container_name}:{exp.spec.port}"
