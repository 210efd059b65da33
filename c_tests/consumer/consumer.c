/* Uses luanet through its C API only: the version, an HTTP GET and a
 * WebSocket echo against the local servers (testpeer/serve.py). */
#include <luanet.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"

int main(void) {
    char url[256];
    CHECK(strcmp(luanet_version(), "0.1.0") == 0, "version");

    snprintf(url, sizeof url, "%s/status/200", getenv("LUANET_HTTP"));
    luanet_response *response = NULL;
    CHECK(luanet_http_get(url, 5000, &response) == LUANET_OK && luanet_response_status(response) == 200,
          "HTTP GET");
    luanet_response_free(response);

    snprintf(url, sizeof url, "%s/echo", getenv("LUANET_WS"));
    luanet_ws *ws = NULL;
    CHECK(luanet_ws_connect(url, 5000, &ws) == LUANET_OK, "WebSocket connect");
    CHECK(luanet_ws_send_text(ws, "ping", 4) == LUANET_OK, "send");
    luanet_message *message = NULL;
    size_t len = 0;
    CHECK(luanet_ws_recv(ws, 5000, &message) == LUANET_OK &&
              memcmp(luanet_message_data(message, &len), "ping", 4) == 0 && len == 4,
          "echo");
    luanet_message_free(message);
    luanet_ws_close(ws, 1000);
    luanet_ws_free(ws);
    return finish();
}
