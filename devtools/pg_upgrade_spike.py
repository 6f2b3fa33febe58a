"""Evidence for issue 23, not a feature: pg_upgrade 15 -> 17 with only the two stand-in images, the old major's
binaries run in the new image through the old root's own loader. Run it on the bench engine:

    .venv/bin/python -m devtools.pg_upgrade_spike

1. The old image's userland (its postgresql binaries, share, libraries and loader) is copied into a volume. Docker
   20.10 has no image mounts, and the old binaries cannot run on the new root's libraries (libicu72 vs 76).
2. Wrappers at the same layout (`.../lib/postgresql/15/bin/*`) exec the old binaries with
   `ld-linux-x86-64.so.2 --library-path <old libs> --argv0 "$0"`. `pg_ctl` then finds `postgres` beside itself, and
   `postgres` finds its share and lib directories relative to itself.
3. In a helper container of the new image: initdb (as the image's entrypoint does), then `pg_upgrade --check`, then
   `--copy`; a server of the new image starts on the new volume with every row, and the old cluster still starts."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from bench.common import bench_engine

PW = "spike-pw-123"
ENV = {"POSTGRES_USER": "app", "POSTGRES_DB": "app", "POSTGRES_PASSWORD": PW}
OLD, NEW = "dbstate-local/postgres:15", "dbstate-local/postgres:17"
LABELS = {"dbstate-test": "1"}
DATA = "/var/lib/postgresql/data"

TRANSPLANT = """set -e
mkdir -p /x/root/usr/lib /x/root/usr/share /x/root/lib64
cp -a /usr/lib/postgresql /x/root/usr/lib/
cp -a /usr/share/postgresql /x/root/usr/share/
cp -a /usr/lib/x86_64-linux-gnu /x/root/usr/lib/
cp -aL /lib64/ld-linux-x86-64.so.2 /x/root/lib64/
mkdir -p /x/wrap/usr/lib/postgresql/15/bin /x/wrap/usr/share
ln -s /x/root/usr/share/postgresql /x/wrap/usr/share/postgresql
ln -s /x/root/usr/lib/postgresql/15/lib /x/wrap/usr/lib/postgresql/15/lib
for f in /usr/lib/postgresql/15/bin/*; do
  n=$(basename "$f")
  printf '#!/bin/sh\\nexec /x/root/lib64/ld-linux-x86-64.so.2 --library-path /x/root/usr/lib/x86_64-linux-gnu \
--argv0 "$0" /x/root/usr/lib/postgresql/15/bin/%s "$@"\\n' "$n" > "/x/wrap/usr/lib/postgresql/15/bin/$n"
  chmod 755 "/x/wrap/usr/lib/postgresql/15/bin/$n"
done
du -sh /x/root
/x/wrap/usr/lib/postgresql/15/bin/postgres -V
"""

UPGRADE = """set -e
chown -R postgres:postgres /new /old && chmod 700 /new /old && cd /tmp
as() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
printf '%s\\n' "$POSTGRES_PASSWORD" > /tmp/pw && chown postgres /tmp/pw
as initdb -D /new -U app --pwfile=/tmp/pw -E UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 \
  > /dev/null
old=/x/wrap/usr/lib/postgresql/15/bin new=/usr/lib/postgresql/17/bin
as pg_upgrade -b "$old" -B "$new" -d /old -D /new -U app --check
as pg_upgrade -b "$old" -B "$new" -d /old -D /new -U app --copy
cp /old/pg_hba.conf /new/pg_hba.conf
printf "listen_addresses = '*'\\npassword_encryption = 'scram-sha-256'\\n" >> /new/postgresql.conf
"""


def helper(client: Any, image: str, script: str, mounts: dict[str, dict[str, str]]) -> float:
    t0 = time.perf_counter()
    c = client.containers.run(
        image,
        entrypoint=["sh", "-c", script],
        environment=ENV,
        volumes=mounts,
        user="0",
        detach=True,
        network_mode="none",
        labels=LABELS,
    )
    code = c.wait()["StatusCode"]
    out = c.logs().decode()
    c.remove()
    print(out[-1500:])
    assert code == 0, f"exit {code}"
    return time.perf_counter() - t0


def server(client: Any, image: str, volume: str, sql: str) -> str:
    c = client.containers.run(
        image, environment=ENV, volumes={volume: {"bind": DATA, "mode": "rw"}}, detach=True, labels=LABELS
    )
    try:
        for _ in range(240):
            if c.exec_run(["pg_isready", "-h", "127.0.0.1"])[0] == 0 and "ready to accept" in c.logs().decode():
                break
            time.sleep(0.5)
        time.sleep(1)  # the stand-in's first start restarts the server once initialised
        return str(c.exec_run(["psql", "-U", "app", "-d", "app", "-At", "-c", sql], user="postgres").output.decode())
    finally:
        c.stop()
        c.remove()


def main() -> None:
    with bench_engine() as (_eng, client):
        for v in ("sp-old", "sp-new", "sp-root"):
            with contextlib.suppress(Exception):
                client.volumes.get(v).remove(force=True)
            client.volumes.create(v, labels=LABELS)
        make = "CREATE TABLE marker AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, 100000) g"
        print(server(client, OLD, "sp-old", make))
        copied = helper(client, OLD, TRANSPLANT, {"sp-root": {"bind": "/x", "mode": "rw"}})
        mounts = {
            "sp-old": {"bind": "/old", "mode": "rw"},
            "sp-new": {"bind": "/new", "mode": "rw"},
            "sp-root": {"bind": "/x", "mode": "ro"},
        }
        upgraded = helper(client, NEW, UPGRADE, mounts)
        print("new:", server(client, NEW, "sp-new", "SELECT version(); SELECT count(*) FROM marker"))
        print("old:", server(client, OLD, "sp-old", "SELECT version(); SELECT count(*) FROM marker"))
        print(f"old userland copied in {copied:.1f} s; initdb, pg_upgrade --check and --copy in {upgraded:.1f} s")
        for v in ("sp-old", "sp-new", "sp-root"):
            client.volumes.get(v).remove()


if __name__ == "__main__":
    main()
