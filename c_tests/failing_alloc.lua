-- What c_tests/failing_alloc.c runs under a refusing allocator: every
-- luanet path that allocates in Lua. A call that returns must return the
-- right values; where memory runs out it must raise a memory error.
local net = require("net")
local HTTP = os.getenv("LUANET_HTTP")
local WS = os.getenv("LUANET_WS")
local CLOSED = "http://127.0.0.1:" .. os.getenv("LUANET_CLOSED_PORT") .. "/"

local ok, status, body = net_http_get(HTTP .. "/bytes/300", 5000)
assert(ok == true and status == 200 and #body == 300, "GET")
ok, status, body = net_http_post(HTTP .. "/echo", "text/plain", "hello", 5000)
assert(ok == true and status == 200 and body == "hello", "POST")
local failed, zero, empty, message = net_http_get(CLOSED, 5000)
assert(failed == false and zero == 0 and empty == "" and message:find("refused", 1, true), "refused GET")
assert(net_http_get(42) == false, "a number is no URL")
assert(not pcall(net_http_get), "missing URL")

local ws = assert(ws_connect(WS .. "/echo", 5000))
assert(tostring(ws) == "websocket(open)")
assert(ws:send_text("hi"))
assert(ws:send_binary("\0\1"))
assert(ws:send_json({ a = { 1, 2 } }))
assert(ws:send_json('"s"'))
local m, is_text = ws:recv(5000)
assert(m == "hi" and is_text == true, "text echo")
m, is_text = ws:recv(5000)
assert(m == "\0\1" and is_text == false, "binary echo")
m = ws:recv(5000)
assert(m == '{"a":[1,2]}', "json echo")
while ws:poll() == nil do end
assert(ws:error() == nil)
json_encode = function() error({}) end
assert(not pcall(ws.send_json, ws, {}))
json_encode = net.json_encode
ws:close()
assert(ws:poll() == nil and tostring(ws) == "websocket(closed)")
local refused, why = ws_connect("ws://127.0.0.1:" .. os.getenv("LUANET_CLOSED_PORT") .. "/", 5000)
assert(refused == nil and why:find("refused", 1, true), "refused ws_connect")

local value = net.json_decode('{"a":[1,2,{"b":null}],"c":"text","d":1.5}')
assert(value.a[3].b == net.null and value.c == "text" and value.d == 1.5, "json_decode")
assert(net.json_encode(value) == '{"a":[1,2,{"b":null}],"c":"text","d":1.5}', "json_encode")
assert(not pcall(net.json_decode, "[1,"), "bad JSON")
assert(not pcall(net.json_encode, { print }), "a function")
