"""`dbstate import`'s rules, pure: what a compose host's containers become, secrets moved out, the result loadable
and matching the containers it came from (so that they can be adopted as they are), the same output every time."""

from __future__ import annotations

import dataclasses

from controller.adapters import desired
from controller.adapters.yamlwrite import render
from controller.core import adoption, importer, live

PG_PW, REDIS_PW = "pg-Imp0rt@#x", "redis-Imp0rt$2"
COMPOSE = {adoption.COMPOSE_PROJECT: "postgres", adoption.COMPOSE_SERVICE: "postgres"}
PG = live.Container(
    "a" * 64,
    "postgres-postgres-1",
    "postgres:16-alpine",
    "running",
    labels=COMPOSE,
    networks=(live.Attachment("edge", ("postgres", "a" * 12)),),
    mounts=(live.Mount("volume", "postgres_data", "/var/lib/postgresql/data"),),
    env={"POSTGRES_USER": "app", "POSTGRES_PASSWORD": PG_PW, "PATH": "/usr/bin", "PGDATA": "/var/lib/postgresql/data"},
    command=("postgres",),
)
REDIS = live.Container(
    "b" * 64,
    "redis-redis-1",
    "redis:7.2",
    "running",
    labels={adoption.COMPOSE_PROJECT: "redis", adoption.COMPOSE_SERVICE: "redis"},
    networks=(live.Attachment("edge", ("redis",)),),
    mounts=(live.Mount("volume", "redis_data", "/data"),),
    env={"PATH": "/usr/bin"},
    command=("redis-server", "--requirepass", REDIS_PW, "--appendonly", "yes"),
)
APP = live.Container(
    "c" * 64,
    "n8n-n8n-1",
    "n8nio/n8n:1",
    "running",
    labels={adoption.COMPOSE_PROJECT: "apps", adoption.COMPOSE_SERVICE: "n8n"},
    networks=(live.Attachment("edge", ("n8n",)),),
    env={"DB_POSTGRESDB_HOST": "postgres", "QUEUE_URL": f"redis://:{REDIS_PW}@redis:6379/0", "DB_PASS": PG_PW},
)
IMAGE_ENV = {"PATH": "/usr/bin", "PGDATA": "/var/lib/postgresql/data"}
FOUND = [
    importer.Found(PG, PG.command or (), IMAGE_ENV, ("postgres",), "unless-stopped"),
    importer.Found(REDIS, REDIS.command or (), {"PATH": "/usr/bin"}, ("redis-server",), "always"),
    importer.Found(APP, (), {}, (), "no"),
]
ENGINE = live.EngineInfo("unix:///x", "28", "1.41")
OBSERVED = live.LiveState(
    ENGINE,
    (PG, REDIS, APP),
    (live.Network("e", "edge", "bridge", False, {}),),
    (live.Volume("postgres_data", "local", {}), live.Volume("redis_data", "local", {})),
)


def files(result: importer.Imported) -> dict[str, str]:
    out: dict[str, list[importer.Document]] = {}
    for d in result.documents:
        out.setdefault(d.file, []).append(d)
    return {f: render(docs, "test") for f, docs in out.items()}


def test_a_compose_host_becomes_instances_consumers_networks_and_volumes_without_a_secret():
    result = importer.build(FOUND, OBSERVED)
    text = files(result)
    assert sorted(text) == ["apps.yaml", "networks.yaml", "postgres.yaml", "redis.yaml"]
    for body in text.values():
        assert PG_PW not in body and REDIS_PW not in body
    assert sorted(result.env.values()) == sorted([PG_PW, REDIS_PW])
    assert result.adopt == {"DatabaseInstance/postgres": PG.id, "DatabaseInstance/redis": REDIS.id}
    assert result.compose_projects == ["apps"]
    [consumer] = [d for d in result.documents if d.body["kind"] == "Consumer"]
    assert consumer.body["spec"]["uses"] == [
        {"instance": "postgres", "hostEnv": "DB_POSTGRESDB_HOST"},
        {"instance": "redis", "hostEnv": "QUEUE_URL"},
    ]
    assert "PGDATA" not in text["postgres.yaml"]  # what the image sets is not declared
    assert 'version: "16"' in text["postgres.yaml"] or "version: '16'" in text["postgres.yaml"]


def test_the_result_loads_without_errors_and_matches_the_containers_it_came_from():
    result = importer.build(FOUND, OBSERVED)
    loaded = desired.load_text("---\n".join(files(result).values()), "imported.yaml", result.env)
    assert loaded.errors == (), [str(e) for e in loaded.errors]
    by_name = {i.metadata.name: i for i in loaded.state.instances}
    assert adoption.differences(by_name["postgres"], PG) == []
    # the password left the command line for env, and the running server (password on its command line) still matches
    redis = by_name["redis"]
    assert "--requirepass" in redis.spec.command[-1] and REDIS_PW not in " ".join(redis.spec.command)
    assert adoption.differences(redis, REDIS) == []
    assert redis.spec.auth.password is not None and redis.spec.auth.password.reveal() == REDIS_PW


def test_the_same_engine_gives_the_same_files():
    assert files(importer.build(FOUND, OBSERVED)) == files(importer.build(list(reversed(FOUND)), OBSERVED))


def test_on_a_swarm_manager_services_become_instances_pinned_to_their_node_on_a_swarm_host() -> None:
    service = live.Container(
        "s" * 25,
        "legacy-pg",
        "postgres:16-alpine",
        "running",
        networks=(live.Attachment("mesh", ("legacy-db",)),),
        mounts=(live.Mount("volume", "legacy_data", "/var/lib/postgresql/data"),),
        env={"POSTGRES_USER": "app", "POSTGRES_PASSWORD": PG_PW},
        service=live.Service("stop-first"),
    )
    published = dataclasses.replace(service, id="p" * 25, name="public-pg", mounts=())
    unlabelled = dataclasses.replace(service, id="u" * 25, name="other-pg", mounts=())
    found = [
        importer.Found(service, (), IMAGE_ENV, ("postgres",), node="db2", swarm=importer.SwarmFacts()),
        importer.Found(published, (), IMAGE_ENV, ("postgres",), swarm=importer.SwarmFacts(ports=("5432:5432",))),
        importer.Found(unlabelled, (), IMAGE_ENV, ("postgres",), swarm=importer.SwarmFacts(unlabelled="node-7")),
    ]
    observed = live.LiveState(
        ENGINE,
        (service, published, unlabelled),
        (live.Network("m", "mesh", "overlay", False, {}),),
        (live.Volume("legacy_data", "local", {}),),
    )
    result = importer.build(found, observed, swarm="unix:///run/manager.sock")
    kinds = {(d.body["kind"], d.body["metadata"]["name"]): d.body for d in result.documents}
    assert kinds[("Host", "swarm")]["spec"] == {"endpoint": "unix:///run/manager.sock", "mode": "swarm"}
    pg = kinds[("DatabaseInstance", "legacy-pg")]["spec"]
    assert (pg["node"], pg["policy"]["upgrade"], pg["containerName"]) == ("db2", "recreate", "legacy-pg")
    assert kinds[("Network", "mesh")]["spec"]["driver"] == "overlay"
    assert ("DatabaseInstance", "public-pg") not in kinds  # published ports: not on a swarm Host yet, not imported
    assert any("public-pg publishes 5432:5432" in n for n in result.notes)
    assert kinds[("DatabaseInstance", "other-pg")]["spec"]["node"] == "node-7"
    assert any("--label-add io.dbstate.node=node-7" in n for n in result.notes)
    text = "\n---\n".join(files(result).values())
    assert PG_PW not in text
    loaded = desired.load_text(text, "t.yaml", result.env)
    assert loaded.errors == (), loaded.errors


def test_credentials_are_found_by_the_shape_of_the_value_not_only_by_the_key_name() -> None:
    """A red team found these written into the YAML: a URL's password, PGPASS, MYSQL_PWD, a `password=` pair, and
    Redis' --masterauth on the command line."""
    url_pw, pgpass, mysql_pwd, dsn_pw, master = "Url-pw-91x", "Pgpass-77q", "MyPwd-55z", "Dsn-pw-33k", "Master-21m"
    pg = dataclasses.replace(
        PG,
        env={
            **(PG.env or {}),
            "REPLICA_URL": f"postgresql://rep:{url_pw}@primary:5432/app?sslmode=require",
            "PGPASS": pgpass,
            "MYSQL_PWD": mysql_pwd,
            "PRIMARY_CONNINFO": f"host=primary user=rep password={dsn_pw} sslmode=prefer",
        },
    )
    redis = dataclasses.replace(REDIS, command=("redis-server", "--masterauth", master, "--requirepass", REDIS_PW))
    found = [
        importer.Found(pg, pg.command or (), IMAGE_ENV, ("postgres",), "unless-stopped"),
        importer.Found(redis, redis.command or (), {"PATH": "/usr/bin"}, ("redis-server",), "always"),
    ]
    result = importer.build(found, OBSERVED)
    text = "\n---\n".join(files(result).values())
    for value in (url_pw, pgpass, mysql_pwd, dsn_pw, master, PG_PW, REDIS_PW):
        assert value not in text, value
        assert value in result.env.values(), value
    assert "postgresql://rep:${" in text and "@primary:5432/app?sslmode=require" in text  # only the password moved
    # what it writes loads, with each of them a secret (a plan shows ***), and the same values behind the references
    loaded = desired.load_text(text, "t.yaml", result.env)
    assert loaded.errors == (), loaded.errors
    [inst] = [i for i in loaded.state.instances if i.metadata.name == "postgres"]
    from controller.core.secrets import Secret, reveal

    for key in ("REPLICA_URL", "PGPASS", "MYSQL_PWD", "PRIMARY_CONNINFO"):
        assert isinstance(inst.spec.env[key], Secret), key
    assert reveal(inst.spec.env["REPLICA_URL"]) == pg.env["REPLICA_URL"]  # type: ignore[index]
    [kv] = [i for i in loaded.state.instances if i.metadata.name == "redis"]
    assert master not in " ".join(kv.spec.command) and reveal(kv.spec.env["REDIS_MASTERAUTH"]) == master
    assert adoption.differences(kv, redis) == []  # still the same server: adopted as it is
