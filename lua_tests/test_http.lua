-- HTTP contract tests for luanet (net_http_get / net_http_post).
--
-- Run inside the local test peer, which provides the servers and their
-- addresses in the environment:
--
--   python testpeer/serve.py -- env LUA_CPATH="/dir/with/?.so;;" \
--       lua5.4 lua_tests/runner.lua lua_tests/test_http.lua
--
-- Code for Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT alike.
--
-- Every call returns four values: ok, status, body, err. On success err is
-- nil (select('#', ...) is still 4), so callers written for the original
-- three-value API (ok, status, body) see exactly what they expect. On a
-- failure: false, 0, "", message.

local T = ...
local eq, truthy, matches = T.eq, T.truthy, T.matches
local contains, raises, pack, show = T.contains, T.raises, T.pack, T.show
local test = T.test
local env, check_ok, check_fail, inspect_ok = T.env, T.check_ok, T.check_fail, T.inspect_ok
local ALL_BYTES, pattern = T.ALL_BYTES, T.pattern

local HTTP = env("LUANET_HTTP")
local HTTP6 = env("LUANET_HTTP6")
local HTTPS = env("LUANET_HTTPS")
local HTTPS_WRONG_CA = env("LUANET_HTTPS_WRONG_CA")
local HTTPS_WRONG_HOST = env("LUANET_HTTPS_WRONG_HOST")
local CLOSED_PORT = env("LUANET_CLOSED_PORT")
local HTTPS_PORT = assert(HTTPS:match(":(%d+)$"), "no port in LUANET_HTTPS")

local net = require("net")

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

local function get(url, timeout)
  if timeout == nil then return pack(net_http_get(url)) end
  return pack(net_http_get(url, timeout))
end

local function post(url, ctype, body, timeout)
  if timeout == nil then return pack(net_http_post(url, ctype, body)) end
  return pack(net_http_post(url, ctype, body, timeout))
end

-- Loading -------------------------------------------------------------------

test("require 'net' returns the module table", function()
  eq(type(net), "table", "type(net)")
  eq(type(net.http_get), "function", "type(net.http_get)")
  eq(type(net.http_post), "function", "type(net.http_post)")
  eq(type(net.version), "string", "type(net.version)")
  matches(net.version, "^%d+%.%d+%.%d+", "net.version")
end)

test("globals are the same functions as net.*", function()
  eq(type(net_http_get), "function", "type(net_http_get)")
  eq(type(net_http_post), "function", "type(net_http_post)")
  truthy(rawequal(net_http_get, net.http_get), "net_http_get == net.http_get")
  truthy(rawequal(net_http_post, net.http_post), "net_http_post == net.http_post")
end)

-- Basic GET -----------------------------------------------------------------

test("GET / returns exactly true, 200, body (3 values)", function()
  check_ok(get(HTTP .. "/"), 200, "luanet test peer", "GET /")
  eq(select("#", net_http_get(HTTP .. "/")), 3, "select('#', net_http_get(...))")
  eq(select("#", net_http_post(HTTP .. "/echo", "text/plain", "x")), 3, "select('#', net_http_post(...))")
end)

-- The kernel's TCP row for local port `port` talking to remote port
-- `remote` (from /proc/net/tcp): its timer kind and time left (1/100 s).
local function tcp_timer(port, remote)
  local f = io.open("/proc/net/tcp", "r")
  if not f then return nil end
  local want = string.format(":%04X", port)
  local want_remote = string.format(":%04X", remote)
  for line in f:lines() do
    local localaddr, remoteaddr, timer, left = line:match("^%s*%d+: (%x+:%x+) (%x+:%x+) %x+ %x+:%x+ (%x+):(%x+)")
    if localaddr and localaddr:sub(-5) == want and remoteaddr:sub(-5) == want_remote then
      f:close()
      return tonumber(timer, 16), tonumber(left, 16)
    end
  end
  f:close()
  return nil
end

test("TCP keepalive is on: an idle pooled connection has its 60 s timer", function()
  local fields = inspect_ok(get(HTTP .. "/inspect"))
  local port = tonumber(fields["client-port"])
  local timer, left = tcp_timer(port, tonumber(HTTP:match(":(%d+)$")))
  eq(timer, 2, "timer kind (2: keepalive) of the idle connection")
  truthy(left > 45 * 100 and left <= 60 * 100, "keepalive timer between 45 and 60 s, got " .. show(left))
end)

test("a response cut inside its header section is a failure", function()
  local CUT = env("LUANET_CUT_RELAY")
  local authority = CUT:match("^http://(.*)$")
  for lines = 1, 3 do
    check_fail(get(CUT .. "/lines/" .. lines .. "/bytes/10"),
      "connection to " .. authority .. " broken in the response headers", nil, lines .. " line(s)")
  end
end)

test("three-value callers see ok, status, body", function()
  local ok, status, body = net_http_get(HTTP .. "/")
  eq(ok, true, "ok")
  eq(status, 200, "status")
  eq(body, "luanet test peer", "body")
end)

test("status is an integer (Lua 5.3+)", function()
  local r = get(HTTP .. "/status/201")
  check_ok(r, 201, "status 201")
  if math.type then eq(math.type(r[2]), "integer", "math.type(status)") end
end)

test("status codes 200 201 204 404 500 with exact bodies", function()
  check_ok(get(HTTP .. "/status/200"), 200, "status 200", "200")
  check_ok(get(HTTP .. "/status/201"), 201, "status 201", "201")
  check_ok(get(HTTP .. "/status/204"), 204, "", "204")
  check_ok(get(HTTP .. "/status/404"), 404, "status 404", "404")
  check_ok(get(HTTP .. "/status/500"), 500, "status 500", "500")
end)

test("unknown path is ok == true with 404", function()
  check_ok(get(HTTP .. "/no/such/thing"), 404, "not found")
end)

test("GET /bytes/0, /bytes/1, /bytes/256 exact", function()
  check_ok(get(HTTP .. "/bytes/0"), 200, "", "/bytes/0")
  check_ok(get(HTTP .. "/bytes/1"), 200, "\0", "/bytes/1")
  check_ok(get(HTTP .. "/bytes/256"), 200, ALL_BYTES, "/bytes/256")
end)

test("GET /bytes/10000000 exact (10 MB with NULs)", function()
  check_ok(get(HTTP .. "/bytes/10000000"), 200, pattern(10000000), "/bytes/10000000")
end)

test("GET /chunked/250000 exact (chunked transfer encoding)", function()
  check_ok(get(HTTP .. "/chunked/250000"), 200, pattern(250000), "/chunked/250000")
end)

test("GET /inspect: method, path, headers, HTTP/1.1", function()
  local i = inspect_ok(get(HTTP .. "/inspect"))
  eq(i["method"], "GET", "method")
  eq(i["path"], "/inspect", "path")
  eq(i["content-type"], "", "content-type")
  eq(i["body-length"], "0", "body-length")
  eq(i["http-version"], "1.1", "http-version")
end)

test("User-Agent is luanet/<version>", function()
  eq(inspect_ok(get(HTTP .. "/inspect"))["user-agent"], "luanet/" .. net.version, "user-agent")
end)

test("Accept-Encoding is sent and offers gzip", function()
  contains(inspect_ok(get(HTTP .. "/inspect"))["accept-encoding"], "gzip", "accept-encoding")
end)

test("gzip response body is decoded", function()
  check_ok(get(HTTP .. "/gzip"), 200, string.rep("compressed hello ", 100), "/gzip")
end)

test("query string is kept", function()
  local i = inspect_ok(get(HTTP .. "/inspect?a=1&b=two%20words"))
  eq(i["path"], "/inspect?a=1&b=two%20words", "path")
end)

test("keep-alive: two GETs reuse the connection (same client port)", function()
  local r1 = get(HTTP .. "/inspect")
  local r2 = get(HTTP .. "/inspect")
  local p1 = inspect_ok(r1, "first GET")["client-port"]
  local p2 = inspect_ok(r2, "second GET")["client-port"]
  matches(p1, "^%d+$", "first client-port")
  eq(p2, p1, "client-port of the second request")
end)

test("IPv6 literal [::1]", function()
  local i = inspect_ok(get(HTTP6 .. "/inspect?v=6"), "GET " .. HTTP6)
  eq(i["method"], "GET", "method")
  eq(i["path"], "/inspect?v=6", "path")
  check_ok(post(HTTP6 .. "/echo", "text/plain", "over six"), 200, "over six", "POST [::1]")
end)

-- POST ----------------------------------------------------------------------

test("POST /echo of all 256 byte values (incl. NUL) exact", function()
  check_ok(post(HTTP .. "/echo", "application/octet-stream", ALL_BYTES), 200, ALL_BYTES)
  local nuls = "\0a\0\0b\0"
  check_ok(post(HTTP .. "/echo", "application/octet-stream", nuls), 200, nuls, "NULs")
end)

test("POST /echo of an empty body", function()
  check_ok(post(HTTP .. "/echo", "text/plain", ""), 200, "")
end)

test("POST /echo of a 5 MiB body exact", function()
  local big = pattern(5 * 1024 * 1024)
  check_ok(post(HTTP .. "/echo", "application/octet-stream", big), 200, big)
end)

test("POST /inspect: method, content type, body length", function()
  local body = '{"hello":"world"}'
  local i = inspect_ok(post(HTTP .. "/inspect", "application/json", body))
  eq(i["method"], "POST", "method")
  eq(i["path"], "/inspect", "path")
  eq(i["content-type"], "application/json", "content-type")
  eq(i["body-length"], tostring(#body), "body-length")
  eq(i["user-agent"], "luanet/" .. net.version, "user-agent")
end)

test("POST sends the content type as given", function()
  local ct = "text/plain; charset=utf-8"
  eq(inspect_ok(post(HTTP .. "/inspect", ct, "x=1"))["content-type"], ct, "content-type")
  ct = "application/x-www-form-urlencoded"
  eq(inspect_ok(post(HTTP .. "/inspect", ct, "a=1&b=2"))["content-type"], ct, "content-type")
  ct = "text/plain; name=caf\233"
  eq(inspect_ok(post(HTTP .. "/inspect", ct, "x"))["content-type"], ct, "a byte beyond ASCII, unchanged")
  eq(inspect_ok(post(HTTP .. "/inspect", "", "x"))["content-type"], "", "an empty content type sends none")
end)

test("POST gets non-2xx statuses with ok == true", function()
  check_ok(post(HTTP .. "/status/500", "text/plain", "x"), 500, "status 500")
  check_ok(post(HTTP .. "/nowhere", "text/plain", "x"), 404, "not found")
end)

-- One pooled handle serves request after request: nothing of one request may
-- leak into the next (same client port = same handle and connection).

test("a GET after a POST on the same connection is a plain GET", function()
  local p = inspect_ok(post(HTTP .. "/inspect", "application/json", "[1,2]"), "POST")
  local g = inspect_ok(get(HTTP .. "/inspect"), "GET")
  eq(g["client-port"], p["client-port"], "client-port of the GET")
  eq(g["method"], "GET", "method")
  eq(g["content-type"], "", "content-type")
  eq(g["body-length"], "0", "body-length")
end)

test("a timeout does not stick to later requests", function()
  check_ok(get(HTTP .. "/", 300), 200, "luanet test peer", "with 300 ms")
  check_ok(get(HTTP .. "/slow/800"), 200, "slow", "then without a timeout")
  check_ok(post(HTTP .. "/echo", "text/plain", "x", 300), 200, "x", "POST with 300 ms")
  check_ok(post(HTTP .. "/slow/800", "text/plain", "x"), 200, "slow", "then POST without")
end)

test("the same URL again after it failed, redirected or changed scheme", function()
  local refused = HTTPS .. "/redirect-to?url=" .. urlencode(HTTP .. "/status/200")
  check_fail(get(refused), "redirect to a forbidden scheme (http) refused")
  check_fail(get(refused), "redirect to a forbidden scheme (http) refused", nil, "again")
  local up = HTTP .. "/redirect-to?url=" .. urlencode(HTTPS .. "/status/201")
  check_ok(get(up), 201, "status 201", "http -> https after the refusal")
  check_ok(get(HTTP .. "/redirect/2"), 200, "redirected", "relative")
  check_ok(get(HTTP .. "/redirect/2"), 200, "redirected", "relative again")
end)

-- Redirects -----------------------------------------------------------------

test("relative redirects are followed", function()
  check_ok(get(HTTP .. "/redirect/3"), 200, "redirected")
end)

test("10 redirects are followed", function()
  check_ok(get(HTTP .. "/redirect/10"), 200, "redirected")
end)

test("11 redirects fail: too many redirects", function()
  check_fail(get(HTTP .. "/redirect/11"), "too many redirects", "prefix")
end)

test("absolute redirect http -> http (other host and port)", function()
  local target = HTTP6 .. "/status/201"
  check_ok(get(HTTP .. "/redirect-to?url=" .. urlencode(target)), 201, "status 201")
end)

test("absolute redirect https -> https", function()
  local target = HTTPS .. "/inspect"
  local i = inspect_ok(get(HTTPS .. "/redirect-to?url=" .. urlencode(target)))
  eq(i["path"], "/inspect", "path after redirect")
end)

test("redirect https -> http is refused", function()
  local target = HTTP .. "/status/200"
  check_fail(get(HTTPS .. "/redirect-to?url=" .. urlencode(target)),
    "redirect to a forbidden scheme (http) refused")
end)

-- HTTPS ---------------------------------------------------------------------

test("HTTPS GET negotiates HTTP/2", function()
  local i = inspect_ok(get(HTTPS .. "/inspect"))
  eq(i["http-version"], "2", "http-version")
  eq(i["user-agent"], "luanet/" .. net.version, "user-agent")
  check_ok(get(HTTPS .. "/"), 200, "luanet test peer", "GET /")
end)

test("HTTPS to an IP address in the certificate (127.0.0.1)", function()
  check_ok(get("https://127.0.0.1:" .. HTTPS_PORT .. "/"), 200, "luanet test peer")
end)

test("HTTPS GET of 1000000 bytes and chunked body exact (HTTP/2)", function()
  check_ok(get(HTTPS .. "/bytes/1000000"), 200, pattern(1000000), "/bytes/1000000")
  check_ok(get(HTTPS .. "/chunked/250000"), 200, pattern(250000), "/chunked/250000")
end)

test("HTTPS gzip body is decoded", function()
  check_ok(get(HTTPS .. "/gzip"), 200, string.rep("compressed hello ", 100))
end)

test("HTTPS POST echo and inspect", function()
  check_ok(post(HTTPS .. "/echo", "application/octet-stream", ALL_BYTES), 200, ALL_BYTES, "echo 256")
  local big = pattern(1024 * 1024 + 7)
  check_ok(post(HTTPS .. "/echo", "application/octet-stream", big), 200, big, "echo 1 MiB")
  local i = inspect_ok(post(HTTPS .. "/inspect", "application/json", "[1,2,3]"))
  eq(i["method"], "POST", "method")
  eq(i["content-type"], "application/json", "content-type")
  eq(i["body-length"], "7", "body-length")
  eq(i["http-version"], "2", "http-version")
end)

test("HTTPS with an untrusted CA fails", function()
  check_fail(get(HTTPS_WRONG_CA .. "/"), "TLS: certificate verify failed", "prefix")
  check_fail(post(HTTPS_WRONG_CA .. "/echo", "text/plain", "x"),
    "TLS: certificate verify failed", "prefix", "POST")
end)

test("HTTPS with a host name mismatch fails", function()
  check_fail(get(HTTPS_WRONG_HOST .. "/"), "TLS: certificate verify failed", "prefix")
end)

-- Timeouts --------------------------------------------------------------------

-- request(...) (get or post, with timeout 500 ms) must fail with the
-- timeout message, and within 2 s.
local function check_times_out(request, ...)
  local t0 = os.time()
  local r = request(...)
  local elapsed = os.difftime(os.time(), t0)
  check_fail(r, "timed out after 500 ms")
  truthy(elapsed <= 2, "took " .. tostring(elapsed) .. " s (want <= 2)")
end

test("slow server: timeout 500 ms fails in time", function()
  check_times_out(get, HTTP .. "/slow/3000", 500)
end)

test("slow server: POST with timeout 500 ms fails", function()
  check_times_out(post, HTTP .. "/slow/3000", "text/plain", "x", 500)
end)

test("slow server: timeout 0, nil and 5000 succeed", function()
  check_ok(get(HTTP .. "/slow/100", 0), 200, "slow", "timeout 0")
  check_ok(get(HTTP .. "/slow/100", nil), 200, "slow", "timeout nil")
  check_ok(get(HTTP .. "/slow/100"), 200, "slow", "no timeout")
  check_ok(get(HTTP .. "/slow/100", 5000), 200, "slow", "timeout 5000")
  check_ok(post(HTTP .. "/slow/100", "text/plain", "x", 0), 200, "slow", "POST timeout 0")
end)

test("body stalled mid-transfer: timeout 500 ms fails", function()
  check_times_out(get, HTTP .. "/stall", 500)
end)

test("body stalled mid-transfer over HTTPS/HTTP2: timeout 500 ms fails", function()
  check_fail(get(HTTPS .. "/stall", 500), "timed out after 500 ms")
end)

-- Connection and URL errors ---------------------------------------------------

test("connection refused", function()
  check_fail(get("http://127.0.0.1:" .. CLOSED_PORT .. "/"),
    "connection refused (127.0.0.1:" .. CLOSED_PORT .. ")")
  check_fail(post("http://127.0.0.1:" .. CLOSED_PORT .. "/echo", "text/plain", "x"),
    "connection refused (127.0.0.1:" .. CLOSED_PORT .. ")", nil, "POST")
end)

test("invalid URLs", function()
  check_fail(get(""), "invalid URL", "prefix", "''")
  check_fail(get("not a url"), "invalid URL", "prefix", "'not a url'")
  check_fail(post("", "text/plain", "x"), "invalid URL", "prefix", "POST ''")
end)

test("unsupported URL scheme", function()
  check_fail(get("ftp://x"), "unsupported URL scheme 'ftp' (expected http or https)")
  check_fail(post("ftp://x", "text/plain", "x"),
    "unsupported URL scheme 'ftp' (expected http or https)", nil, "POST")
end)

test("a request works after failures", function()
  get("http://127.0.0.1:" .. CLOSED_PORT .. "/")
  get("ftp://x")
  check_ok(get(HTTP .. "/"), 200, "luanet test peer")
end)

-- Bad arguments raise Lua errors ------------------------------------------------

test("bad arguments to net_http_get raise errors", function()
  raises(function() return net_http_get(nil) end,
    "bad argument #1 to 'net_http_get' (string expected, got nil)", "nil url")
  raises(function() return net_http_get({}) end,
    "bad argument #1 to 'net_http_get' (string expected, got table)", "table url")
  raises(function() return net_http_get(HTTP .. "/", -1) end,
    "bad argument #2 to 'net_http_get' (timeout_ms must be a non-negative number)", "negative timeout")
  raises(function() return net_http_get(HTTP .. "/", {}) end,
    "bad argument #2 to 'net_http_get' (number expected, got table)", "table timeout")
end)

test("bad arguments to net_http_post raise errors", function()
  raises(function() return net_http_post(nil, "text/plain", "x") end,
    "bad argument #1 to 'net_http_post' (string expected, got nil)", "nil url")
  raises(function() return net_http_post(HTTP .. "/echo", nil, "x") end,
    "bad argument #2 to 'net_http_post' (string expected, got nil)", "nil content type")
  raises(function() return net_http_post(HTTP .. "/echo", "text/plain", nil) end,
    "bad argument #3 to 'net_http_post' (string expected, got nil)", "nil body")
  raises(function() return net_http_post(HTTP .. "/echo", "text/plain", "x", -5) end,
    "bad argument #4 to 'net_http_post' (timeout_ms must be a non-negative number)", "negative timeout")
  raises(function() return net_http_post(HTTP .. "/echo", "text/plain", "x", {}) end,
    "bad argument #4 to 'net_http_post' (number expected, got table)", "table timeout")
end)

test("bad arguments through net.* raise errors too", function()
  raises(function() return net.http_get(nil) end, "bad argument #1", "net.http_get(nil)")
  raises(function() return net.http_post(HTTP .. "/echo", "text/plain", nil) end,
    "bad argument #3", "net.http_post(url, ct, nil)")
end)

test("a content type with a line break fails instead of injecting a header", function()
  check_fail(post(HTTP .. "/inspect", "text/plain\r\nX-Injected: 1", "x"),
    "invalid content type: it contains a line break or NUL", "exact", "CRLF content type")
  check_fail(post(HTTP .. "/inspect", "text/plain\0x", "x"),
    "invalid content type: it contains a line break or NUL", "exact", "NUL content type")
end)

test("NaN timeout and a numeric-string url are handled like lauxlib does", function()
  raises(function() return net_http_get(HTTP .. "/", 0/0) end,
    "bad argument #2 to 'net_http_get' (timeout_ms must be a non-negative number)", "NaN timeout")
  check_fail(get(12345), "invalid URL '12345': relative URL without a base", "exact", "number url")
  check_ok(get(HTTP .. "/slow/50", "5000"), 200, "slow", "numeric-string timeout")
end)

test("requests work when the process has file descriptors above 1024", function()
  -- libcurl must poll(), not select(), which cannot watch descriptors >= 1024.
  local files = {}
  for i = 1, 1100 do files[i] = assert(io.open("/dev/null")) end
  local ok, err = pcall(function()
    check_ok(get(HTTP .. "/bytes/256"), 200, ALL_BYTES, "GET over fd 1024")
    check_ok(post(HTTPS .. "/echo", "text/plain", "high fd"), 200, "high fd", "HTTPS POST over fd 1024")
  end)
  for i = 1, #files do files[i]:close() end
  if not ok then error(err, 0) end
end)
