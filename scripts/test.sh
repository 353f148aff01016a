#!/usr/bin/env bash
# Runs every test: unit, property, store conformance and integration tests on
# SQLite and PostgreSQL, then the interoperability suite driven by real client
# libraries (Python authlib). Installs and starts a throwaway PostgreSQL with
# scripts/start-postgres.sh (Debian packages) when none is configured.
#
#   bash scripts/test.sh            # everything
#   SKIP_INTEROP=1 bash scripts/test.sh      (also SKIP_BROWSER, SKIP_MCP)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${CUSTOS_TEST_POSTGRES_URL:-}" ]; then
  CUSTOS_TEST_POSTGRES_URL=$(bash scripts/start-postgres.sh | tail -n 1)
  export CUSTOS_TEST_POSTGRES_URL
fi
# PostgreSQL is part of the suite: a missing server is a failure, not a skip.
export CUSTOS_REQUIRE_POSTGRES=1
echo "test.sh: PostgreSQL at ${CUSTOS_TEST_POSTGRES_URL%%@*}@…" >&2

cargo test --workspace --locked

if [ "${SKIP_INTEROP:-0}" != 1 ] && [ -f tests/interop/run.sh ]; then
  bash tests/interop/run.sh
fi
if [ "${SKIP_BROWSER:-0}" != 1 ] && [ -f tests/browser/run.sh ]; then bash tests/browser/run.sh; fi
# The official MCP TypeScript SDK against custos (tests/mcp/README.md).
if [ "${SKIP_MCP:-0}" != 1 ] && [ -f tests/mcp/run.sh ]; then bash tests/mcp/run.sh; fi
