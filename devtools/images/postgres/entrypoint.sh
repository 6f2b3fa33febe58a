#!/bin/sh
# The official image's contract, in brief: initialise PGDATA on first start, then run the server as postgres.
set -eu
# NAME_FILE: the value from a file (a Swarm or compose secret), as the official image's file_env does
for var in POSTGRES_PASSWORD POSTGRES_USER POSTGRES_DB; do
  eval "file=\${${var}_FILE:-}"
  if [ -n "$file" ]; then eval "$var=\$(cat \"\$file\")"; export "$var"; fi
done
if [ "${1:-}" = "postgres" ]; then shift; set -- postgres "$@"; else exec "$@"; fi
mkdir -p "$PGDATA" /var/run/postgresql
chown -R postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  user="${POSTGRES_USER:-postgres}"
  db="${POSTGRES_DB:-$user}"
  auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    echo "postgres stand-in: POSTGRES_PASSWORD is required (or POSTGRES_HOST_AUTH_METHOD=trust)" >&2
    exit 1
  fi
  pwfile=$(mktemp)
  printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
  chown postgres "$pwfile"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a word list, as in the official image
  setpriv --reuid=postgres --regid=postgres --init-groups initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" \
    -E UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host="$auth" ${POSTGRES_INITDB_ARGS:-} > /dev/null
  rm -f "$pwfile"
  printf "host all all all %s\n" "$auth" >> "$PGDATA/pg_hba.conf"
  printf "listen_addresses = '*'\npassword_encryption = 'scram-sha-256'\n" >> "$PGDATA/postgresql.conf"
  if [ "$db" != postgres ]; then
    setpriv --reuid=postgres --regid=postgres --init-groups pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start > /dev/null
    setpriv --reuid=postgres --regid=postgres --init-groups psql -v ON_ERROR_STOP=1 -q -U "$user" -d postgres \
      -c "CREATE DATABASE \"$db\"" > /dev/null
    setpriv --reuid=postgres --regid=postgres --init-groups pg_ctl -D "$PGDATA" -m fast -w stop > /dev/null
  fi
  echo "postgres stand-in: initialised $PGDATA"
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups "$@" -D "$PGDATA"
