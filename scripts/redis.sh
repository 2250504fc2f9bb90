# Sourced by bench-all.sh and bench-kv.sh: a throwaway Redis for the KvCache
# baseline, on a Unix socket in a temporary directory (no TCP, no
# persistence). `start_redis TAG` installs Debian's redis-server with apt-get
# if it is missing, starts it and exports VENOM_REDIS_SOCKET when it is up
# (messages are prefixed with TAG; without Redis the bench skips its
# baseline). `stop_redis` shuts it down and removes the directory; callers
# trap it on EXIT.

REDIS_PID=""
REDIS_DIR=""

start_redis() {
    local tag="$1"
    if ! command -v redis-server >/dev/null 2>&1; then
        echo "$tag: redis-server not found; installing Debian's redis-server package"
        local sudo=""
        [[ "$(id -u)" -ne 0 ]] && sudo="sudo"
        { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null; } \
            || echo "$tag: could not install redis-server"
    fi
    unset VENOM_REDIS_SOCKET
    if ! command -v redis-server >/dev/null 2>&1; then
        echo "$tag: redis-server unavailable; Redis baseline SKIPPED"
        return 0
    fi
    REDIS_DIR="$(mktemp -d /tmp/venom-redis.XXXXXX)"
    redis-server --port 0 --unixsocket "$REDIS_DIR/redis.sock" --unixsocketperm 700 \
        --save "" --appendonly no --dir "$REDIS_DIR" --daemonize no --loglevel warning \
        >"$REDIS_DIR/redis.log" 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 1 100); do
        [[ -S "$REDIS_DIR/redis.sock" ]] && break
        sleep 0.05
    done
    if [[ -S "$REDIS_DIR/redis.sock" ]]; then
        export VENOM_REDIS_SOCKET="$REDIS_DIR/redis.sock"
        echo "$tag: $(redis-server --version | head -c 40) listening on $VENOM_REDIS_SOCKET"
    else
        echo "$tag: redis-server did not start; Redis baseline SKIPPED ($(tail -n 3 "$REDIS_DIR/redis.log"))"
    fi
    return 0
}

stop_redis() {
    if [[ -n "$REDIS_PID" ]] && kill -0 "$REDIS_PID" 2>/dev/null; then
        redis-cli -s "$REDIS_DIR/redis.sock" shutdown nosave >/dev/null 2>&1 || kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
    fi
    [[ -n "$REDIS_DIR" ]] && rm -rf "$REDIS_DIR"
    REDIS_PID=""
    REDIS_DIR=""
    return 0
}
