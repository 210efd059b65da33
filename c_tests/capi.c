/* Every function of the C API against the local servers (run inside
 * testpeer/serve.py), with no Lua anywhere in the process. Also built with
 * AddressSanitizer and UndefinedBehaviorSanitizer. */
#define _POSIX_C_SOURCE 200809L
#include <luanet.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "peer.h"

static int error_is(const char *expected) { return strcmp(luanet_last_error(), expected) == 0; }

static void test_version(void) {
    CHECK(strcmp(luanet_version(), "0.1.0") == 0, "luanet_version is 0.1.0");
    CHECK(strcmp(luanet_result_name(LUANET_ERR_NETWORK), "LUANET_ERR_NETWORK") == 0,
          "luanet_result_name names a result");
}

static void test_http_get(void) {
    luanet_response *r = NULL;
    CHECK(luanet_http_get(url("LUANET_HTTP", "/status/404"), 5000, &r) == LUANET_OK,
          "GET 404 is LUANET_OK (the transport worked)");
    CHECK(luanet_response_status(r) == 404, "status 404");
    size_t len = 99;
    const uint8_t *body = luanet_response_body(r, &len);
    CHECK(len == 10 && memcmp(body, "status 404", 10) == 0, "body 'status 404'");
    luanet_response_free(r);

    r = NULL;
    CHECK(luanet_http_get(url("LUANET_HTTP", "/bytes/256"), 0, &r) == LUANET_OK, "GET 256 bytes, default timeout");
    body = luanet_response_body(r, &len);
    int exact = len == 256;
    for (size_t i = 0; exact && i < 256; i++) exact = body[i] == (uint8_t)i;
    CHECK(exact, "all 256 byte values, NUL included");
    CHECK(luanet_response_body(r, NULL) == body, "body with a NULL length pointer");
    luanet_response_free(r);

    r = NULL;
    CHECK(luanet_http_get(url("LUANET_HTTPS", "/status/200"), 5000, &r) == LUANET_OK, "HTTPS GET");
    CHECK(luanet_response_status(r) == 200, "HTTPS status 200");
    luanet_response_free(r);
}

static void test_http_post(void) {
    static const uint8_t payload[] = {'a', 0, 'b', 0xff, '\n'};
    luanet_response *r = NULL;
    CHECK(luanet_http_post(url("LUANET_HTTP", "/echo"), "application/octet-stream", payload, sizeof payload,
                           5000, &r) == LUANET_OK,
          "POST echo");
    size_t len = 0;
    const uint8_t *body = luanet_response_body(r, &len);
    CHECK(luanet_response_status(r) == 200 && len == sizeof payload && memcmp(body, payload, len) == 0,
          "POST body echoed byte for byte");
    luanet_response_free(r);

    r = NULL;
    CHECK(luanet_http_post(url("LUANET_HTTP", "/inspect"), "application/json", NULL, 0, 5000, &r) == LUANET_OK,
          "POST with an empty body (NULL, 0)");
    body = luanet_response_body(r, &len);
    CHECK(len > 0 && strstr((const char *)body, "content-type=application/json\n") != NULL,
          "content type sent as given");
    luanet_response_free(r);
}

static void test_http_failures(void) {
    luanet_response *r = (luanet_response *)&r; /* must stay untouched */
    luanet_response *const sentinel = r;
    char refused[128];
    snprintf(refused, sizeof refused, "http://127.0.0.1:%s/", getenv("LUANET_CLOSED_PORT"));
    CHECK(luanet_http_get(refused, 5000, &r) == LUANET_ERR_NETWORK, "refused port is LUANET_ERR_NETWORK");
    char expected[128];
    snprintf(expected, sizeof expected, "connection refused (127.0.0.1:%s)", getenv("LUANET_CLOSED_PORT"));
    CHECK(error_is(expected), "refused: readable message");
    CHECK(r == sentinel, "out-parameter untouched on failure");

    CHECK(luanet_http_get(url("LUANET_HTTP", "/slow/3000"), 300, &r) == LUANET_ERR_NETWORK, "slow server times out");
    CHECK(error_is("timed out after 300 ms"), "timeout message");

    CHECK(luanet_http_get(url("LUANET_HTTPS_WRONG_CA", "/"), 5000, &r) == LUANET_ERR_NETWORK, "untrusted CA fails");
    CHECK(strncmp(luanet_last_error(), "TLS: certificate verify failed", 30) == 0, "TLS message");

    CHECK(luanet_http_get("ftp://x", 0, &r) == LUANET_ERR_NETWORK, "unsupported scheme fails");
    CHECK(error_is("unsupported URL scheme 'ftp' (expected http or https)"), "scheme message");

    CHECK(luanet_http_get(NULL, 0, &r) == LUANET_ERR_ARGUMENT, "NULL url is LUANET_ERR_ARGUMENT");
    CHECK(error_is("url is NULL"), "NULL url message");
    CHECK(luanet_http_get(url("LUANET_HTTP", "/"), 0, NULL) == LUANET_ERR_ARGUMENT, "NULL out is LUANET_ERR_ARGUMENT");
    CHECK(luanet_http_get("http://\xff/", 0, &r) == LUANET_ERR_ARGUMENT, "non-UTF-8 url is LUANET_ERR_ARGUMENT");
    CHECK(luanet_http_post(url("LUANET_HTTP", "/echo"), NULL, NULL, 0, 0, &r) == LUANET_ERR_ARGUMENT,
          "NULL content type is LUANET_ERR_ARGUMENT");
    CHECK(luanet_http_post(url("LUANET_HTTP", "/echo"), "text/plain", NULL, 5, 0, &r) == LUANET_ERR_ARGUMENT,
          "NULL body with a length is LUANET_ERR_ARGUMENT");
    CHECK(r == sentinel, "out-parameter still untouched");

    CHECK(luanet_response_status(NULL) == 0, "status of NULL is 0");
    size_t len = 7;
    CHECK(luanet_response_body(NULL, &len) == NULL && len == 0, "body of NULL is NULL, length 0");
    luanet_response_free(NULL);
    CHECK(1, "freeing NULL is harmless");
}

/* Receives one message within 5 s and compares it. */
static int expect_message(luanet_ws *ws, const void *data, size_t len, bool is_text) {
    luanet_message *m = NULL;
    if (luanet_ws_recv(ws, 5000, &m) != LUANET_OK) return 0;
    size_t got = 0;
    const uint8_t *bytes = luanet_message_data(m, &got);
    int same = got == len && memcmp(bytes, data, len) == 0 && luanet_message_is_text(m) == is_text;
    luanet_message_free(m);
    return same;
}

static void test_ws(void) {
    luanet_ws *ws = NULL;
    CHECK(luanet_ws_connect(url("LUANET_WS", "/echo"), 5000, &ws) == LUANET_OK, "ws connect");
    CHECK(luanet_ws_is_open(ws), "is open");

    luanet_message *m = (luanet_message *)&m;
    luanet_message *const sentinel = m;
    CHECK(luanet_ws_poll(ws, &m) == LUANET_EMPTY && m == sentinel, "poll on an empty queue: LUANET_EMPTY");
    CHECK(luanet_ws_recv(ws, 100, &m) == LUANET_TIMEOUT && m == sentinel, "recv with a timeout: LUANET_TIMEOUT");

    CHECK(luanet_ws_send_text(ws, "hello", 5) == LUANET_OK, "send text");
    CHECK(expect_message(ws, "hello", 5, true), "text echoed as text");
    static const uint8_t binary[] = {0, 1, 2, 255};
    CHECK(luanet_ws_send_binary(ws, binary, sizeof binary) == LUANET_OK, "send binary");
    CHECK(expect_message(ws, binary, sizeof binary, false), "binary echoed as binary");
    CHECK(luanet_ws_send_binary(ws, NULL, 0) == LUANET_OK, "send an empty binary message");
    CHECK(expect_message(ws, "", 0, false), "empty message echoed");

    CHECK(luanet_ws_send_text(ws, "\xff\xfe", 2) == LUANET_ERR_ARGUMENT, "invalid UTF-8 text refused");
    CHECK(error_is("text message is not valid UTF-8"), "invalid UTF-8 message");
    CHECK(luanet_ws_is_open(ws), "still open after a refused send");

    /* Poll until the echo arrives (bounded), as a frame loop would. */
    CHECK(luanet_ws_send_text(ws, "polled", 6) == LUANET_OK, "send for poll");
    luanet_result polled = LUANET_EMPTY;
    m = NULL;
    for (int i = 0; i < 5000 && polled == LUANET_EMPTY; i++) {
        polled = luanet_ws_poll(ws, &m);
        if (polled == LUANET_EMPTY) nanosleep(&(struct timespec){0, 1000000L}, NULL); /* a 1 ms frame */
    }
    size_t len = 0;
    const uint8_t *data = luanet_message_data(m, &len);
    CHECK(polled == LUANET_OK && len == 6 && memcmp(data, "polled", 6) == 0, "poll returns the message");
    luanet_message_free(m);

    uint16_t code = 0;
    const char *reason = NULL;
    size_t reason_len = 0;
    luanet_closed_by by = LUANET_CLOSED_BY_ERROR;
    CHECK(luanet_ws_latency_ms(ws) == -1.0, "no latency before a ping");
    CHECK(luanet_ws_ping(ws, (const uint8_t *)"p", 1) == LUANET_OK, "ping");
    static const uint8_t long_payload[126];
    CHECK(luanet_ws_ping(ws, long_payload, 126) == LUANET_ERR_ARGUMENT && error_is("ping payload must be at most 125 bytes"),
          "a 126-byte ping payload refused");
    for (int i = 0; i < 500 && luanet_ws_latency_ms(ws) < 0; i++) {
        luanet_message *pm = NULL;
        if (luanet_ws_recv(ws, 10, &pm) == LUANET_OK) luanet_message_free(pm);
    }
    double latency = luanet_ws_latency_ms(ws);
    CHECK(latency >= 0 && latency < 5000, "the pong gives the latency");
    CHECK(luanet_ws_latency_ms(NULL) == -1.0, "latency of NULL: -1");
    CHECK(luanet_ws_close_info(ws, &code, &reason, &reason_len, &by) == LUANET_EMPTY, "close_info while open: LUANET_EMPTY");
    CHECK(luanet_ws_close_info(ws, NULL, &reason, &reason_len, &by) == LUANET_ERR_ARGUMENT, "close_info into NULL");
    CHECK(luanet_ws_close(ws, 999) == LUANET_ERR_ARGUMENT, "close code 999 refused");
    char long_reason[125];
    memset(long_reason, 'x', 124);
    long_reason[124] = 0;
    CHECK(luanet_ws_close_with_reason(ws, 1000, long_reason) == LUANET_ERR_ARGUMENT &&
              error_is("close reason must be at most 123 bytes"),
          "a 124-byte reason refused");
    CHECK(luanet_ws_close_with_reason(ws, 1000, "\xff") == LUANET_ERR_ARGUMENT && error_is("close reason must be UTF-8"),
          "a reason that is not UTF-8 refused");
    CHECK(luanet_ws_is_open(ws), "still open after refused closes");
    CHECK(luanet_ws_close_with_reason(ws, 4008, "done here") == LUANET_OK, "close 4008 with a reason");
    CHECK(luanet_ws_close_info(ws, &code, &reason, &reason_len, &by) == LUANET_OK && code == 4008 &&
              reason_len == 9 && memcmp(reason, "done here", 9) == 0 && by == LUANET_CLOSED_BY_LOCAL,
          "close_info: 4008, \"done here\", local");
    CHECK(luanet_ws_close(ws, 1000) == LUANET_OK, "close 1000 after that: harmless");
    CHECK(!luanet_ws_is_open(ws), "closed");
    CHECK(luanet_ws_close(ws, 1000) == LUANET_OK, "second close harmless");
    CHECK(luanet_ws_send_text(ws, "late", 4) == LUANET_CLOSED, "send after close: LUANET_CLOSED");
    CHECK(luanet_ws_ping(ws, NULL, 0) == LUANET_CLOSED, "ping after close: LUANET_CLOSED");
    CHECK(luanet_ws_poll(ws, &m) == LUANET_CLOSED, "poll after close: LUANET_CLOSED");
    CHECK(luanet_ws_recv(ws, 0, &m) == LUANET_CLOSED, "recv after close: LUANET_CLOSED (no wait)");
    luanet_ws_free(ws);
}

static void test_ws_server_close(void) {
    /* Five messages, then the server closes: all five still arrive. */
    luanet_ws *ws = NULL;
    CHECK(luanet_ws_connect(url("LUANET_WSS", "/send?count=5&close=4001"), 5000, &ws) == LUANET_OK, "wss connect");
    int in_order = 1;
    for (int i = 1; i <= 5; i++) {
        char expected[16];
        snprintf(expected, sizeof expected, "msg %d", i);
        in_order &= expect_message(ws, expected, strlen(expected), true);
    }
    CHECK(in_order, "five messages in order before the close");
    luanet_message *m = NULL;
    CHECK(luanet_ws_recv(ws, 5000, &m) == LUANET_CLOSED, "then LUANET_CLOSED");
    CHECK(!luanet_ws_is_open(ws), "not open after the server's close");
    uint16_t code = 0;
    const char *reason = NULL;
    size_t reason_len = 0;
    luanet_closed_by by = LUANET_CLOSED_BY_ERROR;
    CHECK(luanet_ws_close_info(ws, &code, &reason, &reason_len, &by) == LUANET_OK && code == 4001 &&
              reason_len == 3 && memcmp(reason, "bye", 3) == 0 && by == LUANET_CLOSED_BY_PEER,
          "close_info: the server's 4001, \"bye\", peer");
    luanet_ws_free(ws);

    /* Freeing an open socket closes it without waiting. */
    ws = NULL;
    CHECK(luanet_ws_connect(url("LUANET_WS", "/silent"), 5000, &ws) == LUANET_OK, "connect for free");
    luanet_ws_free(ws);
    CHECK(1, "free of an open socket returns");
}

static void test_ws_failures(void) {
    luanet_ws *ws = (luanet_ws *)&ws;
    luanet_ws *const sentinel = ws;
    CHECK(luanet_ws_connect(url("LUANET_WS", "/reject"), 5000, &ws) == LUANET_ERR_NETWORK, "403 upgrade fails");
    CHECK(error_is("WebSocket upgrade refused: HTTP 403 Forbidden"), "403 message");
    CHECK(luanet_ws_connect(url("LUANET_WSS_WRONG_CA", "/echo"), 5000, &ws) == LUANET_ERR_NETWORK, "wss wrong CA");
    CHECK(strncmp(luanet_last_error(), "TLS: certificate verify failed", 30) == 0, "TLS message");
    CHECK(luanet_ws_connect("http://127.0.0.1/", 0, &ws) == LUANET_ERR_NETWORK, "http:// scheme refused");
    CHECK(error_is("unsupported URL scheme 'http' (expected ws or wss)"), "scheme message");
    CHECK(luanet_ws_connect(NULL, 0, &ws) == LUANET_ERR_ARGUMENT, "NULL url");
    CHECK(ws == sentinel, "out-parameter untouched on failure");

    luanet_message *m = NULL;
    CHECK(luanet_ws_send_text(NULL, "x", 1) == LUANET_ERR_ARGUMENT, "send on NULL socket");
    CHECK(luanet_ws_poll(NULL, &m) == LUANET_ERR_ARGUMENT, "poll on NULL socket");
    CHECK(luanet_ws_recv(NULL, 0, &m) == LUANET_ERR_ARGUMENT, "recv on NULL socket");
    CHECK(luanet_ws_close(NULL, 1000) == LUANET_ERR_ARGUMENT, "close of NULL socket");
    CHECK(!luanet_ws_is_open(NULL), "NULL socket is not open");
    size_t len = 3;
    CHECK(luanet_message_data(NULL, &len) == NULL && len == 0, "data of NULL message");
    CHECK(!luanet_message_is_text(NULL), "NULL message is not text");
    luanet_ws_free(NULL);
    luanet_message_free(NULL);
    CHECK(1, "freeing NULL socket and message is harmless");
}

/* The first message of ws as a static NUL-terminated string ("" if none). */
static const char *first_text(luanet_ws *ws) {
    static char text[2048];
    luanet_message *m = NULL;
    text[0] = 0;
    if (luanet_ws_recv(ws, 5000, &m) != LUANET_OK) return text;
    size_t len = 0;
    const uint8_t *data = luanet_message_data(m, &len);
    if (len >= sizeof text) len = sizeof text - 1;
    memcpy(text, data, len);
    text[len] = 0;
    luanet_message_free(m);
    return text;
}

static void test_ws_options(void) {
    luanet_ws_options *o = NULL;
    CHECK(luanet_ws_options_new(&o) == LUANET_OK, "options");
    CHECK(luanet_ws_options_add_header(o, "Authorization", "Bearer x") == LUANET_OK, "a header");
    CHECK(luanet_ws_options_add_header(o, "Sec-WebSocket-Key", "x") == LUANET_ERR_ARGUMENT &&
              error_is("header 'Sec-WebSocket-Key' is set by the WebSocket handshake"),
          "the handshake's own header refused");
    CHECK(luanet_ws_options_add_header(o, "X-A", "1\r\nX-B: 2") == LUANET_ERR_ARGUMENT, "a CR refused");
    CHECK(luanet_ws_options_add_protocol(o, "chat.v2") == LUANET_OK, "a subprotocol");
    CHECK(luanet_ws_options_add_protocol(o, "chat.v2") == LUANET_ERR_ARGUMENT && error_is("'chat.v2' is offered twice"),
          "offered twice refused");
    CHECK(luanet_ws_options_add_protocol(o, "a b") == LUANET_ERR_ARGUMENT, "not a token refused");
    CHECK(luanet_ws_options_set_timeout_ms(o, 5000) == LUANET_OK, "a timeout");
    luanet_ws *ws = NULL;
    CHECK(luanet_ws_connect_with(url("LUANET_WS", "/upgrade-headers"), o, &ws, NULL) == LUANET_OK, "connect with options");
    CHECK(ws && strstr(first_text(ws), "\nauthorization: Bearer x") != NULL, "the server saw the header");
    luanet_ws_free(ws);
    ws = NULL;
    CHECK(luanet_ws_connect_with(url("LUANET_WS", "/protocol"), o, &ws, NULL) == LUANET_OK, "connect offering chat.v2");
    CHECK(ws && luanet_ws_protocol(ws) && strcmp(luanet_ws_protocol(ws), "chat.v2") == 0, "luanet_ws_protocol: chat.v2");
    luanet_ws_free(ws);
    ws = NULL;
    CHECK(luanet_ws_connect_with(url("LUANET_WS", "/protocol?choose=none"), o, &ws, NULL) == LUANET_OK &&
              luanet_ws_protocol(ws) == NULL,
          "none chosen: NULL");
    luanet_ws_free(ws);
    luanet_response *refusal = NULL;
    ws = NULL;
    CHECK(luanet_ws_connect_with(url("LUANET_WS", "/reject"), o, &ws, &refusal) == LUANET_ERR_NETWORK &&
              error_is("WebSocket upgrade refused: HTTP 403 Forbidden") && ws == NULL,
          "refused: LUANET_ERR_NETWORK");
    size_t len = 0;
    const uint8_t *body = refusal ? luanet_response_body(refusal, &len) : NULL;
    CHECK(refusal && luanet_response_status(refusal) == 403 && len == 10 && memcmp(body, "forbidden\n", 10) == 0,
          "the refusal: 403, forbidden");
    luanet_response_free(refusal);
    CHECK(luanet_ws_connect_with(url("LUANET_WS", "/echo"), NULL, &ws, NULL) == LUANET_OK && luanet_ws_protocol(ws) == NULL,
          "NULL options: the defaults");
    luanet_ws_free(ws);
    CHECK(luanet_ws_protocol(NULL) == NULL, "protocol of NULL");
    CHECK(luanet_ws_options_add_protocol(NULL, "x") == LUANET_ERR_ARGUMENT, "options NULL");
    luanet_ws_options_free(o);
    luanet_ws_options_free(NULL);
}

/* The first message of a one-shot peer endpoint (/flood-state, ...). */
static const char *ask(const char *base_env, const char *path) {
    luanet_ws *ws = NULL;
    if (luanet_ws_connect(url(base_env, path), 5000, &ws) != LUANET_OK) return "";
    const char *text = first_text(ws);
    luanet_ws_free(ws);
    return text;
}

/* Receives until LUANET_CLOSED (at most 5 s); the result of the last recv. */
static luanet_result until_closed(luanet_ws *ws) {
    luanet_result result = LUANET_TIMEOUT;
    for (int i = 0; i < 50 && result != LUANET_CLOSED; i++) {
        luanet_message *m = NULL;
        result = luanet_ws_recv(ws, 100, &m);
        if (result == LUANET_OK) luanet_message_free(m);
    }
    return result;
}

static void test_ws_bounds_and_keepalive(void) {
    char path[256];
    int run = (int)getpid();
    luanet_ws_options *o = NULL;
    CHECK(luanet_ws_options_new(&o) == LUANET_OK, "options");
    CHECK(luanet_ws_options_set_limit(o, 99, 1) == LUANET_ERR_ARGUMENT && error_is("limit 99 is not a luanet_ws_limit"),
          "an unknown limit refused");
    CHECK(luanet_ws_options_set_limit(o, LUANET_WS_MAX_QUEUED_BYTES, 0) == LUANET_ERR_ARGUMENT &&
              error_is("bytes must be a whole number from 1 to 2^63-1"),
          "a bound of 0 refused");
    CHECK(luanet_ws_options_set_proxy(o, "ftp://h/") == LUANET_ERR_ARGUMENT, "a proxy scheme libcurl lacks refused");

    /* Dead peer: a ping every 200 ms, 300 ms for its pong. */
    CHECK(luanet_ws_options_set_keepalive(o, 200, 300) == LUANET_OK, "keepalive");
    luanet_ws *ws = NULL;
    CHECK(luanet_ws_connect_with(url("LUANET_WS", "/stall"), o, &ws, NULL) == LUANET_OK, "connect to /stall");
    CHECK(ws && strcmp(first_text(ws), "stalling") == 0, "the stall notice");
    CHECK(until_closed(ws) == LUANET_CLOSED && error_is("no pong within 300 ms"), "no pong: closed, and why");
    uint16_t code = 0;
    const char *reason = NULL;
    size_t reason_len = 9;
    luanet_closed_by by = LUANET_CLOSED_BY_PEER;
    CHECK(luanet_ws_close_info(ws, &code, &reason, &reason_len, &by) == LUANET_OK && code == 1006 &&
              reason_len == 0 && by == LUANET_CLOSED_BY_ERROR,
          "close_info: 1006, by error");
    luanet_ws_free(ws);
    CHECK(luanet_ws_options_set_keepalive(o, 0, 0) == LUANET_OK, "keepalive off");

    /* Outgoing bound: 1 MiB, against a server that reads nothing. */
    CHECK(luanet_ws_options_set_limit(o, LUANET_WS_MAX_SEND_BUFFER_BYTES, 1 << 20) == LUANET_OK, "send bound");
    snprintf(path, sizeof path, "/sink?tag=c-%d", run);
    ws = NULL;
    CHECK(luanet_ws_connect_with(url("LUANET_WS", path), o, &ws, NULL) == LUANET_OK, "connect to /sink");
    static uint8_t piece[64 << 10];
    memset(piece, 's', sizeof piece);
    int accepted = 0;
    luanet_result sent = LUANET_OK;
    while (accepted < 2000 && (sent = luanet_ws_send_binary(ws, piece, sizeof piece)) == LUANET_OK) accepted++;
    CHECK(sent == LUANET_FULL && error_is("send buffer full"), "LUANET_FULL past the bound");
    CHECK(luanet_ws_buffered_amount(ws) >= (1 << 20), "buffered_amount at the bound");
    CHECK(luanet_ws_is_open(ws), "still open");
    snprintf(path, sizeof path, "/sink-release?tag=c-%d", run);
    CHECK(strcmp(ask("LUANET_WS", path), "released") == 0, "the server reads again");
    for (int i = 0; i < 500 && luanet_ws_buffered_amount(ws) > 0; i++) {
        luanet_message *m = NULL;
        luanet_ws_recv(ws, 20, &m);
    }
    CHECK(luanet_ws_buffered_amount(ws) == 0, "drained to 0");
    char expected[64];
    snprintf(expected, sizeof expected, "messages=%d bytes=%d", accepted, accepted * (int)sizeof piece);
    snprintf(path, sizeof path, "/sink-state?tag=c-%d", run);
    int same = 0;
    for (int i = 0; i < 100 && !same; i++) {
        same = strcmp(ask("LUANET_WS", path), expected) == 0;
        if (!same) nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    }
    CHECK(same, "the server got exactly what was accepted");
    CHECK(luanet_ws_send_binary(ws, piece, 1) == LUANET_OK, "sending works again");
    luanet_ws_free(ws);
    CHECK(luanet_ws_buffered_amount(NULL) == 0, "buffered_amount of NULL");

    /* Inbox bound: 1 MiB, a 16 MiB flood, read after a pause. */
    CHECK(luanet_ws_options_set_limit(o, LUANET_WS_MAX_QUEUED_BYTES, 1 << 20) == LUANET_OK, "inbox bound");
    snprintf(path, sizeof path, "/flood?count=256&size=65536&tag=c-%d", run);
    ws = NULL;
    CHECK(luanet_ws_connect_with(url("LUANET_WS", path), o, &ws, NULL) == LUANET_OK, "connect to /flood");
    nanosleep(&(struct timespec){1, 0}, NULL);
    snprintf(path, sizeof path, "/flood-state?tag=c-%d", run);
    int held = atoi(ask("LUANET_WS", path) + strlen("sent="));
    CHECK(held > 0 && held < 256, "the server is held back");
    int in_order = 1;
    for (int i = 1; i <= 256 && in_order; i++) {
        luanet_message *m = NULL;
        in_order = luanet_ws_recv(ws, 5000, &m) == LUANET_OK;
        size_t len = 0;
        const uint8_t *data = in_order ? luanet_message_data(m, &len) : NULL;
        char number[9];
        snprintf(number, sizeof number, "%08d", i);
        in_order = in_order && len == 65536 && memcmp(data, number, 8) == 0 && data[len - 1] == (uint8_t)(i % 256);
        luanet_message_free(m);
    }
    CHECK(in_order, "then every message, in order");
    CHECK(strcmp(first_text(ws), "flood done") == 0, "and the end");
    luanet_ws_free(ws);

    /* max_message_bytes */
    CHECK(luanet_ws_options_set_limit(o, LUANET_WS_MAX_MESSAGE_BYTES, 1000) == LUANET_OK, "message bound");
    ws = NULL;
    CHECK(luanet_ws_connect_with(url("LUANET_WS", "/send?type=binary&size=2000"), o, &ws, NULL) == LUANET_OK,
          "connect for a message too big");
    CHECK(until_closed(ws) == LUANET_CLOSED &&
              error_is("an incoming message exceeded the 1000-byte limit: connection closed (1009)"),
          "1009, and why");
    luanet_ws_free(ws);
    luanet_ws_options_free(o);

    /* Trust and proxy. */
    o = NULL;
    CHECK(luanet_ws_options_new(&o) == LUANET_OK, "options");
    CHECK(luanet_ws_options_set_tls(o, false, NULL) == LUANET_OK, "verify off");
    ws = NULL;
    CHECK(luanet_ws_connect_with(url("LUANET_WSS_WRONG_CA", "/echo"), o, &ws, NULL) == LUANET_OK &&
              luanet_ws_send_text(ws, "x", 1) == LUANET_OK && expect_message(ws, "x", 1, true),
          "an untrusted server with verify off");
    luanet_ws_free(ws);
    CHECK(luanet_ws_options_set_tls(o, true, getenv("LUANET_OTHER_CA_FILE")) == LUANET_OK, "a CA file");
    ws = NULL;
    CHECK(luanet_ws_connect_with(url("LUANET_WSS_WRONG_CA", "/echo"), o, &ws, NULL) == LUANET_OK,
          "that server's CA as ca_file");
    luanet_ws_free(ws);
    ws = NULL;
    CHECK(luanet_ws_connect_with(url("LUANET_WSS", "/echo"), o, &ws, NULL) == LUANET_ERR_NETWORK,
          "ca_file replaces the trust store");
    CHECK(luanet_ws_options_set_tls(o, true, NULL) == LUANET_OK, "the trust store again");
    CHECK(luanet_ws_options_set_proxy(o, getenv("LUANET_PROXY")) == LUANET_OK, "a proxy");
    ws = NULL;
    CHECK(luanet_ws_connect_with(url("LUANET_WSS", "/echo"), o, &ws, NULL) == LUANET_OK &&
              luanet_ws_send_text(ws, "via", 3) == LUANET_OK && expect_message(ws, "via", 3, true),
          "wss through the proxy");
    luanet_ws_free(ws);
    luanet_ws_options_free(o);
}

int main(void) {
    if (!getenv("LUANET_HTTP") || !getenv("LUANET_WS")) {
        fprintf(stderr, "run under testpeer/serve.py\n");
        return 2;
    }
    test_version();
    test_http_get();
    test_http_post();
    test_http_failures();
    test_ws();
    test_ws_server_close();
    test_ws_failures();
    test_ws_options();
    test_ws_bounds_and_keepalive();
    return finish();
}
