/* A C host that forks with a WebSocket, a pooled HTTPS connection and a
 * non-blocking request open, then uses the library in both processes. The child starts afresh: its
 * inherited socket reads as closed and is freed without a close handshake,
 * and its requests open new connections. The parent's socket and pooled
 * connection keep working, which shows that the child wrote nothing to
 * them (a close frame or a TLS close_notify would have ended them). The
 * child's inherited request fails naming fork(), and its wake-up
 * descriptor is its own: news in the child never wakes the parent.
 * Run inside testpeer/serve.py. */
#define _POSIX_C_SOURCE 200809L
#include <luanet.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "peer.h"

/* The client port the server saw for GET /inspect over HTTPS; -1 on failure. */
static long client_port(void) {
    luanet_response *r = NULL;
    if (luanet_http_get(url("LUANET_HTTPS", "/inspect"), 5000, &r) != LUANET_OK) return -1;
    size_t len = 0;
    const uint8_t *body = luanet_response_body(r, &len);
    char text[1024];
    if (len >= sizeof text) len = sizeof text - 1;
    memcpy(text, body, len);
    text[len] = 0;
    luanet_response_free(r);
    const char *line = strstr(text, "client-port=");
    return line ? strtol(line + strlen("client-port="), NULL, 10) : -1;
}

/* Sends `text` and checks the echo. */
static int echoes(luanet_ws *ws, const char *text) {
    if (luanet_ws_send_text(ws, text, strlen(text)) != LUANET_OK) return 0;
    luanet_message *m = NULL;
    if (luanet_ws_recv(ws, 5000, &m) != LUANET_OK) return 0;
    size_t len = 0;
    const uint8_t *data = luanet_message_data(m, &len);
    int same = len == strlen(text) && memcmp(data, text, len) == 0;
    luanet_message_free(m);
    return same;
}

/* Whether `fd` is readable now; drains it when `drain`. */
static int readable(int fd, int drain) {
    struct pollfd p = {fd, POLLIN, 0};
    int ready = poll(&p, 1, 0) == 1;
    uint64_t count;
    if (ready && drain) (void)!read(fd, &count, sizeof count);
    return ready;
}

static int child(luanet_ws *inherited, long pooled_port, luanet_fetch_handle *fetch, int parent_fd) {
    luanet_response *r = NULL;
    CHECK(luanet_fetch_poll(fetch, &r) == LUANET_ERR_NETWORK && strstr(luanet_last_error(), "fork") != NULL,
          "child: the inherited request fails, naming fork()");
    CHECK(luanet_last_error_kind() == LUANET_ERROR_ABORTED, "child: kind aborted");
    luanet_fetch_free(fetch);
    int fd = luanet_wakeup_fd();
    CHECK(fd >= 0 && fd != parent_fd, "child: a wake-up descriptor of its own");
    luanet_request *req = NULL;
    luanet_fetch_handle *own = NULL;
    CHECK(luanet_request_new(url("LUANET_HTTP", "/delay?ms=10"), &req) == LUANET_OK && luanet_fetch(req, &own) == LUANET_OK,
          "child: a new request");
    CHECK(luanet_fetch_wait(own, 10000, &r) == LUANET_OK && luanet_response_status(r) == 200, "child: it answers");
    CHECK(readable(fd, 0), "child: its descriptor heard it");
    luanet_response_free(r);
    luanet_fetch_free(own);
    luanet_request_free(req);

    CHECK(!luanet_ws_is_open(inherited), "child: the inherited socket is not open");
    CHECK(luanet_ws_send_text(inherited, "x", 1) == LUANET_CLOSED, "child: sending on it says closed");
    luanet_message *m = NULL;
    CHECK(luanet_ws_poll(inherited, &m) == LUANET_CLOSED, "child: polling it says closed");
    CHECK(strstr(luanet_last_error(), "fork") != NULL, "child: the message names fork()");
    luanet_ws_free(inherited);
    long port = client_port();
    CHECK(port > 0 && port != pooled_port, "child: a request opens a connection of its own");
    luanet_ws *ws = NULL;
    CHECK(luanet_ws_connect(url("LUANET_WS", "/echo"), 5000, &ws) == LUANET_OK, "child: a new WebSocket");
    CHECK(ws && echoes(ws, "child"), "child: it echoes");
    if (ws) luanet_ws_close(ws, 1000);
    luanet_ws_free(ws);
    return finish();
}

int main(void) {
    luanet_ws *ws = NULL;
    CHECK(luanet_ws_connect(url("LUANET_WS", "/echo"), 5000, &ws) == LUANET_OK, "connect");
    CHECK(ws && echoes(ws, "before"), "echo before fork");
    long port = client_port();
    CHECK(port > 0, "a pooled HTTPS connection");
    int fd = luanet_wakeup_fd();
    luanet_request *req = NULL;
    luanet_fetch_handle *fetch = NULL;
    CHECK(luanet_request_new(url("LUANET_HTTP", "/delay?ms=5000"), &req) == LUANET_OK &&
              luanet_fetch(req, &fetch) == LUANET_OK,
          "a request in flight");
    luanet_request_free(req);
    while (readable(fd, 1)) {
    }
    fflush(stdout);

    pid_t pid = fork();
    if (pid == 0) {
        int code = child(ws, port, fetch, fd);
        fflush(stdout);
        _exit(code);
    }
    CHECK(pid > 0, "fork");
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "the child passed and exited normally");

    CHECK(!readable(fd, 0), "parent: the child's news did not wake the parent");
    CHECK(echoes(ws, "after"), "parent: the socket still echoes");
    CHECK(client_port() == port, "parent: the pooled connection is still the same one");
    while (readable(fd, 1)) { /* the echo's news */
    }
    luanet_response *r = NULL;
    CHECK(luanet_fetch_wait(fetch, 10000, &r) == LUANET_OK && luanet_response_status(r) == 200,
          "parent: its request answers");
    CHECK(readable(fd, 1), "parent: and its descriptor heard it");
    luanet_response_free(r);
    luanet_fetch_free(fetch);
    CHECK(luanet_ws_close(ws, 1000) == LUANET_OK, "parent: close");
    luanet_ws_free(ws);
    return finish();
}
