/* A stress test of the WebSocket engine's lock protocol (src/ws/engine.rs):
 * four threads send on one socket at once, large and small messages mixed
 * (a large one holds the wire while it is framed), while a fifth thread
 * both polls (reading the socket on its own thread) and waits in recv (the
 * I/O thread reading), against the peer's echo. Every message must come
 * back exactly once, each sender's in the order it sent them, and the
 * socket must close cleanly. Run inside testpeer/serve.py. */
#define _POSIX_C_SOURCE 200809L
#include <luanet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "peer.h"

enum { SENDERS = 4, PER_SENDER = 300, BIG = 1 << 20 };

static luanet_ws *ws;
static int send_failures;
static pthread_mutex_t failures_lock = PTHREAD_MUTEX_INITIALIZER;

/* Message `i` of sender `s`: "s:i:" then padding; every 50th is 1 MiB. */
static size_t make_message(char *buf, int s, int i) {
    int n = snprintf(buf, 64, "%d:%d:", s, i);
    size_t len = i % 50 == 49 ? BIG : (size_t)n + (size_t)(i % 97);
    memset(buf + n, 'a' + s, len - (size_t)n);
    return len;
}

static void *sender(void *arg) {
    int s = (int)(long)arg;
    char *buf = malloc(BIG);
    for (int i = 0; i < PER_SENDER; i++) {
        size_t len = make_message(buf, s, i);
        if (luanet_ws_send_text(ws, buf, len) != LUANET_OK) {
            pthread_mutex_lock(&failures_lock);
            send_failures++;
            pthread_mutex_unlock(&failures_lock);
        }
    }
    free(buf);
    return NULL;
}

int main(void) {
    CHECK(luanet_ws_connect(url("LUANET_WS", "/echo"), 5000, &ws) == LUANET_OK, "connect");
    if (!ws) return finish();
    pthread_t threads[SENDERS];
    for (long s = 0; s < SENDERS; s++) pthread_create(&threads[s], NULL, sender, (void *)s);

    int next[SENDERS] = {0};
    int received = 0, out_of_order = 0, malformed = 0;
    char *expected = malloc(BIG);
    time_t deadline = time(NULL) + 60;
    while (received < SENDERS * PER_SENDER && time(NULL) < deadline) {
        luanet_message *m = NULL;
        /* Alternate: poll (the script's thread reads), then recv (the I/O
         * thread reads and wakes us). */
        luanet_result r = received % 2 ? luanet_ws_poll(ws, &m) : luanet_ws_recv(ws, 1000, &m);
        if (r != LUANET_OK) continue;
        size_t len = 0;
        const char *data = (const char *)luanet_message_data(m, &len);
        int s = -1, i = -1;
        if (sscanf(data, "%d:%d:", &s, &i) != 2 || s < 0 || s >= SENDERS) {
            malformed++;
        } else {
            if (i != next[s]) out_of_order++;
            next[s] = i + 1;
            size_t want = make_message(expected, s, i);
            if (want != len || memcmp(expected, data, len) != 0) malformed++;
        }
        received++;
        luanet_message_free(m);
    }
    for (int s = 0; s < SENDERS; s++) pthread_join(threads[s], NULL);
    free(expected);

    CHECK(send_failures == 0, "every send was accepted");
    CHECK(received == SENDERS * PER_SENDER, "every message came back");
    CHECK(out_of_order == 0, "each sender's messages in order");
    CHECK(malformed == 0, "every message exact");
    luanet_message *extra = NULL;
    CHECK(luanet_ws_poll(ws, &extra) == LUANET_EMPTY, "nothing more");
    CHECK(luanet_ws_close(ws, 1000) == LUANET_OK, "close");
    CHECK(luanet_ws_recv(ws, 1000, &extra) == LUANET_CLOSED, "closed after the close");
    CHECK(strcmp(luanet_last_error(), "the WebSocket is closed") == 0, "a clean close");
    luanet_ws_free(ws);
    return finish();
}
