#!/usr/bin/env bash
# End-to-end test of the authorization code flow in a real headless Chromium
# (issue 6): login and consent driven from the keyboard, the redirect landing
# on a local HTTP server, the code redeemed with the PKCE verifier, and a
# screenshot of each page kept in target/browser-artifacts/.
#
#   bash tests/browser/run.sh                 # SQLite
#   CUSTOS_TEST_POSTGRES_URL=postgres://custos:custos@127.0.0.1:55432/custos \
#     bash tests/browser/run.sh               # SQLite, then PostgreSQL
#
# Installs what it needs when missing: Debian's chromium, chromium-driver and
# fonts-dejavu-core (apt-get; sudo only when not root), and a Python venv in
# target/browser-venv with the packages pinned in requirements.txt. Selenium
# is given /usr/bin/chromium and /usr/bin/chromedriver and never downloads a
# browser or a driver of its own.
#
# For each backend: builds custos, starts it on 127.0.0.1 port 0 with a fresh
# database (the address read back from its log), runs pytest, stops the server
# with SIGTERM and requires exit status 0. For PostgreSQL a new database is
# created in the cluster of CUSTOS_TEST_POSTGRES_URL (its role needs
# CREATEDB) and dropped afterwards. Extra arguments go to pytest, e.g.
#   bash tests/browser/run.sh -k deny
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

say() { echo "browser: $*" >&2; }
# shellcheck source=../lib/server.sh
. "$root/tests/lib/server.sh"

venv="$root/target/browser-venv"
artifacts="$root/target/browser-artifacts"
work="$(mktemp -d "${TMPDIR:-/tmp}/custos-browser.XXXXXX")"
started=$SECONDS

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

as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    say "need root (or sudo) to run: $*"
    return 1
  fi
}

apt_updated=0
apt_install() {
  command -v apt-get >/dev/null || { say "apt-get not found; install $* by hand"; return 1; }
  say "installing $* (apt-get)"
  if [ "$apt_updated" = 0 ]; then
    as_root apt-get update -qq >/dev/null
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

chromium="${BROWSER_CHROMIUM:-/usr/bin/chromium}"
chromedriver="${BROWSER_CHROMEDRIVER:-/usr/bin/chromedriver}"

missing=()
for package in chromium chromium-driver fonts-dejavu-core; do
  installed "$package" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}"
fi
[ -x "$chromium" ] || { say "$chromium is missing"; exit 1; }
[ -x "$chromedriver" ] || { say "$chromedriver is missing"; exit 1; }

python="${PYTHON:-python3}"
command -v "$python" >/dev/null || { say "python3 is required"; exit 1; }

stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "creating $venv"
  rm -rf "$venv"
  if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
    say "python3 -m venv failed; installing python3-venv"
    apt_install python3-venv
    rm -rf "$venv"
    "$python" -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt"
  echo "$want" >"$stamp"
fi

say "$("$chromium" --version 2>/dev/null | head -n 1); $("$chromedriver" --version | cut -d' ' -f1-2)"

say "cargo build -p custos"
cargo build -q -p custos
binary="${CARGO_TARGET_DIR:-$root/target}/debug/custos"

mkdir -p "$artifacts"
rm -f "$artifacts"/*.png

# run_backend NAME DATABASE_URL [KEY_ENCRYPTION_KEY]
run_backend() {
  local name="$1" database_url="$2" kek="${3:-}"
  local admin_token log rc
  admin_token="browser-$(secret)"
  log="$work/custos-$name.log"
  start_server "$name" "$log" "$database_url" "$admin_token" "$kek" || return 1

  rc=0
  say "[$name] pytest"
  (
    cd "$here"
    CUSTOS_TEST_URL="$server_url" CUSTOS_TEST_ADMIN_TOKEN="$admin_token" \
      BROWSER_BACKEND="$name" BROWSER_ARTIFACTS="$artifacts" \
      BROWSER_CHROMIUM="$chromium" BROWSER_CHROMEDRIVER="$chromedriver" \
      SE_OFFLINE=true PYTHONDONTWRITEBYTECODE=1 \
      "$venv/bin/python" -m pytest -p no:cacheprovider -q -rfExX "${pytest_args[@]}"
  ) || rc=$?

  stop_server "$name" "$server_pid" || rc=1
  if [ "$rc" != 0 ]; then
    show_log "$name" "$log"
    return 1
  fi
  say "[$name] passed; custos shut down cleanly"
}

pytest_args=("$@")
failed=0

mkdir -p "$work/sqlite"
run_backend sqlite "sqlite://$work/sqlite/custos.db" || failed=1

if [ -n "${CUSTOS_TEST_POSTGRES_URL:-}" ]; then
  create_pg_database custos_browser || exit 1
  run_backend postgres "$pg_url" "$(secret)" || failed=1
else
  say "CUSTOS_TEST_POSTGRES_URL is not set; skipping PostgreSQL"
fi

shopt -s nullglob
for png in "$artifacts"/*.png; do
  say "screenshot: ${png#"$root"/}"
done

if [ "$failed" != 0 ]; then
  say "FAILED after $((SECONDS - started)) s"
  exit 1
fi
say "all backends passed in $((SECONDS - started)) s"
