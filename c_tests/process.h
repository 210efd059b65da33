/* What the C tests read about their own process: time, threads and open
 * descriptors (from /proc: Linux only). Each file defines
 * _POSIX_C_SOURCE before including it. */
#ifndef LUANET_PROCESS_H
#define LUANET_PROCESS_H

#include <dirent.h>
#include <stdio.h>
#include <time.h>

/* Milliseconds on the monotonic clock. */
static inline double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

static inline void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* The number of threads of this process, -1 if unknown. */
static inline int threads(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1) break;
    if (f) fclose(f);
    return n;
}

/* Open descriptors: the entries of /proc/self/fd (the directory's own
 * descriptor included, the same every time), -1 if unknown. */
static inline int descriptors(void) {
    DIR *dir = opendir("/proc/self/fd");
    int n = 0;
    if (!dir) return -1;
    for (struct dirent *e; (e = readdir(dir)) != NULL;)
        if (e->d_name[0] != '.') n++;
    closedir(dir);
    return n;
}

#endif
