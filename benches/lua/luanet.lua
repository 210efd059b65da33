-- luanet benchmark client: HTTP through net_http_get / net_http_post (libcurl
-- inside, connections kept alive in the library's pool) and WebSocket through
-- ws_connect (one background I/O thread for every socket).
--
-- Interpreters: lua5.1, lua5.2, lua5.3, lua5.4, luajit (LUA_CPATH must point
-- at the net.so built for that ABI).
--
-- Usage: <interp> luanet.lua CASE URL COUNT [SIZE]
--   get URL COUNT              COUNT x net_http_get(URL): true, 200, body non-empty
--   post URL COUNT SIZE        COUNT x net_http_post of one SIZE-byte body: true, 200
--   download URL COUNT         COUNT (0 or 1) x net_http_get of a large body
--   request_get URL COUNT      COUNT x net.request{url, two headers}: status 200
--   download_output URL COUNT PATH
--                              COUNT (0 or 1) x net.request{url, output = PATH}
--   ws_echo URL COUNT SIZE     COUNT x (send_text SIZE bytes, recv the same text back)
--   ws_stream URL COUNT SIZE   URL already asks the server for COUNT binary
--                              messages of SIZE bytes; read them with ws:poll()
--                              in a tight loop, as a frame loop would
--   poll_empty URL COUNT       COUNT x ws:poll() on a socket nothing arrives on
--   idle URL COUNT             open COUNT sockets and keep them; report threads
--                              and RSS before/after
--
-- The orchestrator times the whole process and subtracts a run with COUNT=0,
-- which still loads the module and (for WebSocket cases) connects. So this
-- script does not time itself. It verifies every result, and on any mismatch
-- or error prints a message on stderr and exits with status 1. On success it
-- prints exactly one line on stdout: "ok key=value ...".

-- Budget for a single blocking wait (ws:recv); only there so that a broken
-- peer fails the run instead of hanging it.
local RECV_TIMEOUT_MS = 30000
-- Same for ws_stream's polling loop, in seconds.
local STALL_S = 30

local fail, num, int, case, url, count =
  dofile((arg[0]:match("^(.*/)") or "./") .. "client.lua")("luanet.lua")

local ok_load, net = pcall(require, "net")
if not ok_load then fail("cannot load the net module: " .. tostring(net)) end

local function connect(u)
  local ws, err = ws_connect(u)
  if not ws then fail("ws_connect(" .. u .. "): " .. tostring(err)) end
  return ws
end

local cases = {}

function cases.get()
  local bytes = 0
  for i = 1, count do
    local ok, status, body, err = net_http_get(url)
    if ok ~= true or status ~= 200 then
      fail("get #" .. i .. ": " .. tostring(ok) .. " " .. tostring(status) .. " " .. tostring(err))
    end
    if #body == 0 then fail("get #" .. i .. ": empty body") end
    bytes = bytes + #body
  end
  return "ops=" .. int(count) .. " bytes=" .. int(bytes)
end

function cases.post()
  local size = num(arg[4], "SIZE")
  local payload = string.rep("x", size)
  for i = 1, count do
    local ok, status, _, err = net_http_post(url, "application/octet-stream", payload)
    if ok ~= true or status ~= 200 then
      fail("post #" .. i .. ": " .. tostring(ok) .. " " .. tostring(status) .. " " .. tostring(err))
    end
  end
  return "ops=" .. int(count) .. " bytes=" .. int(count * size)
end

function cases.download()
  if count > 1 then fail("download: COUNT must be 0 or 1") end
  local bytes = 0
  for _ = 1, count do
    local ok, status, body, err = net_http_get(url)
    if ok ~= true or status ~= 200 then
      fail("download: " .. tostring(ok) .. " " .. tostring(status) .. " " .. tostring(err))
    end
    if #body == 0 then fail("download: empty body") end
    bytes = bytes + #body
  end
  return "ops=" .. int(count) .. " bytes=" .. int(bytes)
end

-- The same two request headers as curl_client's get_headers.
local BENCH_HEADERS = { Accept = "text/plain", ["X-Bench"] = "1" }

function cases.request_get()
  local options = { url = url, headers = BENCH_HEADERS }
  local bytes = 0
  for i = 1, count do
    local res, err = net.request(options)
    if not res or res.status ~= 200 then
      fail("request_get #" .. i .. ": " .. tostring(res and res.status) .. " " .. tostring(err))
    end
    if #res.body == 0 then fail("request_get #" .. i .. ": empty body") end
    bytes = bytes + #res.body
  end
  return "ops=" .. int(count) .. " bytes=" .. int(bytes)
end

function cases.download_output()
  if count > 1 then fail("download_output: COUNT must be 0 or 1") end
  local path = arg[4] or fail("download_output: no PATH")
  for _ = 1, count do
    local res, err = net.request{ url = url, output = path }
    if not res or res.status ~= 200 then
      fail("download_output: " .. tostring(res and res.status) .. " " .. tostring(err))
    end
  end
  return "ops=" .. int(count)
end

function cases.ws_echo()
  local size = num(arg[4], "SIZE")
  local payload = string.rep("x", size)
  local ws = connect(url)
  for i = 1, count do
    local sent, serr = ws:send_text(payload)
    if not sent then fail("ws_echo send #" .. i .. ": " .. tostring(serr)) end
    local msg, is_text = ws:recv(RECV_TIMEOUT_MS)
    if msg ~= payload or is_text ~= true then
      fail("ws_echo recv #" .. i .. ": got " .. (msg and (#msg .. " bytes") or "nil")
        .. ", is_text=" .. tostring(is_text) .. ", error: " .. tostring(ws:error()))
    end
  end
  ws:close()
  return "ops=" .. int(count) .. " bytes=" .. int(count * size)
end

function cases.ws_stream()
  local size = num(arg[4], "SIZE")
  local ws = connect(url)
  local got, bytes = 0, 0
  -- Stall guard, checked only every 2^20 empty polls so that it costs nothing
  -- measurable: fail when no message came for STALL_S seconds.
  local spins, got_at_check, since = 0, 0, os.time()
  while got < count do
    local msg, is_text = ws:poll()
    if msg ~= nil then
      got = got + 1
      if #msg ~= size or is_text ~= false then
        fail("ws_stream message #" .. got .. ": " .. #msg .. " bytes, is_text="
          .. tostring(is_text) .. " (expected " .. size .. " binary)")
      end
      bytes = bytes + #msg
    elseif is_text == false then
      fail("ws_stream: closed after " .. got .. " of " .. count .. " messages: " .. tostring(ws:error()))
    else
      -- nothing yet: spin, as a frame loop polling once per frame would
      spins = spins + 1
      if spins == 1048576 then
        spins = 0
        if got ~= got_at_check then
          got_at_check, since = got, os.time()
        elseif os.time() - since > STALL_S then
          fail("ws_stream: stalled after " .. got .. " of " .. count .. " messages")
        end
      end
    end
  end
  ws:close()
  return "ops=" .. int(count) .. " bytes=" .. int(bytes)
end

function cases.poll_empty()
  local ws = connect(url)
  for i = 1, count do
    local msg, is_text = ws:poll()
    if msg ~= nil or is_text ~= nil then
      fail("poll_empty #" .. i .. ": expected nil, nil, got " .. tostring(msg) .. ", " .. tostring(is_text))
    end
  end
  ws:close()
  return "ops=" .. int(count)
end

local function proc_status()
  local f = io.open("/proc/self/status", "r")
  if not f then fail("cannot read /proc/self/status") end
  local text = f:read("*a")
  f:close()
  local threads = tonumber(text:match("\nThreads:%s*(%d+)"))
  local rss = tonumber(text:match("\nVmRSS:%s*(%d+)"))
  if not threads or not rss then fail("no Threads/VmRSS in /proc/self/status") end
  return threads, rss
end

function cases.idle()
  local threads_before, rss_before = proc_status()
  local sockets = {}
  for i = 1, count do
    local ws = connect(url)
    if not ws:is_open() then fail("idle: socket #" .. i .. " is not open: " .. tostring(ws:error())) end
    sockets[i] = ws
  end
  local threads_after, rss_after = proc_status()
  for i = 1, count do
    if not sockets[i]:is_open() then
      fail("idle: socket #" .. i .. " closed: " .. tostring(sockets[i]:error()))
    end
  end
  local line = "sockets=" .. int(count) .. " threads_before=" .. threads_before
    .. " threads_after=" .. threads_after .. " rss_before_kb=" .. rss_before
    .. " rss_after_kb=" .. rss_after
  return line, function()
    for i = 1, count do sockets[i]:close() end
  end
end

local run = cases[case]
if not run then fail("unknown case: " .. tostring(case)) end
local line, after = run()
io.stdout:write("ok ", line, "\n")
io.stdout:flush()
if after then after() end
