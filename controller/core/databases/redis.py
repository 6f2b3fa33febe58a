"""Redis (and KeyDB): recognised by `redis`/`keydb` images or port 6379; no users, a password or none; majors are one
number and an RDB file needs no conversion between them; backed up as its RDB file (BGSAVE, then a copy), checked with
redis-check-rdb and a throw-away server, restored by replacing the file of the stopped server (with `appendonly yes`,
a helper rewrites the AOF from it). Valkey (databases/valkey.py) is this with its own names."""

from __future__ import annotations

import re
from collections.abc import Mapping

from controller.core import spec
from controller.core.databases.base import Database, Exporter, Guess, Login, Query, Ran, declared_password, env_secret
from controller.core.secrets import Secret

AOF_REWRITE = r"""set -eu
cd "$1"; rdb=$2; aof=${3:-$4}; dirflag=; [ -n "$3" ] && dirflag="--appenddirname $3"
owner=$(stat -c %u:%g .)
if [ -e "$aof" ]; then rm -rf "$aof.dbstate-before-restore"; mv "$aof" "$aof.dbstate-before-restore"; fi
$SERVER --port 6390 --bind 127.0.0.1 --protected-mode no --dir "$1" --dbfilename "$rdb" --save "" \
  --appendonly no $dirflag --appendfilename "$4" --daemonize yes --logfile /tmp/dbstate-aof.log
p() { $CLI -p 6390 "$@"; }
n=0; until p ping 2>/dev/null | grep -q PONG; do
  n=$((n+1)); [ $n -lt 3000 ] || { tail -5 /tmp/dbstate-aof.log; exit 1; }; sleep 0.2; done
p config set appendonly yes >/dev/null
n=0; until p info persistence | tr -d '\r' | grep -q '^aof_rewrite_in_progress:0' && \
  p info persistence | tr -d '\r' | grep -q '^aof_rewrite_scheduled:0' && [ -e "$aof" ]; do
  n=$((n+1)); [ $n -lt 18000 ] || { echo "the AOF rewrite did not finish"; exit 1; }; sleep 0.2; done
p info persistence | tr -d '\r' | grep -q '^aof_last_bgrewrite_status:ok' || { echo "the AOF rewrite failed"; exit 1; }
echo "keys: $(p dbsize)"
p shutdown nosave >/dev/null 2>&1 || true
n=0; while p ping >/dev/null 2>&1; do n=$((n+1)); [ $n -lt 300 ] || exit 1; sleep 0.2; done
chown -R "$owner" "$aof" "$rdb"
rm -rf "$aof.dbstate-before-restore"
"""


def keyspace(info: str) -> int:
    """The keys of every database that `INFO keyspace` lists (`db0:keys=3,expires=0,avg_ttl=0`)."""
    return sum(
        int(part.split("=", 1)[1])
        for line in info.splitlines()
        if line.startswith("db") and ":" in line
        for part in line.split(":", 1)[1].split(",")
        if part.startswith("keys=")
    )


def keys_read(check_output: str) -> int | None:
    """The keys the RDB checker read ("[info] 3 keys read"), or None when it did not say."""
    m = re.search(r"(\d+) keys read", check_output)
    return int(m.group(1)) if m else None


def with_args(script: str, *args: str) -> str:
    """`script` preceded by `set -- ARGS`, each quoted for sh."""
    quoted = " ".join("'" + a.replace("'", "'\\''") + "'" for a in args)
    return f"set -- {quoted}\n{script}"


MONITOR_ACL = (
    "-@all +@connection +memory -readonly +strlen +config|get +xinfo +pfcount -quit +zcard +type +xlen -readwrite "
    "-command +client -wait +scard +llen +hlen +get +eval +slowlog +cluster|info -hello -echo +info +latency +scan "
    "-reset -auth -asking"
)


class Redis(Database):
    engine = spec.Engine.REDIS
    family = "redis"
    image_words: tuple[str, ...] = ("redis", "keydb")
    port = 6379
    auth_methods = frozenset({"password", "none"})
    needs_user = False
    sql = False
    backup_format = "rdb.gz"
    password_env: tuple[str, ...] = ("REDIS_PASSWORD",)
    image_version_env: tuple[str, ...] = ("REDIS_VERSION",)
    data_path = "/data"
    tool = "redis-cli"
    exporter = Exporter(  # Valkey's too
        "redis_exporter", "prometheus-redis-exporter", 9121, "redis_up", "oliver006/redis_exporter:v1.62.0"
    )
    server = "redis-server"
    monitor_login_persists = False  # an ACL user lives in memory unless the server has an aclfile
    check_rdb = "redis-check-rdb"
    version_fields: tuple[str, ...] = ("redis_version",)  # in INFO server, the first one found
    password_flag: str | None = "--requirepass"  # noqa: S105 - the server's flag that sets its password on a command line
    credential_flags: tuple[tuple[str, str], ...] = (("--masterauth", "REDIS_MASTERAUTH"),)  # a replica's login
    cli_auth_env: tuple[str, ...] = ("REDISCLI_AUTH",)  # where the client reads the password from

    def exporter_env(self, address: str, port: int, user: str | None, password: str) -> dict[str, str]:
        env = {"REDIS_ADDR": f"redis://{address}:{port}"}
        if password:
            env["REDIS_PASSWORD"] = password
        if user:
            env["REDIS_USER"] = user
        return env

    def monitor_login(self, who: Login, user: str, password: str) -> tuple[list[str], bytes]:
        # the ACL redis_exporter's README gives for a least-privileged user; redis-cli reads the command on stdin
        # (quoted, so any password is one argument)
        quoted = '"' + (">" + password).replace("\\", "\\\\").replace('"', '\\"') + '"'
        command = f"ACL SETUSER {user} reset on {quoted} {MONITOR_ACL}\n"
        return self.cli_argv(), command.encode()

    def data_major(self, server_version: str) -> str | None:
        return None  # an RDB file is read by every later major as it is

    def cli_argv(self, *command: str) -> list[str]:
        return ["sh", "-c", f'exec {self.tool} --no-auth-warning "$@"', "sh", *command]

    def auth_env(self, password: str | None) -> dict[str, str]:
        return {k: password for k in self.cli_auth_env} if password else {}

    def refusal(self, output: str) -> str | None:
        text = output.replace("\r", "")
        return text.strip()[:200] if text.startswith(("ERR", "NOAUTH", "WRONGPASS", "NOPERM")) else None

    def version_from_info(self, info: str) -> str:
        found = dict(ln.split(":", 1) for ln in info.replace("\r", "").splitlines() if ":" in ln)
        return next((found[f].strip() for f in self.version_fields if found.get(f, "").strip()), "")

    def guess_auth(self, env: Mapping[str, str], declared_env: Mapping[str, str]) -> Guess:
        key = next((k for k in self.password_env if k in declared_env), None)
        if key is None:
            return Guess(
                {"method": "none"},
                (f"no password found: {self.engine.value} without requirepass (an auth-weak finding when probed)",),
            )
        return Guess({"method": "password", "password": declared_env[key]})

    def own_credentials(self, env: Mapping[str, str]) -> tuple[str, str | None, Secret | None, str | None]:
        key = next((k for k in self.password_env if env.get(k)), None)
        return ("password", None, Secret(env[key]), None) if key else ("none", None, None, None)

    def login(self, inst: spec.DatabaseInstance) -> Login:
        return Login(None, self.auth_env(declared_password(inst) or env_secret(inst, *self.password_env)))

    def scratch(self, who: Login, password: str) -> tuple[Login, dict[str, str]]:
        return Login(None, {}), {}

    def ready_argv(self, who: Login) -> list[str]:
        return self.cli_argv("PING")

    def is_ready(self, ran: Ran) -> bool:
        return ran.code == 0 and b"PONG" in ran.stdout

    def server_version(self, who: Login, query: Query) -> str:
        return self.version_from_info(query(self.cli_argv("INFO", "server"))) or "?"

    def counts(self, who: Login, query: Query) -> dict[str, int]:
        return {"keys": keyspace(query(self.cli_argv("INFO", "keyspace")))}

    def check_argv(self, path: str) -> list[str]:
        return [self.check_rdb, path]

    def scratch_server_argv(self, port: str, directory: str, filename: str) -> list[str]:
        """A second server that loads `filename` and writes nothing (a verification)."""
        head = [self.server, "--port", port, "--dir", directory, "--dbfilename", filename]
        return [*head, "--save", "", "--appendonly", "no", "--daemonize", "yes"]

    def aof_rewrite(self, directory: str, rdb: str, appenddir: str, appendfile: str) -> str:
        """The script a helper runs (as root, no network, on the server's mounts) to make a fresh AOF from a restored
        RDB: `sh -c SCRIPT` (names from the server's own CONFIG GET, quoted)."""
        names = f"SERVER={self.server}; CLI={self.tool}\n"
        return with_args(names + AOF_REWRITE, directory, rdb, appenddir, appendfile)


REDIS = Redis()
