#!/usr/bin/env bash
# End-to-end test with the official MCP TypeScript SDK: custos as the
# authorization server of an MCP server built with the SDK, and the SDK's
# client authorizing three ways (client credentials with private_key_jwt,
# authorization code with PKCE through the login and consent pages, a
# Client ID Metadata Document client), then calling a tool. See README.md.
#
#   bash tests/mcp/run.sh                     # SQLite
#   CUSTOS_TEST_POSTGRES_URL=postgres://custos:custos@127.0.0.1:55432/custos \
#     bash tests/mcp/run.sh                   # SQLite, then PostgreSQL
#
# For each backend: builds custos, starts it on a free loopback port with a
# fresh database and CUSTOS_ALLOW_PRIVATE_URLS=true (the test serves its
# client ID metadata document on http://127.0.0.1), waits for /healthz, runs
# e2e.mjs, then stops the server with SIGTERM and requires exit status 0
# (graceful shutdown). For PostgreSQL a new database is created in the
# cluster of CUSTOS_TEST_POSTGRES_URL (its role needs CREATEDB) and dropped
# afterwards.
#
# npm packages (pinned in package-lock.json) go into target/mcp-node; the
# source tree is not written to. Without node >= 20 and npm the test is
# skipped (exit 0). MCP_E2E_VERBOSE=1 makes e2e.mjs log every request to
# custos.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

say() { echo "mcp: $*" >&2; }
# shellcheck source=../lib/server.sh
. "$root/tests/lib/server.sh"

node_dir="$root/target/mcp-node"
work=""

cleanup() {
  local rc=$?
  servers_cleanup
  if [ -n "$work" ]; then
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ setup

if { ! command -v node >/dev/null || ! command -v npm >/dev/null; } &&
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  say "installing nodejs and npm (Debian packages)"
  apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null ||
    say "installing nodejs failed"
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  say "node/npm not found; skipping the MCP SDK end-to-end test"
  exit 0
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  say "node $node_major is older than 20; skipping the MCP SDK end-to-end test"
  exit 0
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/custos-mcp.XXXXXX")"

mkdir -p "$node_dir"
cp "$here/package.json" "$here/package-lock.json" "$here/e2e.mjs" "$node_dir/"
node_stamp="$node_dir/.lock.sha256"
node_want="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [ ! -d "$node_dir/node_modules" ] || [ "$(cat "$node_stamp" 2>/dev/null)" != "$node_want" ]; then
  say "installing @modelcontextprotocol/sdk into $node_dir"
  (cd "$node_dir" && npm ci --silent --no-audit --no-fund --ignore-scripts >/dev/null)
  echo "$node_want" >"$node_stamp"
fi

say "cargo build -p custos"
cargo build -q -p custos
binary="${CARGO_TARGET_DIR:-$root/target}/debug/custos"

# run_backend NAME DATABASE_URL [KEY_ENCRYPTION_KEY]
run_backend() {
  local name="$1" database_url="$2" kek="${3:-}"
  local admin_token log rc
  admin_token="mcp-e2e-$(secret)"
  log="$work/custos-$name.log"
  # CUSTOS_CIMD_ALLOWED_HOSTS / _DENIED_HOSTS unset: any document host.
  start_server "$name" "$log" "$database_url" "$admin_token" "$kek" \
    CUSTOS_ALLOW_PRIVATE_URLS=true || return 1

  rc=0
  say "[$name] e2e.mjs (@modelcontextprotocol/sdk)"
  CUSTOS_TEST_URL="$server_url" CUSTOS_TEST_ADMIN_TOKEN="$admin_token" \
    node "$node_dir/e2e.mjs" || rc=$?

  stop_server "$name" "$server_pid" || rc=1
  if [ "$rc" != 0 ]; then
    show_log "$name" "$log"
    return 1
  fi
  say "[$name] passed; custos shut down cleanly"
}

failed=0

mkdir -p "$work/sqlite"
run_backend sqlite "sqlite://$work/sqlite/custos.db" || failed=1

if [ -n "${CUSTOS_TEST_POSTGRES_URL:-}" ]; then
  create_pg_database custos_mcp || exit 1
  run_backend postgres "$pg_url" "$(secret)" || failed=1
else
  say "CUSTOS_TEST_POSTGRES_URL is not set; skipping PostgreSQL"
fi

if [ "$failed" != 0 ]; then
  say "FAILED"
  exit 1
fi
say "all backends passed"
