-- WebSocket contract tests for luanet (ws_connect and the net_ws object).
--
-- Run inside the local test peer, which provides the servers and their
-- addresses in the environment:
--
--   python testpeer/serve.py -- env LUA_CPATH="/dir/with/?.so;;" \
--       lua5.4 lua_tests/runner.lua lua_tests/test_ws.lua
--
-- Code for Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT alike.
--
-- Wherever a message is expected, recv is given a timeout (WAIT ms) so that
-- a bug fails the test instead of hanging it. Every test closes what it
-- opens (the peer's /stats counts open connections).

local T = ...
local eq, truthy, matches = T.eq, T.truthy, T.matches
local contains, raises, pack, show = T.contains, T.raises, T.pack, T.show
local test = T.test
local env, ALL_BYTES, pattern = T.env, T.ALL_BYTES, T.pattern

local WS = env("LUANET_WS")
local WS6 = env("LUANET_WS6")
local WSS = env("LUANET_WSS")
local WSS_WRONG_CA = env("LUANET_WSS_WRONG_CA")
local CLOSED_PORT = env("LUANET_CLOSED_PORT")
local WSS_PORT = assert(WSS:match(":(%d+)$"), "no port in LUANET_WSS")
local WS_PORT = assert(WS:match(":(%d+)$"), "no port in LUANET_WS")

local net = require("net")

local WAIT = 5000 -- ms: how long a message that must come may take
local MiB = 1024 * 1024

-- byte k (from 0) is k % 251, as the peer's /big
local function pattern251(n)
  local block = ALL_BYTES:sub(1, 251)
  return string.rep(block, math.ceil(n / 251)):sub(1, n)
end

-- byte k (from 0) is (i + k) % 256, as the peer's /send?type=binary
local function numbered_binary(i, n)
  local off = i % 256
  return string.rep(ALL_BYTES, math.ceil((n + off) / 256) + 1):sub(off + 1, off + n)
end

local function sleep(seconds)
  os.execute("sleep " .. tostring(seconds))
end

-- Connects or fails the test with the error message.
local function connect(url, timeout)
  local ws, err
  if timeout == nil then ws, err = ws_connect(url) else ws, err = ws_connect(url, timeout) end
  if ws == nil then
    error("ws_connect(" .. show(url) .. ") failed: " .. show(err), 2)
  end
  return ws
end

-- r is pack(ws_connect(...)): a failure, nil and a message, checked as
-- T.message does with mode (nil: exactly).
-- ws_connect with options, which must succeed.
local function connect_with(url, options)
  local ws, err = ws_connect(url, options)
  if not ws then error("ws_connect " .. url .. ": " .. tostring(err), 2) end
  return ws
end

local function check_fail(r, message, mode, what)
  what = what or "ws_connect"
  if r[1] ~= nil then
    local ws = r[1]
    pcall(function() ws:close() end)
    error(what .. ": expected nil, got " .. show(ws), 2)
  end
  eq(r.n, 2, what .. ": number of results")
  T.message(r[2], message, mode, what .. ": error message")
end

-- The next message, which must come within WAIT ms: returns msg, is_text.
local function recv(ws, what)
  local r = pack(ws:recv(WAIT))
  if r[1] == nil then
    error((what or "recv") .. ": expected a message, got " .. show(r[1]) .. ", " .. show(r[2])
      .. " (error: " .. show(ws:error()) .. ")", 2)
  end
  eq(r.n, 2, (what or "recv") .. ": number of results")
  return r[1], r[2]
end

local function expect_msg(ws, msg, is_text, what)
  what = what or "message"
  local m, t = recv(ws, what)
  eq(m, msg, what)
  eq(t, is_text, what .. ": is_text")
end

local function check_send(ws, method, data, what)
  local r = pack(ws[method](ws, data))
  if r[1] ~= true then
    error((what or method) .. ": expected true, got " .. show(r[1]) .. ", " .. show(r[2]), 2)
  end
end

-- Sends data (as text when is_text, else as binary) to /echo and expects
-- it back exactly, of the same kind.
local function echo(ws, data, is_text, what)
  check_send(ws, is_text and "send_text" or "send_binary", data)
  expect_msg(ws, data, is_text, what)
end

-- r is pack(ws:recv(...)) or pack(ws:poll()) when no message is there:
-- nil, then state (false: closed, nil: still open).
local function check_no_msg(r, state, what)
  eq(r[1], nil, what .. ": first value")
  eq(r[2], state, what .. ": second value")
end

-- ws[method](ws, data) on a closed socket: false, "the WebSocket is closed".
local function check_send_closed(ws, method, data, what)
  what = what or method
  local r = pack(ws[method](ws, data))
  eq(r[1], false, what)
  eq(r[2], "the WebSocket is closed", what .. ": message")
end

-- Waits (at most `seconds`) until the socket says it is closed.
local function wait_closed(ws, seconds)
  local tries = math.floor((seconds or 5) / 0.05)
  for _ = 1, tries do
    if not ws:is_open() then return end
    sleep(0.05)
  end
  error("the socket is still open after " .. tostring(seconds or 5) .. " s", 2)
end

-- One /stats connection: returns open (number), last_close (string).
local function stats()
  local ws = connect(WS .. "/stats")
  local m, t = recv(ws, "/stats")
  ws:close()
  eq(t, true, "/stats is_text")
  local open, last = m:match("^open=(%d+) last_close=(%S+)$")
  truthy(open, "/stats message " .. show(m))
  return tonumber(open), last
end

-- Asks /stats until pred(open, last_close) holds, for about `seconds`;
-- fails with the last answer otherwise.
local function wait_stats(pred, what, seconds)
  local tries = math.floor((seconds or 3) / 0.1)
  local open, last
  for _ = 1, tries do
    open, last = stats()
    if pred(open, last) then return open, last end
    sleep(0.1)
  end
  error(what .. ": /stats still says open=" .. tostring(open) .. " last_close=" .. tostring(last), 2)
end

local function wait_none_open(what)
  collectgarbage()
  collectgarbage()
  return wait_stats(function(open) return open == 0 end, what or "open connections")
end

local function wait_last_close(code, what)
  return wait_stats(function(_, last) return last == tostring(code) end, what or "last close")
end

-- Calls fn with the global json_encode set to value, restoring it after.
local function with_json_encode(value, fn)
  local saved = json_encode
  json_encode = value
  local ok, err = pcall(fn)
  json_encode = saved
  if not ok then error(err, 0) end
end

local function thread_count() return T.proc_status("Threads") end

-- Loading -------------------------------------------------------------------

test("ws_connect is global and the same as net.ws_connect", function()
  eq(type(net.ws_connect), "function", "type(net.ws_connect)")
  eq(type(ws_connect), "function", "type(ws_connect)")
  truthy(rawequal(ws_connect, net.ws_connect), "ws_connect == net.ws_connect")
end)

-- Basics --------------------------------------------------------------------

test("connect returns a net_ws userdata (metatable named net_ws)", function()
  local r = pack(ws_connect(WS .. "/echo"))
  local ws = r[1]
  truthy(ws ~= nil, "ws_connect failed: " .. show(r[2]))
  eq(r.n, 1, "number of results on success")
  eq(type(ws), "userdata", "type(ws)")
  local mt = debug.getmetatable(ws)
  eq(type(mt), "table", "type(debug.getmetatable(ws))")
  eq(mt.__name, "net_ws", "metatable __name")
  truthy(rawequal(debug.getregistry()["net_ws"], mt), "registry.net_ws == debug.getmetatable(ws)")
  -- __metatable: a script does not get the metatable (and its __gc).
  eq(getmetatable(ws), "net_ws", "getmetatable(ws)")
  ws:close()
end)

test("echo text and binary over ws://127.0.0.1", function()
  local ws = connect(WS .. "/echo")
  eq(ws:is_open(), true, "is_open")
  local r = pack(ws:send_text("hello"))
  eq(r.n, 1, "send_text: number of results")
  eq(r[1], true, "send_text")
  expect_msg(ws, "hello", true, "text echo")
  r = pack(ws:send_binary("\0bin\255"))
  eq(r.n, 1, "send_binary: number of results")
  eq(r[1], true, "send_binary")
  expect_msg(ws, "\0bin\255", false, "binary echo")
  echo(ws, "h\195\169llo \226\156\147", true, "UTF-8 text echo")
  ws:close()
  eq(ws:is_open(), false, "is_open after close")
end)

test("echo of empty text and binary messages", function()
  local ws = connect(WS .. "/echo")
  echo(ws, "", true, "empty text")
  echo(ws, "", false, "empty binary")
  ws:close()
end)

test("echo over IPv6 [::1]", function()
  local ws = connect(WS6 .. "/echo")
  echo(ws, "over six", true, "text")
  echo(ws, ALL_BYTES, false, "binary")
  ws:close()
end)

test("echo over wss:// (localhost and 127.0.0.1)", function()
  local ws = connect(WSS .. "/echo")
  echo(ws, "secure", true, "text")
  echo(ws, ALL_BYTES, false, "binary")
  ws:close()
  ws = connect("wss://127.0.0.1:" .. WSS_PORT .. "/echo")
  echo(ws, "by address", true, "text over wss://127.0.0.1")
  ws:close()
end)

test("path and query are kept; User-Agent is luanet/<version>", function()
  local expected = "path=/request?x=1&y=two\nuser-agent=luanet/" .. net.version
  local ws = connect(WS .. "/request?x=1&y=two")
  expect_msg(ws, expected, true, "ws /request")
  ws:close()
  ws = connect(WSS .. "/request?x=1&y=two")
  expect_msg(ws, expected, true, "wss /request")
  ws:close()
  ws = connect(WS6 .. "/request?x=1&y=two")
  expect_msg(ws, expected, true, "ws [::1] /request")
  ws:close()
end)

test("a custom port works with and without a timeout argument", function()
  local ws = connect("ws://127.0.0.1:" .. WS_PORT .. "/echo", 5000)
  echo(ws, "t", true, "timeout 5000")
  ws:close()
  ws = connect(WS .. "/echo", 0)
  echo(ws, "z", true, "timeout 0")
  ws:close()
  ws = connect(WS .. "/echo", nil)
  echo(ws, "n", true, "timeout nil")
  ws:close()
end)

test("all 256 byte values in one binary message", function()
  local ws = connect(WS .. "/echo")
  echo(ws, ALL_BYTES, false, "256 bytes")
  local nuls = "\0a\0\0b\0"
  echo(ws, nuls, false, "NULs")
  ws:close()
end)

test("recv() without a timeout returns a message", function()
  local ws = connect(WS .. "/send?count=1&size=20")
  local r = pack(ws:recv())
  eq(r[1], "msg 1" .. string.rep("x", 15), "message")
  eq(r[2], true, "is_text")
  ws:close()
end)

test("a 16 MiB binary message both ways, exact", function()
  local big = pattern(16 * MiB + 3)
  local ws = connect(WS .. "/echo")
  echo(ws, big, false, "16 MiB echo")
  local text = string.rep("0123456789abcdef", MiB) -- 16 MiB of text
  echo(ws, text, true, "16 MiB text echo")
  ws:close()
  ws = connect(WS .. "/big?size=" .. tostring(16 * MiB))
  expect_msg(ws, pattern251(16 * MiB), false, "16 MiB from the server")
  ws:close()
end)

test("a 64 MiB message (the limit) is received", function()
  local n = 64 * MiB
  local ws = connect(WS .. "/big?size=" .. tostring(n))
  local m, t = ws:recv(30000)
  eq(t, false, "is_text (error: " .. show(ws:error()) .. ")")
  eq(#m, n, "length")
  truthy(m == pattern251(n), "64 MiB message content")
  m = nil
  eq(ws:is_open(), true, "is_open after the message")
  eq(ws:error(), nil, "error()")
  ws:close()
  collectgarbage()
end)

test("a message over 64 MiB fails the connection (1009)", function()
  local ws = connect(WS .. "/big?size=67108865")
  check_no_msg(pack(ws:recv(30000)), false, "recv")
  eq(ws:is_open(), false, "is_open")
  eq(ws:error(), "an incoming message exceeded the 64 MiB limit: connection closed (1009)", "error()")
  check_no_msg(pack(ws:poll()), false, "poll")
  eq(tostring(ws), "websocket(closed)", "tostring")
  check_send_closed(ws, "send_text", "x", "send_text after the failure")
  ws:close()
  eq(ws:error(), "an incoming message exceeded the 64 MiB limit: connection closed (1009)",
    "error() after close()")
end)

-- Ordering --------------------------------------------------------------------

test("200 messages sent then read back in order", function()
  local ws = connect(WS .. "/echo")
  for i = 1, 200 do check_send(ws, "send_text", "m" .. i, "send #" .. i) end
  for i = 1, 200 do expect_msg(ws, "m" .. i, true, "message #" .. i) end
  ws:close()
end)

test("200 messages from the server in order (/send?count=200)", function()
  local ws = connect(WS .. "/send?count=200")
  for i = 1, 200 do expect_msg(ws, "msg " .. i, true, "message #" .. i) end
  check_no_msg(pack(ws:poll()), nil, "poll after 200")
  ws:close()
end)

test("padded text and numbered binary messages from /send", function()
  local ws = connect(WS .. "/send?count=3&size=12")
  for i = 1, 3 do expect_msg(ws, "msg " .. i .. string.rep("x", 7), true, "text #" .. i) end
  ws:close()
  ws = connect(WS .. "/send?count=300&size=7&type=binary")
  for i = 1, 300 do expect_msg(ws, numbered_binary(i, 7), false, "binary #" .. i) end
  ws:close()
end)

-- A script that polls reads its socket on its own thread; when it stops
-- polling, the I/O thread takes over. Both must keep every message, in order.

test("polling, then not polling: the server's close is still seen", function()
  local ws = connect(WS .. "/send?count=3&close=1000")
  for _ = 1, 1000 do
    if ws:poll() ~= nil then break end
  end
  -- The first message may have been taken above; nothing polls from here on.
  wait_closed(ws, 5)
  local got = {}
  for _ = 1, 4 do
    local m = ws:poll()
    if m ~= nil then got[#got + 1] = m end
  end
  truthy(#got >= 2 and #got <= 3, "messages left after the first polls: " .. #got)
  eq(got[#got], "msg 3", "the last message")
  check_no_msg(pack(ws:poll()), false, "poll after the queue")
  ws:close()
end)

test("2000 messages in order while polling pauses now and then", function()
  local ws = connect(WS .. "/send?count=2000&size=40&type=binary")
  local i, deadline = 0, os.time() + 20
  while i < 2000 do
    local m, t = ws:poll()
    if m ~= nil then
      i = i + 1
      if m ~= numbered_binary(i, 40) or t ~= false then
        error("message #" .. i .. ": got " .. show(m) .. ", " .. show(t), 0)
      end
      -- Now and then a frame that does not poll: the I/O thread reads.
      if i % 250 == 0 then sleep(0.02) end
    elseif t == false then
      error("closed after " .. i .. " messages: " .. show(ws:error()), 0)
    elseif os.time() > deadline then
      error("stalled after " .. i .. " messages", 0)
    end
  end
  check_no_msg(pack(ws:poll()), nil, "poll after 2000")
  ws:close()
end)

-- Closing -----------------------------------------------------------------------

test("server close with messages queued: poll gets them all, then closed", function()
  local ws = connect(WS .. "/send?count=5&close=4001")
  wait_closed(ws, 5)
  eq(ws:is_open(), false, "is_open")
  eq(tostring(ws), "websocket(closed)", "tostring")
  for i = 1, 5 do
    local r = pack(ws:poll())
    eq(r[1], "msg " .. i, "poll #" .. i)
    eq(r[2], true, "poll #" .. i .. " is_text")
  end
  check_no_msg(pack(ws:poll()), false, "poll after the queue")
  check_no_msg(pack(ws:poll()), false, "poll again")
  eq(ws:error(), nil, "error() after a clean close by the server")
  check_send_closed(ws, "send_text", "late", "send_text after the server closed")
  ws:close()
end)

test("server close with messages queued: recv gets them all, then nil, false", function()
  local ws = connect(WS .. "/send?count=3&close=1000")
  wait_closed(ws, 5)
  for i = 1, 3 do expect_msg(ws, "msg " .. i, true, "recv #" .. i) end
  check_no_msg(pack(ws:recv(WAIT)), false, "recv after the queue")
  check_no_msg(pack(ws:recv()), false, "recv() without timeout after the queue")
  ws:close()
end)

test("recv and poll after close() return nil, false", function()
  local ws = connect(WS .. "/echo")
  ws:close()
  check_no_msg(pack(ws:recv()), false, "recv()")
  check_no_msg(pack(ws:recv(100)), false, "recv(100)")
  check_no_msg(pack(ws:poll()), false, "poll")
end)

test("recv with a timeout and nothing arriving returns nil, nil", function()
  local ws = connect(WS .. "/silent")
  local t0 = os.time()
  local r = pack(ws:recv(300))
  local elapsed = os.difftime(os.time(), t0)
  check_no_msg(r, nil, "recv(300)")
  truthy(elapsed <= 2, "recv(300) took " .. tostring(elapsed) .. " s")
  eq(ws:is_open(), true, "is_open")
  check_no_msg(pack(ws:poll()), nil, "poll")
  ws:close()
end)

test("per-frame poll loop (the contract's pattern)", function()
  local ws = connect(WS .. "/send?count=3&close=1000")
  local got, closed = {}, false
  for _ = 1, 500 do
    local msg, t = ws:poll()
    if msg ~= nil then
      got[#got + 1] = { msg, t }
    elseif t == false then
      closed = true
      break
    else
      sleep(0.01) -- nothing yet: next frame
    end
  end
  truthy(closed, "the loop saw the close")
  eq(#got, 3, "messages")
  for i = 1, 3 do
    eq(got[i][1], "msg " .. i, "message #" .. i)
    eq(got[i][2], true, "is_text #" .. i)
  end
  ws:close()
end)

test("fragmented messages are reassembled", function()
  local ws = connect(WS .. "/fragmented?parts=5&size=100000")
  expect_msg(ws, string.rep("a", 100000), true, "text in 5 fragments")
  expect_msg(ws, string.rep("\1", 100000), false, "binary in 5 fragments")
  echo(ws, "after", true, "echo after the fragments")
  ws:close()
  ws = connect(WS .. "/fragmented?parts=1000&size=1000")
  expect_msg(ws, string.rep("a", 1000), true, "text in 1000 one-byte fragments")
  expect_msg(ws, string.rep("\1", 1000), false, "binary in 1000 one-byte fragments")
  ws:close()
end)

test("pings from the server are answered", function()
  local ws = connect(WS .. "/ping")
  expect_msg(ws, "pong received", true, "/ping")
  ws:close()
  ws = connect(WSS .. "/ping")
  expect_msg(ws, "pong received", true, "/ping over wss")
  ws:close()
end)

test("close(code) sends the custom code", function()
  local ws = connect(WS .. "/closeinfo")
  local r = pack(ws:close(4002))
  eq(r.n, 0, "close(4002) returns nothing")
  wait_last_close(4002, "close(4002)")
end)

test("close() sends 1000 by default", function()
  local ws = connect(WS .. "/closeinfo")
  ws:close(4003)
  wait_last_close(4003, "close(4003)")
  ws = connect(WS .. "/closeinfo")
  local r = pack(ws:close())
  eq(r.n, 0, "close() returns nothing")
  wait_last_close(1000, "close()")
end)

test("close over wss and [::1] reaches the server", function()
  local ws = connect(WSS .. "/closeinfo")
  ws:close(4004)
  wait_last_close(4004, "wss close(4004)")
  ws = connect(WS6 .. "/closeinfo")
  ws:close(4005)
  wait_last_close(4005, "[::1] close(4005)")
end)

test("close(code, reason) sends both; close_info() says so", function()
  local ws = connect(WS .. "/closeinfo")
  eq(ws:close_info(), nil, "close_info while open")
  local reason = "going away: é " .. string.rep("x", 123 - 15)
  eq(#reason, 123, "the longest reason")
  ws:close(4006, reason)
  wait_last_close(4006, "close(4006, reason)")
  local stats = connect(WS .. "/last-close")
  expect_msg(stats, "code=4006 reason=" .. reason, true, "what the server received")
  stats:close()
  local r = pack(ws:close_info())
  eq(r.n, 3, "close_info results")
  eq(r[1], 4006, "code")
  eq(r[2], reason, "reason")
  eq(r[3], "local", "by")
end)

test("the peer's close code and reason; messages before it still arrive", function()
  local ws = connect(WS .. "/send?count=2&close=4007&reason=server%20done")
  expect_msg(ws, "msg 1", true, "first")
  expect_msg(ws, "msg 2", true, "second")
  check_no_msg(pack(ws:recv(WAIT)), false, "then closed")
  local code, reason, by = ws:close_info()
  eq(code, 4007, "code")
  eq(reason, "server done", "reason")
  eq(by, "peer", "by")
  eq(ws:error(), nil, "a clean close")
end)

test("a connection the library fails says what it sent (1009)", function()
  local ws = connect(WS .. "/big?size=67108865")
  check_no_msg(pack(ws:recv(30000)), false, "recv")
  local code, reason, by = ws:close_info()
  eq(code, 1009, "code")
  eq(reason, "message too big", "reason")
  eq(by, "error", "by")
end)

test("bad close reasons raise", function()
  local ws = connect(WS .. "/echo")
  raises(function() ws:close(1000, string.rep("x", 124)) end,
    "bad argument #2 to 'close' (close reason must be at most 123 bytes)")
  raises(function() ws:close(1000, "\255") end, "bad argument #2 to 'close' (close reason must be UTF-8)")
  raises(function() ws:close(1000, 5) end, "bad argument #2 to 'close' (string expected, got number)")
  eq(ws:is_open(), true, "still open")
  ws:close(1000, nil)
  eq(ws:close_info(), 1000, "closed with 1000")
end)

test("ping() measures the round trip: latency()", function()
  local ws = connect(WS .. "/echo")
  eq(ws:latency(), nil, "latency before any ping")
  eq(ws:ping(), true, "ping")
  local answered = false
  for _ = 1, 500 do
    ws:poll()
    if ws:latency() then answered = true break end
    ws:recv(10)
  end
  truthy(answered, "the pong arrived")
  local ms = ws:latency()
  truthy(ms >= 0 and ms < WAIT, "latency in ms: " .. show(ms))
  eq(ws:ping(string.rep("p", 125)), true, "a 125-byte payload")
  raises(function() ws:ping(string.rep("p", 126)) end,
    "bad argument #1 to 'ping' (ping payload must be at most 125 bytes)")
  raises(function() ws:ping({}) end, "bad argument #1 to 'ping' (string expected, got table)")
  check_send(ws, "send_text", "still echoes", "send after pings")
  expect_msg(ws, "still echoes", true, "echo after pings")
  ws:close()
  local r = pack(ws:ping())
  eq(r[1], false, "ping once closed")
  eq(r[2], "the WebSocket is closed", "its message")
  truthy(ws:latency() ~= nil, "latency stays known")
end)

test("close twice is harmless", function()
  local ws = connect(WS .. "/echo")
  eq(pack(ws:close()).n, 0, "first close")
  eq(pack(ws:close()).n, 0, "second close")
  eq(pack(ws:close(4000)).n, 0, "third close, with a code")
  eq(ws:is_open(), false, "is_open")
  eq(ws:error(), nil, "error() after a clean close")
end)

test("valid close codes are accepted", function()
  for _, code in ipairs({ 1000, 1001, 1003, 1007, 1014, 3000, 4999 }) do
    local ws = connect(WS .. "/closeinfo")
    ws:close(code)
    eq(ws:is_open(), false, "is_open after close(" .. code .. ")")
  end
  wait_last_close(4999, "last close(4999)")
end)

test("invalid close codes raise", function()
  local ws = connect(WS .. "/echo")
  local message = "bad argument #1 to 'close' (close code must be 1000-1003, 1007-1014 or 3000-4999)"
  for _, code in ipairs({ 999, 1004, 1005, 1006, 1015, 2999, 5000, 0, -1, 1.5 }) do
    raises(function() ws:close(code) end, message, "close(" .. tostring(code) .. ")")
  end
  eq(ws:is_open(), true, "still open after the refused codes")
  echo(ws, "still here", true, "echo")
  ws:close()
end)

test("send after close returns false, message", function()
  local ws = connect(WS .. "/echo")
  ws:close()
  check_send_closed(ws, "send_text", "x")
  check_send_closed(ws, "send_binary", "x")
  check_send_closed(ws, "send_json", "{}")
end)

test("error() is nil while open and after a clean close", function()
  local ws = connect(WS .. "/echo")
  eq(ws:error(), nil, "while open")
  ws:close()
  eq(ws:error(), nil, "after close")
end)

test("tostring is websocket(open) / websocket(closed)", function()
  local ws = connect(WS .. "/echo")
  eq(tostring(ws), "websocket(open)", "open")
  ws:close()
  eq(tostring(ws), "websocket(closed)", "closed")
end)

-- Text validation -----------------------------------------------------------------

test("send_text of invalid UTF-8 returns false and keeps the socket open", function()
  local ws = connect(WS .. "/echo")
  local message = "text message is not valid UTF-8 (use send_binary for bytes)"
  for _, bad in ipairs({ "\255", "a\192b", "\237\160\128", "\226\130" }) do
    local r = pack(ws:send_text(bad))
    eq(r[1], false, "send_text(" .. show(bad) .. ")")
    eq(r[2], message, "message for " .. show(bad))
  end
  eq(ws:is_open(), true, "is_open")
  echo(ws, "\255", false, "the same bytes as binary")
  echo(ws, "ok", true, "text after the refusal")
  ws:close()
end)

-- send_json -----------------------------------------------------------------------

test("send_json of a string sends it as is, as text", function()
  local ws = connect(WS .. "/echo")
  check_send(ws, "send_json", '{"a": [1, 2]}')
  expect_msg(ws, '{"a": [1, 2]}', true, "string")
  ws:close()
end)

test("send_json of a table uses the global json_encode", function()
  local ws = connect(WS .. "/echo")
  check_send(ws, "send_json", { b = 1, a = { 1, 2, "x" } })
  expect_msg(ws, '{"a":[1,2,"x"],"b":1}', true, "default json_encode")
  local seen
  with_json_encode(function(v) seen = v; return '{"custom":true}' end, function()
    local t = { 1 }
    check_send(ws, "send_json", t)
    truthy(rawequal(seen, t), "json_encode got the table")
  end)
  expect_msg(ws, '{"custom":true}', true, "custom json_encode")
  ws:close()
end)

test("send_json errors: json_encode missing, throwing, returning a non-string", function()
  local ws = connect(WS .. "/echo")
  with_json_encode(nil, function()
    raises(function() ws:send_json({}) end,
      "send_json: the global 'json_encode' is not a function (got nil)", "missing")
  end)
  with_json_encode(42, function()
    raises(function() ws:send_json({}) end,
      "send_json: the global 'json_encode' is not a function (got number)", "a number")
  end)
  with_json_encode(function() error("boom", 0) end, function()
    raises(function() ws:send_json({}) end, "send_json: json_encode failed: boom", "throws")
  end)
  with_json_encode(function() return 5 end, function()
    raises(function() ws:send_json({}) end,
      "send_json: json_encode returned number, expected a string", "returns a number")
  end)
  raises(function() ws:send_json(5) end,
    "bad argument #1 to 'send_json' (string or table expected, got number)", "number argument")
  raises(function() ws:send_json(nil) end,
    "bad argument #1 to 'send_json' (string or table expected, got nil)", "nil argument")
  eq(ws:is_open(), true, "still open")
  check_send(ws, "send_json", "[]")
  expect_msg(ws, "[]", true, "after the errors")
  ws:close()
end)

-- Errors --------------------------------------------------------------------------

test("connection refused", function()
  check_fail(pack(ws_connect("ws://127.0.0.1:" .. CLOSED_PORT .. "/echo")),
    "connection refused (127.0.0.1:" .. CLOSED_PORT .. ")")
end)

test("wss with an untrusted CA fails", function()
  check_fail(pack(ws_connect(WSS_WRONG_CA .. "/echo")), "TLS: certificate verify failed", "prefix")
end)

-- A refused upgrade: nil, the message, and the server's answer.
local function check_refused(r, status, message, body, what)
  if r[1] ~= nil then
    pcall(function() r[1]:close() end)
    error(what .. ": expected nil, got " .. show(r[1]), 2)
  end
  eq(r.n, 3, what .. ": number of results")
  eq(r[2], message, what .. ": error message")
  local res = r[3]
  eq(type(res), "table", what .. ": the answer")
  eq(res.status, status, what .. ": status")
  eq(res.body, body, what .. ": body")
  eq(res.headers["content-type"], "text/plain; charset=utf-8", what .. ": content-type")
  eq(res.header_list[1][1], "date", what .. ": header_list")
end

test("upgrade refused: HTTP 403 and 404, with the server's answer", function()
  check_refused(pack(ws_connect(WS .. "/reject")), 403, "WebSocket upgrade refused: HTTP 403 Forbidden",
    "forbidden\n", "403")
  check_refused(pack(ws_connect(WSS .. "/reject", { timeout_ms = 5000 })), 403,
    "WebSocket upgrade refused: HTTP 403 Forbidden", "forbidden\n", "wss")
  check_refused(pack(ws_connect(WS .. "/no/such/path")), 404, "WebSocket upgrade refused: HTTP 404 Not Found",
    "not found\n", "404")
end)

test("upgrade headers reach the server", function()
  local ws = connect_with(WS .. "/upgrade-headers",
    { headers = { Authorization = "Bearer x", Origin = "https://game.example", { "X-Twice", "1" }, { "X-Twice", "2" } } })
  local lines = recv(ws, "the server's view") .. "\n"
  truthy(lines:find("\nauthorization: Bearer x\n", 1, true), "authorization: " .. lines)
  truthy(lines:find("\norigin: https://game.example", 1, true), "origin: " .. lines)
  truthy(lines:find("\nx-twice: 1\nx-twice: 2\n", 1, true), "a repeated header, in order: " .. lines)
  truthy(lines:find("\nuser-agent: luanet/", 1, true), "our user agent: " .. lines)
  echo(ws, "and then it echoes", true, "echo")
  ws:close()
  ws = connect_with(WS .. "/upgrade-headers", { headers = { ["User-Agent"] = "game/2" } })
  lines = recv(ws, "the server's view") .. "\n"
  truthy(lines:find("\nuser-agent: game/2\n", 1, true), "a script's user agent replaces ours: " .. lines)
  eq(select(2, lines:gsub("user%-agent:", "")), 1, "one user agent")
  ws:close()
end)

test("subprotocols: chosen, none chosen, one not offered", function()
  local ws = connect_with(WS .. "/protocol", { protocols = { "chat.v2", "chat.v1" } })
  eq(ws:protocol(), "chat.v2", "protocol()")
  expect_msg(ws, "protocol=chat.v2", true, "the server's choice")
  ws:close()
  ws = connect_with(WSS .. "/protocol?choose=chat.v1", { protocols = { "chat.v2", "chat.v1" } })
  eq(ws:protocol(), "chat.v1", "the second one, over wss")
  ws:close()
  ws = connect_with(WS .. "/protocol?choose=none", { protocols = { "chat.v2" } })
  eq(ws:protocol(), nil, "none chosen: the connection opens, protocol() is nil")
  expect_msg(ws, "protocol=None", true, "the server chose none")
  ws:close()
  ws = connect(WS .. "/echo")
  eq(ws:protocol(), nil, "none offered")
  ws:close()
  check_fail(pack(ws_connect(WS .. "/protocol?choose=other", { protocols = { "chat.v2" } })),
    "the server chose the subprotocol 'other', which was not offered")
end)

test("bad ws_connect options raise, naming them", function()
  raises(function() ws_connect(WS, { nope = 1 }) end, "bad option 'nope' to 'ws_connect'")
  raises(function() ws_connect(WS, { [1] = true }) end, "bad option key to 'ws_connect' (string expected, got number)")
  raises(function() ws_connect(WS, { timeout_ms = "5" }) end,
    "bad option 'timeout_ms' to 'ws_connect' (number expected, got string)")
  raises(function() ws_connect(WS, { timeout_ms = -1 }) end, "bad option 'timeout_ms' to 'ws_connect'")
  raises(function() ws_connect(WS, { protocols = "chat" }) end,
    "bad option 'protocols' to 'ws_connect' (table expected, got string)")
  raises(function() ws_connect(WS, { protocols = { "a b" } }) end,
    "bad option 'protocols' to 'ws_connect' (subprotocol 'a b' is not an HTTP token)")
  raises(function() ws_connect(WS, { protocols = { "x", "x" } }) end,
    "bad option 'protocols' to 'ws_connect' ('x' is offered twice)")
  raises(function() ws_connect(WS, { protocols = { 5 } }) end,
    "bad option 'protocols' to 'ws_connect' (entry 1: string expected, got number)")
  raises(function() ws_connect(WS, { headers = { ["X-A"] = "1\r\nX-B: 2" } }) end,
    "bad option 'headers' to 'ws_connect' (the value of header 'X-A' contains a CR)")
  raises(function() ws_connect(WS, { headers = { ["Bad Name"] = "1" } }) end, "bad option 'headers' to 'ws_connect'")
  raises(function() ws_connect(WS, { headers = { ["sec-websocket-protocol"] = "x" } }) end,
    "bad option 'headers' to 'ws_connect' (header 'Sec-WebSocket-Protocol' is set by the WebSocket handshake)")
end)

test("unsupported scheme and invalid URLs", function()
  check_fail(pack(ws_connect("http://x")), "unsupported URL scheme 'http' (expected ws or wss)")
  check_fail(pack(ws_connect("https://x")),
    "unsupported URL scheme 'https' (expected ws or wss)", nil, "https")
  check_fail(pack(ws_connect("")), "invalid URL", "prefix", "''")
  check_fail(pack(ws_connect("not a url")), "invalid URL", "prefix", "'not a url'")
end)

-- (Hypercorn's /slow/<ms> cannot serve here: Hypercorn answers any upgrade
-- request at once, with 403. The WebSocket peer's /slow?ms=N answers late.)
test("handshake timeout: 500 ms against a server that answers late", function()
  check_fail(pack(ws_connect(WS .. "/slow?ms=3000", { timeout_ms = 300 })), "timed out after 300 ms",
    nil, "timeout_ms in the table")
  local t0 = os.time()
  local r = pack(ws_connect(WS .. "/slow?ms=3000", 500))
  local elapsed = os.difftime(os.time(), t0)
  check_fail(r, "timed out after 500 ms")
  truthy(elapsed <= 2, "took " .. tostring(elapsed) .. " s (want <= 2)")
  local ws = connect(WS .. "/slow?ms=100", 5000)
  echo(ws, "late but fine", true, "echo after a slow handshake")
  ws:close()
end)

test("bad arguments raise", function()
  raises(function() ws_connect(nil) end,
    "bad argument #1 to 'ws_connect' (string expected, got nil)", "ws_connect(nil)")
  raises(function() ws_connect(WS .. "/echo", -1) end,
    "bad argument #2 to 'ws_connect' (timeout_ms must be a non-negative number)", "timeout -1")
  local ws = connect(WS .. "/echo")
  raises(function() ws:send_text(nil) end,
    "bad argument #1 to 'send_text' (string expected, got nil)", "send_text(nil)")
  raises(function() ws:send_binary(nil) end,
    "bad argument #1 to 'send_binary' (string expected, got nil)", "send_binary(nil)")
  raises(function() ws.send_text({}, "x") end,
    "calling 'send_text' on bad self (net_ws expected, got table)", "send_text on a table")
  for _, name in ipairs({ "send_binary", "recv", "poll", "is_open", "close", "error" }) do
    raises(function() ws[name]({}, "x") end,
      "calling '" .. name .. "' on bad self (net_ws expected, got table)", name .. " on a table")
  end
  raises(function() ws.poll(nil) end,
    "calling 'poll' on bad self (net_ws expected, got nil)", "poll on nil")
  eq(ws:is_open(), true, "still open")
  ws:close()
end)

test("a socket works after connection failures", function()
  ws_connect("ws://127.0.0.1:" .. CLOSED_PORT .. "/")
  ws_connect(WS .. "/reject")
  local ws = connect(WS .. "/echo")
  echo(ws, "fine", true, "echo")
  ws:close()
end)

test("two sockets at once stay independent", function()
  local a = connect(WS .. "/echo")
  local b = connect(WSS .. "/echo")
  check_send(a, "send_text", "to a")
  check_send(b, "send_text", "to b")
  expect_msg(b, "to b", true, "b")
  expect_msg(a, "to a", true, "a")
  a:close()
  echo(b, "b again", false, "b after a closed")
  b:close()
end)

-- Lifetime ------------------------------------------------------------------------

test("the answer to a server's close is written even behind a full send buffer", function()
  local ws = assert(ws_connect(WS .. "/close-when-full?ms=500", { max_send_buffer_bytes = 64 * MiB }))
  local chunk = string.rep("x", MiB)
  -- 32 MiB: more than the kernel's buffers on both sides hold.
  for i = 1, 32 do
    eq(ws:send_binary(chunk), true, "send " .. i .. " while the server does not read")
  end
  local deadline = os.time() + 10
  local msg, is_text
  repeat msg, is_text = ws:recv(100) until is_text == false or os.time() > deadline
  eq(is_text, false, "closed by the server")
  eq(ws:error(), nil, "a clean close")
  -- Without our answer the server gives up after its 5 s close timeout.
  local reply
  for _ = 1, 50 do
    local stats = connect(WS .. "/last-reply")
    reply = recv(stats, "/last-reply")
    stats:close()
    if reply ~= "reply=none" then break end
    sleep(0.2)
  end
  eq(reply, "reply=4001", "the server got our close frame, echoing its code")
end)

test("closed sockets are closed on the server (/stats open=0)", function()
  local list = {}
  for i = 1, 5 do list[i] = connect(WS .. "/silent") end
  local open = stats()
  truthy(open >= 5, "/stats open=" .. tostring(open) .. " with 5 sockets open")
  for i = 1, 5 do list[i]:close() end
  wait_none_open("after close()")
end)

test("garbage collection closes open sockets", function()
  do
    local list = {}
    for i = 1, 20 do list[i] = connect(WS .. "/silent") end
    local open = stats()
    truthy(open >= 20, "/stats open=" .. tostring(open) .. " with 20 sockets open")
    list = nil
  end
  collectgarbage()
  collectgarbage()
  wait_none_open("after collectgarbage()")
end)

test("garbage collection while messages arrive does not crash", function()
  do
    local ws = connect(WS .. "/send?count=1000&size=100")
    ws = nil
  end
  collectgarbage()
  collectgarbage()
  do
    local ws = connect(WSS .. "/send?count=1000&size=100")
    ws:recv(WAIT)
    ws = nil
  end
  collectgarbage()
  collectgarbage()
  wait_none_open("after collecting busy sockets")
  local ws = connect(WS .. "/echo")
  echo(ws, "alive", true, "echo after the collection")
  ws:close()
end)

test("1000 sockets open at once on one I/O thread", function()
  collectgarbage()
  local before = thread_count()
  truthy(before, "Threads: in /proc/self/status")
  local list = {}
  for i = 1, 1000 do
    local ws, err = ws_connect(WS .. "/silent", 10000)
    if not ws then
      for j = 1, #list do list[j]:close() end
      error("socket #" .. i .. ": ws_connect failed: " .. show(err))
    end
    list[i] = ws
  end
  local all_open = true
  for i = 1, 1000 do
    if not list[i]:is_open() then all_open = false end
  end
  local during = thread_count()
  local open = stats()
  for i = 1, 1000 do list[i]:close() end
  truthy(all_open, "all 1000 sockets is_open()")
  truthy(open >= 1000, "/stats open=" .. tostring(open) .. " with 1000 sockets open")
  truthy(during <= before + 2,
    "threads: " .. tostring(before) .. " before, " .. tostring(during) .. " with 1000 sockets open")
  wait_none_open("after closing 1000 sockets")
end)
