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

venv="$root/target/interop-venv"
node_dir="$root/target/interop-node"
work="$(mktemp -d "${TMPDIR:-/tmp}/custos-interop.XXXXXX")"
server_pid=""
server_log=""
nonce_pid=""
nonce_log=""
pg_database=""
pg_admin_url=""

cleanup() {
  local rc=$?
  local pid
  for pid in "$server_pid" "$nonce_pid"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [ -n "$pg_database" ]; then
    psql "$pg_admin_url" -qAt -v ON_ERROR_STOP=1 \
      -c "DROP DATABASE IF EXISTS \"$pg_database\"" >/dev/null 2>&1 ||
      say "could not drop database $pg_database"
  fi
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
  local url="$2"
  for _ in $(seq 1 300); do
    if ! kill -0 "$1" 2>/dev/null; then
      return 1
    fi
    if "$venv/bin/python" - "$url" <<'EOF' 2>/dev/null; then
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/healthz", timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
EOF
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

# launch LOG DATABASE_URL ADMIN_TOKEN KEK [NAME=VALUE...]: starts custos in
# the background on a port the system chooses; the pid is in $!.
launch() {
  local log="$1" database_url="$2" admin_token="$3" kek="$4"
  shift 4
  env -u CUSTOS_CONFIG -u CUSTOS_ISSUER -u CUSTOS_TLS_CERT -u CUSTOS_TLS_KEY -u CUSTOS_LOG_FORMAT \
    -u CUSTOS_DPOP_NONCE \
    CUSTOS_LISTEN="127.0.0.1:0" \
    CUSTOS_DATABASE_URL="$database_url" \
    CUSTOS_ADMIN_TOKEN="$admin_token" \
    CUSTOS_KEY_ACTIVATION_DELAY=3 \
    CUSTOS_ALLOW_PRIVATE_URLS=true \
    ${kek:+CUSTOS_KEY_ENCRYPTION_KEY="$kek"} \
    CUSTOS_LOG="${CUSTOS_LOG:-info}" \
    "$@" \
    "$binary" serve >"$log" 2>&1 &
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
  local admin_token url nonce_url rc
  admin_token="interop-$("$venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(24))')"
  server_log="$work/custos-$name.log"
  say "[$name] starting custos on 127.0.0.1, port chosen by the system"
  launch "$server_log" "$database_url" "$admin_token" "$kek"
  server_pid=$!
  if ! url="$(bound_url "$server_pid" "$server_log")" || ! wait_healthy "$server_pid" "$url"; then
    say "[$name] custos did not start"
    show_log "$name" "$server_log"
    return 1
  fi
  say "[$name] custos listens on $url"
  # A replica on the same database that demands DPoP nonces (RFC 9449 §8),
  # started once the first has migrated the database.
  nonce_log="$work/custos-$name-nonce.log"
  launch "$nonce_log" "$database_url" "$admin_token" "$kek" CUSTOS_DPOP_NONCE=true
  nonce_pid=$!
  if ! nonce_url="$(bound_url "$nonce_pid" "$nonce_log")" || ! wait_healthy "$nonce_pid" "$nonce_url"; then
    say "[$name] custos with CUSTOS_DPOP_NONCE=true did not start"
    show_log "$name, nonces" "$nonce_log"
    return 1
  fi
  say "[$name] custos with DPoP nonces listens on $nonce_url"

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

  stop "$name, nonces" "$nonce_pid" || rc=1
  nonce_pid=""
  stop "$name" "$server_pid" || rc=1
  server_pid=""
  if [ "$rc" != 0 ]; then
    show_log "$name" "$server_log"
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
  command -v psql >/dev/null || { say "CUSTOS_TEST_POSTGRES_URL is set but psql is missing"; exit 1; }
  pg_admin_url="$CUSTOS_TEST_POSTGRES_URL"
  pg_database="custos_interop_$(date +%s)_$$"
  say "[postgres] CREATE DATABASE $pg_database"
  psql "$pg_admin_url" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$pg_database\"" >/dev/null
  # Same URL with the path replaced by the new database (query kept).
  pg_url="$("$venv/bin/python" - "$pg_admin_url" "$pg_database" <<'EOF'
import sys, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit(url._replace(path="/" + sys.argv[2])))
EOF
)"
  kek="$("$venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(32))')"
  run_backend postgres "$pg_url" "$kek" || failed=1
else
  say "CUSTOS_TEST_POSTGRES_URL is not set; skipping PostgreSQL"
fi

if [ "$failed" != 0 ]; then
  say "FAILED"
  exit 1
fi
say "all backends passed"
