#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for custos development and tests and
# prints its URL as the last line of stdout:
#
#   URL=$(bash scripts/start-postgres.sh)
#   CUSTOS_TEST_POSTGRES_URL=$URL cargo test -p custos-store
#
# Settings (environment):
#   PGPORT      TCP port on 127.0.0.1 (default 55432)
#   PGDATA_DIR  cluster directory      (default /tmp/custos-pg)
#
# Installs PostgreSQL from the distribution's packages (apt-get) when no
# /usr/lib/postgresql/*/bin/initdb exists. Idempotent: a cluster already
# running in PGDATA_DIR is reused; the role and database `custos` (password
# `custos`) are created when missing. The cluster trusts local connections and
# is meant for tests only. Stop it with scripts/stop-postgres.sh.
set -euo pipefail

port="${PGPORT:-55432}"
dir="${PGDATA_DIR:-/tmp/custos-pg}"
url="postgres://custos:custos@127.0.0.1:${port}/custos"

say() { echo "start-postgres: $*" >&2; }
pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }

bin="$(pg_bindir)"
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  if [ "$(id -u)" != 0 ]; then
    say "PostgreSQL is not installed and installing it needs root (apt-get install postgresql)"
    exit 1
  fi
  say "installing PostgreSQL (apt-get install postgresql)"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  bin="$(pg_bindir)"
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    say "installation finished but no /usr/lib/postgresql/*/bin/initdb was found"
    exit 1
  fi
fi

# Runs a PostgreSQL program as the `postgres` system user when we are root
# (the server refuses to run as root), as ourselves otherwise.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
admin_psql() {
  as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -v ON_ERROR_STOP=1 -qAt "$@"
}

if [ -f "$dir/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
  say "reusing the cluster running in $dir"
else
  say "creating a cluster in $dir on 127.0.0.1:$port"
  rm -rf "$dir"
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir"; fi
  chmod 700 "$dir"
  as_pg "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 >/dev/null
  if ! as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
      -o "-h 127.0.0.1 -p $port -k $dir -c max_connections=300" start >/dev/null; then
    say "the server did not start; last lines of $dir/server.log:"
    tail -n 20 "$dir/server.log" >&2 || true
    exit 1
  fi
fi

if [ "$(admin_psql -c "SELECT count(*) FROM pg_roles WHERE rolname = 'custos'")" = 0 ]; then
  admin_psql -c "CREATE ROLE custos LOGIN CREATEDB PASSWORD 'custos'"
fi
if [ "$(admin_psql -c "SELECT count(*) FROM pg_database WHERE datname = 'custos'")" = 0 ]; then
  admin_psql -c "CREATE DATABASE custos OWNER custos"
fi

echo "$url"
