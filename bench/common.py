"""What the benchmarks share: a desired state of N redis instances, each with a volume, on one network."""

from __future__ import annotations

from pathlib import Path

ENV = {"BENCH_PASSWORD": "bench-only-password"}
SLEEP = "[sleep, infinity]"  # the plan benchmark needs containers, not servers
REDIS = '["sh", "-c", "exec redis-server --requirepass \\"$$REDIS_PASSWORD\\""]'


def write_state(root: Path, n: int, command: str = REDIS) -> None:
    docs = ["apiVersion: dbstate.io/v1\nkind: Network\nmetadata: {name: bench-net}\n"]
    for i in range(n):
        docs.append(f"apiVersion: dbstate.io/v1\nkind: Volume\nmetadata: {{name: bench-vol-{i}}}\n")
        docs.append(f"""apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {{name: kv-{i}}}
spec:
  engine: redis
  version: "7"
  image: dbstate-local/redis:7.0
  containerName: kv-{i}-redis-1
  networks: [{{name: bench-net, aliases: [kv-{i}]}}]
  volumes: [{{source: bench-vol-{i}, target: /data}}]
  env: {{REDIS_PASSWORD: "${{BENCH_PASSWORD}}"}}
  command: {command}
  auth: {{method: password, password: "${{BENCH_PASSWORD}}"}}
""")
    root.mkdir(parents=True, exist_ok=True)
    (root / "bench.yaml").write_text("---\n".join(docs))
