-- lua-http (daurnimator's "http" rock, on cqueues) benchmark client.
--
-- Interpreters: lua5.3 (Debian's lua-http/lua-cqueues also exist for 5.1 and
-- 5.2; nothing here needs more than 5.1, but the harness runs it on 5.3).
--
-- Connection reuse: http.request:go() does NOT reuse connections. lua-http
-- 0.4 has no pool; each go() calls http.client.connect and registers
-- connection:onidle(connection.close), so every request is a new TCP
-- connection. The `get`/`post` cases measure that (the usual way to use
-- it). Reusing a connection means keeping the connection object yourself:
-- http.client.connect{...}, then connection:new_stream() per request, which
-- is what `get_keepalive` does.
--
-- Usage: <interp> luahttp.lua CASE URL COUNT [SIZE]
--   get URL COUNT              COUNT x request.new_from_uri(URL):go(), body
--                              with stream:get_body_as_string(); status "200"
--   get_keepalive URL COUNT    COUNT x GET on one kept http.client connection
--   get_parallel URL COUNT WORKERS
--                              COUNT GETs in all, by WORKERS coroutines in one
--                              cqueue, each on its own kept connection doing
--                              GET after GET (the next number from a shared
--                              counter) until COUNT are done
--   post URL COUNT SIZE        COUNT x POST of one SIZE-byte body: status "200"
--                              (lua-http adds "Expect: 100-continue" to bodies
--                              over 1024 bytes)
--   ws_echo URL COUNT SIZE     http.websocket: connect, then COUNT x
--                              (send SIZE-byte text, receive it back)
--
-- The orchestrator times the process and subtracts a run with COUNT=0 (which
-- still loads the libraries and, for ws_echo and get_keepalive, connects;
-- get_parallel connects nothing with COUNT=0, as its peers do not), so
-- this script does not time itself. On any mismatch or error: message on
-- stderr, exit status 1. On success exactly one line on stdout:
-- "ok key=value ...".

-- Seconds; only there so that a broken peer fails the run instead of hanging.
local TIMEOUT = 30

local fail, num, int, case, url, count =
  dofile((arg[0]:match("^(.*/)") or "./") .. "client.lua")("luahttp.lua")

-- Debian 12 installs lua-http and lua-cqueues for 5.3, but three of lua-http's
-- pure-Lua dependencies (lua-lpeg-patterns, lua-basexx, lua-fifo) only under
-- /usr/share/lua/5.1 and 5.2. They are plain Lua that runs on 5.3, so fall
-- back to the 5.2 directory (searched last: it only supplies what is missing).
if _VERSION == "Lua 5.3" then
  package.path = package.path .. ";/usr/share/lua/5.2/?.lua;/usr/share/lua/5.2/?/init.lua"
end

local http_request = require("http.request")

-- Checks a response of lua-http; returns the body.
local function check(what, headers, stream, err)
  if not headers then fail(what .. ": " .. tostring(stream or err)) end
  local status = headers:get(":status")
  local body, berr = stream:get_body_as_string(TIMEOUT)
  if not body then fail(what .. ": reading the body: " .. tostring(berr)) end
  if status ~= "200" then fail(what .. ": status " .. tostring(status)) end
  local length = headers:get("content-length")
  if length and tonumber(length) ~= #body then
    fail(what .. ": body of " .. #body .. " bytes, Content-Length " .. length)
  end
  return body
end

local cases = {}

function cases.get()
  local bytes = 0
  for i = 1, count do
    local headers, stream, err = http_request.new_from_uri(url):go(TIMEOUT)
    local body = check("get #" .. i, headers, stream, err)
    if #body == 0 then fail("get #" .. i .. ": empty body") end
    bytes = bytes + #body
  end
  return "ops=" .. int(count) .. " bytes=" .. int(bytes)
end

-- What a kept connection needs for URL: the options of http.client.connect
-- (HTTP/1.1) and the request headers of a GET.
local function keepalive_target(what)
  local http_headers = require("http.headers")
  local http_util = require("http.util")
  local scheme, authority, path = url:match("^(https?)://([^/]+)(.*)$")
  if not scheme then fail(what .. ": cannot parse URL " .. url) end
  if path == "" then path = "/" end
  local host, port = http_util.split_authority(authority, scheme)
  local req = http_headers.new()
  req:append(":method", "GET")
  req:append(":scheme", scheme)
  req:append(":authority", authority)
  req:append(":path", path)
  return { host = host, port = port, tls = (scheme == "https"), version = 1.1 }, req
end

local function keepalive_connect(what, options)
  local conn, cerr = require("http.client").connect(options, TIMEOUT)
  if not conn then fail(what .. ": connect: " .. tostring(cerr)) end
  return conn
end

-- One GET on the kept connection `conn`; returns the body's length.
local function keepalive_get(what, conn, req)
  local stream = conn:new_stream()
  if not stream then fail(what .. ": connection closed by the server") end
  local ok, werr = stream:write_headers(req, true, TIMEOUT)
  if not ok then fail(what .. ": " .. tostring(werr)) end
  local headers, herr = stream:get_headers(TIMEOUT)
  local body = check(what, headers, stream, herr)
  if #body == 0 then fail(what .. ": empty body") end
  return #body
end

function cases.get_keepalive()
  local options, req = keepalive_target("get_keepalive")
  local conn = keepalive_connect("get_keepalive", options)
  local bytes = 0
  for i = 1, count do
    bytes = bytes + keepalive_get("get_keepalive #" .. i, conn, req)
  end
  conn:close()
  return "ops=" .. int(count) .. " bytes=" .. int(bytes)
end

function cases.get_parallel()
  local cqueues = require("cqueues")
  local workers = num(arg[4], "WORKERS")
  if workers < 1 then fail("get_parallel: WORKERS must be at least 1") end
  local options, req = keepalive_target("get_parallel")
  local cq = cqueues.new()
  local next_i, done, bytes = 1, 0, 0
  for w = 1, math.min(workers, count) do
    cq:wrap(function()
      local conn = keepalive_connect("get_parallel worker " .. w, options)
      while next_i <= count do
        local i = next_i
        next_i = i + 1
        -- (not `bytes = bytes + keepalive_get(...)`: the call yields, and
        -- the other coroutines add to bytes meanwhile)
        local got = keepalive_get("get_parallel #" .. i, conn, req)
        bytes, done = bytes + got, done + 1
      end
      conn:close()
    end)
  end
  local ok, err = cq:loop()
  if not ok then fail("get_parallel: " .. tostring(err)) end
  if done ~= count then fail("get_parallel: " .. done .. " of " .. count .. " GETs done") end
  return "ops=" .. int(count) .. " bytes=" .. int(bytes)
end

function cases.post()
  local size = num(arg[4], "SIZE")
  local payload = string.rep("x", size)
  for i = 1, count do
    local req = http_request.new_from_uri(url)
    req.headers:upsert(":method", "POST")
    req.headers:upsert("content-type", "application/octet-stream")
    req:set_body(payload)
    local headers, stream, err = req:go(TIMEOUT)
    check("post #" .. i, headers, stream, err)
  end
  return "ops=" .. int(count) .. " bytes=" .. int(count * size)
end

function cases.ws_echo()
  local websocket = require("http.websocket")
  local size = num(arg[4], "SIZE")
  local payload = string.rep("x", size)
  local ws = websocket.new_from_uri(url)
  local ok, cerr = ws:connect(TIMEOUT)
  if not ok then fail("ws_echo: connect: " .. tostring(cerr)) end
  for i = 1, count do
    local sent, serr = ws:send(payload, "text", TIMEOUT)
    if not sent then fail("ws_echo send #" .. i .. ": " .. tostring(serr)) end
    local msg, kind = ws:receive(TIMEOUT)
    if msg ~= payload or kind ~= "text" then
      fail("ws_echo receive #" .. i .. ": got " .. (msg and (#msg .. " bytes") or "nil")
        .. ", " .. tostring(kind))
    end
  end
  ws:close(1000, "", TIMEOUT)
  return "ops=" .. int(count) .. " bytes=" .. int(count * size)
end

local run = cases[case]
if not run then fail("unknown case: " .. tostring(case)) end
io.stdout:write("ok ", run(), "\n")
