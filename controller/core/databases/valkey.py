"""Valkey, the Linux Foundation's fork of Redis 7.2 (Debian trixie's `valkey-server`): Redis's protocol, RDB file and
rules under its own names (valkey-server, valkey-cli, valkey-check-rdb), and its own version in
`INFO server` (`valkey_version`; `redis_version` there stays 7.2.4 for clients that check it)."""

from __future__ import annotations

from controller.core import spec
from controller.core.databases.redis import Redis


class Valkey(Redis):
    engine = spec.Engine.VALKEY
    image_words: tuple[str, ...] = ("valkey",)
    password_env: tuple[str, ...] = ("VALKEY_PASSWORD", "REDIS_PASSWORD")
    image_version_env: tuple[str, ...] = ("VALKEY_VERSION",)
    tool = "valkey-cli"
    server = "valkey-server"
    check_rdb = "valkey-check-rdb"
    version_fields: tuple[str, ...] = ("valkey_version", "redis_version")
    cli_auth_env: tuple[str, ...] = ("REDISCLI_AUTH", "VALKEYCLI_AUTH")  # 8.1's client reads the first


VALKEY = Valkey()
