/*
 * curl_client: the raw-libcurl peer of the luanet benchmarks.
 *
 * luanet's HTTP side is libcurl underneath, so the fastest any binding can
 * be is libcurl driven directly from C: no Lua, no C ABI, no pool. This
 * client is that physical limit. It does what a library does for its caller
 * (one reused easy handle, so connections are kept alive; each response body
 * collected into memory; the status checked) and nothing more.
 *
 * It links the distribution's libcurl (luanet vendors its own, newer one):
 *
 *   cc -O2 -Wall -Wextra -Werror curl_client.c $(curl-config --cflags --libs)
 *
 * Usage:
 *   curl_client get URL COUNT         COUNT sequential GETs, each must be 200
 *                                     prints: ok ops=COUNT bytes=TOTAL
 *   curl_client get_headers URL COUNT as get, each with the request headers
 *                                     "Accept: text/plain" and "X-Bench: 1"
 *   curl_client post URL COUNT SIZE   COUNT POSTs of a SIZE-byte body
 *                                     (application/octet-stream, no
 *                                     Expect: 100-continue), each must be 200
 *                                     prints: ok ops=COUNT
 *   curl_client download URL [COUNT]  one GET (COUNT 1, the default; 0 makes none), body in memory
 *                                     prints: ok ops=1 bytes=N
 *
 * It does not time itself: the caller times the process, and subtracts a run
 * with COUNT=0 to remove start-up. Any error or unexpected status ends it
 * with a message on stderr and a non-zero exit status.
 */

#include <curl/curl.h>

#define PROGRAM "curl_client"
#include "client.h"

static void usage(void)
{
    fputs("usage: curl_client get URL COUNT\n"
          "       curl_client get_headers URL COUNT\n"
          "       curl_client post URL COUNT SIZE\n"
          "       curl_client download URL [COUNT]\n",
          stderr);
    exit(2);
}

static CURL *new_handle(const char *url, struct body *b)
{
    CURL *h = curl_easy_init();
    if (!h)
        fail("curl_easy_init failed");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    return h;
}

/* One transfer on the handle as configured; the status must be 200. */
static void perform(CURL *h, struct body *b, long long i)
{
    b->len = 0;
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK)
        fail("request #%lld: %s", i + 1, curl_easy_strerror(rc));
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200)
        fail("request #%lld: status %ld, expected 200", i + 1, status);
}

/* COUNT GETs; with_headers adds "Accept: text/plain" and "X-Bench: 1". */
static void get(const char *url, long long count, int with_headers)
{
    struct body b = {0};
    CURL *h = new_handle(url, &b);
    struct curl_slist *headers = NULL;
    if (with_headers) {
        headers = curl_slist_append(headers, "Accept: text/plain");
        headers = curl_slist_append(headers, "X-Bench: 1");
        if (!headers)
            fail("curl_slist_append failed");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    }
    unsigned long long total = 0;
    for (long long i = 0; i < count; i++) {
        perform(h, &b, i);
        total += b.len;
    }
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    free(b.data);
    printf("ok ops=%lld bytes=%llu\n", count, total);
}

static void post(const char *url, long long count, long long size)
{
    char *payload = malloc(size ? (size_t)size : 1);
    if (!payload)
        fail("out of memory for a %lld-byte body", size);
    for (long long i = 0; i < size; i++)
        payload[i] = (char)('a' + i % 26);

    struct body b = {0};
    CURL *h = new_handle(url, &b);
    struct curl_slist *headers = NULL;
    headers = curl_slist_append(headers, "Content-Type: application/octet-stream");
    headers = curl_slist_append(headers, "Expect:");
    if (!headers)
        fail("curl_slist_append failed");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
    for (long long i = 0; i < count; i++)
        perform(h, &b, i);
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    free(b.data);
    free(payload);
    printf("ok ops=%lld\n", count);
}

/* COUNT is 1, or 0 for the baseline run that only starts up. */
static void download(const char *url, long long count)
{
    struct body b = {0};
    CURL *h = new_handle(url, &b);
    if (count > 0)
        perform(h, &b, 0);
    curl_easy_cleanup(h);
    printf("ok ops=%lld bytes=%zu\n", count > 0 ? 1LL : 0LL, b.len);
    free(b.data);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        usage();
    if (curl_global_init(CURL_GLOBAL_ALL) != 0)
        fail("curl_global_init failed");
    const char *mode = argv[1], *url = argv[2];
    if (strcmp(mode, "get") == 0 && argc == 4)
        get(url, number(argv[3]), 0);
    else if (strcmp(mode, "get_headers") == 0 && argc == 4)
        get(url, number(argv[3]), 1);
    else if (strcmp(mode, "post") == 0 && argc == 5)
        post(url, number(argv[3]), number(argv[4]));
    else if (strcmp(mode, "download") == 0 && (argc == 3 || argc == 4))
        download(url, argc == 4 ? number(argv[3]) : 1);
    else
        usage();
    curl_global_cleanup();
    return 0;
}
