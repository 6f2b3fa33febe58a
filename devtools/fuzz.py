"""Generated desired-state trees and env files for the fuzz suite (tests/unit/commands/test_fuzz.py) and
bench/fuzz.py: valid declarations mutated, YAML of any shape, arbitrary bytes, special files, hostile env files. Each
case knows its secret values, so a check can assert that none is ever echoed."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

SECRET_KEYS = ("POSTGRES_PASSWORD", "DB_TOKEN", "API_KEY", "JWT_SECRET", "REDIS_PASSWORD")

VALID = """apiVersion: dbstate.io/v1
kind: Network
metadata: {name: edge}
---
apiVersion: dbstate.io/v1
kind: Volume
metadata: {name: pg_data}
---
apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {name: pg, labels: {tier: shared}}
spec:
  engine: postgres
  version: "16"
  image: postgres:16-alpine
  containerName: pg-db
  networks: [{name: edge, aliases: [pg]}]
  volumes: [{source: pg_data, target: /var/lib/postgresql/data}]
  env:
    POSTGRES_USER: app
    POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}
    DATABASE_URL: postgres://app:${DB_TOKEN}@pg/app
  auth: {method: scram-sha-256, user: app, password: "${POSTGRES_PASSWORD}"}
---
apiVersion: dbstate.io/v1
kind: Consumer
metadata: {name: app}
spec:
  containerName: app
  networks: [{name: edge}]
  uses: [{instance: pg, hostEnv: DB_HOST}]
"""

FRAGMENTS = [
    "",
    "\n",
    "---\n",
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    "&a ",
    "*a",
    "!!bool maybe",
    "!!binary x",
    "!custom ",
    "<<: ",
    "${",
    "${X",
    "${POSTGRES_PASSWORD}",
    "$$",
    "\t",
    "\x00",
    "\x1b[2J",
    "é",
    "\ufeff",
    '"',
    "'",
    "#",
    "%YAML 1.1\n",
    "io.dbstate.lease: x",
    "9" * 30,
    "1e999",
    "-1",
    "0x1F",
    "null",
    "~",
    "true",
    "2024-01-01",
    "version: 16.99999999",
    "engine: nosuch",
    "kind: Nope",
    "apiVersion: v2",
    "metadata: {name: UPPER}",
    "image: x:latest",
]


# engine addresses as a Host declares them: well formed, malformed, and holding a credential (the secret is added)
ENDPOINTS = [
    "unix:///var/run/docker.sock",
    "tcp://10.0.0.5:2376",
    "tcp://[::1]:2376",
    "ssh://deploy@db1:2222",
    "tcp://h:abc",
    "tcp://h:99999",
    "tcp://[::1",
    "tcp://:2376",
    "ssh://u@h:0x1",
    "unix://",
    "tcp://",
    "http://h:2375",
    "tcp://admin:{secret}@h:2376",
    "tcp://h:2376/?token={secret}",
]

# a backup's manifest as dbstate writes it; the fuzz mutates its fields' types and values, and its paths
MANIFEST = {
    "id": "pg-20261204T000000Z",
    "instance": "pg",
    "engine": "postgres",
    "image": "postgres:16-alpine",
    "server_version": "16.4",
    "revision": None,
    "file": "pg-20261204T000000Z.sql.gz",
    "format": "sql.gz",
    "size_bytes": 10,
    "raw_bytes": 10,
    "sha256": "0" * 64,
    "started": 1764806400.0,
    "finished": 1764806401.0,
    "counts": {"app/public.t": 1},
    "databases": ["app"],
    "reason": "manual",
    "verified": None,
    "version": 1,
    "signature": None,
}
ODD_VALUES: list[object] = [
    None, True, -1, 2**70, 1e308, float("nan"), "", "x", "../../outside", "/etc/passwd", "a/b", "..", [], [1, "a"],
    {}, {"a": "b"}, {"a": [1]}, "\x1b[2J", "é" * 50,
]  # fmt: skip


@dataclass
class Case:
    files: dict[str, bytes] = field(default_factory=dict)  # relative path -> content
    specials: dict[str, str] = field(default_factory=dict)  # relative path -> fifo | zero | outside
    env: bytes = b""
    secrets: tuple[str, ...] = ()
    manifests: dict[str, bytes] = field(default_factory=dict)  # path under the backup directory -> content

    def write(self, root: Path) -> tuple[Path, Path]:
        ds = root / "desired"
        ds.mkdir(parents=True)
        for rel, data in self.files.items():
            p = ds / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        for rel, kind in self.specials.items():
            p = ds / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if kind == "fifo":
                os.mkfifo(p)
            elif kind == "zero":
                p.symlink_to("/dev/zero")
            else:
                outside = root / "outside.yaml"
                outside.write_text("apiVersion: dbstate.io/v1\nkind: Volume\nmetadata: {name: out}\n")
                p.symlink_to(outside)
        env = root / "case.env"
        env.write_bytes(self.env)
        for rel, data in self.manifests.items():
            p = root / "backups" / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        return ds, env


def _mutate(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(0, 4)):
        at = rng.randint(0, len(text))
        op = rng.random()
        if op < 0.4:
            text = text[:at] + rng.choice(FRAGMENTS) + text[at:]
        elif op < 0.7:
            end = min(len(text), at + rng.randint(1, 30))
            text = text[:at] + text[end:]
        else:
            lines = text.splitlines(keepends=True)
            if lines:
                i = rng.randrange(len(lines))
                lines.insert(rng.randrange(len(lines) + 1), lines[i])
                text = "".join(lines)
    return text


def _env(rng: random.Random) -> tuple[bytes, tuple[str, ...]]:
    secrets = tuple(f"zq{rng.getrandbits(48):012x}S" for _ in SECRET_KEYS)
    lines = []
    quotes = ["{v}", '"{v}"', "'{v}'", '"{v} # x" # c', "{v} # c", "export {k}={v}"]
    for key, value in zip(SECRET_KEYS, secrets, strict=True):
        form = rng.choice(quotes)
        lines.append(form.replace("{k}", key) if form.startswith("export") else f"{key}={form}")
        lines[-1] = lines[-1].replace("{v}", value).replace("{k}", key)
    lines += [
        rng.choice(["# comment", "", "NOT A LINE", "X='unterminated", 'M="multi', 'line"', "EMPTY="]) for _ in range(3)
    ]
    rng.shuffle(lines)
    return ("\n".join(lines) + "\n").encode(), secrets


def case(seed: int) -> Case:
    """One generated case, the same for the same seed."""
    rng = random.Random(seed)
    env, secrets = _env(rng)
    c = Case(env=env, secrets=secrets)
    docs = VALID.split("---\n")
    for i in range(rng.randint(1, 4)):
        kind = rng.random()
        name = rng.choice(["", "sub/", "deep/er/", ".hidden/"]) + f"f{i}" + rng.choice([".yaml", ".yml", ".txt"])
        if kind < 0.6:
            chosen = rng.sample(docs, rng.randint(1, len(docs)))
            c.files[name] = _mutate("---\n".join(chosen), rng).encode("utf-8", "surrogatepass")
        elif kind < 0.85:
            c.files[name] = "".join(rng.choice(FRAGMENTS) + rng.choice(["\n", " ", "x"]) for _ in range(30)).encode()
        else:
            c.files[name] = rng.randbytes(rng.randint(0, 300))
    if rng.random() < 0.1:
        c.specials[f"special{seed % 3}.yaml"] = rng.choice(["fifo", "zero", "outside"])
    if rng.random() < 0.4:
        endpoint_form = rng.choice(ENDPOINTS)
        endpoint = endpoint_form.replace("{secret}", secrets[0])
        host = f"apiVersion: dbstate.io/v1\nkind: Host\nmetadata: {{name: h{seed % 5}}}\n"
        host += f'spec: {{endpoint: "{endpoint}"}}\n'
        # one holding a credential is left whole: a mutation could cut it to no longer look like one
        made = host if "{secret}" in endpoint_form else _mutate(host, rng)
        c.files[f"host{seed % 2}.yaml"] = made.encode("utf-8", "surrogatepass")
    for i in range(rng.randint(0, 3)):
        c.manifests[f"{rng.choice(['pg', 'kv', '..', 'x y'])}/m{i}.json"] = _manifest(rng)
    return c


def _manifest(rng: random.Random) -> bytes:
    """A manifest with some fields changed in type or value, dropped, or added; or not JSON at all."""
    import json

    body: dict[str, object] = dict(MANIFEST)
    for _ in range(rng.randint(0, 4)):
        key = rng.choice([*MANIFEST, "extra"])
        if rng.random() < 0.2:
            body.pop(key, None)
        else:
            body[key] = rng.choice(ODD_VALUES)
    text = json.dumps(body)
    return _mutate(text, rng).encode() if rng.random() < 0.2 else text.encode()
