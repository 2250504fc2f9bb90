#!/usr/bin/env bash
# KvCache benchmark with a same-run Redis baseline.
#
# Installs Debian's redis-server with apt-get if it is missing, starts it on a
# Unix socket in a temporary directory (no TCP, no persistence), runs
# `cargo bench -p venom-benches --bench kvcache` with VENOM_REDIS_SOCKET set,
# stops Redis and prints a table of medians and ratios from criterion's
# estimates. If Redis cannot be installed or started, the benchmark still
# runs and skips the Redis baseline with a clear message.
#
# Extra arguments are passed to the benchmark binary (e.g. a name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"

# shellcheck source=scripts/redis.sh
source scripts/redis.sh
trap stop_redis EXIT
start_redis bench-kv

cargo bench -p venom-benches --bench kvcache -- "$@"

python3 - "$CARGO_TARGET_DIR/criterion" <<'EOF'
import json, os, sys
root = sys.argv[1]
def median_ns(size, op, who):
    p = os.path.join(root, f"kv_{size}", op, who, "new", "estimates.json")
    if not os.path.exists(p):
        return None
    return json.load(open(p))["median"]["point_estimate"]
print()
print("| value | op | KvCache 1 proc | KvCache 2 proc (aggregate) | Mutex<HashMap> | Redis | KvCache / Redis | KvCache / Mutex<HashMap> |")
print("|---|---|---|---|---|---|---|---|")
fmt = lambda ns, ops=1: "–" if ns is None else f"{ns:,.0f} ns ({ops * 1e9 / ns / 1e6:,.2f} M ops/s)"
for size in ["64B", "1KiB", "64KiB"]:
    for op in ["get", "put"]:
        kv, kv2, mx, rd = (median_ns(size, op, w) for w in ["1proc", "2proc", "mutex_hashmap", "redis"])
        r_rd = "–" if kv is None or rd is None else f"{rd / kv:,.0f}×"
        r_mx = "–" if kv is None or mx is None else f"{mx / kv:.2f}×"
        print(f"| {size} | {op} | {fmt(kv)} | {fmt(kv2, 2)} | {fmt(mx)} | {fmt(rd)} | {r_rd} | {r_mx} |")
EOF
