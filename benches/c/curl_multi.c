/*
 * curl_multi: the raw-libcurl peer of luanet's non-blocking requests
 * (net.fetch), on libcurl's multi interface.
 *
 * luanet runs every net.fetch on one library I/O thread with a libcurl multi
 * handle, so the fastest it can be is one multi handle driven directly from
 * C: no Lua, no second thread, no hand-off. This client is that limit. It
 * keeps INFLIGHT transfers going at once, each easy handle reused as soon as
 * its transfer ends (so connections are kept alive and nothing is set up
 * twice), each response body collected into memory and its status checked.
 * It is driven by curl_multi_perform + curl_multi_poll, the simplest loop:
 * with at most a hundred transfers, perform's walk over every handle is
 * cheap, so curl_multi_socket_action would only add bookkeeping.
 *
 * It links the distribution's libcurl (luanet vendors its own, newer one):
 *
 *   cc -O2 -Wall -Wextra -Werror curl_multi.c $(curl-config --cflags --libs)
 *
 * Usage:
 *   curl_multi get URL COUNT [INFLIGHT]  COUNT GETs over HTTP/1.1, INFLIGHT
 *                                        (default 50) at a time, at most
 *                                        INFLIGHT connections
 *                                        (CURLMOPT_MAX_HOST_CONNECTIONS)
 *   curl_multi h2 URL COUNT [INFLIGHT]   COUNT GETs multiplexed over ONE
 *                                        HTTP/2 TLS connection (ALPN,
 *                                        CURLPIPE_MULTIPLEX, CURLOPT_PIPEWAIT,
 *                                        certificate not verified), INFLIGHT
 *                                        (default 100) streams at a time;
 *                                        every reply must be HTTP/2
 *   Each reply must be 200. Prints: ok ops=COUNT bytes=TOTAL connections=N
 *   (N: connections libcurl opened, from CURLINFO_NUM_CONNECTS; h2 fails
 *   unless it is 1).
 *
 * It does not time itself: the caller times the process, and subtracts a run
 * with COUNT=0 to remove start-up. Any error or unexpected status ends it
 * with a message on stderr and a non-zero exit status.
 */

#include <curl/curl.h>

#define PROGRAM "curl_multi"
#include "client.h"

/* Budget for one curl_multi_poll, in ms; the loop only goes round again. */
#define POLL_MS 1000
/* Budget for one transfer, so that a broken server fails the run. */
#define TRANSFER_TIMEOUT_S 30L

/* One easy handle and its body; reused for one transfer after another. */
struct slot {
    CURL *h;
    struct body b;
};

static void usage(void)
{
    fputs("usage: curl_multi get URL COUNT [INFLIGHT]\n"
          "       curl_multi h2 URL COUNT [INFLIGHT]\n",
          stderr);
    exit(2);
}

static void setup(struct slot *s, const char *url, int h2)
{
    CURL *h = curl_easy_init();
    if (!h)
        fail("curl_easy_init failed");
    s->h = h;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s->b);
    curl_easy_setopt(h, CURLOPT_PRIVATE, s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, TRANSFER_TIMEOUT_S);
    if (h2) {
        curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
        /* Wait for the one connection rather than open another. */
        curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    }
}

static void add(CURLM *m, struct slot *s)
{
    s->b.len = 0;
    CURLMcode mc = curl_multi_add_handle(m, s->h);
    if (mc != CURLM_OK)
        fail("curl_multi_add_handle: %s", curl_multi_strerror(mc));
}

static void run(const char *url, long long count, long long inflight, int h2)
{
    if (inflight < 1)
        fail("INFLIGHT must be at least 1");
    CURLM *m = curl_multi_init();
    if (!m)
        fail("curl_multi_init failed");
    /* h2: one connection, every stream on it; HTTP/1.1: one per transfer. */
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, h2 ? 1L : (long)inflight);
    curl_multi_setopt(m, CURLMOPT_PIPELINING, h2 ? CURLPIPE_MULTIPLEX : CURLPIPE_NOTHING);
    if (h2)
        curl_multi_setopt(m, CURLMOPT_MAX_CONCURRENT_STREAMS, (long)inflight);

    long long slots = inflight < count ? inflight : count;
    struct slot *slot = calloc(slots ? (size_t)slots : 1, sizeof *slot);
    if (!slot)
        fail("out of memory for %lld handles", slots);
    long long started = 0, done = 0, connections = 0;
    unsigned long long bytes = 0;
    for (long long i = 0; i < slots; i++) {
        setup(&slot[i], url, h2);
        add(m, &slot[i]);
        started++;
    }

    while (done < count) {
        int running = 0;
        CURLMcode mc = curl_multi_perform(m, &running);
        if (mc != CURLM_OK)
            fail("curl_multi_perform: %s", curl_multi_strerror(mc));
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *h = msg->easy_handle;
            struct slot *s = NULL;
            curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&s);
            if (msg->data.result != CURLE_OK)
                fail("request #%lld: %s", done + 1, curl_easy_strerror(msg->data.result));
            long status = 0, version = 0, connects = 0;
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
            curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, &version);
            curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &connects);
            if (status != 200)
                fail("request #%lld: status %ld, expected 200", done + 1, status);
            if (h2 && version != CURL_HTTP_VERSION_2_0)
                fail("request #%lld: not HTTP/2 (CURLINFO_HTTP_VERSION %ld)", done + 1, version);
            if (s->b.len == 0)
                fail("request #%lld: empty body", done + 1);
            connections += connects;
            bytes += s->b.len;
            done++;
            curl_multi_remove_handle(m, h);
            if (started < count) {
                add(m, s);
                started++;
            }
        }
        if (done < count) {
            mc = curl_multi_poll(m, NULL, 0, POLL_MS, NULL);
            if (mc != CURLM_OK)
                fail("curl_multi_poll: %s", curl_multi_strerror(mc));
        }
    }
    if (h2 && count > 0 && connections != 1)
        fail("%lld connections for HTTP/2, expected 1", connections);
    for (long long i = 0; i < slots; i++) {
        curl_easy_cleanup(slot[i].h);
        free(slot[i].b.data);
    }
    free(slot);
    curl_multi_cleanup(m);
    printf("ok ops=%lld bytes=%llu connections=%lld\n", count, bytes, connections);
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5)
        usage();
    const char *mode = argv[1], *url = argv[2];
    int h2;
    if (strcmp(mode, "get") == 0)
        h2 = 0;
    else if (strcmp(mode, "h2") == 0)
        h2 = 1;
    else
        usage();
    long long count = number(argv[3]);
    long long inflight = argc == 5 ? number(argv[4]) : (h2 ? 100 : 50);
    if (curl_global_init(CURL_GLOBAL_ALL) != 0)
        fail("curl_global_init failed");
    run(url, count, inflight, h2);
    curl_global_cleanup();
    return 0;
}
