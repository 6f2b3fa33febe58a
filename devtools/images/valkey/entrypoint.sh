#!/bin/sh
set -eu
if [ "${1#-}" != "${1:-}" ]; then set -- valkey-server "$@"; fi
if [ "${1:-}" = "valkey-server" ]; then
  shift
  set -- valkey-server --protected-mode no --dir /data "$@"
fi
exec "$@"
