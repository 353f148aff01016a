#!/usr/bin/env bash
# HTTP load benchmark of custos's token endpoint, optionally side by side
# with node-oidc-provider doing the same work on the same machine.
#
#   bash bench/run.sh [--scenario cc|refresh|dpop|exchange] [--duration N] [--warmup N]
#                     [--connections "16 64 256"] [--threads N] [--peer]
#                     [--policies N] [--cimd]
#
# Scenarios (--scenario, default cc):
#   cc       client_credentials, client_secret_basic, ES256 JWT access tokens
#            (bench/cc.lua).
#   refresh  the refresh token grant with rotation for a public client: each
#            answer's new refresh token goes back into the pool
#            (bench/refresh.lua); the tokens come from authorization code
#            flows with PKCE made before each run (bench/codeflow.py).
#            custos only: the peer is not set up for it.
#   dpop     cc with a fresh DPoP proof (RFC 9449) on every request for a
#            DPoP-bound client (bench/dpop.lua); the proofs are made right
#            before each run by crates/custos/examples/dpop_proofs.rs.
#   exchange token exchange (RFC 8693) making a two-hop delegation chain:
#            client A's client credentials token, exchanged once by agent B
#            before the run, is exchanged by agent C on every request, so
#            each answer carries act {C, act {B}} (bench/cc.lua with a fixed
#            BODY). custos only.
#
# --cimd (with --scenario refresh): the public client is a Client ID
# Metadata Document client (its document served on loopback by python3's
# http.server, custos with CUSTOS_ALLOW_PRIVATE_URLS=true) instead of a
# registered one — what a cached document client costs at the token
# endpoint.
#
# --policies N loads N generated Cedar policies (CUSTOS_POLICIES) besides
# the default set, none of which denies the benchmark's client: forbids on
# tags, scopes, owners and delegation depth, permits naming other clients —
# what request-time policy costs every issuance.
#
# Installs what it needs (Debian's wrk and curl; with --peer, the npm
# packages of bench/peer), builds custos in release mode, starts it on SQLite
# in a fresh temporary directory on a free loopback port, registers a client
# through discovery -> registration_endpoint, and drives POST token with wrk
# (the scenario's script): for each connection count a warm-up, then the
# measured run. Servers run one after the other, never together. Every
# figure is also appended to bench/results/<timestamp>.txt with the raw wrk
# output.
#
# A run with any non-2xx response (or, for dpop, a token that is not
# DPoP-bound; for refresh, an answer without a new refresh token) is flagged
# INVALID (an error answer is cheaper than a token) and the script then
# exits 3.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"

DURATION=20
WARMUP=5
CONNECTIONS="16 64 256"
THREADS=2
PEER=0
SCENARIO=cc
POLICIES=0
CIMD=0

usage() {
  sed -n '2,34p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=${2:?--duration needs a value}; shift 2 ;;
    --warmup) WARMUP=${2:?--warmup needs a value}; shift 2 ;;
    --connections) CONNECTIONS=${2:?--connections needs a value}; shift 2 ;;
    --threads) THREADS=${2:?--threads needs a value}; shift 2 ;;
    --peer) PEER=1; shift ;;
    --scenario) SCENARIO=${2:?--scenario needs a value}; shift 2 ;;
    --policies) POLICIES=${2:?--policies needs a value}; shift 2 ;;
    --cimd) CIMD=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

is_count() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -gt 0 ]; }
is_count "$DURATION" || { echo "run.sh: --duration must be a positive integer" >&2; exit 2; }
[[ "$WARMUP" =~ ^[0-9]+$ ]] || { echo "run.sh: --warmup must be an integer" >&2; exit 2; }
is_count "$THREADS" || { echo "run.sh: --threads must be a positive integer" >&2; exit 2; }
for c in $CONNECTIONS; do
  is_count "$c" || { echo "run.sh: --connections takes positive integers" >&2; exit 2; }
  [ "$c" -ge "$THREADS" ] || { echo "run.sh: $c connections < $THREADS threads" >&2; exit 2; }
done
[ -n "${CONNECTIONS// /}" ] || { echo "run.sh: --connections is empty" >&2; exit 2; }
[[ "$POLICIES" =~ ^[0-9]+$ ]] || { echo "run.sh: --policies must be an integer" >&2; exit 2; }
case "$SCENARIO" in
  cc | refresh | dpop | exchange) ;;
  *) echo "run.sh: --scenario is cc, refresh, dpop or exchange" >&2; exit 2 ;;
esac
if [ "$CIMD" = 1 ] && [ "$SCENARIO" != refresh ]; then
  echo "run.sh: --cimd goes with --scenario refresh" >&2
  exit 2
fi
if [ "$SCENARIO" = dpop ] && { [ "$DURATION" -gt 40 ] || [ "$WARMUP" -gt 40 ]; }; then
  # Proofs are made before each run and custos accepts one for 60 s after its iat.
  echo "run.sh: --scenario dpop needs --duration and --warmup of at most 40 s" >&2
  exit 2
fi
# The Lua scripts split their proofs or tokens by wrk thread.
export THREADS
# Each connection count once, in the order given.
CONNECTIONS=$(awk '{ for (i = 1; i <= NF; i++) if (!seen[$i]++) printf "%s%s", (n++ ? " " : ""), $i }' <<<"$CONNECTIONS")

# ---------------------------------------------------------------- helpers

mkdir -p "$BENCH/results"
RESULTS="$BENCH/results/$(date -u +%Y%m%dT%H%M%SZ).txt"
: >"$RESULTS"

say() { printf '%s\n' "$*" | tee -a "$RESULTS"; }
note() { printf '%s\n' "$@" >>"$RESULTS"; }
die() { say "run.sh: $*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

need() { # need COMMAND DEBIAN-PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "installing $2 (for $1)..." >&2
  apt_install "$2"
  command -v "$1" >/dev/null 2>&1 || die "$1 is still missing after installing $2"
}

# The value of a string member of a one-line JSON object on stdin.
json_str() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" | head -n1; }

# The decoded JOSE header of a JWT.
jwt_header() { jwt_part "$1" 1; }
# The decoded part N (1 header, 2 claims) of a JWT.
jwt_part() {
  local h
  h=$(printf '%s' "$1" | cut -d. -f"$2" | tr '_-' '/+')
  while [ $((${#h} % 4)) -ne 0 ]; do h="$h="; done
  printf '%s' "$h" | base64 -d 2>/dev/null || echo '(undecodable)'
}

free_port() {
  local p _
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  die "no free port found"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/custos-bench.XXXXXX")
PIDS=()

stop_pid() {
  local pid=$1 _
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  if [ "${KEEP_WORK:-0}" = 1 ]; then
    echo "kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_http() { # wait_http URL PID LOG
  local _
  for _ in $(seq 1 300); do
    if ! kill -0 "$2" 2>/dev/null; then
      tail -n 30 "$3" >&2 || true
      die "the server exited before $1 answered"
    fi
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  tail -n 30 "$3" >&2 || true
  die "$1 did not answer within 30 s"
}

CLK_TCK=$(getconf CLK_TCK)
# Busy and steal ticks of the whole machine (all cores), from /proc/stat.
machine_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8, $9}' /proc/stat; }
# utime + stime of a process (all its threads), in clock ticks.
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# A /proc/PID/status field (VmHWM, VmRSS) in MiB.
mem_mib() { awk -v f="$2:" '$1 == f {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

# ---------------------------------------------------------------- set-up

need curl curl
need wrk wrk
if [ "$SCENARIO" = refresh ]; then need python3 python3; fi
command -v cargo >/dev/null 2>&1 || die "cargo is needed to build custos (install Rust, e.g. with rustup)"
ulimit -n 65536 2>/dev/null || ulimit -n 4096 2>/dev/null || true

case "$SCENARIO" in
  cc)
    SCRIPT="$BENCH/cc.lua"
    UNIT='req/s'
    WORKLOAD="POST token, grant_type=client_credentials&scope=read, client_secret_basic, ES256 JWT access token"
    ;;
  refresh)
    SCRIPT="$BENCH/refresh.lua"
    UNIT='rot/s'
    WORKLOAD="POST token, grant_type=refresh_token&refresh_token=...&client_id=... (public client, rotation: each answer's new refresh token is presented next), ES256 JWT access token"
    ;;
  exchange)
    SCRIPT="$BENCH/cc.lua"
    UNIT='req/s'
    WORKLOAD="POST token, grant_type=urn:ietf:params:oauth:grant-type:token-exchange, subject_token = a token already delegated once (act {B}), client_secret_basic agent C: a two-hop chain, ES256 in and out"
    ;;
  dpop)
    SCRIPT="$BENCH/dpop.lua"
    UNIT='req/s'
    WORKLOAD="POST token, grant_type=client_credentials&scope=read, client_secret_basic, DPoP-bound client, a fresh ES256 DPoP proof per request, ES256 JWT access token with cnf.jkt"
    ;;
esac

say "# custos HTTP benchmark  $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(uname -sr)"
say "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
say "load: $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2), -t$THREADS, ${WARMUP}s warm-up + ${DURATION}s per connection count, connections: $CONNECTIONS"
[ "$SCENARIO" = cc ] || say "scenario: $SCENARIO"
say "workload: $WORKLOAD"
if [ "$SCENARIO" = exchange ] && [ "$PEER" -eq 1 ]; then
  say "peer: skipped: the peer set-up has no token exchange"
  PEER=0
fi
if [ "$SCENARIO" = refresh ] && [ "$PEER" -eq 1 ]; then
  say "peer: skipped: the refresh scenario needs a person's login and consent, which the peer set-up (no interactions) does not have"
  PEER=0
fi

echo "building custos (cargo build --release --locked -p custos)..." >&2
(cd "$ROOT" && cargo build --release --locked -p custos) >"$WORK/build.log" 2>&1 ||
  { tail -n 40 "$WORK/build.log" >&2; die "cargo build failed"; }
CUSTOS_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/custos"
[ -x "$CUSTOS_BIN" ] || die "no binary at $CUSTOS_BIN"

if [ "$SCENARIO" = dpop ]; then
  echo "building the proof generator (cargo build --release --locked -p custos --example dpop_proofs)..." >&2
  (cd "$ROOT" && cargo build --release --locked -p custos --example dpop_proofs) >>"$WORK/build.log" 2>&1 ||
    { tail -n 40 "$WORK/build.log" >&2; die "cargo build of the proof generator failed"; }
  PROOF_GEN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/dpop_proofs"
  [ -x "$PROOF_GEN" ] || die "no binary at $PROOF_GEN"
fi

if [ "$PEER" -eq 1 ]; then
  need node nodejs
  need npm npm
  echo "installing the peer (npm install in bench/peer)..." >&2
  (cd "$BENCH/peer" && npm install --no-audit --no-fund --loglevel=error) >"$WORK/npm.log" 2>&1 ||
    { tail -n 40 "$WORK/npm.log" >&2; die "npm install failed in bench/peer"; }
  PEER_VERSION=$(cd "$BENCH/peer" && node -p "require('oidc-provider/package.json').version" 2>/dev/null || echo '?')
  say "peer: node-oidc-provider $PEER_VERSION on node $(node --version), one process, in-memory adapter"
fi

# ---------------------------------------------------------------- per-run input

# What the refresh and dpop scripts read, made again before every wrk run.
export TOKENS="$WORK/tokens.txt" PROOFS="$WORK/proofs"
declare -A RATE_EST
SETUP_REQUESTS=0

# refresh: one refresh token per connection (of a new authorization each),
# plus two per thread (wrk calls request() once to check the script).
# Tokens in flight when a run stops are lost, so every run gets new ones.
make_tokens() { # make_tokens CONNECTIONS
  local n=$(($1 + 2 * THREADS))
  python3 "$BENCH/codeflow.py" --authorize "$AUTHZ_URL" --token "$TOKEN_URL" \
    --client-id "$PUBLIC_ID" --redirect-uri "$REDIRECT_URI" --username bench \
    --password "$USER_PASSWORD" --cookies "$WORK/cookies.txt" --count "$n" \
    >"$TOKENS" 2>>"$WORK/codeflow.log" ||
    { tail -n 5 "$WORK/codeflow.log" >&2; tail -n 5 "$WORK/custos.log" >&2; die "the authorization code flows failed"; }
  [ "$(wc -l <"$TOKENS")" -eq "$n" ] || die "codeflow.py made $(wc -l <"$TOKENS") tokens, not $n"
  SETUP_REQUESTS=$((SETUP_REQUESTS + 2 * n))
}

# dpop: one proof per request the run may send: 1.5 times the fastest
# rate seen on this server so far (30k/s before the first run), plus 2,000.
# custos accepts a proof for 60 s after its iat, so they are made right
# before the run; making them is not measured.
make_proofs() { # make_proofs NAME SECONDS HTU
  local n t0 t1
  n=$(awk -v r="${RATE_EST[$1]:-30000}" -v d="$2" 'BEGIN { printf "%d", r * d * 1.5 + 2000 }')
  rm -f "$PROOFS".*
  t0=$(date +%s.%N)
  "$PROOF_GEN" --htu "$3" --count "$n" --files "$THREADS" --key "$WORK/dpop-$1.pk8" \
    --out "$PROOFS" >/dev/null 2>>"$WORK/proofs.log" ||
    { tail -n 5 "$WORK/proofs.log" >&2; die "the proof generator failed"; }
  t1=$(date +%s.%N)
  note "proofs: $n for ${2}s in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
}

prepare() { # prepare NAME CONNECTIONS SECONDS URL
  case "$SCENARIO" in
    refresh) make_tokens "$2" ;;
    dpop) make_proofs "$1" "$3" "$4" ;;
  esac
}

seen_rate() { # seen_rate NAME RPS
  RATE_EST[$1]=$(awk -v a="${RATE_EST[$1]:-0}" -v b="${2:-0}" 'BEGIN { printf "%d", (b > a ? b : a) }')
}

# ---------------------------------------------------------------- measuring

declare -A RPS P50 P99 NON2XX ERRS HWM RSS CPU WRKC OTHER STEAL VALID
ANY_INVALID=0
NOISY=0
TIMEFORMAT='%3U %3S'
row() { printf '%-6s %9s %8s %8s %7s %7s %8s %8s %10s %9s %6s  %s' "$@"; }
# Columns: HWM/RSS = the server's VmHWM/VmRSS after the run; srv us/req =
# server CPU time per completed request; wrk cores = CPU used by wrk;
# other = cores used by neither (other processes): a busy machine skews
# figures, so runs where other + steal >= 0.1 core are marked noisy.
TOTAL_REQUESTS=0

# measure NAME PID TOKEN_URL BASIC
measure() {
  local name=$1 pid=$2 url=$3 basic=$4 c out line t0 t1 requests flag fail extra f v
  say ""
  say "## $name  (pid $pid, $url)"
  say "$(row conns "$UNIT" 'p50 ms' 'p99 ms' non2xx sockerr 'HWM MiB' 'RSS MiB' \
    'srv us/req' 'wrk cores' 'other' '')"
  for c in $CONNECTIONS; do
    if [ "$WARMUP" -gt 0 ]; then
      prepare "$name" "$c" "$WARMUP" "$url"
      out=$(BASIC="$basic" wrk -t"$THREADS" -c"$c" -d"${WARMUP}s" -s "$SCRIPT" "$url" 2>&1) ||
        die "wrk failed (warm-up): $out"
      note "### $name warm-up, $c connections" "$out"
      requests=$(sed -n 's/^RESULT requests=\([0-9]*\).*/\1/p' <<<"$out")
      TOTAL_REQUESTS=$((TOTAL_REQUESTS + ${requests:-0}))
      seen_rate "$name" "$(sed -n 's/^RESULT .* rps=\([0-9]*\).*/\1/p' <<<"$out")"
    fi
    prepare "$name" "$c" "$DURATION" "$url"
    t0=$(cpu_ticks "$pid")
    read -r m0 s0 < <(machine_ticks)
    # bash's `time` gives wrk's own CPU time (user and system seconds).
    if ! { time BASIC="$basic" wrk -t"$THREADS" -c"$c" -d"${DURATION}s" --latency \
      -s "$SCRIPT" "$url" >"$WORK/wrk.out" 2>&1; } 2>"$WORK/wrk.time"; then
      die "wrk failed: $(cat "$WORK/wrk.out")"
    fi
    read -r m1 s1 < <(machine_ticks)
    t1=$(cpu_ticks "$pid")
    out=$(cat "$WORK/wrk.out")
    note "### $name, $c connections" "$out"
    line=$(grep '^RESULT ' <<<"$out" | tail -n1)
    [ -n "$line" ] || die "wrk printed no RESULT line: $out"
    field() { sed -n "s/.* $1=\\([^ ]*\\).*/\\1/p" <<<"$line"; }
    requests=$(field requests)
    TOTAL_REQUESTS=$((TOTAL_REQUESTS + requests))
    RPS[$name:$c]=$(field rps)
    seen_rate "$name" "${RPS[$name:$c]}"
    P50[$name:$c]=$(field p50_ms)
    P99[$name:$c]=$(field p99_ms)
    NON2XX[$name:$c]=$(field non2xx)
    ERRS[$name:$c]=$(field errors)
    HWM[$name:$c]=$(mem_mib "$pid" VmHWM)
    RSS[$name:$c]=$(mem_mib "$pid" VmRSS)
    CPU[$name:$c]=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$requests" \
      'BEGIN { if (n > 0) printf "%.0f", t / hz * 1e6 / n; else print "-" }')
    # Cores used, on average over the run, by wrk and by everything that is
    # neither wrk nor the server (other processes, kernel threads).
    WRKC[$name:$c]=$(awk -v d="$DURATION" '{ printf "%.2f", ($1 + $2) / d }' "$WORK/wrk.time")
    OTHER[$name:$c]=$(awk -v busy=$((m1 - m0)) -v srv=$((t1 - t0)) -v hz="$CLK_TCK" \
      -v w="${WRKC[$name:$c]}" -v d="$DURATION" \
      'BEGIN { o = (busy - srv) / hz / d - w; if (o < 0) o = 0; printf "%.2f", o }')
    STEAL[$name:$c]=$(awk -v t=$((s1 - s0)) -v hz="$CLK_TCK" -v d="$DURATION" \
      'BEGIN { printf "%.2f", t / hz / d }')
    # The refresh and dpop scripts also count answers that are 2xx but not
    # what was asked for (fail: no new refresh token, or a token that is
    # not DPoP-bound) and requests sent without a usable token or proof.
    fail=$(field fail)
    extra=""
    [ "${fail:-0}" = 0 ] || extra="$extra, $fail failed"
    for f in unbound lost starved exhausted; do
      v=$(field "$f")
      [ "${v:-0}" = 0 ] || extra="$extra, $v $f"
    done
    flag=""
    VALID[$name:$c]=1
    if [ "${NON2XX[$name:$c]}" != 0 ] || [ -n "$extra" ] || [ "$requests" -eq 0 ]; then
      flag="INVALID: ${NON2XX[$name:$c]} non-2xx$extra"
      VALID[$name:$c]=0
      ANY_INVALID=1
      grep '^FIRST_NON2XX' <<<"$out" | sed 's/^/    /' | tee -a "$RESULTS" || true
    elif [ "${ERRS[$name:$c]}" != 0 ]; then
      flag="(socket errors)"
    fi
    if awk -v o="${OTHER[$name:$c]}" -v st="${STEAL[$name:$c]}" 'BEGIN { exit !(o + st >= 0.10) }'; then
      flag="$flag (noisy: other load ${OTHER[$name:$c]} + steal ${STEAL[$name:$c]} cores)"
      NOISY=1
    fi
    say "$(row "$c" "${RPS[$name:$c]}" \
      "${P50[$name:$c]}" "${P99[$name:$c]}" "${NON2XX[$name:$c]}" "${ERRS[$name:$c]}" \
      "${HWM[$name:$c]}" "${RSS[$name:$c]}" "${CPU[$name:$c]}" "${WRKC[$name:$c]}" \
      "${OTHER[$name:$c]}" "$flag")"
  done
}

# One token request with curl: checks it is a 200 with an ES256 JWT.
check_token() { # check_token NAME URL BASIC
  local body code
  body=$(curl -sS -w '\n%{http_code}' -X POST "$2" -H "Authorization: Basic $3" \
    -H 'Content-Type: application/x-www-form-urlencoded' \
    --data 'grant_type=client_credentials&scope=read')
  code=$(tail -n1 <<<"$body")
  body=$(sed '$d' <<<"$body")
  [ "$code" = 200 ] || die "$1: a token request answered $code: $body"
  local token
  token=$(json_str access_token <<<"$body")
  [ -n "$token" ] || die "$1: no access_token in $body"
  say "$1 access token header: $(jwt_header "$token"), ${#token} characters"
}

# For a DPoP-bound client: a token request without a proof is refused, one
# with a proof gets token_type DPoP and an access token whose cnf.jkt is
# the proof key's thumbprint.
check_dpop() { # check_dpop NAME URL BASIC
  local body code token jkt claims bare
  bare=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$2" -H "Authorization: Basic $3" \
    -H 'Content-Type: application/x-www-form-urlencoded' \
    --data 'grant_type=client_credentials&scope=read')
  case "$bare" in 4??) ;; *) die "$1: the DPoP-bound client got $bare without a proof" ;; esac
  jkt=$("$PROOF_GEN" --htu "$2" --count 1 --files 1 --key "$WORK/dpop-$1.pk8" \
    --out "$WORK/check-proof" 2>/dev/null) || die "the proof generator failed"
  body=$(curl -sS -w '\n%{http_code}' -X POST "$2" -H "Authorization: Basic $3" \
    -H "DPoP: $(cat "$WORK/check-proof.0")" \
    -H 'Content-Type: application/x-www-form-urlencoded' \
    --data 'grant_type=client_credentials&scope=read')
  code=$(tail -n1 <<<"$body")
  body=$(sed '$d' <<<"$body")
  [ "$code" = 200 ] || die "$1: a token request with a DPoP proof answered $code: $body"
  [ "$(json_str token_type <<<"$body")" = DPoP ] || die "$1: token_type is not DPoP: $body"
  token=$(json_str access_token <<<"$body")
  [ -n "$token" ] || die "$1: no access_token in $body"
  claims=$(jwt_part "$token" 2)
  [ "$(json_str jkt <<<"$claims")" = "$jkt" ] ||
    die "$1: the access token's cnf.jkt is not the proof key's thumbprint $jkt: $claims"
  say "$1 access token header: $(jwt_header "$token"), ${#token} characters"
  say "$1 DPoP binding: without a proof $bare; with one token_type DPoP and cnf.jkt = the proof key's thumbprint ($jkt)"
  say "$1 access token claims (sample): $claims"
}

# For the refresh scenario: a refresh answers a new refresh token, and the
# rotated-out one is refused when presented again.
check_refresh() { # check_refresh NAME URL
  local old body code new again
  make_tokens 1
  old=$(head -n1 "$TOKENS")
  body=$(curl -sS -w '\n%{http_code}' -X POST "$2" \
    -H 'Content-Type: application/x-www-form-urlencoded' \
    --data "grant_type=refresh_token&refresh_token=$old&client_id=$PUBLIC_ID")
  code=$(tail -n1 <<<"$body")
  body=$(sed '$d' <<<"$body")
  [ "$code" = 200 ] || die "$1: a refresh answered $code: $body"
  new=$(json_str refresh_token <<<"$body")
  [ -n "$new" ] && [ "$new" != "$old" ] || die "$1: a refresh did not rotate: $body"
  again=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$2" \
    -H 'Content-Type: application/x-www-form-urlencoded' \
    --data "grant_type=refresh_token&refresh_token=$old&client_id=$PUBLIC_ID")
  [ "$again" = 400 ] || die "$1: the rotated-out refresh token answered $again"
  say "$1 access token header: $(jwt_header "$(json_str access_token <<<"$body")")"
  say "$1 refresh: a refresh answers a new refresh token; the rotated-out one presented again: $again"
  SETUP_REQUESTS=$((SETUP_REQUESTS + 2))
}

# ---------------------------------------------------------------- custos

PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
ADMIN_TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
mkdir -p "$WORK/custos"
POLICY_ENV=()
if [ "$POLICIES" -gt 0 ]; then
  mkdir -p "$WORK/policies"
  for i in $(seq 1 "$POLICIES"); do
    case $((i % 5)) in
      0) cedar="forbid(principal, action, resource) when { resource.tags.contains(\"restricted-$i\") };" ;;
      1) cedar="permit(principal == Custos::Client::\"partner-$i\", action == Custos::Action::\"client_credentials\", resource) when { context.scopes.contains(\"partner:$i\") };" ;;
      2) cedar="forbid(principal, action, resource) when { principal.tags.contains(\"quarantined-$i\") };" ;;
      3) cedar="forbid(principal, action == Custos::Action::\"token_exchange\", resource) when { context.delegation_depth > $((i % 7 + 2)) && context.actors.contains(\"agent-$i\") };" ;;
      4) cedar="forbid(principal, action, resource) when { principal.owner == \"former-team-$i\" && !context.sender_constrained };" ;;
    esac
    printf '%s\n' "$cedar" >"$WORK/policies/bench-$i.cedar"
  done
  POLICY_ENV=(CUSTOS_POLICIES="$WORK/policies")
  say "policies: the default set + $POLICIES generated (CUSTOS_POLICIES)"
fi
CIMD_ENV=()
[ "$CIMD" = 1 ] && CIMD_ENV=(CUSTOS_ALLOW_PRIVATE_URLS=true)
env "${POLICY_ENV[@]}" "${CIMD_ENV[@]}" CUSTOS_LISTEN="127.0.0.1:$PORT" \
  CUSTOS_DATABASE_URL="sqlite://$WORK/custos/custos.db" \
  CUSTOS_ADMIN_TOKEN="$ADMIN_TOKEN" \
  CUSTOS_LOG=warn \
  "$CUSTOS_BIN" serve >"$WORK/custos.log" 2>&1 &
CUSTOS_PID=$!
PIDS+=("$CUSTOS_PID")
wait_http "$BASE/healthz" "$CUSTOS_PID" "$WORK/custos.log"

DISCOVERY=$(curl -fsS "$BASE/.well-known/oauth-authorization-server")
TOKEN_URL=$(json_str token_endpoint <<<"$DISCOVERY")
REGISTER_URL=$(json_str registration_endpoint <<<"$DISCOVERY")
if [ -z "$TOKEN_URL" ] || [ -z "$REGISTER_URL" ]; then
  die "discovery lacks token/registration endpoints: $DISCOVERY"
fi

CUSTOS_BASIC=""
case "$SCENARIO" in
  cc | dpop)
    if [ "$SCENARIO" = dpop ]; then
      METADATA='{"grant_types":["client_credentials"],"scope":"read write","token_endpoint_auth_method":"client_secret_basic","dpop_bound_access_tokens":true}'
    else
      METADATA='{"grant_types":["client_credentials"],"scope":"read write","token_endpoint_auth_method":"client_secret_basic"}'
    fi
    CLIENT=$(curl -fsS -X POST "$REGISTER_URL" \
      -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
      --data "$METADATA") ||
      die "client registration failed"
    CLIENT_ID=$(json_str client_id <<<"$CLIENT")
    CLIENT_SECRET=$(json_str client_secret <<<"$CLIENT")
    if [ -z "$CLIENT_ID" ] || [ -z "$CLIENT_SECRET" ]; then
      die "registration answered without credentials: $CLIENT"
    fi
    # client_secret_basic form-urlencodes both parts; custos's values are base64url.
    CUSTOS_BASIC=$(printf '%s:%s' "$CLIENT_ID" "$CLIENT_SECRET" | base64 -w0)
    if [ "$SCENARIO" = dpop ]; then
      check_dpop custos "$TOKEN_URL" "$CUSTOS_BASIC"
    else
      check_token custos "$TOKEN_URL" "$CUSTOS_BASIC"
    fi
    TOTAL_REQUESTS=1
    ;;
  exchange)
    register() { # register GRANT -> "id secret"
      local c
      c=$(curl -fsS -X POST "$REGISTER_URL" \
        -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
        --data "{\"grant_types\":[\"$1\"],\"scope\":\"read write\",\"token_endpoint_auth_method\":\"client_secret_basic\"}") ||
        die "client registration failed"
      printf '%s %s' "$(json_str client_id <<<"$c")" "$(json_str client_secret <<<"$c")"
    }
    exchange_form() { # exchange_form SUBJECT_TOKEN
      printf 'grant_type=%s&subject_token=%s&subject_token_type=%s&scope=read' \
        'urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange' "$1" \
        'urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token'
    }
    read -r A_ID A_SECRET <<<"$(register client_credentials)"
    read -r B_ID B_SECRET <<<"$(register urn:ietf:params:oauth:grant-type:token-exchange)"
    read -r C_ID C_SECRET <<<"$(register urn:ietf:params:oauth:grant-type:token-exchange)"
    T0=$(curl -fsS -X POST "$TOKEN_URL" -u "$A_ID:$A_SECRET" \
      --data 'grant_type=client_credentials&scope=read%20write' | json_str access_token)
    [ -n "$T0" ] || die "client A got no token"
    T1=$(curl -fsS -X POST "$TOKEN_URL" -u "$B_ID:$B_SECRET" --data "$(exchange_form "$T0")" |
      json_str access_token)
    [ -n "$T1" ] || die "agent B's exchange failed"
    export BODY
    BODY=$(exchange_form "$T1")
    CUSTOS_BASIC=$(printf '%s:%s' "$C_ID" "$C_SECRET" | base64 -w0)
    ANSWER=$(curl -fsS -X POST "$TOKEN_URL" -H "Authorization: Basic $CUSTOS_BASIC" --data "$BODY") ||
      die "agent C's exchange failed"
    CLAIMS=$(jwt_part "$(json_str access_token <<<"$ANSWER")" 2)
    [ "$(grep -o '"act":' <<<"$CLAIMS" | wc -l)" -ge 2 ] && grep -q "$C_ID" <<<"$CLAIMS" &&
      grep -q "$B_ID" <<<"$CLAIMS" ||
      die "the exchanged token does not carry act {C, act {B}}: $CLAIMS"
    say "custos exchanged token: a two-hop act chain ($C_ID <- $B_ID), ${#BODY}-byte request"
    TOTAL_REQUESTS=3
    ;;
  refresh)
    AUTHZ_URL=$(json_str authorization_endpoint <<<"$DISCOVERY")
    [ -n "$AUTHZ_URL" ] || die "discovery lacks authorization_endpoint: $DISCOVERY"
    USER_PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
    curl -fsS -o /dev/null -X POST "$BASE/admin/users" \
      -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
      --data "{\"username\":\"bench\",\"password\":\"$USER_PASSWORD\"}" ||
      die "creating the person (POST /admin/users) failed"
    REDIRECT_URI="https://app.bench.test/cb"
    CLIENT=$(curl -fsS -X POST "$REGISTER_URL" \
      -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
      --data "{\"token_endpoint_auth_method\":\"none\",\"grant_types\":[\"authorization_code\",\"refresh_token\"],\"redirect_uris\":[\"$REDIRECT_URI\"],\"scope\":\"read write\",\"client_name\":\"bench\"}") ||
      die "client registration failed"
    PUBLIC_ID=$(json_str client_id <<<"$CLIENT")
    [ -n "$PUBLIC_ID" ] || die "registration answered without a client_id: $CLIENT"
    if [ "$CIMD" = 1 ]; then
      DOC_PORT=$(free_port)
      PUBLIC_ID="http://127.0.0.1:$DOC_PORT/client.json"
      mkdir -p "$WORK/documents"
      printf '{"client_id":"%s","token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"redirect_uris":["%s"],"scope":"read write","client_name":"bench"}\n' \
        "$PUBLIC_ID" "$REDIRECT_URI" >"$WORK/documents/client.json"
      python3 -m http.server "$DOC_PORT" --bind 127.0.0.1 --directory "$WORK/documents" \
        >"$WORK/documents.log" 2>&1 &
      PIDS+=($!)
      wait_http "$PUBLIC_ID" "$!" "$WORK/documents.log"
      say "client: a Client ID Metadata Document client ($PUBLIC_ID)"
    fi
    export CLIENT_ID="$PUBLIC_ID"
    check_refresh custos "$TOKEN_URL"
    ;;
esac

measure custos "$CUSTOS_PID" "$TOKEN_URL" "$CUSTOS_BASIC"

# Every token request is audited by a batched writer: check it kept up.
sleep 1
LAST_EVENT=$(curl -fsS "$BASE/admin/events?limit=1" -H "Authorization: Bearer $ADMIN_TOKEN" |
  sed -n 's/.*"id":\([0-9]*\).*/\1/p' | head -n1)
if [ "$SCENARIO" = cc ]; then
  say "custos audit trail: last event id ${LAST_EVENT:-?} after $TOTAL_REQUESTS completed token requests (+ 1 registration)"
else
  say "custos audit trail: last event id ${LAST_EVENT:-?} after $TOTAL_REQUESTS completed token requests under load (+ set-up: registration, $SETUP_REQUESTS requests of authorization code flows and checks)"
fi
if [ -s "$WORK/codeflow.log" ]; then
  say "codeflow.py reported (set-up between runs, not measured):"
  sed 's/^/    /' "$WORK/codeflow.log" | tee -a "$RESULTS"
fi
WARNINGS=$(grep -c -E 'WARN|ERROR' "$WORK/custos.log" || true)
[ "$WARNINGS" = 0 ] || { say "custos logged $WARNINGS warnings/errors:"; tail -n 5 "$WORK/custos.log" | tee -a "$RESULTS"; }
stop_pid "$CUSTOS_PID"

# ---------------------------------------------------------------- peer

if [ "$PEER" -eq 1 ]; then
  PEER_PORT=$(free_port)
  PEER_BASE="http://127.0.0.1:$PEER_PORT"
  PEER_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '/+=')
  (cd "$BENCH/peer" && NODE_ENV=production PORT="$PEER_PORT" PEER_CLIENT_ID=bench \
    PEER_CLIENT_SECRET="$PEER_SECRET" exec node server.mjs) >"$WORK/peer.log" 2>&1 &
  PEER_PID=$!
  PIDS+=("$PEER_PID")
  wait_http "$PEER_BASE/.well-known/openid-configuration" "$PEER_PID" "$WORK/peer.log"
  PEER_TOKEN_URL=$(curl -fsS "$PEER_BASE/.well-known/openid-configuration" | json_str token_endpoint)
  [ -n "$PEER_TOKEN_URL" ] || die "the peer's discovery has no token_endpoint"
  if [ "$SCENARIO" = dpop ]; then
    # The peer's DPoP-bound client (bench/peer/server.mjs).
    PEER_BASIC=$(printf '%s:%s' bench-dpop "$PEER_SECRET" | base64 -w0)
    check_dpop peer "$PEER_TOKEN_URL" "$PEER_BASIC"
  else
    PEER_BASIC=$(printf '%s:%s' bench "$PEER_SECRET" | base64 -w0)
    check_token peer "$PEER_TOKEN_URL" "$PEER_BASIC"
  fi
  measure peer "$PEER_PID" "$PEER_TOKEN_URL" "$PEER_BASIC"
  stop_pid "$PEER_PID"
fi

# ---------------------------------------------------------------- summary

say ""
say "## summary ($UNIT, latency in ms, server RSS high-water mark in MiB)"
if [ "$PEER" -eq 1 ]; then
  say "$(printf '%-6s | %9s %7s %7s %7s | %9s %7s %7s %7s | %s' conns \
    'custos' p50 p99 HWM 'peer' p50 p99 HWM 'custos/peer')"
  for c in $CONNECTIONS; do
    ratio=$(awk -v a="${RPS[custos:$c]}" -v b="${RPS[peer:$c]}" \
      'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }')
    if [ "${VALID[custos:$c]}" != 1 ] || [ "${VALID[peer:$c]}" != 1 ]; then ratio="$ratio INVALID"; fi
    say "$(printf '%-6s | %9s %7s %7s %7s | %9s %7s %7s %7s | %s' "$c" \
      "${RPS[custos:$c]}" "${P50[custos:$c]}" "${P99[custos:$c]}" "${HWM[custos:$c]}" \
      "${RPS[peer:$c]}" "${P50[peer:$c]}" "${P99[peer:$c]}" "${HWM[peer:$c]}" "$ratio")"
  done
else
  say "$(printf '%-6s | %9s %7s %7s %7s' conns custos p50 p99 HWM)"
  for c in $CONNECTIONS; do
    flag=""
    [ "${VALID[custos:$c]}" = 1 ] || flag=INVALID
    say "$(printf '%-6s | %9s %7s %7s %7s %s' "$c" "${RPS[custos:$c]}" \
      "${P50[custos:$c]}" "${P99[custos:$c]}" "${HWM[custos:$c]}" "$flag")"
  done
fi
if [ "$NOISY" -ne 0 ]; then
  say "note: some runs shared the machine with other work (marked noisy): repeat them on a quiet machine"
fi
say "results: ${RESULTS#"$ROOT"/}"

if [ "$ANY_INVALID" -ne 0 ]; then
  say "at least one run had non-2xx answers: its figures are INVALID"
  exit 3
fi
