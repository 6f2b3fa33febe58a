"""Small builders shared by tests: desired-state documents as YAML text."""

from __future__ import annotations

from pathlib import Path

from devtools.engine import TEST_LABEL

SECRET = "s3cr3t-value-that-must-not-leak"


def instance_yaml(
    name: str = "pg",
    container: str = "pg-db",
    extra: str = "",
    version: str = "16",
    image: str = "postgres:16-alpine",
    network: str = "edge",
    volume: str | None = "pg_data",
) -> str:
    vol = f"  volumes:\n    - source: {volume}\n      target: /var/lib/postgresql/data\n" if volume else ""
    return f"""apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata:
  name: {name}
spec:
  engine: postgres
  version: "{version}"
  image: {image}
  containerName: {container}
  networks:
    - name: {network}
      aliases: [{name}]
{vol}  env:
    POSTGRES_USER: app
    POSTGRES_PASSWORD: ${{PG_PASSWORD}}
  auth:
    method: scram-sha-256
    user: app
    password: ${{PG_PASSWORD}}
{extra}"""


NETWORK = """apiVersion: dbstate.io/v1
kind: Network
metadata: {name: edge}
"""

VOLUME = """apiVersion: dbstate.io/v1
kind: Volume
metadata: {name: pg_data}
"""


def consumer_yaml(name: str = "app", instance: str = "pg", network: str = "edge") -> str:
    return f"""apiVersion: dbstate.io/v1
kind: Consumer
metadata: {{name: {name}}}
spec:
  containerName: {name}
  networks: [{{name: {network}}}]
  uses: [{{instance: {instance}, hostEnv: DB_HOST}}]
"""


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


BASE_FILES = {"net.yaml": NETWORK, "vol.yaml": VOLUME}


def git(root: Path, *args: str) -> str:
    """Real git in a test repository, with an identity."""
    import subprocess

    return subprocess.run(
        ["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


# -- redis instances, networks, volumes and consumers labelled for the real engine's cleanup (tests/e2e), also used
# -- by the unit tests of the diff and the health findings


def redis_instance(
    name: str,
    container: str,
    networks: str = "[{name: net-a, aliases: [NAME]}]",
    extra: str = "",
    image: str = "dbstate-local/redis:7.0",
    volume: str | None = None,
) -> str:
    vol = f"  volumes: [{{source: {volume}, target: /data}}]\n" if volume else ""
    return f"""apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata:
  name: {name}
  labels: {{{TEST_LABEL}: "1"}}
spec:
  engine: redis
  version: "7"
  image: {image}
  containerName: {container}
  networks: {networks.replace("NAME", name)}
{vol}  env:
    REDIS_PASSWORD: ${{TEST_REDIS_PASSWORD}}
  command: ["sh", "-c", "exec redis-server --requirepass \\"$$REDIS_PASSWORD\\""]
  auth: {{method: password, password: "${{TEST_REDIS_PASSWORD}}"}}
{extra}"""


def network(name: str, isolated: bool = False, internal: bool = False) -> str:
    return f"""apiVersion: dbstate.io/v1
kind: Network
metadata: {{name: {name}, labels: {{{TEST_LABEL}: "1"}}}}
spec: {{isolated: {str(isolated).lower()}, internal: {str(internal).lower()}}}
"""


def volume(name: str) -> str:
    return f"""apiVersion: dbstate.io/v1
kind: Volume
metadata: {{name: {name}, labels: {{{TEST_LABEL}: "1"}}}}
"""


def consumer(name: str, instance: str, net: str = "net-a", host_env: str = "DB_HOST") -> str:
    return f"""apiVersion: dbstate.io/v1
kind: Consumer
metadata: {{name: {name}}}
spec:
  containerName: {name}
  networks: [{{name: {net}}}]
  uses: [{{instance: {instance}, hostEnv: {host_env}}}]
"""


ENV = {"TEST_REDIS_PASSWORD": SECRET}


# Two engines (`kind: Host`): `a` over a unix socket, `b` over TCP with client certificates (paths, not values).
TWO_HOSTS = """apiVersion: dbstate.io/v1
kind: Host
metadata: {name: a}
spec: {endpoint: "unix:///run/a.sock"}
---
apiVersion: dbstate.io/v1
kind: Host
metadata: {name: b}
spec:
  endpoint: "tcp://10.0.0.2:2376"
  tls: {ca: tls/ca.pem, cert: tls/cert.pem, key: tls/key.pem}
"""
