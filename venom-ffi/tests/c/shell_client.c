/* A C shell against a Rust daemon: reads the published data, then sends
 * "ping <i>" requests and checks the daemon's "pong <i>" replies.
 * Usage: shell_client CHANNEL COUNT */
#include <string.h>
#include "check.h"

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    const char *name = argv[1];
    int count = atoi(argv[2]);
    venom_shell *shell = NULL;
    MUST(venom_shell_connect(name, &shell));

    char data[256];
    size_t len = 0;
    MUST(venom_shell_read_data(shell, (uint8_t *)data, sizeof data, &len));
    printf("data: %.*s\n", (int)len, data);

    size_t max = 0;
    MUST(venom_shell_max_msg_size(shell, &max));
    char *resp = malloc(max);
    for (int i = 0; i < count; i++) {
        char cmd[64], want[64];
        int n = snprintf(cmd, sizeof cmd, "ping %d", i);
        snprintf(want, sizeof want, "pong %d", i);
        size_t got = 0;
        MUST(venom_shell_request(shell, (const uint8_t *)cmd, (size_t)n, (uint8_t *)resp, max, &got, 5000));
        CHECK(got == strlen(want) && memcmp(resp, want, got) == 0);
    }
    /* A reply larger than the buffer: ETOOSMALL with the size needed. */
    size_t needed = 0;
    EXPECT(venom_shell_request(shell, (const uint8_t *)"big", 3, (uint8_t *)resp, 4, &needed, 5000),
           VENOM_ETOOSMALL);
    CHECK(needed == 1000);
    /* Pipelining: five requests in flight, replies in order with their ids. */
    uint64_t ids[5];
    for (int i = 0; i < 5; i++) {
        char cmd[32];
        int n = snprintf(cmd, sizeof cmd, "ping %d", 1000 + i);
        EXPECT(venom_shell_send(shell, (const uint8_t *)cmd, (size_t)n, &ids[i]), VENOM_OK);
    }
    size_t outstanding = 0;
    EXPECT(venom_shell_outstanding(shell, &outstanding), VENOM_OK);
    CHECK(outstanding == 5);
    EXPECT(venom_shell_request(shell, (const uint8_t *)"x", 1, (uint8_t *)resp, max, &len, 1000), VENOM_EBUSY);
    /* A short buffer leaves the reply queued. */
    EXPECT(venom_shell_recv_response(shell, (uint8_t *)resp, 2, &len, NULL, 5000), VENOM_ETOOSMALL);
    CHECK(len == 9);
    for (int i = 0; i < 5; i++) {
        char want[32];
        snprintf(want, sizeof want, "pong %d", 1000 + i);
        uint64_t id = 0;
        EXPECT(venom_shell_recv_response(shell, (uint8_t *)resp, max, &len, &id, 5000), VENOM_OK);
        CHECK(id == ids[i]);
        CHECK(len == strlen(want) && memcmp(resp, want, len) == 0);
    }
    EXPECT(venom_shell_recv_response(shell, (uint8_t *)resp, max, &len, NULL, VENOM_TIMEOUT_INFINITE),
           VENOM_ETIMEDOUT);
    /* Offset reads of the published data. */
    char word[5] = {0};
    uint64_t at = 0, v = 0;
    EXPECT(venom_shell_read_data_at(shell, 0, (uint8_t *)word, 5, &at), VENOM_OK);
    EXPECT(venom_shell_data_version(shell, &v), VENOM_OK);
    CHECK(memcmp(word, "hello", 5) == 0 && at == v && v > 0);
    EXPECT(venom_shell_read_data_at(shell, SIZE_MAX - 1, (uint8_t *)word, 5, NULL), VENOM_ERANGE);
    printf("requests: %d\n", count);
    free(resp);
    MUST(venom_shell_free(shell));
    return check_failures ? 1 : 0;
}
