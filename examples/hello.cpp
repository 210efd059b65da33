// luanet from C++: small RAII owners around the C API, an HTTP GET and a
// WebSocket echo. Usage: hello http://host/path ws://host/echo (without
// arguments it uses $LUANET_HTTP and $LUANET_WS from testpeer/serve.py).
#include <luanet.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

namespace {

struct ResponseFree { void operator()(luanet_response *r) const { luanet_response_free(r); } };
struct SocketFree { void operator()(luanet_ws *ws) const { luanet_ws_free(ws); } };
struct MessageFree { void operator()(luanet_message *m) const { luanet_message_free(m); } };
using Response = std::unique_ptr<luanet_response, ResponseFree>;
using Socket = std::unique_ptr<luanet_ws, SocketFree>;
using Message = std::unique_ptr<luanet_message, MessageFree>;

std::string env(const char *name) {
    const char *value = std::getenv(name);
    return value ? value : "";
}

}  // namespace

int main(int argc, char **argv) {
    std::string http = argc > 1 ? argv[1] : env("LUANET_HTTP") + "/status/200";
    std::string ws_url = argc > 2 ? argv[2] : env("LUANET_WS") + "/echo";
    std::printf("luanet %s\n", luanet_version());

    luanet_response *raw_response = nullptr;
    if (luanet_http_get(http.c_str(), 5000, &raw_response) != LUANET_OK) {
        std::fprintf(stderr, "GET failed: %s\n", luanet_last_error());
        return 1;
    }
    Response response(raw_response);
    size_t len = 0;
    const uint8_t *body = luanet_response_body(response.get(), &len);
    std::printf("GET %s -> %u: %.*s\n", http.c_str(), luanet_response_status(response.get()), static_cast<int>(len),
                reinterpret_cast<const char *>(body));

    luanet_ws *raw_ws = nullptr;
    if (luanet_ws_connect(ws_url.c_str(), 5000, &raw_ws) != LUANET_OK) {
        std::fprintf(stderr, "connect failed: %s\n", luanet_last_error());
        return 1;
    }
    Socket ws(raw_ws);
    const std::string text = "hello from C++";
    luanet_ws_send_text(ws.get(), text.data(), text.size());
    luanet_message *raw_message = nullptr;
    if (luanet_ws_recv(ws.get(), 5000, &raw_message) != LUANET_OK) {
        std::fprintf(stderr, "no echo: %s\n", luanet_last_error());
        return 1;
    }
    Message message(raw_message);
    const uint8_t *data = luanet_message_data(message.get(), &len);
    std::string echoed(reinterpret_cast<const char *>(data), len);
    std::printf("echo: %s\n", echoed.c_str());
    luanet_ws_close(ws.get(), 1000);
    return echoed == text ? 0 : 1;
}
