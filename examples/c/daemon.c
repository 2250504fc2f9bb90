/* A Venom daemon in C: publishes a greeting in the channel's data region and
 * echoes every command back, prefixed with "echo: ", until Ctrl-C.
 *
 *   cc -O2 -Ivenom-ffi/include examples/c/daemon.c -Ltarget/release -lvenom -o daemon
 *   LD_LIBRARY_PATH=target/release ./daemon [CHANNEL]
 *
 * Any Venom shell can talk to it: examples/c/client.c, or a Rust
 * venom_core::ShellChannel. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "venom.h"

static venom_daemon *daemon_handle;

/* venom_daemon_stop is async-signal-safe: it wakes venom_daemon_recv. */
static void on_signal(int sig) {
    (void)sig;
    venom_daemon_stop(daemon_handle);
}

static int fail(const char *what, venom_status st) {
    fprintf(stderr, "%s: %s: %s\n", what, venom_status_name(st), venom_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "c-demo";
    venom_channel_config cfg;
    venom_channel_config_default(&cfg);
    cfg.max_msg_size = 1024;

    venom_status st = venom_daemon_create(name, &cfg, &daemon_handle);
    if (st != VENOM_OK) return fail("venom_daemon_create", st);
    const char *hello = "hello from a C daemon";
    st = venom_daemon_write_data(daemon_handle, (const uint8_t *)hello, strlen(hello), NULL);
    if (st != VENOM_OK) return fail("venom_daemon_write_data", st);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    printf("serving channel %s (Ctrl-C to stop)\n", name);
    fflush(stdout);

    uint8_t cmd[1024], reply[1024 + 6];
    unsigned long served = 0;
    for (;;) {
        venom_command c;
        st = venom_daemon_recv(daemon_handle, VENOM_TIMEOUT_INFINITE, cmd, sizeof cmd, &c);
        if (st == VENOM_ESTOPPED) break;
        if (st != VENOM_OK) return fail("venom_daemon_recv", st);
        size_t n = c.len;
        if (n > sizeof reply - 6) n = sizeof reply - 6;
        memcpy(reply, "echo: ", 6);
        memcpy(reply + 6, cmd, n);
        st = venom_daemon_respond(daemon_handle, c.token, reply, n + 6);
        /* A reply over max_msg_size is refused (the client is told); keep serving. */
        if (st != VENOM_OK && st != VENOM_ETOOLARGE) return fail("venom_daemon_respond", st);
        served++;
    }
    printf("stopped after %lu commands\n", served);
    venom_daemon_free(daemon_handle);
    return 0;
}
