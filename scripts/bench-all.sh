#!/usr/bin/env bash
# Runs every benchmark with the settings BENCHMARKS.md quotes, RUNS times
# each (default 3), and regenerates BENCHMARKS.md's generated tables (the
# parts between `<!-- bench-all:NAME begin/end -->` markers) with
# min–median–max over the runs. Unattended and idempotent: re-running it
# replaces the generated tables and nothing else.
#
# usage: scripts/bench-all.sh [--only seq_region,channel,...] [--runs N] [--no-render]
# benches: seq_region collections channel kvcache net fanout
#
# Time on the 2-vCPU project machine: about 5 min per round of all five
# benches when quiet, so ~15 min for the default 3 runs (~20 min at load 4–9;
# per run: channel 40–110 s, seq_region ~65 s, collections ~90 s, kvcache ~70 s, net ~50 s,
# fanout ~70 s).
# Results land in target/bench-all/<bench>/run-<i>.json; the render step
# (scripts/bench-table.py render) can be re-run alone on them.
set -euo pipefail
cd "$(dirname "$0")/.."
# Absolute: cargo runs bench binaries from the package directory, and
# criterion and the channel harness resolve paths against that.
export CARGO_TARGET_DIR="$(realpath -m "${CARGO_TARGET_DIR:-target}")"

ONLY="seq_region,collections,channel,kvcache,net,fanout"
RUNS=3
RENDER=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --only) ONLY="$2"; shift 2 ;;
        --only=*) ONLY="${1#--only=}"; shift ;;
        --runs) RUNS="$2"; shift 2 ;;
        --runs=*) RUNS="${1#--runs=}"; shift ;;
        --no-render) RENDER=0; shift ;;
        -h|--help) sed -n 2,16p "$0"; exit 0 ;;
        *) echo "bench-all: unknown argument $1" >&2; exit 2 ;;
    esac
done

OUT="$CARGO_TARGET_DIR/bench-all"
mkdir -p "$OUT"

# The settings BENCHMARKS.md quotes for each bench (criterion arguments).
criterion_args() {
    case "$1" in
        seq_region) echo "--warm-up-time 1 --measurement-time 2" ;;
        collections) echo "--warm-up-time 1 --measurement-time 2" ;;
        *) echo "" ;;
    esac
}

# shellcheck source=scripts/redis.sh
source scripts/redis.sh
trap stop_redis EXIT

echo "bench-all: building the benches"
cargo bench -p venom-benches --no-run >/dev/null 2>&1 || cargo bench -p venom-benches --no-run

START_ALL=$(date +%s)
IFS=',' read -r -a BENCHES <<<"$ONLY"
for bench in "${BENCHES[@]}"; do
    case "$bench" in seq_region|collections|channel|kvcache|net|fanout) ;; *) echo "bench-all: unknown bench $bench" >&2; exit 2 ;; esac
    mkdir -p "$OUT/$bench"
    [[ "$bench" == kvcache ]] && start_redis bench-all
    for run in $(seq 1 "$RUNS"); do
        t0=$(date +%s)
        marker="$OUT/$bench/.start"
        touch "$marker"
        sleep 1 # mtime granularity: estimates written after this are ours
        load="$(cut -d' ' -f1-3 /proc/loadavg)"
        echo "bench-all: $bench run $run/$RUNS (load average $load)"
        # shellcheck disable=SC2046
        VENOM_BENCH_JSON="$OUT/$bench/channel-run-$run.json" VENOM_BENCH_ROUNDS="${VENOM_BENCH_ROUNDS:-100000}" \
            cargo bench -p venom-benches --bench "$bench" -- $(criterion_args "$bench") \
            >"$OUT/$bench/run-$run.log" 2>&1 || { echo "bench-all: $bench run $run failed, see $OUT/$bench/run-$run.log"; tail -20 "$OUT/$bench/run-$run.log"; exit 1; }
        python3 scripts/bench-table.py collect "$bench" "$run" "$CARGO_TARGET_DIR" "$marker" "$load" "$(( $(date +%s) - t0 ))"
    done
    [[ "$bench" == kvcache ]] && stop_redis
done
echo "bench-all: all runs took $(( ($(date +%s) - START_ALL) / 60 )) min"
if [[ "$RENDER" == 1 ]]; then
    python3 scripts/bench-table.py render BENCHMARKS.md "$CARGO_TARGET_DIR"
    echo "bench-all: BENCHMARKS.md tables regenerated"
fi
