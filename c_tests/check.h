/* A tiny test harness for the C tests: CHECK(cond, what) prints
 * "ok - what" or "not ok - what (file:line)", and finish() prints the
 * closing "N passed, N failed" line and returns the exit status. */
#ifndef LUANET_CHECK_H
#define LUANET_CHECK_H

#include <stdio.h>

static int check_passed, check_failed;

#define CHECK(cond, what)                                                        \
    do {                                                                         \
        if (cond) {                                                              \
            check_passed++;                                                      \
            printf("ok - %s\n", what);                                           \
        } else {                                                                 \
            check_failed++;                                                      \
            printf("not ok - %s (%s:%d: %s)\n", what, __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

static int finish(void) {
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
