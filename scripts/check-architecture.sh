#!/usr/bin/env bash
# Architecture invariant: the pure crates (protocol, governance, policy) depend on no
# async runtime, database, HTTP framework or HTTP client. Checked with
# `cargo tree` so a transitive dependency cannot sneak one in.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for crate in custos-protocol custos-governance custos-policy; do
  tree=$(cargo tree --locked -p "$crate" -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u)
  for forbidden in tokio sqlx axum reqwest hyper; do
    if grep -qx "$forbidden" <<<"$tree"; then
      echo "architecture: $crate must not depend on $forbidden (cargo tree -p $crate -i $forbidden)" >&2
      status=1
    fi
  done
done
# Only the store speaks SQL; only the http crate knows axum.
for crate in custos-protocol custos-governance custos-policy custos-service; do
  if cargo tree --locked -p "$crate" -e normal --depth 1 --prefix none --format '{p}' | awk '{print $1}' | grep -qx -e axum -e sqlx; then
    echo "architecture: $crate must not depend directly on axum or sqlx" >&2
    status=1
  fi
done
[ "$status" = 0 ] && echo "architecture invariants hold"
exit "$status"
