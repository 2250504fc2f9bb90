/* The thread-safety the header documents: one venom_kv and one
 * venom_seq_reader handle shared by several reader threads while a writer
 * thread updates them (no torn values), and venom_daemon_stop from another
 * thread waking a venom_daemon_recv that waits without a deadline.
 * Usage: threads UNIQUE_PREFIX */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include "check.h"

#define KEYS 64
#define VALUE 48
#define READERS 3
#define ROUNDS 300

static venom_kv *kv;
static venom_seq_writer *writer;
static venom_seq_reader *reader;
static atomic_int writer_done;
static atomic_int torn;
static atomic_int errors;

/* Every value (and the region) is one byte repeated: a torn copy mixes two. */
static int uniform(const uint8_t *p, size_t n) {
    for (size_t i = 1; i < n; i++)
        if (p[i] != p[0]) return 0;
    return 1;
}

static void *write_loop(void *arg) {
    (void)arg;
    uint8_t val[256];
    for (int round = 1; round <= ROUNDS; round++) {
        memset(val, round & 0xff, sizeof val);
        for (int k = 0; k < KEYS; k++) {
            char key[16];
            int kn = snprintf(key, sizeof key, "k%d", k);
            if (venom_kv_put(kv, (const uint8_t *)key, (size_t)kn, val, VALUE) != VENOM_OK) atomic_fetch_add(&errors, 1);
        }
        if (venom_seq_writer_write(writer, val, sizeof val, NULL) != VENOM_OK) atomic_fetch_add(&errors, 1);
    }
    atomic_store(&writer_done, 1);
    return NULL;
}

static void *read_loop(void *arg) {
    (void)arg;
    uint8_t buf[256];
    size_t len;
    while (!atomic_load(&writer_done)) {
        for (int k = 0; k < KEYS; k++) {
            char key[16];
            int kn = snprintf(key, sizeof key, "k%d", k);
            venom_status st = venom_kv_get(kv, (const uint8_t *)key, (size_t)kn, buf, sizeof buf, &len);
            if (st != VENOM_OK) atomic_fetch_add(&errors, 1);
            else if (len != VALUE || !uniform(buf, len)) atomic_fetch_add(&torn, 1);
        }
        venom_status st = venom_seq_reader_read(reader, buf, sizeof buf, &len);
        if (st != VENOM_OK) atomic_fetch_add(&errors, 1);
        else if (len != sizeof buf || !uniform(buf, len)) atomic_fetch_add(&torn, 1);
    }
    return NULL;
}

static venom_daemon *daemon_handle;
static atomic_int receiving;

static void *serve(void *arg) {
    (void)arg;
    uint8_t buf[64];
    venom_command c;
    atomic_store(&receiving, 1);
    venom_status st = venom_daemon_recv(daemon_handle, VENOM_TIMEOUT_INFINITE, buf, sizeof buf, &c);
    return (void *)(intptr_t)st;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    char kv_name[64], region[64], chan[64];
    snprintf(kv_name, sizeof kv_name, "%s-kv", argv[1]);
    snprintf(region, sizeof region, "%s-region", argv[1]);
    snprintf(chan, sizeof chan, "%s-chan", argv[1]);

    MUST(venom_kv_create(kv_name, NULL, &kv));
    MUST(venom_seq_writer_create(region, 256, 0, &writer));
    uint8_t init[256];
    memset(init, 0, sizeof init);
    for (int k = 0; k < KEYS; k++) {
        char key[16];
        int kn = snprintf(key, sizeof key, "k%d", k);
        MUST(venom_kv_put(kv, (const uint8_t *)key, (size_t)kn, init, VALUE));
    }
    MUST(venom_seq_writer_write(writer, init, sizeof init, NULL));
    MUST(venom_seq_reader_open(region, &reader));

    pthread_t w, r[READERS];
    for (int i = 0; i < READERS; i++) pthread_create(&r[i], NULL, read_loop, NULL);
    pthread_create(&w, NULL, write_loop, NULL);
    pthread_join(w, NULL);
    for (int i = 0; i < READERS; i++) pthread_join(r[i], NULL);
    CHECK(atomic_load(&errors) == 0);
    CHECK(atomic_load(&torn) == 0);
    venom_kv_stats stats;
    MUST(venom_kv_get_stats(kv, &stats));
    CHECK(stats.updates == (uint64_t)KEYS * ROUNDS);
    printf("kv: %llu hits under %d concurrent updates\n", (unsigned long long)stats.hits, KEYS * ROUNDS);

    /* Stop from another thread while recv waits without a deadline. */
    MUST(venom_daemon_create(chan, NULL, &daemon_handle));
    pthread_t s;
    pthread_create(&s, NULL, serve, NULL);
    while (!atomic_load(&receiving)) sched_yield();
    /* Stopping is sticky: ESTOPPED whether recv is already asleep or not. */
    EXPECT(venom_daemon_stop(daemon_handle), VENOM_OK);
    void *res;
    pthread_join(s, &res);
    CHECK((venom_status)(intptr_t)res == VENOM_ESTOPPED);

    MUST(venom_daemon_free(daemon_handle));
    MUST(venom_seq_reader_free(reader));
    MUST(venom_seq_writer_unlink(writer));
    MUST(venom_seq_writer_free(writer));
    MUST(venom_kv_unlink(kv));
    MUST(venom_kv_close(kv));
    if (check_failures) return 1;
    printf("threads ok\n");
    return 0;
}
