-- net.fetch: non-blocking requests on the shared I/O thread, against the
-- local test peer.
--
--   python testpeer/serve.py -- env LUA_CPATH="/dir/with/?.so;;" \
--       lua5.4 lua_tests/runner.lua lua_tests/test_fetch.lua
--
-- Code for Lua 5.1, 5.2, 5.3, 5.4, 5.5 and LuaJIT alike.

local T = ...
local eq, truthy, matches, raises = T.eq, T.truthy, T.matches, T.raises
local pack, show, test, env = T.pack, T.show, T.test, T.env

local HTTP = env("LUANET_HTTP")
local HTTPS = env("LUANET_HTTPS")
local CLOSED_PORT = env("LUANET_CLOSED_PORT")
local LUA = truthy(T.interpreter(), "arg[-1] (the interpreter)")

local net = require("net")
local DEFAULTS = { max_host_connections = 6, max_total_connections = 256 }

-- Names unique to this run, so that runs under several ABIs at once never
-- share the peer's records.
local RUN = tostring(os.time()) .. "-" .. tostring({}):match("0x(%x+)") .. "-"
  .. (jit and "jit" or _VERSION:gsub("%W", ""))
local function unique(name) return RUN .. "-" .. name end

-- Waits about `ms` (a request that answers after that long).
local function sleep(ms)
  net.fetch{ url = HTTP .. "/delay?ms=" .. ms }:wait()
end

-- The result of a request that must succeed.
local function done(req, what)
  local r = pack(req:wait(20000))
  if r[1] == nil then
    error((what or "request") .. ": failed: " .. show(r[2]) .. " (" .. show(r[3]) .. ")", 2)
  end
  return r[1]
end

local function get(path) return done(net.fetch{ url = HTTP .. path }, path) end

-- The peer's JSON record (flat, integers only) as a table.
local function record(path)
  local t = {}
  for k, v in get(path).body:gmatch('"([%w_]+)": (%d+)') do t[k] = tonumber(v) end
  return t
end

-- Polls `check` every 50 ms for at most `ms`; true once it held.
local function eventually(ms, check)
  for _ = 1, ms / 50 do
    if check() then return true end
    sleep(50)
  end
  return check()
end

local function threads() return T.proc_status("Threads") end

test("a request runs while the script goes on, and its outcome stays", function()
  local req = net.fetch{ url = HTTP .. "/delay?ms=300" }
  eq(pack(req:poll()).n, 1, "results of poll while pending")
  eq(req:poll(), nil, "poll while pending")
  eq(req:state(), "pending", "state")
  eq(tostring(req), "request(pending)", "tostring")
  local res = done(req)
  eq(res.status, 200, "status")
  eq(res.body, "ok", "body")
  eq(res.url, HTTP .. "/delay?ms=300", "url")
  eq(req:state(), "done", "state after")
  eq(tostring(req), "request(done)", "tostring after")
  for i = 1, 3 do
    local again = req:poll()
    eq(again.status, 200, "poll " .. i .. " status")
    eq(again.body, "ok", "poll " .. i .. " body")
  end
  local waited = req:wait()
  eq(waited.status, 200, "wait after")
  eq(getmetatable(req), "net_request", "metatable is hidden")
end)

test("every option of net.request applies", function()
  local req = net.fetch{
    url = HTTP .. "/echo", method = "PUT", body = "hello",
    headers = { ["X-One"] = "1" }, timeout_ms = 5000,
  }
  local res = done(req)
  eq(res.status, 200, "status")
  eq(res.body, "hello", "echoed body")
  local redirected = done(net.fetch{ url = HTTP .. "/redirect-to?url=/delay%3Fms%3D1" })
  eq(redirected.status, 200, "redirect status")
  eq(redirected.redirects, 1, "redirects followed")
  eq(redirected.url, HTTP .. "/delay?ms=1", "final url")
end)

test("failures give the same three values as net.request", function()
  local req = net.fetch{ url = "http://127.0.0.1:" .. CLOSED_PORT .. "/" }
  local r = pack(req:wait(10000))
  eq(r.n, 3, "results")
  eq(r[1], nil, "res")
  eq(type(r[2]), "string", "message")
  eq(r[3], "connect", "kind")
  eq(req:state(), "failed", "state")
  local r2 = pack(req:poll())
  eq(r2[2], r[2], "the same message every time")
  local slow = net.fetch{ url = HTTP .. "/delay?ms=3000", timeout_ms = 200 }
  local t = pack(slow:wait(10000))
  eq(t[1], nil, "timed out")
  eq(t[3], "timeout", "kind")
end)

test("wait gives nil, nil when its time runs out; wait(0) does not block", function()
  local req = net.fetch{ url = HTTP .. "/delay?ms=2000" }
  local r = pack(req:wait(50))
  eq(r.n, 2, "results")
  eq(r[1], nil, "res")
  eq(r[2], nil, "err")
  eq(pack(req:wait(0)).n, 2, "wait(0) results")
  req:cancel()
end)

test("cancel stops the transfer: the server sees it close", function()
  local id = unique("cancel")
  local req = net.fetch{ url = HTTP .. "/drip?ms=20&id=" .. id }
  truthy(eventually(5000, function() return req:progress() > 0 end), "bytes arrive")
  req:cancel()
  local r = pack(req:poll())
  eq(r.n, 3, "results")
  eq(r[1], nil, "res")
  eq(r[2], "cancelled", "message")
  eq(r[3], "aborted", "kind")
  eq(req:state(), "cancelled", "state")
  eq(tostring(req), "request(cancelled)", "tostring")
  req:cancel() -- twice is fine
  truthy(eventually(5000, function() return get("/drip-state?id=" .. id).body == "disconnected" end),
    "the server saw the connection close")
  eq(req:state(), "cancelled", "still cancelled")
end)

test("progress only grows and ends at the total", function()
  local size = 200000
  local req = net.fetch{ url = HTTP .. "/drip?ms=2&piece=4096&bytes=" .. size }
  local last, samples = 0, 0
  while req:state() == "pending" do
    local received, total, sent, sent_total = req:progress()
    truthy(received >= last, "never shrinks: " .. received .. " after " .. last)
    truthy(total == nil or total == size, "total: " .. show(total))
    eq(sent, 0, "sent")
    eq(sent_total, nil, "nothing to send")
    last, samples = received, samples + 1
    req:wait(5)
  end
  local received, total = req:progress()
  eq(received, size, "received at the end")
  eq(total, size, "total")
  eq(#req:poll().body, size, "body")
  truthy(samples > 3, "sampled while running")
  local post = net.fetch{ url = HTTP .. "/echo", method = "POST", body = string.rep("x", 1000) }
  done(post)
  local _, _, sent, sent_total = post:progress()
  eq(sent, 1000, "sent")
  eq(sent_total, 1000, "send total")
end)

test("a large body goes out at the speed of the connection", function()
  local size = 8 * 1024 * 1024
  local body = T.pattern(size)
  local req = net.fetch{ url = HTTP .. "/echo", method = "POST", body = body, timeout_ms = 30000 }
  local res = done(req)
  eq(res.status, 200, "status")
  eq(#res.body, size, "echoed size")
  truthy(res.body == body, "echoed bytes")
  local _, _, sent, sent_total = req:progress()
  eq(sent, size, "sent")
  eq(sent_total, size, "send total")
  -- Generous: a stalled upload moves 64 KiB a second, 2 minutes for this.
  truthy(res.timings.total < 15000, "uploaded in " .. res.timings.total .. " ms")
end)

test("with a cap, requests queue in order", function()
  net.configure{ max_host_connections = 2 }
  local reqs, order = {}, {}
  for i = 1, 6 do reqs[i] = net.fetch{ url = HTTP .. "/delay?ms=300" } end
  local finished = {}
  while #order < 6 do
    for i = 1, 6 do
      if not finished[i] and reqs[i]:poll() then
        finished[i] = true
        order[#order + 1] = i
      end
    end
    reqs[1]:wait(5)
    sleep(5)
  end
  net.configure(DEFAULTS)
  local rank = {}
  for position, i in ipairs(order) do rank[i] = position end
  for i = 1, 6 do
    local group = math.floor((i - 1) / 2)
    truthy(rank[i] > group * 2 and rank[i] <= group * 2 + 2,
      "request " .. i .. " finished in its pair: order " .. table.concat(order, ","))
  end
end)

test("timeout_ms counts from net.fetch, waiting behind the cap included", function()
  net.configure{ max_host_connections = 1 }
  local first = net.fetch{ url = HTTP .. "/delay?ms=1500" }
  local queued = net.fetch{ url = HTTP .. "/delay?ms=10", timeout_ms = 300 }
  local r = pack(queued:wait(10000))
  net.configure(DEFAULTS)
  eq(r[1], nil, "the queued request failed")
  eq(r[2], "timed out after 300 ms", "message")
  eq(r[3], "timeout", "kind")
  eq(first:state(), "pending", "the first still runs")
  eq(done(first).status, 200, "and then finishes")
end)

test("200 concurrent requests take one round, on the same threads", function()
  eq(pack(net.configure{ max_host_connections = 250 }).n, 1, "configure's results")
  local one = net.fetch{ url = HTTP .. "/delay?ms=500" }
  local before = threads()
  done(one)
  local tag = unique("many")
  local reqs = {}
  for i = 1, 200 do reqs[i] = net.fetch{ url = HTTP .. "/delay?ms=1000&tag=" .. tag } end
  local during = threads()
  local longest = 0
  for i = 1, 200 do
    local res = done(reqs[i])
    eq(res.status, 200, "status " .. i)
    if res.timings.total > longest then longest = res.timings.total end
  end
  local limits = net.configure(DEFAULTS)
  eq(limits.max_host_connections, 6, "back to the default")
  truthy(longest < 3000, "all finished within 3 s of their start: " .. longest .. " ms")
  eq(record("/ports?tag=" .. tag).connections, 200, "connections")
  if before then eq(during, before, "threads while 200 are in flight") end
end)

test("HTTP/2: 100 concurrent requests share one connection", function()
  local tag = unique("h2")
  local reqs = {}
  for i = 1, 100 do reqs[i] = net.fetch{ url = HTTPS .. "/delay?ms=200&tag=" .. tag } end
  for i = 1, 100 do
    local res = done(reqs[i])
    eq(res.status, 200, "status " .. i)
    eq(res.http_version, "2", "version " .. i)
  end
  local seen = record("/ports?tag=" .. tag)
  eq(seen.requests, 100, "requests the server saw")
  eq(seen.connections, 1, "connections the server saw")
end)

test("stream = true: Server-Sent Events arrive while the stream is open", function()
  local req = net.fetch{ url = HTTP .. "/sse?n=3&ms=100&hold=500", stream = true }
  local chunks, while_open = {}, nil
  for _ = 1, 1000 do
    local chunk = req:read()
    if chunk == nil then break end
    eq(type(chunk), "string", "a chunk")
    if chunk ~= "" then
      chunks[#chunks + 1] = chunk
      if while_open == nil and req:state() == "pending" then while_open = chunk end
    end
    req:wait(10)
  end
  eq(table.concat(chunks), "data: event 1\n\ndata: event 2\n\ndata: event 3\n\n", "events")
  matches(truthy(while_open, "a chunk read while pending"), "^data: event 1\n\n", "first event")
  local res = req:poll()
  eq(res.status, 200, "status")
  eq(res.body, "", "body")
  eq(res.headers["content-type"], "text/event-stream", "content type")
  eq(req:read(), nil, "read after the end")
  raises(function() net.fetch{ url = HTTP .. "/" }:read() end, "stream = true", "read without stream")
end)

test("a stream the script does not read pauses at its bound", function()
  local size = 8 * 1024 * 1024
  local req = net.fetch{ url = HTTP .. "/drip?ms=0&piece=65536&bytes=" .. size, stream = true }
  sleep(600)
  local paused = req:progress()
  eq(req:state(), "pending", "paused, not done")
  truthy(paused < 3 * 1024 * 1024, "received while nobody reads: " .. paused)
  local total = 0
  for _ = 1, 100000 do
    local chunk = req:read()
    if chunk == nil then break end
    truthy(#chunk <= 2 * 1024 * 1024, "a chunk within the bound: " .. #chunk)
    total = total + #chunk
    if chunk == "" then req:wait(5) end
  end
  eq(total, size, "every byte")
  eq(req:poll().status, 200, "status")
end)

test("a failed stream ends read and poll says why", function()
  local req = net.fetch{ url = HTTP .. "/truncated/1000", stream = true }
  local total = 0
  for _ = 1, 10000 do
    local chunk = req:read()
    if chunk == nil then break end
    total = total + #chunk
    req:wait(5)
  end
  local r = pack(req:poll())
  eq(r[1], nil, "failed")
  eq(r[3], "protocol", "kind")
  eq(req:state(), "failed", "state")
end)

test("collected requests are cancelled: the server sees them close", function()
  local prefix = unique("gc")
  local held = {}
  for i = 1, 5 do held[i] = net.fetch{ url = HTTP .. "/drip?ms=50&id=" .. prefix .. i } end
  truthy(eventually(5000, function() return record("/drip-count?prefix=" .. prefix).open == 5 end),
    "five drips open")
  held = nil
  collectgarbage()
  collectgarbage()
  truthy(eventually(5000, function()
    return record("/drip-count?prefix=" .. prefix).disconnected == 5
  end), "five drips closed by the client")
end)

test("lua_close with transfers in flight returns at once", function()
  local prefix = unique("close")
  local script = "local net = require 'net'; net.configure{ max_host_connections = 30 }; "
    .. "keep = {}; for i = 1, 20 do "
    .. "keep[i] = net.fetch{ url = '" .. HTTP .. "/drip?ms=1000&id=" .. prefix .. "' .. i } end; "
    .. "local t = net.fetch{ url = '" .. HTTP .. "/delay?ms=300' }:wait()"
  local command = "timeout 20 " .. LUA .. " -e " .. T.shquote(script)
  local status = os.execute(command)
  truthy(status == true or status == 0, "the child exited by itself: " .. show(status))
  truthy(eventually(5000, function()
    local seen = record("/drip-count?prefix=" .. prefix)
    return seen.open == 0 and seen.disconnected == 20
  end), "the server saw all 20 close")
end)

test("bad options raise, naming them", function()
  raises(function() net.fetch("x") end, "bad argument #1 to 'net.fetch' (table expected, got string)")
  raises(function() net.fetch{} end, "bad option 'url' to 'net.fetch' (string expected, got nil)")
  raises(function() net.fetch{ url = HTTP, stream = 1 } end,
    "bad option 'stream' to 'net.fetch' (boolean expected, got number)")
  raises(function() net.fetch{ url = HTTP, nope = 1 } end, "bad option 'nope' to 'net.fetch'")
  raises(function() net.fetch{ url = HTTP, stream = true, output = "/tmp/x" } end,
    "bad options to 'net.fetch' (stream and output cannot be combined)")
  raises(function() net.request{ url = HTTP, stream = true } end, "bad option 'stream' to 'net.request'")
  raises(function() net.configure{ max_host_connections = 0 } end,
    "bad option 'max_host_connections' to 'net.configure'")
  raises(function() net.configure{ max_total_connections = 2^40 } end,
    "bad options to 'net.configure' (max_total_connections must be between 1 and 1048576)")
  raises(function() net.configure{ other = 1 } end, "bad option 'other' to 'net.configure'")
  raises(function() net.configure{ 5 } end, "bad option key to 'net.configure' (string expected, got number)")
  raises(function() net.configure(5) end, "bad argument #1 to 'net.configure' (table expected, got number)")
  local limits = net.configure()
  eq(limits.max_host_connections, 6, "unchanged host cap")
  eq(limits.max_total_connections, 256, "unchanged total cap")
  local req = net.fetch{ url = HTTP .. "/delay?ms=1" }
  raises(function() req:wait("x") end, "bad argument #1 to 'wait' (number expected, got string)")
  raises(function() req.poll(5) end, "calling 'poll' on bad self (net_request expected, got number)")
  raises(function() req.state({}) end, "calling 'state' on bad self")
  done(req)
end)
