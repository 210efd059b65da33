-- WebSocket options against two independent servers: Python `websockets`
-- (testpeer/serve.py) and npm `ws` (testpeer/ws_peer.js), each over ws and
-- wss. Every case runs on all four: the upgrade (headers, subprotocols, a
-- refusal's answer), close codes and reasons both ways, dead-peer
-- detection, the inbox bound and the outgoing bound. Then the options that
-- concern the route rather than the server (proxy, verify, ca_file).
--
-- Code for Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT alike.

local T = ...
local eq, truthy, raises, pack, show = T.eq, T.truthy, T.raises, T.pack, T.show
local test, env = T.test, T.env

require("net") -- the contract's globals

local WAIT = 5000 -- ms: how long a message that must come may take
local KiB, MiB = 1024, 1024 * 1024
-- Tags for the peers' per-connection records, unique to this run.
local RUN = tostring(os.time()) .. "-" .. tostring({}):match("0x(%x+)")

local PEERS = {
  { name = "websockets ws", url = env("LUANET_WS"), python = true },
  { name = "websockets wss", url = env("LUANET_WSS"), python = true },
  { name = "npm ws, ws", url = env("LUANET_NODE_WS") },
  { name = "npm ws, wss", url = env("LUANET_NODE_WSS") },
}

local function sleep(seconds)
  os.execute("sleep " .. tostring(seconds))
end

-- Wall-clock milliseconds (a process per call: for a few readings only).
local function now_ms()
  local pipe = assert(io.popen("date +%s%3N"))
  local ms = tonumber(pipe:read("*l"))
  pipe:close()
  return ms
end

local function connect(url, options)
  local ws, err = ws_connect(url, options)
  if not ws then error("ws_connect " .. url .. ": " .. show(err), 2) end
  return ws
end

local function recv(ws, what)
  local msg, is_text = ws:recv(WAIT)
  if msg == nil then
    error((what or "recv") .. ": no message within " .. WAIT .. " ms (error: " .. show(ws:error()) .. ")", 2)
  end
  return msg, is_text
end

-- What a one-shot endpoint (/flood-state, /sink-state, /last-close) says.
local function ask(base, path)
  local ws = connect(base .. path)
  local answer = recv(ws, path)
  ws:close()
  return answer
end

-- Polls until `ws` is no longer open, at most `limit` ms (no hang).
local function wait_closed(ws, limit)
  local waited = 0
  while ws:is_open() and waited < limit do
    ws:recv(20)
    waited = waited + 20
  end
  return not ws:is_open()
end

for _, peer in ipairs(PEERS) do
  local BASE = peer.url
  local function named(what) return "[" .. peer.name .. "] " .. what end

  test(named("upgrade headers reach the server"), function()
    local ws = connect(BASE .. "/upgrade-headers",
      { headers = { Authorization = "Bearer x", Origin = "https://game.example" } })
    local lines = "\n" .. recv(ws, "the server's view") .. "\n"
    truthy(lines:find("\nauthorization: Bearer x\n", 1, true), "authorization: " .. lines)
    truthy(lines:find("\norigin: https://game.example\n", 1, true), "origin: " .. lines)
    ws:close()
  end)

  test(named("a subprotocol is chosen, or none"), function()
    local ws = connect(BASE .. "/protocol", { protocols = { "chat.v2", "chat.v1" } })
    eq(ws:protocol(), "chat.v2", "protocol()")
    eq(recv(ws, "the server's choice"), "protocol=chat.v2", "the server's choice")
    ws:close()
    ws = connect(BASE .. "/protocol?choose=none", { protocols = { "chat.v2", "chat.v1" } })
    eq(ws:protocol(), nil, "none chosen: open, and protocol() is nil")
    eq(recv(ws, "the server's choice"), "protocol=None", "the server chose none")
    eq(ws:send_text("still usable"), true, "send")
    eq(recv(ws, "echo"), "still usable", "echo")
    ws:close()
  end)

  test(named("a refused upgrade returns nil, the status line, and the answer"), function()
    local r = pack(ws_connect(BASE .. "/reject", { timeout_ms = WAIT }))
    eq(r.n, 3, "results")
    eq(r[1], nil, "no socket")
    eq(r[2], "WebSocket upgrade refused: HTTP 403 Forbidden", "message")
    eq(type(r[3]), "table", "res")
    eq(r[3].status, 403, "res.status")
    eq(r[3].body, "forbidden\n", "res.body")
    eq(type(r[3].headers), "table", "res.headers")
    truthy(r[3].headers["content-type"]:find("^text/plain"), "res.headers['content-type']")
  end)

  test(named("close code and reason, both ways"), function()
    local ws = connect(BASE .. "/echo")
    ws:close(4000, "bye from lua")
    local code, reason, by = ws:close_info()
    eq(code, 4000, "our code")
    eq(reason, "bye from lua", "our reason")
    eq(by, "local", "by")
    eq(ask(BASE, "/last-close"), "code=4000 reason=bye from lua", "what the server got")
    ws = connect(BASE .. "/send?count=2&close=4001&reason=server%20bye")
    eq(recv(ws, "message 1"), "msg 1", "message 1 before the close")
    eq(recv(ws, "message 2"), "msg 2", "message 2 before the close")
    truthy(wait_closed(ws, WAIT), "closed by the server")
    code, reason, by = ws:close_info()
    eq(code, 4001, "the server's code")
    eq(reason, "server bye", "the server's reason")
    eq(by, "peer", "by")
    eq(ws:error(), nil, "a clean close")
  end)

  test(named("a peer that stops answering is detected within interval plus timeout"), function()
    local started = now_ms()
    local ws = connect(BASE .. "/stall", { ping_interval_ms = 200, pong_timeout_ms = 300 })
    eq(recv(ws, "the stall notice"), "stalling", "first message")
    truthy(wait_closed(ws, 5000), "closed by the keepalive")
    local elapsed = now_ms() - started
    eq(ws:error(), "no pong within 300 ms", "error()")
    local code, reason, by = ws:close_info()
    eq(code, 1006, "no close frame: 1006")
    eq(reason, "", "reason")
    eq(by, "error", "by")
    -- The first ping goes at 200 ms and its deadline is 300 ms later.
    print("# " .. peer.name .. ": dead peer detected " .. elapsed .. " ms after connecting")
    truthy(elapsed >= 480, "not before the deadline: " .. elapsed .. " ms")
    truthy(elapsed < 2500, "soon after it (no hang): " .. elapsed .. " ms")
  end)

  test(named("keepalive on a live peer: the socket stays open, pings measure latency"), function()
    local ws = connect(BASE .. "/echo", { ping_interval_ms = 50, pong_timeout_ms = 200 })
    eq(ws:latency(), nil, "no ping answered yet")
    for i = 1, 10 do
      eq(ws:send_text("tick " .. i), true, "send " .. i)
      eq(recv(ws, "echo " .. i), "tick " .. i, "echo " .. i)
      ws:recv(40)
    end
    eq(ws:is_open(), true, "still open")
    eq(ws:error(), nil, "no error")
    local latency = ws:latency()
    truthy(type(latency) == "number" and latency >= 0, "latency from the automatic pings: " .. show(latency))
    ws:close()
  end)

  test(named("inbox bound: the server is held back, then every message arrives in order"), function()
    local tag = "inbox-" .. RUN .. "-" .. peer.name:gsub("%W", "")
    local count, size = 512, 64 * KiB -- 32 MiB
    -- A keepalive that would fail a socket whose pongs go unread: it is
    -- suspended while reading is paused.
    local ws = connect(BASE .. "/flood?count=" .. count .. "&size=" .. size .. "&tag=" .. tag,
      { max_queued_bytes = MiB, ping_interval_ms = 100, pong_timeout_ms = 200 })
    sleep(1)
    local sent = tonumber(ask(BASE, "/flood-state?tag=" .. tag):match("^sent=(%d+)$"))
    sleep(0.5)
    local later = tonumber(ask(BASE, "/flood-state?tag=" .. tag):match("^sent=(%d+)$"))
    eq(later, sent, "the server is stalled while the script does not read")
    -- 1 MiB in the inbox plus the kernel's buffers on both sides.
    truthy(sent * size < 20 * MiB, "held back: " .. sent .. " of " .. count .. " messages sent")
    for i = 1, count do
      local msg, is_text = recv(ws, "message " .. i)
      if #msg ~= size or msg:sub(1, 8) ~= string.format("%08d", i) or is_text
          or msg:byte(size) ~= i % 256 then
        error("message " .. i .. ": got " .. #msg .. " bytes starting " .. show(msg:sub(1, 8)), 0)
      end
    end
    eq(recv(ws, "the end"), "flood done", "then the end, in order")
    eq(ws:is_open(), true, "still open: a paused reader is not a dead peer")
    eq(ws:error(), nil, "no error")
    ws:close()
  end)

  test(named("closing a socket paused at its bound still finishes the handshake"), function()
    local tag = "close-paused-" .. RUN .. "-" .. peer.name:gsub("%W", "")
    local ws = connect(BASE .. "/flood?count=512&size=65536&tag=" .. tag, { max_queued_bytes = MiB })
    sleep(0.5)
    ws:close(4002, "paused")
    local code, reason, by = ws:close_info()
    eq(code, 4002, "our code")
    eq(by, "local", "by")
    eq(ws:error(), nil, "a clean close")
    eq(ask(BASE, "/last-close"), "code=4002 reason=paused", "the server got our close frame")
    if peer.python then
      -- The server saw a closing handshake, not a connection reset under
      -- unread data.
      local ended
      for _ = 1, 100 do
        ended = ask(BASE, "/flood-end?tag=" .. tag)
        if ended ~= "code=none" then break end
        sleep(0.05)
      end
      eq(ended, "code=4002", "how the server's side ended")
    end
  end)

  test(named("outgoing bound: send buffer full, then it drains to 0"), function()
    local tag = "sink-" .. RUN .. "-" .. peer.name:gsub("%W", "")
    local bound, piece = 4 * MiB, 256 * KiB
    local ws = connect(BASE .. "/sink?tag=" .. tag, { max_send_buffer_bytes = bound })
    eq(ws:buffered_amount(), 0, "nothing buffered yet")
    local chunk = string.rep("s", piece)
    local accepted, refused = 0, nil
    for _ = 1, 400 do
      refused = pack(ws:send_binary(chunk))
      if refused[1] ~= true then break end
      accepted = accepted + 1
    end
    eq(refused[1], false, "a send past the bound fails")
    eq(refused[2], "send buffer full", "with the reason")
    -- Refused sends hold nothing: 64 MiB more offered, (almost) none of
    -- it taken, and peak RSS stays where it was.
    local peak, refusals = T.proc_status("VmHWM"), 0
    for _ = 1, 256 do
      if ws:send_binary(chunk) then accepted = accepted + 1 else refusals = refusals + 1 end
    end
    truthy(refusals >= 250, "still full: " .. refusals .. " of 256 refused")
    truthy(T.proc_status("VmHWM") - peak < 2 * 1024, "peak RSS unchanged by refused sends")
    truthy(ws:buffered_amount() >= bound, "buffered at the refusal: " .. ws:buffered_amount())
    truthy(ws:buffered_amount() < bound + piece + 64, "no more than one message past the bound: "
      .. ws:buffered_amount())
    truthy(accepted * piece < bound + 24 * MiB, "accepted " .. accepted .. " messages")
    eq(ws:is_open(), true, "the socket stays open")
    eq(ask(BASE, "/sink-release?tag=" .. tag), "released", "the server reads again")
    local waited = 0
    while ws:buffered_amount() > 0 and waited < 10000 do
      ws:recv(20)
      waited = waited + 20
    end
    eq(ws:buffered_amount(), 0, "drained")
    local expected = "messages=" .. accepted .. " bytes=" .. accepted * piece
    local state
    for _ = 1, 100 do
      state = ask(BASE, "/sink-state?tag=" .. tag)
      if state == expected then break end
      sleep(0.05)
    end
    eq(state, expected, "the server got exactly what was accepted")
    eq(ws:send_binary("after"), true, "sending works again")
    ws:close()
  end)

  test(named("a socket closed with output waiting has nothing buffered"), function()
    local tag = "closed-full-" .. RUN .. "-" .. peer.name:gsub("%W", "")
    local ws = connect(BASE .. "/sink?tag=" .. tag, { max_send_buffer_bytes = MiB })
    local chunk = string.rep("c", 64 * KiB)
    for _ = 1, 1000 do
      if not ws:send_binary(chunk) then break end
    end
    truthy(ws:buffered_amount() >= MiB, "full: " .. ws:buffered_amount())
    ws:close()
    eq(ws:buffered_amount(), 0, "what waited went with the connection")
    eq(select(2, ws:send_binary("late")), "the WebSocket is closed", "send after close")
    ask(BASE, "/sink-release?tag=" .. tag)
  end)

  test(named("max_message_bytes: a larger message fails the connection with 1009"), function()
    local ws = connect(BASE .. "/send?type=binary&size=2000", { max_message_bytes = 1000 })
    truthy(wait_closed(ws, WAIT), "closed")
    eq(ws:error(), "an incoming message exceeded the 1000-byte limit: connection closed (1009)", "error()")
    local code, reason, by = ws:close_info()
    eq(code, 1009, "code")
    eq(reason, "message too big", "reason")
    eq(by, "error", "by")
    ws = connect(BASE .. "/send?type=binary&size=1000", { max_message_bytes = 1000 })
    local msg = recv(ws, "a message at the limit")
    eq(#msg, 1000, "a message at the limit arrives")
    ws:close()
  end)
end

-- The route: proxy, trust --------------------------------------------------------

local WS, WSS = env("LUANET_WS"), env("LUANET_WSS")
local WSS_WRONG_CA = env("LUANET_WSS_WRONG_CA")

test("through an HTTP proxy (a CONNECT tunnel), and a proxy that is down", function()
  local ws = connect(WS .. "/upgrade-headers", { proxy = env("LUANET_PROXY") })
  truthy(recv(ws, "the server's view"):find("upgrade: websocket", 1, true), "upgraded through the proxy")
  ws:close()
  ws = connect(WSS .. "/echo", { proxy = env("LUANET_PROXY") })
  eq(ws:send_text("over tls, through the proxy"), true, "send")
  eq(recv(ws, "echo"), "over tls, through the proxy", "echo")
  ws:close()
  local r = pack(ws_connect(WS .. "/echo", { proxy = "http://127.0.0.1:" .. env("LUANET_CLOSED_PORT") }))
  eq(r[1], nil, "no socket through a proxy that is down")
  truthy(type(r[2]) == "string" and r[2]:find("proxy", 1, true), "the message names the proxy: " .. show(r[2]))
  ws = connect(WS .. "/echo", { proxy = false })
  ws:close()
end)

test("verify = false and ca_file, as net.request takes them", function()
  local r = pack(ws_connect(WSS_WRONG_CA .. "/echo"))
  eq(r[1], nil, "an untrusted CA fails by default")
  local ws = connect(WSS_WRONG_CA .. "/echo", { verify = false })
  eq(ws:send_text("unverified"), true, "send")
  eq(recv(ws, "echo"), "unverified", "echo with verify = false")
  ws:close()
  ws = connect(WSS_WRONG_CA .. "/echo", { ca_file = env("LUANET_OTHER_CA_FILE") })
  eq(ws:send_text("other ca"), true, "send")
  eq(recv(ws, "echo"), "other ca", "echo with that server's CA as ca_file")
  ws:close()
  r = pack(ws_connect(WSS .. "/echo", { ca_file = env("LUANET_OTHER_CA_FILE") }))
  eq(r[1], nil, "ca_file replaces the trust store")
end)

test("bad bound, keepalive and route options raise, naming them", function()
  local function bad(options, message)
    raises(function() ws_connect(WS .. "/echo", options) end, message)
  end
  bad({ max_queued_bytes = 0 },
    "bad option 'max_queued_bytes' to 'ws_connect' (must be a whole number from 1 to 2^63-1)")
  bad({ max_message_bytes = 1.5 },
    "bad option 'max_message_bytes' to 'ws_connect' (must be a whole number from 1 to 2^63-1)")
  bad({ max_send_buffer_bytes = "16" },
    "bad option 'max_send_buffer_bytes' to 'ws_connect' (number expected, got string)")
  bad({ ping_interval_ms = -1 }, "bad option 'ping_interval_ms' to 'ws_connect' (must be a non-negative number)")
  bad({ pong_timeout_ms = 0 / 0 }, "bad option 'pong_timeout_ms' to 'ws_connect' (must be a non-negative number)")
  bad({ verify = 1 }, "bad option 'verify' to 'ws_connect' (boolean expected, got number)")
  bad({ proxy = true }, "bad option 'proxy' to 'ws_connect' (string or false expected, got boolean)")
  bad({ proxy = "ftp://h/" }, "bad option 'proxy' to 'ws_connect' (unsupported URL scheme 'ftp'")
  bad({ ca_file = "" }, "bad option 'ca_file' to 'ws_connect' (a file name without NUL expected)")
end)

test("a protocol error fails the connection with 1002", function()
  local ws = connect(WS .. "/bad-frame")
  truthy(wait_closed(ws, WAIT), "closed")
  local code, reason, by = ws:close_info()
  eq(code, 1002, "the code we sent")
  eq(reason, "", "reason")
  eq(by, "error", "by")
  eq(ws:error(), "WebSocket protocol error: Encountered invalid opcode: 3", "error()")
  eq(ws:poll(), nil, "nothing to read")
end)

test("ping_interval_ms = 0 turns keepalive off", function()
  local ws = connect(WS .. "/echo", { ping_interval_ms = 0 })
  sleep(0.3)
  eq(ws:latency(), nil, "no automatic ping")
  eq(ws:ping(), true, "an explicit one still works")
  local waited = 0
  while ws:latency() == nil and waited < WAIT do
    ws:recv(10)
    waited = waited + 10
  end
  truthy(ws:latency() ~= nil, "its pong measured")
  ws:close()
end)
