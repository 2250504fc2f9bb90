#!/usr/bin/env bash
# Runs the Miri-compatible unit tests (pure logic: header validation,
# atomic_copy's portable path, the seqlock protocol on private memory).
# Skips with a message if Miri cannot be installed.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! rustup +nightly component add miri rust-src >/dev/null 2>&1; then
  echo "miri: SKIPPED (could not install the nightly miri component)"
  exit 0
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/miri"
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation}"
set -e
cargo +nightly miri test -p venom-core --lib -- miri_
