#!/usr/bin/env bash
# Interoperability test: custos driven by third-party OAuth client libraries.
#
#   bash tests/interop/run.sh                 # SQLite
#   CUSTOS_TEST_POSTGRES_URL=postgres://custos:custos@127.0.0.1:55432/custos \
#     bash tests/interop/run.sh               # SQLite, then PostgreSQL
#
# For each backend: builds custos, starts it on a free loopback port with a
# fresh database, waits for /healthz, runs the pytest suite (authlib, httpx,
# PyJWT, joserfc) and, if node is installed, the oauth4webapi script; then
# stops the server with SIGTERM and requires exit status 0 (graceful
# shutdown). For PostgreSQL a new database is created in the cluster of
# CUSTOS_TEST_POSTGRES_URL (its role needs CREATEDB) and dropped afterwards.
# The server runs with CUSTOS_KEY_ACTIVATION_DELAY=3 so the signing key
# rotation test can see a new key take over. A second custos, a replica on
# the same database with CUSTOS_DPOP_NONCE=true, serves the DPoP nonce tests
# (CUSTOS_TEST_NONCE_URL); it too must stop cleanly on SIGTERM. pytest is
# told the engine (CUSTOS_TEST_ENGINE=sqlite|postgres) for engine-specific
# known bugs.
#
# Python packages go into target/interop-venv (pinned in requirements.txt),
# npm packages into target/interop-node. Extra arguments go to pytest, e.g.
#   bash tests/interop/run.sh -k private_key_jwt
# Settings: INTEROP_SKIP_NODE=1 skips the oauth4webapi script.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

say() { echo "interop: $*" >&2; }
# shellcheck source=../lib/server.sh
. "$root/tests/lib/server.sh"

venv="$root/target/interop-venv"
node_dir="$root/target/interop-node"
work="$(mktemp -d "${TMPDIR:-/tmp}/custos-interop.XXXXXX")"

cleanup() {
  local rc=$?
  servers_cleanup
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ setup

python="${PYTHON:-python3}"
command -v "$python" >/dev/null || { say "python3 is required"; exit 1; }

stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "creating $venv"
  rm -rf "$venv"
  if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
    say "python3 -m venv failed; installing python3-venv"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$venv"
      "$python" -m venv "$venv"
    else
      exit 1
    fi
  fi
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt"
  echo "$want" >"$stamp"
fi

run_node=0
if [ "${INTEROP_SKIP_NODE:-0}" != 1 ] && command -v node >/dev/null && command -v npm >/dev/null; then
  node_major="$(node -p 'process.versions.node.split(".")[0]')"
  if [ "$node_major" -ge 20 ]; then
    run_node=1
    mkdir -p "$node_dir"
    cp "$here/oauth4webapi/package.json" "$here/oauth4webapi/package-lock.json" "$node_dir/"
    cp "$here/oauth4webapi/interop.mjs" "$node_dir/"
    node_stamp="$node_dir/.lock.sha256"
    node_want="$(sha256sum "$here/oauth4webapi/package-lock.json" | cut -d' ' -f1)"
    if [ ! -d "$node_dir/node_modules" ] || [ "$(cat "$node_stamp" 2>/dev/null)" != "$node_want" ]; then
      say "installing oauth4webapi into $node_dir"
      (cd "$node_dir" && npm ci --silent --no-audit --no-fund >/dev/null)
      echo "$node_want" >"$node_stamp"
    fi
  else
    say "node $node_major is older than 20; skipping oauth4webapi"
  fi
else
  say "node/npm not found (or INTEROP_SKIP_NODE=1); skipping oauth4webapi"
fi

say "cargo build -p custos"
cargo build -q -p custos
binary="${CARGO_TARGET_DIR:-$root/target}/debug/custos"

# run_backend NAME DATABASE_URL [KEY_ENCRYPTION_KEY]
run_backend() {
  local name="$1" database_url="$2" kek="${3:-}"
  local admin_token log url nonce_log nonce_pid nonce_url rc
  admin_token="interop-$(secret)"
  log="$work/custos-$name.log"
  # CUSTOS_KEY_ACTIVATION_DELAY=3: the key rotation test sees a new key
  # take over.
  start_server "$name" "$log" "$database_url" "$admin_token" "$kek" \
    CUSTOS_KEY_ACTIVATION_DELAY=3 CUSTOS_ALLOW_PRIVATE_URLS=true || return 1
  local pid="$server_pid"
  url="$server_url"
  # A replica on the same database that demands DPoP nonces (RFC 9449 §8),
  # started once the first has migrated the database.
  nonce_log="$work/custos-$name-nonce.log"
  start_server "$name, nonces" "$nonce_log" "$database_url" "$admin_token" "$kek" \
    CUSTOS_KEY_ACTIVATION_DELAY=3 CUSTOS_ALLOW_PRIVATE_URLS=true CUSTOS_DPOP_NONCE=true ||
    return 1
  nonce_pid="$server_pid"
  nonce_url="$server_url"

  rc=0
  say "[$name] pytest"
  (
    cd "$here"
    CUSTOS_TEST_URL="$url" CUSTOS_TEST_NONCE_URL="$nonce_url" CUSTOS_TEST_ADMIN_TOKEN="$admin_token" \
      CUSTOS_TEST_ENGINE="$name" PYTHONDONTWRITEBYTECODE=1 \
      "$venv/bin/python" -m pytest -p no:cacheprovider -q -rfExX "${pytest_args[@]}"
  ) || rc=$?

  if [ "$rc" = 0 ] && [ "$run_node" = 1 ]; then
    say "[$name] oauth4webapi"
    CUSTOS_TEST_URL="$url" CUSTOS_TEST_NONCE_URL="$nonce_url" CUSTOS_TEST_ADMIN_TOKEN="$admin_token" \
      node "$node_dir/interop.mjs" || rc=$?
  fi

  stop_server "$name, nonces" "$nonce_pid" || rc=1
  stop_server "$name" "$pid" || rc=1
  if [ "$rc" != 0 ]; then
    show_log "$name" "$log"
    show_log "$name, nonces" "$nonce_log"
    return 1
  fi
  say "[$name] passed; custos shut down cleanly"
}

pytest_args=("$@")
failed=0

mkdir -p "$work/sqlite"
run_backend sqlite "sqlite://$work/sqlite/custos.db" || failed=1

if [ -n "${CUSTOS_TEST_POSTGRES_URL:-}" ]; then
  create_pg_database custos_interop || exit 1
  run_backend postgres "$pg_url" "$(secret)" || failed=1
else
  say "CUSTOS_TEST_POSTGRES_URL is not set; skipping PostgreSQL"
fi

if [ "$failed" != 0 ]; then
  say "FAILED"
  exit 1
fi
say "all backends passed"
