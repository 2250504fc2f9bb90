/* A C daemon for a Rust shell: publishes data, then answers every command
 * with "C:" + command until it receives "quit".
 * Usage: daemon CHANNEL */
#include <string.h>
#include "check.h"

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    venom_channel_config cfg;
    MUST(venom_channel_config_default(&cfg));
    cfg.max_clients = 4;
    cfg.max_msg_size = 512;
    venom_daemon *d = NULL;
    MUST(venom_daemon_create(argv[1], &cfg, &d));
    const char *hello = "hello from C";
    uint64_t version = 0;
    MUST(venom_daemon_write_data(d, (const uint8_t *)hello, strlen(hello), &version));
    CHECK(version > 0);
    venom_write_part parts[2] = {
        {.offset = 100, .data = (const uint8_t *)"part-a", .len = 6},
        {.offset = 200, .data = (const uint8_t *)"part-b", .len = 6},
    };
    uint64_t v2 = 0;
    MUST(venom_daemon_write_data_parts(d, parts, 2, &v2));
    CHECK(v2 > version);
    printf("READY\n");
    fflush(stdout);

    uint8_t cmd[512], reply[514];
    int served = 0;
    for (;;) {
        venom_command c;
        venom_status st = venom_daemon_recv(d, 20000, cmd, sizeof cmd, &c);
        if (st == VENOM_ETIMEDOUT) {
            fprintf(stderr, "daemon: no command for 20 s\n");
            return 3;
        }
        MUST(st);
        if (c.len == 4 && memcmp(cmd, "quit", 4) == 0) {
            MUST(venom_daemon_respond(d, c.token, (const uint8_t *)"bye", 3));
            break;
        }
        reply[0] = 'C';
        reply[1] = ':';
        memcpy(reply + 2, cmd, c.len);
        MUST(venom_daemon_respond(d, c.token, reply, c.len + 2));
        served++;
    }
    printf("served %d\n", served);
    MUST(venom_daemon_free(d));
    return check_failures ? 1 : 0;
}
