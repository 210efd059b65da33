/*
 * What the raw-libcurl peers (curl_client.c, curl_multi.c) share: failing
 * with a message, reading a count, collecting a body. Each defines
 * PROGRAM (its name, for messages) before including this.
 */
#ifndef LUANET_BENCH_CLIENT_H
#define LUANET_BENCH_CLIENT_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A response body, grown as data arrives; reset (not freed) per request. */
struct body {
    char *data;
    size_t len;
    size_t cap;
};

static void fail(const char *fmt, ...)
{
    va_list ap;
    fputs(PROGRAM ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* A non-negative whole number given on the command line. */
static long long number(const char *text)
{
    char *end;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || n < 0)
        fail("not a count or size: '%s'", text);
    return n;
}

/* libcurl's write callback: appends to the struct body in userdata. */
static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct body *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->len + n)
            cap *= 2;
        char *data = realloc(b->data, cap);
        if (!data)
            return 0; /* makes libcurl fail the transfer with CURLE_WRITE_ERROR */
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    return n;
}

#endif
