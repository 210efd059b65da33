/* A C host that forks with a WebSocket and a pooled HTTPS connection open,
 * then uses the library in both processes. The child starts afresh: its
 * inherited socket reads as closed and is freed without a close handshake,
 * and its requests open new connections. The parent's socket and pooled
 * connection keep working, which shows that the child wrote nothing to
 * them (a close frame or a TLS close_notify would have ended them).
 * Run inside testpeer/serve.py. */
#define _POSIX_C_SOURCE 200809L
#include <luanet.h>
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

static int child(luanet_ws *inherited, long pooled_port) {
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
    fflush(stdout);

    pid_t pid = fork();
    if (pid == 0) {
        int code = child(ws, port);
        fflush(stdout);
        _exit(code);
    }
    CHECK(pid > 0, "fork");
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "the child passed and exited normally");

    CHECK(echoes(ws, "after"), "parent: the socket still echoes");
    CHECK(client_port() == port, "parent: the pooled connection is still the same one");
    CHECK(luanet_ws_close(ws, 1000) == LUANET_OK, "parent: close");
    luanet_ws_free(ws);
    return finish();
}
