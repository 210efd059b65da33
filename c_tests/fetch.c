/* The non-blocking requests of the C API (luanet_fetch and its handle,
 * luanet_request_set_stream, luanet_configure, luanet_wakeup_fd) against
 * the local servers, run inside testpeer/serve.py. Also built with
 * AddressSanitizer and UndefinedBehaviorSanitizer. Linux only (/proc). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <luanet.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "process.h"
#include "peer.h"

static int error_is(const char *expected) { return strcmp(luanet_last_error(), expected) == 0; }

static const char *env(const char *name) {
    const char *value = getenv(name);
    return value ? value : "";
}

/* The body as a NUL-terminated copy in a static buffer. */
static const char *body_text(const luanet_response *r) {
    static char text[4096];
    size_t len = 0;
    const uint8_t *body = luanet_response_body(r, &len);
    if (len >= sizeof text) len = sizeof text - 1;
    if (len) memcpy(text, body, len);
    text[len] = 0;
    return text;
}

/* A fetch of url(base, path), optionally streaming; NULL (and a failed
 * check) if refused. The request is freed at once: the fetch copied it. */
static luanet_fetch_handle *start_with(const char *base, const char *path, bool stream) {
    luanet_request *req = NULL;
    luanet_fetch_handle *f = NULL;
    if (luanet_request_new(url(base, path), &req) != LUANET_OK) {
        CHECK(0, "luanet_request_new");
        return NULL;
    }
    if (stream && luanet_request_set_stream(req, true) != LUANET_OK) CHECK(0, "luanet_request_set_stream");
    if (luanet_fetch(req, &f) != LUANET_OK) {
        CHECK(0, "luanet_fetch");
        f = NULL;
    }
    luanet_request_free(req);
    return f;
}

static luanet_fetch_handle *start(const char *base, const char *path) { return start_with(base, path, false); }

/* A blocking GET of a path of the plain server, for the peer's records:
 * its body in a static buffer ("" on failure). */
static const char *peer_get(const char *path) {
    static char text[4096];
    luanet_response *r = NULL;
    text[0] = 0;
    if (luanet_http_get(url("LUANET_HTTP", path), 5000, &r) == LUANET_OK) {
        snprintf(text, sizeof text, "%s", body_text(r));
        luanet_response_free(r);
    }
    return text;
}

/* The integer after "key": in a flat JSON object, -1 when absent. */
static long json_int(const char *json, const char *key) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\": ", key);
    const char *at = strstr(json, pattern);
    return at ? strtol(at + strlen(pattern), NULL, 10) : -1;
}

/* Polls /drip-state?id=id every 20 ms for at most ms; true once it is
 * `state`. */
static int drip_becomes(const char *id, const char *state, long ms) {
    char path[128];
    snprintf(path, sizeof path, "/drip-state?id=%s", id);
    double deadline = now_ms() + (double)ms;
    do {
        if (strcmp(peer_get(path), state) == 0) return 1;
        sleep_ms(20);
    } while (now_ms() < deadline);
    return strcmp(peer_get(path), state) == 0;
}

/* Reads the wake-up descriptor once (it is nonblocking: EAGAIN when it is
 * not readable). The count read, or 0. */
static uint64_t drain(int fd) {
    uint64_t count = 0;
    ssize_t n = read(fd, &count, sizeof count);
    if (n != (ssize_t)sizeof count) count = 0;
    return count;
}

static int readable(int fd, int timeout_ms) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, timeout_ms);
}

static void test_poll_and_wait(void) {
    luanet_fetch_handle *f = start("LUANET_HTTP", "/delay?ms=300");
    luanet_response *r = NULL, *again = NULL;
    CHECK(luanet_fetch_poll(f, &r) == LUANET_EMPTY, "poll right after the start: LUANET_EMPTY");
    CHECK(r == NULL, "poll while pending leaves the out-parameter untouched");
    CHECK(luanet_fetch_state(f) == 0, "state 0 (pending)");
    CHECK(luanet_fetch_wait(f, 10000, &r) == LUANET_OK, "wait: LUANET_OK");
    CHECK(luanet_response_status(r) == 200 && strcmp(body_text(r), "ok") == 0, "wait: 200 \"ok\"");
    CHECK(strcmp(luanet_response_url(r), url("LUANET_HTTP", "/delay?ms=300")) == 0, "the response's URL");
    CHECK(luanet_fetch_poll(f, &again) == LUANET_OK, "poll after the end: LUANET_OK again");
    CHECK(again != NULL && again != r, "a new response object each call");
    CHECK(luanet_response_status(again) == 200 && strcmp(body_text(again), "ok") == 0, "the same status and body");
    CHECK(luanet_fetch_state(f) == 1, "state 1 (done)");
    luanet_response_free(r);
    luanet_response_free(again);
    r = NULL;
    CHECK(luanet_fetch_wait(f, 50, &r) == LUANET_OK && luanet_response_status(r) == 200,
          "wait on a finished fetch: LUANET_OK at once");
    luanet_response_free(r);
    luanet_fetch_free(f);
}

static void test_timeout_and_cancel(void) {
    luanet_fetch_handle *f = start("LUANET_HTTP", "/delay?ms=2000");
    luanet_response *r = NULL;
    double t0 = now_ms();
    CHECK(luanet_fetch_wait(f, 50, &r) == LUANET_TIMEOUT, "wait 50 ms on a 2 s request: LUANET_TIMEOUT");
    double waited = now_ms() - t0;
    CHECK(waited >= 50.0 && waited < 1000.0, "wait took its 50 ms");
    CHECK(r == NULL, "no response on a timeout");
    CHECK(luanet_fetch_state(f) == 0, "still pending after the timeout");
    CHECK(luanet_fetch_cancel(f) == LUANET_OK, "cancel");
    CHECK(luanet_fetch_poll(f, &r) == LUANET_ERR_NETWORK, "poll after cancel: LUANET_ERR_NETWORK");
    CHECK(error_is("cancelled"), "luanet_last_error() is \"cancelled\"");
    CHECK(luanet_last_error_kind() == LUANET_ERROR_ABORTED, "kind LUANET_ERROR_ABORTED");
    CHECK(r == NULL, "no response for a cancelled fetch");
    CHECK(luanet_fetch_state(f) == 3, "state 3 (cancelled)");
    t0 = now_ms();
    CHECK(luanet_fetch_wait(f, 10000, &r) == LUANET_ERR_NETWORK && luanet_last_error_kind() == LUANET_ERROR_ABORTED,
          "wait after cancel: the same failure");
    CHECK(now_ms() - t0 < 1000.0, "at once");
    CHECK(luanet_fetch_cancel(f) == LUANET_OK && luanet_fetch_state(f) == 3, "cancel twice is fine");
    luanet_fetch_free(f);
}

static void test_cancel_mid_download(void) {
    luanet_fetch_handle *f = start("LUANET_HTTP", "/drip?id=c-cancel&ms=20");
    luanet_progress p = {0, 0, 0, 0};
    double deadline = now_ms() + 5000.0;
    while (luanet_fetch_progress(f, &p) == LUANET_OK && p.received == 0 && now_ms() < deadline) sleep_ms(10);
    CHECK(p.received > 0 && p.received < 1000000, "bytes arrive");
    CHECK(p.receive_total == 1000000, "the announced total");
    CHECK(luanet_fetch_state(f) == 0, "pending mid-download");
    CHECK(luanet_fetch_cancel(f) == LUANET_OK, "cancel mid-download");
    luanet_response *r = NULL;
    CHECK(luanet_fetch_poll(f, &r) == LUANET_ERR_NETWORK && error_is("cancelled") &&
              luanet_last_error_kind() == LUANET_ERROR_ABORTED,
          "poll: cancelled, kind aborted");
    CHECK(luanet_fetch_state(f) == 3, "state 3");
    CHECK(drip_becomes("c-cancel", "disconnected", 5000), "the peer sees the connection close within 5 s");
    CHECK(luanet_fetch_state(f) == 3, "still cancelled");
    luanet_fetch_free(f);
}

static void test_progress(void) {
    luanet_fetch_handle *f = start("LUANET_HTTP", "/drip?id=c-progress&bytes=100000&ms=2&piece=4096");
    luanet_progress p;
    uint64_t last = 0;
    int samples = 0, shrank = 0, bad_total = 0, bad_send = 0, between = 0;
    double deadline = now_ms() + 10000.0;
    while (luanet_fetch_state(f) == 0 && now_ms() < deadline) {
        if (luanet_fetch_progress(f, &p) != LUANET_OK) break;
        samples++;
        if (p.received < last) shrank++;
        if (p.receive_total != -1 && p.receive_total != 100000) bad_total++;
        if (p.sent != 0 || p.send_total != -1) bad_send++;
        if (p.received > 0 && p.received < 100000) between++;
        last = p.received;
        sleep_ms(1);
    }
    CHECK(samples > 3, "sampled while pending");
    CHECK(shrank == 0, "received never decreases");
    CHECK(bad_total == 0, "receive_total is -1 or 100000 while pending");
    CHECK(bad_send == 0, "sent 0, send_total -1 for a GET while pending");
    CHECK(between > 0, "a count between 0 and the total was seen while pending");
    CHECK(luanet_fetch_state(f) == 1, "done");
    CHECK(luanet_fetch_progress(f, &p) == LUANET_OK, "progress at the end");
    CHECK(p.received >= last, "received never decreases, at the end either");
    CHECK(p.received == 100000, "received == 100000 at the end");
    CHECK(p.receive_total == 100000, "receive_total == 100000");
    CHECK(p.sent == 0 && p.send_total == -1, "sent 0, send_total -1 for a GET");
    luanet_response *r = NULL;
    size_t len = 0;
    CHECK(luanet_fetch_poll(f, &r) == LUANET_OK && luanet_response_status(r) == 200, "200");
    luanet_response_body(r, &len);
    CHECK(len == 100000, "the body: 100000 bytes");
    luanet_response_free(r);
    luanet_fetch_free(f);

    luanet_request *req = NULL;
    CHECK(luanet_request_new(url("LUANET_HTTP", "/echo"), &req) == LUANET_OK, "a POST");
    static uint8_t body[1000];
    memset(body, 'x', sizeof body);
    CHECK(luanet_request_set_method(req, "POST") == LUANET_OK &&
              luanet_request_set_body(req, body, sizeof body) == LUANET_OK,
          "with a body of 1000 bytes");
    CHECK(luanet_fetch(req, &f) == LUANET_OK, "fetch the POST");
    luanet_request_free(req);
    CHECK(luanet_fetch_wait(f, 10000, &r) == LUANET_OK && luanet_response_status(r) == 200, "the POST: 200");
    luanet_response_body(r, &len);
    CHECK(len == 1000, "echoed");
    luanet_response_free(r);
    CHECK(luanet_fetch_progress(f, &p) == LUANET_OK && p.sent == 1000 && p.send_total == 1000,
          "sent 1000, send_total 1000");
    luanet_fetch_free(f);
}

static void test_failure(void) {
    char path[64];
    snprintf(path, sizeof path, "http://127.0.0.1:%s/", env("LUANET_CLOSED_PORT"));
    luanet_request *req = NULL;
    luanet_fetch_handle *f = NULL;
    CHECK(luanet_request_new(path, &req) == LUANET_OK, "a request to a closed port");
    CHECK(luanet_fetch(req, &f) == LUANET_OK, "starts (the failure comes later)");
    luanet_request_free(req);
    luanet_response *r = NULL;
    CHECK(luanet_fetch_wait(f, 10000, &r) == LUANET_ERR_NETWORK, "ends with LUANET_ERR_NETWORK");
    CHECK(luanet_last_error_kind() == LUANET_ERROR_CONNECT, "kind LUANET_ERROR_CONNECT");
    CHECK(luanet_fetch_state(f) == 2, "state 2 (failed)");
    CHECK(luanet_fetch_poll(f, &r) == LUANET_ERR_NETWORK && luanet_last_error_kind() == LUANET_ERROR_CONNECT,
          "poll: the same, every time");
    CHECK(r == NULL, "no response");
    CHECK(luanet_fetch_cancel(f) == LUANET_OK && luanet_fetch_state(f) == 2, "cancel after the end changes nothing");
    luanet_fetch_free(f);
}

/* Reads a streaming fetch of /sse?n=3&ms=100&hold=500 with a buffer of
 * `capacity` bytes until LUANET_CLOSED. */
static void read_events(size_t capacity, const char *what) {
    static const char expected[] = "data: event 1\n\ndata: event 2\n\ndata: event 3\n\n";
    char got[256];
    uint8_t buffer[4096];
    size_t total = 0, len = 0;
    int reads = 0, bad_pending = 0, bad_after = 0, first_pending = 0, closed = 0;
    luanet_fetch_handle *f = start_with("LUANET_HTTP", "/sse?n=3&ms=100&hold=500", true);
    double deadline = now_ms() + 10000.0;
    while (now_ms() < deadline) {
        int pending = luanet_fetch_state(f) == 0;
        len = 12345;
        enum luanet_result res = luanet_fetch_read(f, buffer, capacity, &len);
        if (res == LUANET_OK && len > 0 && len <= capacity) {
            if (total == 0) first_pending = luanet_fetch_state(f) == 0;
            if (total + len <= sizeof got) memcpy(got + total, buffer, len);
            total += len;
            reads++;
            continue;
        }
        if (res == LUANET_CLOSED && len == 0) {
            closed = 1;
            break;
        }
        if (res == LUANET_EMPTY && len == 0) {
            if (!pending) bad_after++; /* finished: every byte is there */
            sleep_ms(5);
            continue;
        }
        bad_pending++; /* anything else */
        break;
    }
    char label[160];
    snprintf(label, sizeof label, "%s: every read is LUANET_EMPTY (len 0) or LUANET_OK (1..%zu bytes)", what,
             capacity);
    CHECK(bad_pending == 0, label);
    snprintf(label, sizeof label, "%s: no LUANET_EMPTY once finished", what);
    CHECK(bad_after == 0, label);
    snprintf(label, sizeof label, "%s: the first event arrives while still pending", what);
    CHECK(first_pending, label);
    snprintf(label, sizeof label, "%s: then LUANET_CLOSED", what);
    CHECK(closed, label);
    snprintf(label, sizeof label, "%s: the concatenation is exactly the three events", what);
    CHECK(total == strlen(expected) && memcmp(got, expected, total) == 0, label);
    if (capacity < strlen(expected)) {
        snprintf(label, sizeof label, "%s: in pieces (at least %zu reads)", what,
                 (strlen(expected) + capacity - 1) / capacity);
        CHECK((size_t)reads >= (strlen(expected) + capacity - 1) / capacity, label);
    }
    len = 12345;
    snprintf(label, sizeof label, "%s: read after the end: LUANET_CLOSED again", what);
    CHECK(luanet_fetch_read(f, buffer, capacity, &len) == LUANET_CLOSED && len == 0, label);
    luanet_response *r = NULL;
    size_t body_len = 99;
    snprintf(label, sizeof label, "%s: poll: 200", what);
    CHECK(luanet_fetch_poll(f, &r) == LUANET_OK && luanet_response_status(r) == 200, label);
    luanet_response_body(r, &body_len);
    snprintf(label, sizeof label, "%s: with an empty body", what);
    CHECK(body_len == 0, label);
    const char *type = luanet_response_header(r, "content-type", NULL);
    snprintf(label, sizeof label, "%s: Content-Type text/event-stream", what);
    CHECK(type && strcmp(type, "text/event-stream") == 0, label);
    luanet_response_free(r);
    luanet_fetch_free(f);
}

static void test_stream(void) {
    read_events(4096, "4096-byte buffer");
    read_events(5, "5-byte buffer");

    luanet_fetch_handle *f = start("LUANET_HTTP", "/delay?ms=0");
    uint8_t buffer[16];
    size_t len = 7;
    CHECK(luanet_fetch_read(f, buffer, sizeof buffer, &len) == LUANET_ERR_ARGUMENT,
          "luanet_fetch_read on a fetch that does not stream: LUANET_ERR_ARGUMENT");
    CHECK(error_is("the request was not made with luanet_request_set_stream"), "its message");
    CHECK(len == 7, "len untouched");
    luanet_response *r = NULL;
    CHECK(luanet_fetch_wait(f, 10000, &r) == LUANET_OK && luanet_response_status(r) == 200, "that fetch: 200");
    luanet_response_free(r);
    CHECK(luanet_fetch_read(f, buffer, sizeof buffer, &len) == LUANET_ERR_ARGUMENT, "nor once it is done");
    luanet_fetch_free(f);

    f = start_with("LUANET_HTTP", "/delay?ms=0", true);
    CHECK(luanet_fetch_read(f, NULL, 4, &len) == LUANET_ERR_ARGUMENT, "read into a NULL buffer");
    CHECK(luanet_fetch_read(f, buffer, 0, &len) == LUANET_ERR_ARGUMENT && error_is("capacity is 0"),
          "read into no room");
    CHECK(luanet_fetch_read(f, buffer, sizeof buffer, NULL) == LUANET_ERR_ARGUMENT, "read with a NULL len");
    r = NULL;
    CHECK(luanet_fetch_wait(f, 10000, &r) == LUANET_OK && luanet_response_status(r) == 200, "a streamed 200");
    luanet_response_free(r);
    CHECK(luanet_fetch_read(f, buffer, sizeof buffer, &len) == LUANET_OK && len == 2 && memcmp(buffer, "ok", 2) == 0,
          "the body is read, not in the response");
    CHECK(luanet_fetch_read(f, buffer, sizeof buffer, &len) == LUANET_CLOSED, "then the end");
    luanet_fetch_free(f);

    luanet_request *req = NULL;
    CHECK(luanet_request_new(url("LUANET_HTTP", "/"), &req) == LUANET_OK, "a request");
    CHECK(luanet_request_set_stream(req, true) == LUANET_OK, "set_stream true");
    r = NULL;
    CHECK(luanet_request_perform(req, &r) == LUANET_ERR_ARGUMENT,
          "luanet_request_perform on a streaming request: LUANET_ERR_ARGUMENT");
    CHECK(error_is("a streaming request is for luanet_fetch only"), "its message");
    CHECK(r == NULL, "no response");
    CHECK(luanet_request_set_stream(req, false) == LUANET_OK, "set_stream false");
    CHECK(luanet_request_perform(req, &r) == LUANET_OK && luanet_response_status(r) == 200, "then it performs");
    luanet_response_free(r);
    CHECK(luanet_request_set_stream(req, true) == LUANET_OK && luanet_request_set_output(req, "/tmp/unused") == LUANET_OK,
          "stream and output");
    f = NULL;
    CHECK(luanet_fetch(req, &f) == LUANET_ERR_ARGUMENT && error_is("stream and output cannot be combined") && f == NULL,
          "luanet_fetch refuses stream with output");
    luanet_request_free(req);
    CHECK(luanet_request_set_stream(NULL, true) == LUANET_ERR_ARGUMENT, "set_stream on NULL");
}

static void test_wakeup(void) {
    int fd = luanet_wakeup_fd();
    CHECK(fd >= 0, "luanet_wakeup_fd");
    CHECK(luanet_wakeup_fd() == fd, "the same descriptor on a second call");
    drain(fd);
    CHECK(readable(fd, 0) == 0, "drained: not readable");
    luanet_fetch_handle *f = start("LUANET_HTTP", "/delay?ms=200");
    luanet_response *r = NULL;
    CHECK(luanet_fetch_poll(f, &r) == LUANET_EMPTY, "pending");
    double t0 = now_ms();
    CHECK(readable(fd, 5000) == 1, "readable once the fetch finished");
    CHECK(now_ms() - t0 >= 100.0, "not before (the request takes 200 ms)");
    CHECK(luanet_fetch_poll(f, &r) == LUANET_OK && luanet_response_status(r) == 200,
          "then luanet_fetch_poll gives LUANET_OK");
    luanet_response_free(r);
    CHECK(readable(fd, 0) == 1, "stays readable until drained");
    CHECK(drain(fd) >= 1, "reading 8 bytes drains it");
    CHECK(readable(fd, 0) == 0, "then not readable, nothing else being in flight");
    luanet_fetch_free(f);
    CHECK(readable(fd, 0) == 0, "freeing a finished fetch is no news");

    /* A streaming fetch: readable when bytes arrive, before the end. */
    f = start_with("LUANET_HTTP", "/sse?n=1&ms=100&hold=1000", true);
    CHECK(readable(fd, 5000) == 1, "readable when streamed bytes arrive");
    CHECK(luanet_fetch_state(f) == 0, "while the stream is still open");
    uint8_t buffer[64];
    size_t len = 0;
    CHECK(luanet_fetch_read(f, buffer, sizeof buffer, &len) == LUANET_OK && len == 15, "the event is there");
    drain(fd);
    luanet_fetch_free(f);
    drain(fd);
}

static void test_configure_and_queue(void) {
    CHECK(luanet_configure(0, 0) == LUANET_OK, "configure(0, 0) keeps the values");
    CHECK(luanet_configure(1048577, 0) == LUANET_ERR_ARGUMENT, "a host cap past 1048576");
    CHECK(error_is("max_host_connections must be between 1 and 1048576"), "its message");
    CHECK(luanet_configure(0, 1048577) == LUANET_ERR_ARGUMENT, "a total cap past 1048576");
    CHECK(error_is("max_total_connections must be between 1 and 1048576"), "its message");

    CHECK(luanet_configure(2, 0) == LUANET_OK, "configure(2, 0)");
    luanet_fetch_handle *f[6];
    int round_done[6], left = 6, round = 0;
    for (int i = 0; i < 6; i++) {
        f[i] = start("LUANET_HTTP", "/delay?ms=300");
        round_done[i] = -1;
    }
    double deadline = now_ms() + 20000.0;
    while (left > 0 && now_ms() < deadline) {
        for (int i = 0; i < 6; i++) {
            luanet_response *r = NULL;
            if (round_done[i] < 0 && luanet_fetch_poll(f[i], &r) == LUANET_OK) {
                round_done[i] = round;
                left--;
                luanet_response_free(r);
            }
        }
        round++;
        sleep_ms(5);
    }
    CHECK(left == 0, "all 6 finish");
    char order[128];
    snprintf(order, sizeof order, "rounds %d %d | %d %d | %d %d", round_done[0], round_done[1], round_done[2],
             round_done[3], round_done[4], round_done[5]);
    printf("# queue: %s\n", order);
    int ok12 = 1, ok34 = 1;
    for (int a = 0; a < 2; a++)
        for (int b = 2; b < 6; b++) ok12 &= round_done[a] < round_done[b];
    for (int a = 2; a < 4; a++)
        for (int b = 4; b < 6; b++) ok34 &= round_done[a] < round_done[b];
    CHECK(ok12, "fetches 1-2 finish before any of 3-6");
    CHECK(ok34, "fetches 3-4 finish before any of 5-6");
    for (int i = 0; i < 6; i++) luanet_fetch_free(f[i]);
    CHECK(luanet_configure(6, 0) == LUANET_OK, "back to 6 per host");
}

enum { MANY = 200 };

static void test_concurrency(void) {
    CHECK(luanet_configure(250, 256) == LUANET_OK, "configure(250, 256)");
    luanet_fetch_handle *one = start("LUANET_HTTP", "/delay?ms=1000");
    sleep_ms(300);
    CHECK(luanet_fetch_state(one) == 0, "one request in flight");
    int single = threads();
    luanet_response *r = NULL;
    CHECK(luanet_fetch_wait(one, 10000, &r) == LUANET_OK && luanet_response_status(r) == 200, "it finishes");
    luanet_response_free(r);
    luanet_fetch_free(one);

    static luanet_fetch_handle *f[MANY];
    double t0 = now_ms();
    for (int i = 0; i < MANY; i++) f[i] = start("LUANET_HTTP", "/delay?ms=1000");
    sleep_ms(300);
    int pending = 0;
    for (int i = 0; i < MANY; i++) pending += luanet_fetch_state(f[i]) == 0;
    int during = threads();
    int ok = 0;
    for (int i = 0; i < MANY; i++) {
        r = NULL;
        if (luanet_fetch_wait(f[i], 10000, &r) == LUANET_OK && luanet_response_status(r) == 200) ok++;
        luanet_response_free(r);
    }
    double took = now_ms() - t0;
    char what[128];
    snprintf(what, sizeof what, "all %d in flight when the threads are counted (%d)", MANY, pending);
    CHECK(pending == MANY, what);
    snprintf(what, sizeof what, "all %d finish with 200 (%d)", MANY, ok);
    CHECK(ok == MANY, what);
    snprintf(what, sizeof what, "within 3 s of the start (%.0f ms)", took);
    CHECK(took < 3000.0, what);
    snprintf(what, sizeof what, "threads with %d in flight == with one (%d, %d)", MANY, during, single);
    CHECK(single > 0 && during == single, what);
    for (int i = 0; i < MANY; i++) luanet_fetch_free(f[i]);
    CHECK(luanet_configure(6, 256) == LUANET_OK, "back to the defaults (6, 256)");
}

enum { H2 = 100 };

static void test_http2(void) {
    char path[128], tag[64];
    snprintf(tag, sizeof tag, "c-h2-%ld", (long)getpid());
    snprintf(path, sizeof path, "/delay?ms=200&tag=%s", tag);
    static luanet_fetch_handle *f[H2];
    for (int i = 0; i < H2; i++) f[i] = start("LUANET_HTTPS", path);
    int ok = 0, v2 = 0;
    for (int i = 0; i < H2; i++) {
        luanet_response *r = NULL;
        if (luanet_fetch_wait(f[i], 20000, &r) == LUANET_OK && luanet_response_status(r) == 200) ok++;
        const char *version = luanet_response_http_version(r);
        if (version && strcmp(version, "2") == 0) v2++;
        luanet_response_free(r);
        luanet_fetch_free(f[i]);
    }
    char what[128];
    snprintf(what, sizeof what, "%d HTTPS fetches: all 200 (%d)", H2, ok);
    CHECK(ok == H2, what);
    snprintf(what, sizeof what, "all over HTTP/2 (%d)", v2);
    CHECK(v2 == H2, what);
    snprintf(path, sizeof path, "/ports?tag=%s", tag);
    const char *seen = peer_get(path);
    printf("# %s: %s\n", path, seen);
    CHECK(json_int(seen, "requests") == H2, "the peer saw 100 requests");
    CHECK(json_int(seen, "connections") == 1, "on one connection");
}

static void test_null_handling(void) {
    luanet_response *r = (luanet_response *)1;
    luanet_progress p;
    uint8_t buffer[8];
    size_t len = 0;
    CHECK(luanet_fetch_poll(NULL, &r) == LUANET_ERR_ARGUMENT && error_is("fetch is NULL"), "poll NULL");
    CHECK(luanet_fetch_wait(NULL, 10, &r) == LUANET_ERR_ARGUMENT, "wait NULL");
    CHECK(luanet_fetch_cancel(NULL) == LUANET_ERR_ARGUMENT, "cancel NULL");
    CHECK(luanet_fetch_progress(NULL, &p) == LUANET_ERR_ARGUMENT, "progress NULL");
    CHECK(luanet_fetch_read(NULL, buffer, sizeof buffer, &len) == LUANET_ERR_ARGUMENT, "read NULL");
    CHECK(luanet_fetch_state(NULL) == -1, "state NULL: -1");
    CHECK(r == (luanet_response *)1, "out-parameter untouched");
    luanet_fetch_free(NULL);
    CHECK(1, "luanet_fetch_free(NULL) is fine");

    luanet_request *req = NULL;
    CHECK(luanet_request_new(url("LUANET_HTTP", "/"), &req) == LUANET_OK, "a request");
    CHECK(luanet_fetch(req, NULL) == LUANET_ERR_ARGUMENT && error_is("the out-parameter is NULL"),
          "luanet_fetch into NULL");
    luanet_fetch_handle *f = (luanet_fetch_handle *)1;
    CHECK(luanet_fetch(NULL, &f) == LUANET_ERR_ARGUMENT && error_is("request is NULL"), "luanet_fetch of NULL");
    CHECK(f == (luanet_fetch_handle *)1, "out-parameter untouched");
    CHECK(luanet_fetch(req, &f) == LUANET_OK, "luanet_fetch");
    luanet_request_free(req);
    CHECK(luanet_fetch_poll(f, NULL) == LUANET_ERR_ARGUMENT, "poll into NULL");
    CHECK(luanet_fetch_wait(f, 10, NULL) == LUANET_ERR_ARGUMENT, "wait into NULL");
    CHECK(luanet_fetch_progress(f, NULL) == LUANET_ERR_ARGUMENT, "progress into NULL");
    r = NULL;
    CHECK(luanet_fetch_wait(f, 10000, &r) == LUANET_OK && luanet_response_status(r) == 200,
          "the fetch still works (the request was freed right after the start)");
    luanet_response_free(r);
    luanet_fetch_free(f);
}

static void test_free_cancels(void) {
    luanet_fetch_handle *f = start("LUANET_HTTP", "/drip?id=c-free&ms=20");
    CHECK(drip_becomes("c-free", "open", 5000), "the drip is open");
    CHECK(luanet_fetch_state(f) == 0, "pending");
    luanet_fetch_free(f);
    CHECK(drip_becomes("c-free", "disconnected", 5000), "freeing a pending fetch cancels it: the peer sees it close");
}

static void test_response_outlives_fetch(void) {
    luanet_fetch_handle *f = start("LUANET_HTTP", "/delay?ms=0");
    luanet_response *r = NULL;
    CHECK(luanet_fetch_wait(f, 10000, &r) == LUANET_OK, "a fetch");
    luanet_fetch_free(f);
    CHECK(luanet_response_status(r) == 200 && strcmp(body_text(r), "ok") == 0,
          "its response stays valid after luanet_fetch_free");
    luanet_response_free(r);
}

int main(void) {
    if (!getenv("LUANET_HTTP") || !getenv("LUANET_HTTPS") || !getenv("LUANET_CLOSED_PORT")) {
        fprintf(stderr, "run under testpeer/serve.py\n");
        return 2;
    }
    test_poll_and_wait();
    test_timeout_and_cancel();
    test_cancel_mid_download();
    test_progress();
    test_failure();
    test_stream();
    test_wakeup();
    test_configure_and_queue();
    test_concurrency();
    test_http2();
    test_null_handling();
    test_free_cancels();
    test_response_outlives_fetch();
    return finish();
}
