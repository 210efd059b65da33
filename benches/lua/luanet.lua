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
--   ws_fanout URL COUNT SIZE SOCKETS
--                              SOCKETS sockets to URL, which asks for COUNT binary
--                              messages of SIZE bytes each; one frame loop polls
--                              them all until every message has come
--   poll_empty URL COUNT       COUNT x ws:poll() on a socket nothing arrives on
--   idle URL COUNT             open COUNT sockets and keep them; report threads
--                              and RSS before/after
--
-- Non-blocking requests (net.fetch, net.configure; see "net.fetch cases" below):
--   fetch_get URL COUNT INFLIGHT
--                              COUNT x net.fetch{url} (HTTP/1.1), INFLIGHT of them
--                              outstanding at once, max_host_connections=INFLIGHT
--   fetch_h2 URL COUNT INFLIGHT
--                              the same over HTTPS (verify = false, http_version
--                              "2") on ONE connection (max_host_connections=1):
--                              every reply must be HTTP/2
--   fetch_poll URL COUNT       COUNT x req:poll() on one request that stays
--                              pending (URL: a location that answers slowly)
--   fetch_poll_loop URL COUNT  the same loop without the poll call (the loop's
--                              own cost, subtracted by the orchestrator)
--   fetch_frame URL COUNT REQUESTS
--                              start REQUESTS slow requests, wait until all are
--                              connected, then COUNT frames, each polling every one
--   fetch_many URL COUNT       start COUNT slow requests at once; report threads
--                              and peak RSS (VmHWM) before and while all are
--                              connected, then cancel them all
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

-- SOCKETS sockets to URL (which asks for COUNT binary messages of SIZE
-- bytes each), read as a frame loop reads: every frame, each socket is
-- polled until it has nothing more.
function cases.ws_fanout()
  local size = num(arg[4], "SIZE")
  local sockets = num(arg[5], "SOCKETS")
  local list, got = {}, {}
  for i = 1, sockets do
    list[i] = connect(url)
    got[i] = 0
  end
  local poll = list[1].poll -- the method, looked up once, as a hot loop would
  local left, started = sockets * count, os.time()
  while left > 0 do
    local before, waiting = left, nil
    for i = 1, sockets do
      local n = got[i]
      if n < count then
        local ws = list[i]
        local msg, is_text = poll(ws)
        while msg ~= nil do
          if #msg ~= size or is_text ~= false then fail("ws_fanout socket " .. i .. ": bad message") end
          n = n + 1
          msg, is_text = poll(ws)
        end
        if is_text == false then fail("ws_fanout socket " .. i .. " closed: " .. tostring(ws:error())) end
        left = left - (n - got[i])
        got[i] = n
        if n < count then waiting = i end
      end
    end
    -- A frame that found nothing: wait up to 1 ms, as a frame loop sleeps
    -- until its next frame, rather than spin.
    if left == before and waiting then
      local msg, is_text = list[waiting]:recv(1)
      if msg ~= nil then
        if #msg ~= size or is_text ~= false then fail("ws_fanout socket " .. waiting .. ": bad message") end
        got[waiting] = got[waiting] + 1
        left = left - 1
      end
    end
    if os.time() - started > STALL_S then fail("ws_fanout: stalled with " .. left .. " messages left") end
  end
  for i = 1, sockets do list[i]:close() end
  return "ops=" .. int(sockets * count)
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

-- Threads, VmRSS and VmHWM (peak RSS) of this process, in KiB.
local function proc_status()
  local f = io.open("/proc/self/status", "r")
  if not f then fail("cannot read /proc/self/status") end
  local text = f:read("*a")
  f:close()
  local threads = tonumber(text:match("\nThreads:%s*(%d+)"))
  local rss = tonumber(text:match("\nVmRSS:%s*(%d+)"))
  local hwm = tonumber(text:match("\nVmHWM:%s*(%d+)"))
  if not threads or not rss or not hwm then fail("no Threads/VmRSS/VmHWM in /proc/self/status") end
  return threads, rss, hwm
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

-- net.fetch cases ------------------------------------------------------------
--
-- net.fetch{...} takes net.request's options and returns a request at once;
-- req:poll() gives nothing (nil) while it is pending, then exactly what
-- net.request gives: a result table, or nil, message, kind. req:wait(ms)
-- blocks until it is done, at most ms; req:state() is "pending" until then.
-- net.configure{max_host_connections, max_total_connections} sets the
-- process-wide connection caps (defaults 6 and 256) for requests started
-- after it.

-- Budget for one req:wait() of the request loops; only there so that a
-- broken peer fails the run instead of hanging it.
local WAIT_TIMEOUT_MS = 30000
-- How long the slow cases wait for all their requests to be connected.
local CONNECT_DEADLINE_S = 60

local function need_fetch()
  if type(net.fetch) ~= "function" or type(net.configure) ~= "function" then
    fail(case .. ": this luanet has no net.fetch / net.configure (non-blocking requests)")
  end
end

local function fetch(options, what)
  local req, err, kind = net.fetch(options)
  if not req then fail(what .. ": net.fetch: " .. tostring(err) .. " (" .. tostring(kind) .. ")") end
  return req
end

local function describe(res, err, kind)
  if res then return "status " .. tostring(res.status) end
  return tostring(err) .. " (" .. tostring(kind) .. ")"
end

-- Whether what poll() or wait() returned is an outcome: a wait() that timed
-- out gives nil too, perhaps with a message; state() tells it from a failure.
local function is_outcome(req, res, err)
  return res ~= nil or (err ~= nil and req:state() ~= "pending")
end

-- COUNT requests with `options`, INFLIGHT outstanding at once, as a program
-- with many requests to make would: poll every outstanding request, start a
-- new one in the place of each that finished, and when none did, sleep in
-- wait() on the oldest instead of spinning. `version`: the HTTP version every
-- reply must have (nil: any).
local function fetch_loop(options, inflight, version)
  if inflight < 1 then fail(case .. ": INFLIGHT must be at least 1") end
  local slots, seq = {}, {}
  local started, done, bytes = 0, 0, 0
  local n = math.min(inflight, count)
  local function start(s)
    started = started + 1
    slots[s], seq[s] = fetch(options, case .. " #" .. started), started
  end
  local function finish(s, res, err, kind)
    local what = case .. " #" .. seq[s]
    if not res then fail(what .. ": " .. describe(res, err, kind)) end
    if res.status ~= 200 then fail(what .. ": status " .. tostring(res.status)) end
    if #res.body == 0 then fail(what .. ": empty body") end
    if version and res.http_version ~= version then
      fail(what .. ": HTTP/" .. tostring(res.http_version) .. ", expected HTTP/" .. version)
    end
    bytes = bytes + #res.body
    done = done + 1
    if started < count then start(s) else slots[s] = false end
  end
  for s = 1, n do start(s) end
  while done < count do
    local progressed = false
    for s = 1, n do
      local req = slots[s]
      if req then
        local res, err, kind = req:poll()
        if res ~= nil or err ~= nil then
          finish(s, res, err, kind)
          progressed = true
        end
      end
    end
    if not progressed then
      local oldest
      for s = 1, n do
        if slots[s] and (not oldest or seq[s] < seq[oldest]) then oldest = s end
      end
      local req = slots[oldest]
      local res, err, kind = req:wait(WAIT_TIMEOUT_MS)
      if not is_outcome(req, res, err) then
        fail(case .. " #" .. seq[oldest] .. ": no reply in " .. WAIT_TIMEOUT_MS .. " ms")
      end
      finish(oldest, res, err, kind)
    end
  end
  return "ops=" .. int(count) .. " bytes=" .. int(bytes)
end

function cases.fetch_get()
  need_fetch()
  local inflight = num(arg[4], "INFLIGHT")
  net.configure{ max_host_connections = math.max(inflight, 1) }
  return fetch_loop({ url = url }, inflight, nil)
end

function cases.fetch_h2()
  need_fetch()
  local inflight = num(arg[4], "INFLIGHT")
  -- One connection: every request is a stream on it.
  net.configure{ max_host_connections = 1 }
  return fetch_loop({ url = url, verify = false, http_version = "2" }, inflight, "2")
end

-- Connections established to URL's port, from /proc/net/tcp (the servers
-- have no other client while a benchmark runs).
local server_port = tonumber(url:match("^%a+://[^/:]+:(%d+)"))
local function connections()
  if not server_port then fail(case .. ": no port in " .. url) end
  local f = io.open("/proc/net/tcp", "r")
  if not f then fail("cannot read /proc/net/tcp") end
  local want = string.format("%04X", server_port)
  local n = 0
  for line in f:lines() do
    local port, st = line:match("^%s*%d+: %x+:%x+ %x+:(%x+) (%x+)")
    if port == want and st == "01" then n = n + 1 end
  end
  f:close()
  return n
end

-- Fails if any of `reqs` has finished: they all point at a location that
-- answers slowly, so none should have.
local function check_pending(reqs)
  for i = 1, #reqs do
    local res, err, kind = reqs[i]:poll()
    if res ~= nil or err ~= nil then
      fail(case .. ": request #" .. i .. " finished early: " .. describe(res, err, kind))
    end
  end
end

-- Starts n requests to the slow URL (caps raised so that all of them run at
-- once) and waits until n connections are established, at most
-- CONNECT_DEADLINE_S; returns the requests and the connections reached.
local function start_slow(n)
  local cap = math.max(n, 1)
  net.configure{ max_host_connections = cap, max_total_connections = cap }
  local before = connections()
  local reqs = {}
  for i = 1, n do reqs[i] = fetch({ url = url }, case .. " #" .. i) end
  local since = os.time()
  local open = connections() - before
  while open < n and os.time() - since <= CONNECT_DEADLINE_S do
    check_pending(reqs)
    reqs[1]:wait(20) -- a 20 ms sleep: the request stays pending
    open = connections() - before
  end
  check_pending(reqs)
  return reqs, open
end

function cases.fetch_poll()
  need_fetch()
  local reqs, open = start_slow(1)
  if open < 1 then fail("fetch_poll: the request did not connect in " .. CONNECT_DEADLINE_S .. " s") end
  local req = reqs[1]
  for i = 1, count do
    local res, err = req:poll()
    if res ~= nil or err ~= nil then
      fail("fetch_poll #" .. i .. ": expected nil, got " .. describe(res, err))
    end
  end
  req:cancel()
  return "ops=" .. int(count)
end

function cases.fetch_poll_loop()
  local none = nil -- where fetch_poll has req:poll()
  for i = 1, count do
    local res, err = none, none
    if res ~= nil or err ~= nil then
      fail("fetch_poll_loop #" .. i .. ": expected nil, got " .. describe(res, err))
    end
  end
  return "ops=" .. int(count)
end

function cases.fetch_frame()
  need_fetch()
  local n = num(arg[4], "REQUESTS")
  local reqs, open = start_slow(n)
  if open < n then
    fail("fetch_frame: " .. open .. " of " .. n .. " requests connected in " .. CONNECT_DEADLINE_S .. " s")
  end
  for frame = 1, count do
    for i = 1, n do
      local res, err = reqs[i]:poll()
      if res ~= nil or err ~= nil then
        fail("fetch_frame " .. frame .. ", request #" .. i .. ": expected nil, got " .. describe(res, err))
      end
    end
  end
  for i = 1, n do reqs[i]:cancel() end
  return "frames=" .. int(count) .. " requests=" .. int(n)
end

function cases.fetch_many()
  need_fetch()
  local threads_before, rss_before, hwm_before = proc_status()
  local reqs, open = start_slow(count)
  local threads_during, rss_during, hwm_during = proc_status()
  local line = "requests=" .. int(count) .. " connected=" .. int(open)
    .. " threads_before=" .. threads_before .. " threads_during=" .. threads_during
    .. " rss_before_kb=" .. rss_before .. " rss_during_kb=" .. rss_during
    .. " hwm_before_kb=" .. hwm_before .. " hwm_during_kb=" .. hwm_during
  return line, function()
    for i = 1, count do reqs[i]:cancel() end
  end
end

local run = cases[case]
if not run then fail("unknown case: " .. tostring(case)) end
local line, after = run()
io.stdout:write("ok ", line, "\n")
io.stdout:flush()
if after then after() end
