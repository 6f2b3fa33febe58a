#!/bin/sh
set -eu
if [ "${1#-}" != "${1:-}" ]; then set -- redis-server "$@"; fi
if [ "${1:-}" = "redis-server" ]; then
  shift
  set -- redis-server --protected-mode no --dir /data "$@"
fi
exec "$@"
