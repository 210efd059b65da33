/* A host's frame loop that polls a WebSocket once per frame and never
 * blocks on the network. Usage: frame_loop ws://host:port/path
 * (without an argument it uses $LUANET_WS/send?count=5&close=1000, which
 * testpeer/serve.py provides). */
#define _POSIX_C_SOURCE 200809L
#include <luanet.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    char url[512];
    if (argc > 1) snprintf(url, sizeof url, "%s", argv[1]);
    else snprintf(url, sizeof url, "%s/send?count=5&close=1000", getenv("LUANET_WS") ? getenv("LUANET_WS") : "");

    luanet_ws *ws = NULL;
    if (luanet_ws_connect(url, 5000, &ws) != LUANET_OK) {
        fprintf(stderr, "connect failed: %s\n", luanet_last_error());
        return 1;
    }
    int received = 0;
    for (int frame = 0; frame < 600; frame++) { /* ten seconds at 60 frames/s */
        luanet_message *message = NULL;
        luanet_result result;
        while ((result = luanet_ws_poll(ws, &message)) == LUANET_OK) { /* drain this frame's messages */
            size_t len = 0;
            const uint8_t *data = luanet_message_data(message, &len);
            printf("frame %d: %s message: %.*s\n", frame, luanet_message_is_text(message) ? "text" : "binary",
                   (int)len, (const char *)data);
            luanet_message_free(message);
            received++;
        }
        if (result == LUANET_CLOSED) {
            printf("closed after %d messages\n", received);
            break;
        }
        /* ... the rest of the frame: simulation, rendering ... */
        nanosleep(&(struct timespec){0, 16 * 1000000L}, NULL);
    }
    luanet_ws_free(ws);
    return received > 0 ? 0 : 1;
}
