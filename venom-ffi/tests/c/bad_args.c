/* Every function fed NULL handles, NULL or short buffers, bad names,
 * bad configurations and extreme timeouts: each call must return the
 * documented status (and a message), never crash.
 * Usage: bad_args UNIQUE_PREFIX */
#include <string.h>
#include "check.h"

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    char chan[64], region[64], cache[64];
    snprintf(chan, sizeof chan, "%s-chan", argv[1]);
    snprintf(region, sizeof region, "%s-region", argv[1]);
    snprintf(cache, sizeof cache, "%s-kv", argv[1]);
    uint8_t buf[64];
    size_t len = 0;
    uint64_t v = 0;

    CHECK(venom_abi_version() == VENOM_ABI_VERSION);
    CHECK(strlen(venom_version()) > 0);
    CHECK(strcmp(venom_status_name(VENOM_ETOOSMALL), "VENOM_ETOOSMALL") == 0);
    CHECK(strcmp(venom_status_name(12345), "VENOM_UNKNOWN") == 0);

    /* NULL handles and out-pointers. */
    venom_daemon *d = NULL;
    venom_shell *s = NULL;
    venom_seq_writer *w = NULL;
    venom_seq_reader *r = NULL;
    venom_kv *kv = NULL;
    venom_command c;
    EXPECT(venom_daemon_create(NULL, NULL, &d), VENOM_EINVAL);
    EXPECT(venom_daemon_create(chan, NULL, NULL), VENOM_EINVAL);
    EXPECT(venom_daemon_write_data(NULL, buf, 1, NULL), VENOM_EINVAL);
    EXPECT(venom_daemon_recv(NULL, 0, buf, sizeof buf, &c), VENOM_EINVAL);
    EXPECT(venom_daemon_respond(NULL, 1, buf, 1), VENOM_EINVAL);
    EXPECT(venom_daemon_discard(NULL, 1), VENOM_EINVAL);
    EXPECT(venom_daemon_stop(NULL), VENOM_EINVAL);
    EXPECT(venom_daemon_clients(NULL, &len), VENOM_EINVAL);
    EXPECT(venom_shell_connect(NULL, &s), VENOM_EINVAL);
    EXPECT(venom_shell_read_data(NULL, buf, sizeof buf, &len), VENOM_EINVAL);
    EXPECT(venom_shell_request(NULL, buf, 1, buf, 1, &len, 10), VENOM_EINVAL);
    EXPECT(venom_shell_data_version(NULL, &v), VENOM_EINVAL);
    EXPECT(venom_shell_wait_for_change(NULL, 0, 0, &v), VENOM_EINVAL);
    EXPECT(venom_seq_writer_write(NULL, buf, 1, NULL), VENOM_EINVAL);
    EXPECT(venom_seq_reader_read(NULL, buf, 1, &len), VENOM_EINVAL);
    EXPECT(venom_seq_reader_wait_for_change(NULL, 0, VENOM_TIMEOUT_INFINITE, &v), VENOM_EINVAL);
    EXPECT(venom_kv_get(NULL, buf, 1, buf, 1, &len), VENOM_EINVAL);
    EXPECT(venom_kv_put(NULL, buf, 1, buf, 1), VENOM_EINVAL);
    EXPECT(venom_kv_get_stats(NULL, NULL), VENOM_EINVAL);
    EXPECT(venom_channel_config_default(NULL), VENOM_EINVAL);
    EXPECT(venom_kv_config_default(NULL), VENOM_EINVAL);
    /* Freeing NULL is a no-op. */
    EXPECT(venom_daemon_free(NULL), VENOM_OK);
    EXPECT(venom_shell_free(NULL), VENOM_OK);
    EXPECT(venom_seq_writer_free(NULL), VENOM_OK);
    EXPECT(venom_seq_reader_free(NULL), VENOM_OK);
    EXPECT(venom_kv_close(NULL), VENOM_OK);

    /* Bad names: empty, a slash, far too long, not UTF-8; missing segments. */
    char longname[600];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    EXPECT(venom_daemon_create("", NULL, &d), VENOM_EINVAL);
    EXPECT(venom_daemon_create("a/b", NULL, &d), VENOM_EINVAL);
    EXPECT(venom_daemon_create(longname, NULL, &d), VENOM_EINVAL);
    EXPECT(venom_kv_open("\xff\xfe", &kv), VENOM_EINVAL);
    EXPECT(venom_shell_connect("venom-ffi-no-such-channel", &s), VENOM_ENOTFOUND);
    EXPECT(venom_seq_reader_open("venom-ffi-no-such-region", &r), VENOM_ENOTFOUND);
    EXPECT(venom_kv_open("venom-ffi-no-such-cache", &kv), VENOM_ENOTFOUND);

    /* Bad configurations. */
    venom_channel_config cc;
    MUST(venom_channel_config_default(&cc));
    cc.wait = 99;
    EXPECT(venom_daemon_create(chan, &cc, &d), VENOM_EINVAL);
    MUST(venom_channel_config_default(&cc));
    cc.max_clients = 0;
    EXPECT(venom_daemon_create(chan, &cc, &d), VENOM_EINVAL);
    venom_kv_config kc;
    MUST(venom_kv_config_default(&kc));
    kc.max_entries = 0;
    EXPECT(venom_kv_create(cache, &kc, &kv), VENOM_EINVAL);
    MUST(venom_kv_config_default(&kc));
    kc.eviction = 7;
    EXPECT(venom_kv_create(cache, &kc, &kv), VENOM_EINVAL);
    EXPECT(venom_seq_writer_create(region, 0, 0, &w), VENOM_EINVAL);
    EXPECT(venom_seq_writer_create(region, 4096, 100, &w), VENOM_EINVAL);
    EXPECT(venom_seq_writer_create(region, SIZE_MAX, 0, &w), VENOM_EINVAL);

    /* A channel served and used by this one process. */
    MUST(venom_channel_config_default(&cc));
    cc.max_msg_size = 64;
    cc.data_size = 128;
    MUST(venom_daemon_create(chan, &cc, &d));
    EXPECT(venom_daemon_create(chan, &cc, &d), VENOM_EEXIST);
    EXPECT(venom_daemon_write_data(d, NULL, 5, NULL), VENOM_EINVAL);
    EXPECT(venom_daemon_write_data(d, buf, 129, NULL), VENOM_ERANGE);
    MUST(venom_daemon_write_data(d, (const uint8_t *)"0123456789", 10, &v));
    MUST(venom_shell_connect(chan, &s));
    EXPECT(venom_shell_read_data(s, buf, 4, &len), VENOM_ETOOSMALL);
    CHECK(len == 10);
    EXPECT(venom_shell_read_data(s, NULL, 0, &len), VENOM_ETOOSMALL);
    EXPECT(venom_shell_read_data(s, NULL, 10, &len), VENOM_EINVAL);
    EXPECT(venom_shell_read_data(s, buf, sizeof buf, NULL), VENOM_EINVAL);
    EXPECT(venom_shell_read_data(s, buf, sizeof buf, &len), VENOM_OK);
    CHECK(len == 10);
    /* Already changed since 0: returns at once even with an infinite timeout. */
    EXPECT(venom_shell_wait_for_change(s, 0, VENOM_TIMEOUT_INFINITE, &v), VENOM_OK);
    EXPECT(venom_shell_wait_for_change(s, v, 0, &v), VENOM_ETIMEDOUT);
    /* Oversized command; nobody serving yet: timeout 0 and 1 ms time out. */
    uint8_t big[65] = {0};
    EXPECT(venom_shell_request(s, big, sizeof big, buf, sizeof buf, &len, 1000), VENOM_ETOOLARGE);
    EXPECT(venom_shell_request(s, NULL, 3, buf, sizeof buf, &len, 1000), VENOM_EINVAL);
    EXPECT(venom_shell_request(s, (const uint8_t *)"a", 1, buf, sizeof buf, NULL, 1000), VENOM_EINVAL);
    EXPECT(venom_shell_request(s, (const uint8_t *)"a", 1, buf, sizeof buf, &len, 0), VENOM_ETIMEDOUT);
    EXPECT(venom_shell_request(s, (const uint8_t *)"b", 1, buf, sizeof buf, &len, 1), VENOM_ETIMEDOUT);
    /* The daemon finds them queued at once, even with extreme timeouts;
     * short buffers keep the command queued and report its size. */
    EXPECT(venom_daemon_recv(d, VENOM_TIMEOUT_INFINITE, NULL, 0, &c), VENOM_ETOOSMALL);
    CHECK(c.len == 1);
    EXPECT(venom_daemon_recv(d, VENOM_TIMEOUT_INFINITE, buf, sizeof buf, NULL), VENOM_EINVAL);
    EXPECT(venom_daemon_recv(d, UINT64_MAX - 1, buf, sizeof buf, &c), VENOM_OK);
    CHECK(c.len == 1 && buf[0] == 'a' && c.token != 0);
    EXPECT(venom_daemon_respond(d, c.token, (const uint8_t *)"late", 4), VENOM_OK);
    EXPECT(venom_daemon_respond(d, c.token, (const uint8_t *)"twice", 5), VENOM_EINVAL);
    EXPECT(venom_daemon_recv(d, VENOM_TIMEOUT_MAX_MS + 1, buf, sizeof buf, &c), VENOM_OK);
    CHECK(c.len == 1 && buf[0] == 'b');
    EXPECT(venom_daemon_respond(d, c.token, big, sizeof big), VENOM_ETOOLARGE);
    EXPECT(venom_daemon_discard(d, 424242), VENOM_EINVAL);
    EXPECT(venom_daemon_recv(d, 0, buf, sizeof buf, &c), VENOM_ETIMEDOUT);
    EXPECT(venom_daemon_recv(d, 1, buf, sizeof buf, &c), VENOM_ETIMEDOUT);
    EXPECT(venom_daemon_clients(d, &len), VENOM_OK);
    CHECK(len == 1);
    /* A stopped daemon returns at once, even with an infinite timeout. */
    EXPECT(venom_daemon_stop(d), VENOM_OK);
    EXPECT(venom_daemon_recv(d, VENOM_TIMEOUT_INFINITE, buf, sizeof buf, &c), VENOM_ESTOPPED);
    MUST(venom_daemon_free(d));
    int alive = 1;
    EXPECT(venom_shell_daemon_alive(s, &alive), VENOM_OK);
    CHECK(alive == 0);
    EXPECT(venom_shell_request(s, (const uint8_t *)"x", 1, buf, sizeof buf, &len, VENOM_TIMEOUT_INFINITE),
           VENOM_EGONE);
    MUST(venom_shell_free(s));

    /* Seqlock region. */
    MUST(venom_seq_writer_create(region, 256, 64, &w));
    EXPECT(venom_seq_writer_create(region, 256, 64, &w), VENOM_EEXIST);
    MUST(venom_seq_reader_open(region, &r));
    EXPECT(venom_seq_writer_write(w, buf, 257, NULL), VENOM_ERANGE);
    EXPECT(venom_seq_writer_write_at(w, SIZE_MAX, buf, 2, NULL), VENOM_ERANGE);
    EXPECT(venom_seq_writer_write_at(w, 250, buf, 7, NULL), VENOM_ERANGE);
    MUST(venom_seq_writer_write(w, (const uint8_t *)"abcdef", 6, &v));
    venom_write_part parts[2] = {
        {.offset = 10, .data = (const uint8_t *)"ok", .len = 2},
        {.offset = 255, .data = (const uint8_t *)"no", .len = 2},
    };
    uint64_t before = v;
    EXPECT(venom_seq_writer_write_parts(w, parts, 2, &v), VENOM_ERANGE);
    EXPECT(venom_seq_writer_write_parts(w, NULL, 2, &v), VENOM_EINVAL);
    parts[1].data = NULL;
    parts[1].offset = 0;
    EXPECT(venom_seq_writer_write_parts(w, parts, 2, &v), VENOM_EINVAL);
    parts[1].len = 0;
    parts[1].offset = SIZE_MAX;
    EXPECT(venom_seq_writer_write_parts(w, parts, 2, &v), VENOM_ERANGE);
    EXPECT(venom_seq_writer_write_parts(w, parts, SIZE_MAX, &v), VENOM_EINVAL);
    EXPECT(venom_seq_writer_version(w, &v), VENOM_OK);
    CHECK(v == before); /* nothing was written */
    parts[1].offset = 0;
    EXPECT(venom_seq_writer_write_parts(w, parts, 2, &v), VENOM_OK);
    CHECK(v > before);
    uint64_t wv = 0;
    EXPECT(venom_seq_writer_version(w, &wv), VENOM_OK);
    CHECK(wv == v);
    EXPECT(venom_seq_reader_read(r, buf, 5, &len), VENOM_ETOOSMALL);
    CHECK(len == 6);
    EXPECT(venom_seq_reader_read_at(r, 255, buf, 2, NULL), VENOM_ERANGE);
    EXPECT(venom_seq_reader_read_at(r, SIZE_MAX, buf, 1, NULL), VENOM_ERANGE);
    EXPECT(venom_seq_reader_read_at(r, 0, NULL, 1, NULL), VENOM_EINVAL);
    EXPECT(venom_seq_reader_wait_for_change(r, v, 0, &v), VENOM_ETIMEDOUT);
    EXPECT(venom_seq_reader_wait_for_change(r, 0, VENOM_TIMEOUT_INFINITE, &v), VENOM_OK);
    EXPECT(venom_seq_reader_wait_for_change(r, 0, UINT64_MAX, NULL), VENOM_EINVAL);
    size_t size = 0;
    EXPECT(venom_seq_reader_size(r, &size), VENOM_OK);
    CHECK(size == 256);
    EXPECT(venom_seq_writer_unlink(w), VENOM_OK);
    MUST(venom_seq_reader_free(r));
    MUST(venom_seq_writer_free(w));

    /* Key-value cache. */
    MUST(venom_kv_config_default(&kc));
    kc.max_key_len = 8;
    kc.max_value_len = 64;
    kc.data_bytes = 4096;
    MUST(venom_kv_create(cache, &kc, &kv));
    EXPECT(venom_kv_put(kv, (const uint8_t *)"123456789", 9, buf, 1), VENOM_ETOOLARGE);
    EXPECT(venom_kv_put(kv, (const uint8_t *)"k", 1, big, 65), VENOM_ETOOLARGE);
    EXPECT(venom_kv_put(kv, NULL, 1, buf, 1), VENOM_EINVAL);
    EXPECT(venom_kv_put(kv, (const uint8_t *)"k", 1, NULL, 1), VENOM_EINVAL);
    EXPECT(venom_kv_put(kv, (const uint8_t *)"k", 1, (const uint8_t *)"vvv", 3), VENOM_OK);
    EXPECT(venom_kv_put_ttl(kv, (const uint8_t *)"t", 1, buf, 1, 0), VENOM_EINVAL);
    EXPECT(venom_kv_put_ttl(kv, (const uint8_t *)"t", 1, buf, 1, UINT64_MAX), VENOM_EINVAL);
    EXPECT(venom_kv_put_ttl(kv, (const uint8_t *)"t", 1, buf, 1, 60000), VENOM_OK);
    EXPECT(venom_kv_get(kv, (const uint8_t *)"k", 1, buf, 2, &len), VENOM_ETOOSMALL);
    CHECK(len == 3);
    EXPECT(venom_kv_get(kv, (const uint8_t *)"k", 1, buf, sizeof buf, NULL), VENOM_EINVAL);
    EXPECT(venom_kv_get(kv, (const uint8_t *)"nope", 4, buf, sizeof buf, &len), VENOM_ENOTFOUND);
    EXPECT(venom_kv_delete(kv, (const uint8_t *)"nope", 4), VENOM_ENOTFOUND);
    EXPECT(venom_kv_delete(kv, NULL, 4), VENOM_EINVAL);
    EXPECT(venom_kv_unlink(kv), VENOM_OK);
    MUST(venom_kv_close(kv));

    if (check_failures) {
        fprintf(stderr, "%d checks failed\n", check_failures);
        return 1;
    }
    printf("all bad-argument checks passed\n");
    return 0;
}
