#!/usr/bin/env bash
# Stops the throwaway cluster started by scripts/start-postgres.sh (same
# PGDATA_DIR, default /tmp/custos-pg). With --purge, also deletes its
# directory. Succeeds quietly when nothing is running.
set -euo pipefail

dir="${PGDATA_DIR:-/tmp/custos-pg}"
purge=0
case "${1:-}" in
  --purge) purge=1 ;;
  "") ;;
  *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac

bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ -n "$bin" ] && [ -f "$dir/postmaster.pid" ] \
    && as_pg "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
  as_pg "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
  echo "stop-postgres: stopped the cluster in $dir" >&2
fi

if [ "$purge" = 1 ] && [ -d "$dir" ]; then
  rm -rf "$dir"
  echo "stop-postgres: removed $dir" >&2
fi
