#!/usr/bin/env bash
# Runs every fuzz target for a while (default 60 s each) with cargo-fuzz on
# the stable toolchain (RUSTC_BOOTSTRAP lets it use the sanitizer flags).
#   bash fuzz/run.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
status=0
for target in $(cargo fuzz list); do
  echo "== $target ($seconds s)"
  if cargo fuzz run "$target" -- -max_total_time="$seconds" -max_len=4096 >"target/$target.log" 2>&1; then
    grep -E "^#[0-9]+ +DONE" "target/$target.log" || tail -n 1 "target/$target.log"
  else
    echo "FAILED: $target (artifacts/$target; log fuzz/target/$target.log)"
    grep -E "panicked|SUMMARY" "target/$target.log" | head -n 5
    status=1
  fi
done
exit "$status"
