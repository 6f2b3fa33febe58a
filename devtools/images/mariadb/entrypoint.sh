#!/bin/sh
# The official image's contract, in brief: initialise the data directory on first start, then run mariadbd.
set -eu
case "${1:-}" in mariadbd|mysqld) shift ;; *) exec "$@" ;; esac
datadir=/var/lib/mysql
mkdir -p "$datadir" /run/mysqld
chown mysql:mysql "$datadir" /run/mysqld
# dash's echo interprets backslashes, which would corrupt a password: print lines with printf.
say() { printf '%s\n' "$1"; }
sql_quote() { printf '%s' "$1" | sed -e "s/\\\\/\\\\\\\\/g" -e "s/'/\\\\'/g"; }
if [ ! -d "$datadir/mysql" ]; then
  if [ -z "${MARIADB_ROOT_PASSWORD:-}" ]; then
    echo "mariadb stand-in: MARIADB_ROOT_PASSWORD is required" >&2
    exit 1
  fi
  mariadb-install-db --user=mysql --datadir="$datadir" --auth-root-authentication-method=normal \
    --skip-test-db > /dev/null
  root_pw=$(sql_quote "$MARIADB_ROOT_PASSWORD")
  # --bootstrap reads one statement per line; account statements need FLUSH PRIVILEGES first.
  {
    say "FLUSH PRIVILEGES;"
    say "ALTER USER 'root'@'localhost' IDENTIFIED BY '$root_pw';"
    say "CREATE USER 'root'@'%' IDENTIFIED BY '$root_pw';"
    say "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    say "DROP USER IF EXISTS ''@'localhost';"
    # mariadb-install-db also makes password-less root accounts; the official image keeps only these two.
    say "DROP USER IF EXISTS 'root'@'127.0.0.1', 'root'@'::1', 'root'@'$(hostname)';"
    if [ -n "${MARIADB_DATABASE:-}" ]; then
      say "CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\`;"
    fi
    if [ -n "${MARIADB_USER:-}" ] && [ -n "${MARIADB_PASSWORD:-}" ]; then
      say "CREATE USER '$MARIADB_USER'@'%' IDENTIFIED BY '$(sql_quote "$MARIADB_PASSWORD")';"
      if [ -n "${MARIADB_DATABASE:-}" ]; then
        say "GRANT ALL ON \`$MARIADB_DATABASE\`.* TO '$MARIADB_USER'@'%';"
      fi
    fi
    say "FLUSH PRIVILEGES;"
  } | mariadbd --user=mysql --datadir="$datadir" --bootstrap > /dev/null 2>&1
  echo "mariadb stand-in: initialised $datadir"
fi
exec mariadbd --user=mysql --datadir="$datadir" --bind-address=0.0.0.0 --skip-name-resolve "$@"
