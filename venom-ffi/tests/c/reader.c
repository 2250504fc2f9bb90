/* Reads what a Rust writer put into a KvCache and a seqlock region, and
 * writes back a key of its own.
 * Usage: reader KV_NAME REGION_NAME KEYS */
#include <string.h>
#include "check.h"

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    int keys = atoi(argv[3]);
    venom_kv *kv = NULL;
    MUST(venom_kv_open(argv[1], &kv));
    for (int i = 0; i < keys; i++) {
        char key[32], want[64];
        uint8_t val[64];
        int kn = snprintf(key, sizeof key, "key-%d", i);
        snprintf(want, sizeof want, "value-%d-from-rust", i);
        size_t len = 0;
        EXPECT(venom_kv_get(kv, (const uint8_t *)key, (size_t)kn, val, sizeof val, &len), VENOM_OK);
        CHECK(len == strlen(want) && memcmp(val, want, len) == 0);
    }
    size_t len = 0;
    EXPECT(venom_kv_get(kv, (const uint8_t *)"absent", 6, NULL, 0, &len), VENOM_ENOTFOUND);
    /* Size query, then the real read. */
    EXPECT(venom_kv_get(kv, (const uint8_t *)"big", 3, NULL, 0, &len), VENOM_ETOOSMALL);
    CHECK(len == 3000);
    uint8_t *big = malloc(len);
    EXPECT(venom_kv_get(kv, (const uint8_t *)"big", 3, big, len, &len), VENOM_OK);
    CHECK(len == 3000 && big[0] == 7 && big[2999] == 7);
    free(big);
    EXPECT(venom_kv_delete(kv, (const uint8_t *)"key-0", 5), VENOM_OK);
    EXPECT(venom_kv_delete(kv, (const uint8_t *)"key-0", 5), VENOM_ENOTFOUND);
    EXPECT(venom_kv_put(kv, (const uint8_t *)"from-c", 6, (const uint8_t *)"hi rust", 7), VENOM_OK);
    venom_kv_stats stats;
    EXPECT(venom_kv_get_stats(kv, &stats), VENOM_OK);
    CHECK(stats.hits >= (uint64_t)keys + 1);
    CHECK(stats.misses >= 1);
    /* The gauges C gets since ABI 2 (the Rust KvStats itself). */
    CHECK(stats.free_bytes == stats.data_bytes - stats.used_bytes);
    CHECK(stats.largest_free_block <= stats.free_bytes);
    CHECK(stats.fragmentation >= 0.0 && stats.fragmentation <= 1.0);
    CHECK(stats.internal_waste >= 0.0 && stats.internal_waste < 1.0);
    printf("kv: %d keys, hits %llu, misses %llu\n", keys, (unsigned long long)stats.hits,
           (unsigned long long)stats.misses);
    MUST(venom_kv_close(kv));

    venom_seq_reader *r = NULL;
    MUST(venom_seq_reader_open(argv[2], &r));
    uint64_t v = 0;
    /* The writer publishes "tick 1" after it saw us ask for it. */
    EXPECT(venom_seq_reader_version(r, &v), VENOM_OK);
    char data[64];
    EXPECT(venom_seq_reader_read(r, (uint8_t *)data, sizeof data, &len), VENOM_OK);
    CHECK(len == 6 && memcmp(data, "tick 0", 6) == 0);
    uint32_t word = 0;
    uint64_t at = 0;
    EXPECT(venom_seq_reader_read_at(r, 1024, (uint8_t *)&word, sizeof word, &at), VENOM_OK);
    CHECK(word == 0xC0FFEEu);
    CHECK(at == v);
    printf("WAITING %llu\n", (unsigned long long)v);
    fflush(stdout);
    uint64_t nv = 0;
    EXPECT(venom_seq_reader_wait_for_change(r, v, 10000, &nv), VENOM_OK);
    CHECK(nv > v);
    EXPECT(venom_seq_reader_read(r, (uint8_t *)data, sizeof data, &len), VENOM_OK);
    CHECK(len == 6 && memcmp(data, "tick 1", 6) == 0);
    printf("region: %.*s at %llu\n", (int)len, data, (unsigned long long)nv);
    MUST(venom_seq_reader_free(r));
    return check_failures ? 1 : 0;
}
