-- Run by custom_interpreter: the contract through globals a host's own
-- interpreter gets from luaopen_net, against the local servers.
local passed, failed = 0, 0
local function check(cond, what)
  if cond then passed = passed + 1 print("ok - " .. what)
  else failed = failed + 1 print("not ok - " .. what) end
end

check(type(net) == "table" and net.http_get == net_http_get, "luaopen_net returned the module and set the globals")

local ok, status, body = net_http_get(os.getenv("LUANET_HTTP") .. "/status/201", 5000)
check(ok == true and status == 201 and body == "status 201", "net_http_get")
ok, status, body = net_http_post(os.getenv("LUANET_HTTPS") .. "/echo", "text/plain", "a\0b", 5000)
check(ok == true and status == 200 and body == "a\0b", "net_http_post over TLS")

local ws = ws_connect(os.getenv("LUANET_WS") .. "/echo", 5000)
check(ws ~= nil and tostring(ws) == "websocket(open)", "ws_connect")
check(ws:send_text("hi") == true, "send_text")
local msg, is_text = ws:recv()
check(msg == "hi" and is_text == true, "recv")
local m, t = ws:poll()
check(m == nil and t == nil, "poll: nothing yet")
local late = ws_connect(os.getenv("LUANET_WS") .. "/silent", 5000)
check(late:is_open(), "a socket left open for lua_close to collect")
ws:close()
m, t = ws:poll()
check(m == nil and t == false and not ws:is_open(), "closed")

print(passed .. " passed, " .. failed .. " failed")
if failed > 0 then error("contract checks failed") end
