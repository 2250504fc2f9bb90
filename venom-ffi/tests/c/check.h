/* Assertion helpers shared by the C test programs. */
#ifndef VENOM_TEST_CHECK_H
#define VENOM_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include "venom.h"

static int check_failures = 0;

/* Evaluates a venom call and compares its status with the expected one. */
#define EXPECT(call, want)                                                          \
    do {                                                                            \
        venom_status got_ = (call);                                                 \
        if (got_ != (want)) {                                                       \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (%s)\n", __FILE__,  \
                    __LINE__, #call, venom_status_name(got_), venom_status_name(want), \
                    venom_last_error_message());                                    \
            check_failures++;                                                       \
        } else if (got_ != VENOM_OK && venom_last_error_message()[0] == '\0') {      \
            fprintf(stderr, "%s:%d: %s failed without a message\n", __FILE__,       \
                    __LINE__, #call);                                               \
            check_failures++;                                                       \
        }                                                                           \
    } while (0)

/* A plain condition. */
#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            check_failures++;                                                       \
        }                                                                           \
    } while (0)

/* Stops at the first failed setup step. */
#define MUST(call)                                                                  \
    do {                                                                            \
        venom_status st_ = (call);                                                  \
        if (st_ != VENOM_OK) {                                                      \
            fprintf(stderr, "%s:%d: %s: %s: %s\n", __FILE__, __LINE__, #call,       \
                    venom_status_name(st_), venom_last_error_message());            \
            exit(2);                                                                \
        }                                                                           \
    } while (0)

#endif
