-- luanet demo: HTTP and WebSockets from plain Lua. scripts/demo.sh runs it against local
-- servers and passes their addresses in the environment.
local net = require "net"
local http = assert(os.getenv("LUANET_HTTP"), "run me through scripts/demo.sh")
local https = assert(os.getenv("LUANET_HTTPS"))

print("luanet " .. net.version)

local ok, status, body = net_http_get(http .. "/")
print(("GET  %s/ -> ok=%s status=%d body=%q"):format(http, tostring(ok), status, body))

ok, status, body = net_http_post(https .. "/echo", "application/json", '{"hello":"lua"}', 5000)
print(("POST %s/echo (HTTP/2, TLS) -> ok=%s status=%d body=%s"):format(https, tostring(ok), status, body))

ok, status = net_http_get(http .. "/status/404")
print(("GET  /status/404 -> ok=%s status=%d (a 404 is a transport success)"):format(tostring(ok), status))

local err
ok, status, body, err = net_http_get(http .. "/slow/2000", 300)
print(("GET  /slow/2000 with a 300 ms budget -> ok=%s status=%d error=%q"):format(tostring(ok), status, err))

-- net.request: any method, headers both ways, per-request options.
local res, kind
res, err, kind = net.request{
  url = https .. "/echo", method = "PUT", body = "hello",
  headers = { Authorization = "Bearer demo", ["Content-Type"] = "text/plain" },
  timeout_ms = 5000,
}
print(("PUT  %s/echo -> status=%d http/%s content-type=%s body=%q total=%.1f ms"):format(
  https, res.status, res.http_version, res.headers["content-type"], res.body, res.timings.total))
res, err, kind = net.request{ url = http .. "/redirect/3", max_redirects = 2 }
print(("GET  /redirect/3 with max_redirects = 2 -> res=%s error=%q kind=%s"):format(tostring(res), err, kind))

-- net.fetch: the same requests without blocking; poll them every frame.
local slow = net.fetch{ url = http .. "/slow/300" }
local fast = net.fetch{ url = http .. "/" }
local frames = 0
while not (slow:poll() and fast:poll()) do
  frames = frames + 1
  net.fetch{ url = http .. "/delay?ms=16" }:wait() -- a 16 ms frame
end
print(("net.fetch: /slow/300 -> %d and / -> %d after %d frames, none of them blocked"):format(
  slow:poll().status, fast:poll().status, frames))

-- WebSocket: a subprotocol, an upgrade header, keepalive and bounds; a
-- message each way, a ping, and a close with a reason.
local wss = assert(os.getenv("LUANET_WSS"))
local ws = assert(ws_connect(wss .. "/protocol", {
  timeout_ms = 5000, protocols = { "chat.v2" }, headers = { Origin = "https://demo.example" },
  ping_interval_ms = 20000, pong_timeout_ms = 20000, max_queued_bytes = 1024 * 1024,
}))
local hello = ws:recv(5000)
ws:send_text("ping me back")
local echoed = ws:recv(5000)
ws:ping()
for _ = 1, 500 do
  if ws:latency() then break end
  ws:recv(10) -- the pong, within 5 s
end
print(("WS   %s/protocol -> protocol=%s first=%q echo=%q latency=%.2f ms buffered=%d"):format(
  wss, ws:protocol(), hello, echoed, ws:latency() or -1, ws:buffered_amount()))
ws:close(4000, "demo done")
local code, reason, by = ws:close_info()
print(("WS   close(4000, \"demo done\") -> close_info() = %d, %q, %s"):format(code, reason, by))
