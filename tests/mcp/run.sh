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

node_dir="$root/target/mcp-node"
work=""
server_pid=""
server_log=""
pg_database=""
pg_admin_url=""

cleanup() {
  local rc=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ -n "$pg_database" ]; then
    psql "$pg_admin_url" -qAt -v ON_ERROR_STOP=1 \
      -c "DROP DATABASE IF EXISTS \"$pg_database\"" >/dev/null 2>&1 ||
      say "could not drop database $pg_database"
  fi
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

# A random URL-safe secret (node is there: the test needs it).
secret() { node -e 'console.log(require("node:crypto").randomBytes(32).toString("base64url"))'; }

# The server binds port 0; its address is read back from its log line
# "custos listening on http://127.0.0.1:PORT" (no free-port probe to race).
# bound_url PID LOG
bound_url() {
  for _ in $(seq 1 300); do
    if ! kill -0 "$1" 2>/dev/null; then
      return 1
    fi
    local found
    found="$(grep -oE 'custos listening on http://127\.0\.0\.1:[0-9]+' "$2" | head -n 1 | sed 's/.* on //')" || true
    if [ -n "$found" ]; then
      echo "$found"
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# wait_healthy PID URL
wait_healthy() {
  for _ in $(seq 1 300); do
    if ! kill -0 "$1" 2>/dev/null; then
      return 1
    fi
    if node -e '
      fetch(process.argv[1] + "/healthz", { signal: AbortSignal.timeout(2000) })
        .then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))
    ' "$2" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# show_log NAME LOG
show_log() {
  if [ -n "$2" ] && [ -f "$2" ]; then
    echo "----- custos log ($1) -----" >&2
    cat "$2" >&2
    echo "----- end of custos log -----" >&2
  fi
}

# stop NAME PID: SIGTERM, then requires exit status 0 within 30 s.
stop() {
  local name="$1" pid="$2" status=0 stopped=0
  say "[$name] stopping custos (SIGTERM)"
  kill -TERM "$pid"
  for _ in $(seq 1 300); do
    if ! kill -0 "$pid" 2>/dev/null; then
      stopped=1
      break
    fi
    sleep 0.1
  done
  if [ "$stopped" = 0 ]; then
    say "[$name] custos did not stop within 30 s of SIGTERM"
    kill -KILL "$pid" 2>/dev/null || true
    status=137
  fi
  wait "$pid" || status=$?
  if [ "$status" != 0 ]; then
    say "[$name] custos exited with status $status after SIGTERM (want 0)"
    return 1
  fi
}

# run_backend NAME DATABASE_URL [KEY_ENCRYPTION_KEY]
run_backend() {
  local name="$1" database_url="$2" kek="${3:-}"
  local admin_token url rc
  admin_token="mcp-e2e-$(secret)"
  server_log="$work/custos-$name.log"
  say "[$name] starting custos on 127.0.0.1, port chosen by the system"
  # CUSTOS_CIMD_ALLOWED_HOSTS / _DENIED_HOSTS unset: any document host.
  env -u CUSTOS_CONFIG -u CUSTOS_ISSUER -u CUSTOS_TLS_CERT -u CUSTOS_TLS_KEY -u CUSTOS_LOG_FORMAT \
    -u CUSTOS_DPOP_NONCE -u CUSTOS_CIMD_ALLOWED_HOSTS -u CUSTOS_CIMD_DENIED_HOSTS \
    -u CUSTOS_CLIENT_ID_METADATA_DOCUMENTS \
    CUSTOS_LISTEN="127.0.0.1:0" \
    CUSTOS_DATABASE_URL="$database_url" \
    CUSTOS_ADMIN_TOKEN="$admin_token" \
    CUSTOS_ALLOW_PRIVATE_URLS=true \
    ${kek:+CUSTOS_KEY_ENCRYPTION_KEY="$kek"} \
    CUSTOS_LOG="${CUSTOS_LOG:-info}" \
    "$binary" serve >"$server_log" 2>&1 &
  server_pid=$!
  if ! url="$(bound_url "$server_pid" "$server_log")" || ! wait_healthy "$server_pid" "$url"; then
    say "[$name] custos did not start"
    show_log "$name" "$server_log"
    return 1
  fi
  say "[$name] custos listens on $url"

  rc=0
  say "[$name] e2e.mjs (@modelcontextprotocol/sdk)"
  CUSTOS_TEST_URL="$url" CUSTOS_TEST_ADMIN_TOKEN="$admin_token" \
    node "$node_dir/e2e.mjs" || rc=$?

  stop "$name" "$server_pid" || rc=1
  server_pid=""
  if [ "$rc" != 0 ]; then
    show_log "$name" "$server_log"
    return 1
  fi
  say "[$name] passed; custos shut down cleanly"
}

failed=0

mkdir -p "$work/sqlite"
run_backend sqlite "sqlite://$work/sqlite/custos.db" || failed=1

if [ -n "${CUSTOS_TEST_POSTGRES_URL:-}" ]; then
  command -v psql >/dev/null || { say "CUSTOS_TEST_POSTGRES_URL is set but psql is missing"; exit 1; }
  pg_admin_url="$CUSTOS_TEST_POSTGRES_URL"
  pg_database="custos_mcp_$(date +%s)_$$"
  say "[postgres] CREATE DATABASE $pg_database"
  psql "$pg_admin_url" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$pg_database\"" >/dev/null
  # Same URL with the path replaced by the new database (query kept).
  pg_url="$(node -e '
    const url = new URL(process.argv[1])
    url.pathname = "/" + process.argv[2]
    console.log(url.href)
  ' "$pg_admin_url" "$pg_database")"
  run_backend postgres "$pg_url" "$(secret)" || failed=1
else
  say "CUSTOS_TEST_POSTGRES_URL is not set; skipping PostgreSQL"
fi

if [ "$failed" != 0 ]; then
  say "FAILED"
  exit 1
fi
say "all backends passed"
