# Shared by tests/{interop,browser,mcp}/run.sh (sourced, not run): starting
# custos on a port the system chooses, waiting for it, stopping it with
# SIGTERM and requiring a clean exit, and a fresh PostgreSQL database per
# run. Needs only bash and coreutils (and psql for PostgreSQL).
#
# The sourcing script defines `say MESSAGE` and sets `binary` (the custos
# executable) before calling these, and calls `servers_cleanup` from its
# EXIT trap.

# Processes started by `start_server`, stopped by `servers_cleanup` if the
# script ends before `stop_server` does.
running_servers=()
# The database `create_pg_database` made, dropped by `servers_cleanup`.
pg_database=""
pg_admin_url=""

# A random URL-safe secret of 32 bytes.
secret() {
  head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'
}

# bound_url PID LOG: the server binds port 0; its address is read back from
# its log line "custos listening on http://127.0.0.1:PORT" (no free-port
# probe to race).
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

# healthy URL: GET URL/healthz answers 200 (bash's /dev/tcp, 2 s at most).
healthy() {
  local hostport="${1#http://}"
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/${1%:*}/${1##*:}" || exit 1
    printf "GET /healthz HTTP/1.0\r\nHost: %s\r\n\r\n" "$1" >&3
    IFS=" " read -r _ status _ <&3
    [ "$status" = 200 ]
  ' _ "$hostport" 2>/dev/null
}

# wait_healthy PID URL
wait_healthy() {
  for _ in $(seq 1 300); do
    if ! kill -0 "$1" 2>/dev/null; then
      return 1
    fi
    if healthy "$2"; then
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

# start_server NAME LOG DATABASE_URL ADMIN_TOKEN KEK [NAME=VALUE...]: starts
# custos in the background on 127.0.0.1 with a port the system chooses,
# with none of the settings of the caller's environment that would change
# what the tests see, and the extra settings given; waits until /healthz
# answers. Sets `server_pid` and `server_url`; on failure shows the log
# and returns 1.
start_server() {
  local name="$1" log="$2" database_url="$3" admin_token="$4" kek="$5"
  shift 5
  say "[$name] starting custos on 127.0.0.1, port chosen by the system"
  env -u CUSTOS_CONFIG -u CUSTOS_ISSUER -u CUSTOS_TLS_CERT -u CUSTOS_TLS_KEY -u CUSTOS_LOG_FORMAT \
    -u CUSTOS_DPOP_NONCE -u CUSTOS_CIMD_ALLOWED_HOSTS -u CUSTOS_CIMD_DENIED_HOSTS \
    -u CUSTOS_CLIENT_ID_METADATA_DOCUMENTS -u CUSTOS_ALLOW_PRIVATE_URLS \
    -u CUSTOS_KEY_ACTIVATION_DELAY \
    CUSTOS_LISTEN="127.0.0.1:0" \
    CUSTOS_DATABASE_URL="$database_url" \
    CUSTOS_ADMIN_TOKEN="$admin_token" \
    ${kek:+CUSTOS_KEY_ENCRYPTION_KEY="$kek"} \
    CUSTOS_LOG="${CUSTOS_LOG:-info}" \
    "$@" \
    "$binary" serve >"$log" 2>&1 &
  server_pid=$!
  running_servers+=("$server_pid")
  if ! server_url="$(bound_url "$server_pid" "$log")" || ! wait_healthy "$server_pid" "$server_url"; then
    say "[$name] custos did not start"
    show_log "$name" "$log"
    return 1
  fi
  say "[$name] custos listens on $server_url"
}

# stop_server NAME PID: SIGTERM, then requires exit status 0 within 30 s.
stop_server() {
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
  local kept=() other
  for other in "${running_servers[@]}"; do
    [ "$other" = "$pid" ] || kept+=("$other")
  done
  running_servers=("${kept[@]}")
  if [ "$status" != 0 ]; then
    say "[$name] custos exited with status $status after SIGTERM (want 0)"
    return 1
  fi
}

# create_pg_database PREFIX: a new database in the cluster of
# CUSTOS_TEST_POSTGRES_URL (its role needs CREATEDB); sets `pg_url` to the
# same URL naming it (query kept). Dropped by `servers_cleanup`.
create_pg_database() {
  command -v psql >/dev/null || { say "CUSTOS_TEST_POSTGRES_URL is set but psql is missing"; return 1; }
  pg_admin_url="$CUSTOS_TEST_POSTGRES_URL"
  pg_database="${1}_$(date +%s)_$$"
  say "[postgres] CREATE DATABASE $pg_database"
  psql "$pg_admin_url" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$pg_database\"" >/dev/null
  local url="$pg_admin_url" query=""
  case "$url" in *\?*) query="?${url#*\?}"; url="${url%%\?*}" ;; esac
  local scheme="${url%%://*}" rest="${url#*://}"
  pg_url="$scheme://${rest%%/*}/$pg_database$query"
}

# For the EXIT trap: stops what is still running, drops the database.
servers_cleanup() {
  local pid
  for pid in "${running_servers[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
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
}
