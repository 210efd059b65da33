-- The environment variables luanet honours, each through what it controls:
-- - proxies (http_proxy, https_proxy, no_proxy; libcurl reads them on every
--   request) through a real proxy, the test peer's tinyproxy (LUANET_PROXY);
-- - the trust store (OpenSSL's SSL_CERT_FILE and SSL_CERT_DIR) for HTTPS and
--   WSS, against the peer's servers whose CA only those variables name.
--
-- Run inside the local test peer:
--
--   python testpeer/serve.py -- env LUA_CPATH="/dir/with/?.so;;" \
--       lua5.4 lua_tests/runner.lua lua_tests/test_environment.lua
--
-- Code for Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT alike.
--
-- A Lua process cannot change its own environment, so every case runs a
-- child interpreter (the one running these tests) under `env`, with the
-- variables set (or removed) as the case needs and every proxy variable it
-- does not set removed. The child
-- makes its requests and prints their results as a Lua chunk between two
-- marker lines; the shell then prints the child's exit status. The whole
-- output is checked, so a crash or a stray message in the child fails.

local T = ...
local eq, truthy, matches = T.eq, T.truthy, T.matches
local starts, show = T.starts, T.show
local test = T.test
local env, check_ok, check_fail, inspect_ok = T.env, T.check_ok, T.check_fail, T.inspect_ok

local HTTP = env("LUANET_HTTP")
local HTTPS = env("LUANET_HTTPS")
local HTTPS_WRONG_CA = env("LUANET_HTTPS_WRONG_CA")
local PROXY = env("LUANET_PROXY")
local CLOSED_PORT = env("LUANET_CLOSED_PORT")
local WSS = env("LUANET_WSS")
local CA_FILE = env("SSL_CERT_FILE") -- children inherit it unless a case removes it
local CA_DIR = env("LUANET_CA_DIR")
local OTHER_CA_FILE = env("LUANET_OTHER_CA_FILE")
local DEAD_PROXY = "http://127.0.0.1:" .. CLOSED_PORT

local net = require("net")
local USER_AGENT = "luanet/" .. net.version
local VIA = "^1%.1 luanet%-test%-proxy %(tinyproxy/[%d.]+%)$"
local TIMEOUT = 10000 -- ms, for every request of a child: nothing hangs the suite

-- Every variable libcurl may take a proxy from; removed from each child's
-- environment, then the case sets its own.
local PROXY_VARIABLES = {
  "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
  "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY",
}

-- The command running us (the interpreter, already quoted for the shell).
local LUA = truthy(T.interpreter(), "arg[-1] (the interpreter)")
local shquote = T.shquote

local loadstr = loadstring or load

-- The child's code: makes the requests and prints each one's results as
-- {n = count, v1, v2, ...}, strings with %q (read back by the same Lua).
local CHILD = [==[
local requests = ...
local function q(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end
local function record(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = q((select(i, ...))) end
  return "{n = " .. select("#", ...) .. ", " .. table.concat(parts, ", ") .. "},\n"
end
require("net")
local out = { "return {\n" }
for _, r in ipairs(requests) do
  if r[1] == "get" then
    out[#out + 1] = record(net_http_get(r[2], r[3]))
  elseif r[1] == "ws" then
    local ws, err = ws_connect(r[2], r[3])
    out[#out + 1] = record(ws and tostring(ws), err)
    if ws then ws:close() end
  else
    out[#out + 1] = record(net_http_post(r[2], r[3], r[4], r[5]))
  end
end
out[#out + 1] = "}"
io.write("LUANET-RESULT\n", table.concat(out), "\nLUANET-END\n")
]==]

local function literal(requests)
  local items = {}
  for _, r in ipairs(requests) do
    local fields = {}
    for i, v in ipairs(r) do
      fields[i] = type(v) == "string" and string.format("%q", v) or tostring(v)
    end
    items[#items + 1] = "{" .. table.concat(fields, ", ") .. "}"
  end
  return "{" .. table.concat(items, ", ") .. "}"
end

-- Runs the requests in a child whose environment has exactly the proxy
-- variables in vars (a list of {name, value}; a value of false removes the
-- variable, for the trust store's); returns one packed result (as T.pack)
-- per request.
local function child(vars, requests)
  local words = { "env" }
  for _, name in ipairs(PROXY_VARIABLES) do words[#words + 1] = "-u " .. name end
  -- env takes every -u before the first assignment.
  for _, kv in ipairs(vars) do
    if kv[2] == false then words[#words + 1] = "-u " .. kv[1] end
  end
  for _, kv in ipairs(vars) do
    if kv[2] ~= false then words[#words + 1] = shquote(kv[1] .. "=" .. kv[2]) end
  end
  local cpath = os.getenv("LUA_CPATH")
  if cpath then words[#words + 1] = shquote("LUA_CPATH=" .. cpath) end
  words[#words + 1] = LUA
  words[#words + 1] = "-e"
  words[#words + 1] = shquote("(function(...) " .. CHILD .. " end)(" .. literal(requests) .. ")")
  local command = table.concat(words, " ") .. ' 2>&1; echo "LUANET-EXIT $?"'
  local pipe = assert(io.popen(command, "r"))
  local output = pipe:read("*a")
  pipe:close()
  local before, chunk, after = output:match("^(.-)LUANET%-RESULT\n(.*)\nLUANET%-END\n(.*)$")
  if before ~= "" or after ~= "LUANET-EXIT 0\n" then
    error("child: unexpected output (want only the results and exit status 0):\n" .. output, 2)
  end
  local fn, err = loadstr(chunk)
  if not fn then error("child: unreadable results: " .. tostring(err) .. "\n" .. output, 2) end
  local results = fn()
  eq(#results, #requests, "number of results from the child")
  return results
end

local function get(url) return { "get", url, TIMEOUT } end
local function ws(url) return { "ws", url, TIMEOUT } end
local function post(url, ctype, body) return { "post", url, ctype, body, TIMEOUT } end

-- An /inspect response: 200, GET or POST of /inspect from luanet; returns
-- the Via header the server saw ("" when none).
local function via_of(r, method, what)
  local i = inspect_ok(r, what)
  eq(i["method"], method, what .. ": method")
  eq(i["path"], "/inspect", what .. ": path")
  eq(i["user-agent"], USER_AGENT, what .. ": user-agent")
  truthy(i["via"] ~= nil, what .. ": a via line in /inspect")
  return i["via"], i
end

-- tinyproxy's own count of the requests it handled (its statistics page,
-- itself one request).
local function proxy_requests()
  local r = child({ { "http_proxy", PROXY } }, { get("http://tinyproxy.stats/") })[1]
  check_ok(r, 200, nil, "tinyproxy statistics")
  return tonumber(matches(r[3], "Number of requests: %d+", "statistics page")
    :match("Number of requests: (%d+)"))
end

-- The harness itself ---------------------------------------------------------

test("a child without proxy variables reaches the peer directly", function()
  local r = child({}, { get(HTTP .. "/inspect") })
  eq(via_of(r[1], "GET", "direct GET"), "", "via")
end)

-- http_proxy ---------------------------------------------------------------------

test("http_proxy: http:// GET and POST go through the proxy (Via header)", function()
  local r = child({ { "http_proxy", PROXY } }, {
    get(HTTP .. "/inspect"),
    post(HTTP .. "/inspect", "application/json", "[1,2,3]"),
    post(HTTP .. "/echo", "application/octet-stream", "a\0b\r\nc"),
    get(HTTP .. "/status/404"),
  })
  matches(via_of(r[1], "GET", "GET"), VIA, "via of GET")
  local via, i = via_of(r[2], "POST", "POST")
  matches(via, VIA, "via of POST")
  eq(i["content-type"], "application/json", "POST: content-type")
  eq(i["body-length"], "7", "POST: body-length")
  check_ok(r[3], 200, "a\0b\r\nc", "POST /echo")
  check_ok(r[4], 404, "status 404", "GET /status/404")
end)

test("http_proxy does not apply to https:// (direct)", function()
  local r = child({ { "http_proxy", DEAD_PROXY } }, { get(HTTPS .. "/inspect") })
  eq(via_of(r[1], "GET", "GET https"), "", "via")
end)

-- https_proxy --------------------------------------------------------------------

test("https_proxy: https:// GET is tunnelled (CONNECT), TLS still verified", function()
  local before = proxy_requests()
  local r = child({ { "https_proxy", PROXY } }, { get(HTTPS .. "/inspect") })
  local after = proxy_requests()
  local via, i = via_of(r[1], "GET", "GET through the tunnel")
  eq(via, "", "via (the proxy cannot see inside TLS)")
  eq(i["http-version"], "2", "http-version (ALPN through the tunnel)")
  -- One CONNECT, plus the second statistics request itself.
  eq(after - before, 2, "requests the proxy handled")
end)

test("https_proxy: an untrusted certificate behind the tunnel still fails", function()
  local r = child({ { "https_proxy", PROXY } }, { get(HTTPS_WRONG_CA .. "/") })
  truthy(r[1][1] == false, "ok == false, got " .. show(r[1][1]))
  starts(r[1][4], "TLS: certificate verify failed", "error message")
end)

test("https_proxy does not apply to http:// (direct)", function()
  local r = child({ { "https_proxy", DEAD_PROXY } }, { get(HTTP .. "/inspect") })
  eq(via_of(r[1], "GET", "GET http"), "", "via")
end)

-- no_proxy -----------------------------------------------------------------------

test("no_proxy=127.0.0.1 bypasses http_proxy for that host", function()
  local r = child({ { "http_proxy", PROXY }, { "no_proxy", "127.0.0.1" } },
    { get(HTTP .. "/inspect") })
  eq(via_of(r[1], "GET", "GET"), "", "via (direct)")
end)

test("no_proxy naming another host leaves the proxy in use", function()
  local r = child({ { "http_proxy", PROXY }, { "no_proxy", "example.invalid,10.0.0.1" } },
    { get(HTTP .. "/inspect") })
  matches(via_of(r[1], "GET", "GET"), VIA, "via")
end)

-- A dead proxy -------------------------------------------------------------------
--
-- The message says the proxy refused, not the origin (never contacted).

test("dead http_proxy: false, 0, \"\", readable message", function()
  local r = child({ { "http_proxy", DEAD_PROXY } }, {
    get(HTTP .. "/inspect"),
    post(HTTP .. "/echo", "text/plain", "x"),
  })
  check_fail(r[1], "connection refused by the proxy", "exact", "GET")
  check_fail(r[2], "connection refused by the proxy", "exact", "POST")
end)

test("dead https_proxy: false, 0, \"\", readable message", function()
  local r = child({ { "https_proxy", DEAD_PROXY } }, { get(HTTPS .. "/inspect") })
  check_fail(r[1], "connection refused by the proxy", "exact", "GET")
end)

test("unresolvable proxy host: a readable message", function()
  local r = child({ { "http_proxy", "http://proxy.invalid:3128" } }, { get(HTTP .. "/inspect") })
  check_fail(r[1], "could not resolve proxy host 'proxy.invalid'", "exact", "GET")
end)

-- The trust store ----------------------------------------------------------------

test("SSL_CERT_DIR alone is enough to trust a private CA (https and wss)", function()
  local r = child({ { "SSL_CERT_FILE", false }, { "SSL_CERT_DIR", CA_DIR } },
    { get(HTTPS .. "/status/200"), ws(WSS .. "/echo") })
  check_ok(r[1], 200, "status 200", "https with SSL_CERT_DIR")
  eq(r[2].n, 2, "ws_connect: number of results")
  eq(r[2][1], "websocket(open)", "wss with SSL_CERT_DIR")
  eq(r[2][2], nil, "wss with SSL_CERT_DIR: no error")
end)

test("SSL_CERT_FILE alone is enough to trust a private CA (https and wss)", function()
  local r = child({ { "SSL_CERT_FILE", CA_FILE }, { "SSL_CERT_DIR", false } },
    { get(HTTPS .. "/status/200"), ws(WSS .. "/echo") })
  check_ok(r[1], 200, "status 200", "https with SSL_CERT_FILE")
  eq(r[2][1], "websocket(open)", "wss with SSL_CERT_FILE")
end)

test("without them the system store does not trust the test CA", function()
  local r = child({ { "SSL_CERT_FILE", false }, { "SSL_CERT_DIR", false } },
    { get(HTTPS .. "/status/200"), ws(WSS .. "/echo") })
  check_fail(r[1], "TLS: certificate verify failed", "prefix", "https with the system store")
  eq(r[2][1], nil, "wss with the system store: no socket")
  starts(r[2][2], "TLS: certificate verify failed", "wss with the system store: error")
end)

test("SSL_CERT_FILE naming another CA: its servers are trusted, CA #1's are not", function()
  local r = child({ { "SSL_CERT_FILE", OTHER_CA_FILE }, { "SSL_CERT_DIR", false } },
    { get(HTTPS .. "/status/200"), get(HTTPS_WRONG_CA .. "/status/200") })
  check_fail(r[1], "TLS: certificate verify failed", "prefix", "server of CA #1 with only CA #2 trusted")
  check_ok(r[2], 200, "status 200", "server of CA #2 with CA #2 trusted")
end)
