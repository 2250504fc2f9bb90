/* A Venom shell in C: reads the daemon's published data, then sends
 * REQUESTS requests and prints the round-trip latency (median and p99).
 *
 *   cc -O2 -Ivenom-ffi/include examples/c/client.c -Ltarget/release -lvenom -o client
 *   LD_LIBRARY_PATH=target/release ./client [CHANNEL] [REQUESTS]
 *
 * Works against examples/c/daemon.c or any Rust DaemonChannel. The last
 * line, "latency_ns median=... p99=...", is parsed by the venom-ffi bench. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "venom.h"

static int fail(const char *what, venom_status st) {
    fprintf(stderr, "%s: %s: %s\n", what, venom_status_name(st), venom_last_error_message());
    return 1;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "c-demo";
    long requests = argc > 2 ? atol(argv[2]) : 10000;
    if (requests < 1) requests = 1;
    if (venom_abi_version() != VENOM_ABI_VERSION) {
        fprintf(stderr, "libvenom ABI %u, header ABI %u\n", venom_abi_version(), VENOM_ABI_VERSION);
        return 1;
    }

    venom_shell *shell = NULL;
    venom_status st = venom_shell_connect(name, &shell);
    if (st != VENOM_OK) return fail("venom_shell_connect", st);

    /* Size the buffers to the channel's limit: no reply can be too big. */
    size_t max = 0;
    venom_shell_max_msg_size(shell, &max);
    uint8_t *buf = malloc(max);
    size_t len = 0;
    st = venom_shell_read_data(shell, buf, max, &len);
    if (st == VENOM_ETOOSMALL) { /* the data region can exceed max_msg_size */
        buf = realloc(buf, len);
        st = venom_shell_read_data(shell, buf, len, &len);
    }
    if (st != VENOM_OK) return fail("venom_shell_read_data", st);
    printf("data: %.*s\n", (int)len, (const char *)buf);
    buf = realloc(buf, max);

    uint64_t *lat = malloc(sizeof(uint64_t) * (size_t)requests);
    const uint8_t cmd[16] = "ping";
    for (long i = 0; i < requests; i++) {
        uint64_t t0 = now_ns();
        st = venom_shell_request(shell, cmd, sizeof cmd, buf, max, &len, 5000);
        lat[i] = now_ns() - t0;
        if (st != VENOM_OK) return fail("venom_shell_request", st);
    }
    printf("last reply: %.*s\n", (int)(len > 40 ? 40 : len), (const char *)buf);
    qsort(lat, (size_t)requests, sizeof lat[0], cmp_u64);
    printf("latency_ns median=%llu p99=%llu n=%ld\n", (unsigned long long)lat[requests / 2],
           (unsigned long long)lat[requests * 99 / 100], requests);
    free(lat);
    free(buf);
    venom_shell_free(shell);
    return 0;
}
