-- net.request: the general request, against the local test peer.
--
--   python testpeer/serve.py -- env LUA_CPATH="/dir/with/?.so;;" \
--       lua5.4 lua_tests/runner.lua lua_tests/test_request.lua
--
-- Code for Lua 5.1, 5.2, 5.3, 5.4, 5.5 and LuaJIT alike.

local T = ...
local eq, truthy, matches, contains, raises = T.eq, T.truthy, T.matches, T.contains, T.raises
local pack, show, test, env = T.pack, T.show, T.test, T.env

local HTTP = env("LUANET_HTTP")
local HTTP6 = env("LUANET_HTTP6")
local HTTPS = env("LUANET_HTTPS")
local HTTPS_WRONG_CA = env("LUANET_HTTPS_WRONG_CA")
local HTTPS_WRONG_HOST = env("LUANET_HTTPS_WRONG_HOST")
local HTTPS_CLIENT_AUTH = env("LUANET_HTTPS_CLIENT_AUTH")
local CLIENT_CERT = env("LUANET_CLIENT_CERT")
local CLIENT_KEY = env("LUANET_CLIENT_KEY")
local CLIENT_CERT_KEY = env("LUANET_CLIENT_CERT_KEY")
local OTHER_CLIENT_CERT_KEY = env("LUANET_OTHER_CLIENT_CERT_KEY")
local OTHER_CA_FILE = env("LUANET_OTHER_CA_FILE")
local PROXY = env("LUANET_PROXY")
local CUT_RELAY = env("LUANET_CUT_RELAY")
local CLOSED_PORT = env("LUANET_CLOSED_PORT")

local net = require("net")
local USER_AGENT = "luanet/" .. net.version
local VIA = "^1%.1 luanet%-test%-proxy %(tinyproxy/[%d.]+%)$"

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- net.request that must succeed: returns the result table.
local function ok(options, what)
  local r = pack(net.request(options))
  if r[1] == nil then
    error((what or "request") .. ": failed: " .. show(r[2]) .. " (" .. show(r[3]) .. ")", 2)
  end
  eq(r.n, 1, (what or "request") .. ": number of results")
  return r[1]
end

-- net.request that must fail with `kind`; returns the message.
local function fails(options, kind, what)
  local r = pack(net.request(options))
  what = what or "request"
  if r[1] ~= nil then
    error(what .. ": expected a failure, got status " .. show(r[1].status), 2)
  end
  eq(r.n, 3, what .. ": number of results")
  eq(type(r[2]), "string", what .. ": type of the message")
  eq(r[3], kind, what .. ": kind (message " .. show(r[2]) .. ")")
  return r[2]
end

-- The request header lines /headers saw, minus the four libcurl adds to
-- every request (host, user-agent, accept, accept-encoding), which are
-- returned in a table by name.
local function seen_headers(body)
  local own, standard = {}, {}
  for name, value in body:gmatch("([^:\n]+): ([^\n]*)\n") do
    if name == "host" or name == "user-agent" or name == "accept" or name == "accept-encoding" then
      standard[name] = value
    else
      own[#own + 1] = name .. ": " .. value
    end
  end
  return table.concat(own, "\n"), standard
end

local function file_bytes(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("*a")
  f:close()
  return data
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- A fresh path in the temporary directory, with no file there.
local function temp_path()
  local name = os.tmpname()
  os.remove(name)
  return name .. ".luanet"
end

-- The module's function, with the options as given.
test("net.request is in the module table only, not a global", function()
  eq(type(net.request), "function", "type(net.request)")
  eq(rawget(_G, "net_request"), nil, "no global net_request")
  eq(rawget(_G, "request"), nil, "no global request")
end)

-- Methods -------------------------------------------------------------------

test("every method reaches the server as given, with its body", function()
  local cases = {
    { "GET", nil, "0" }, { "POST", "abc", "3" }, { "PUT", "four", "4" }, { "PATCH", '{"n":1}', "7" },
    { "DELETE", nil, "0" }, { "OPTIONS", nil, "0" }, { "PURGE", nil, "0" }, { "DELETE", "x", "1" },
  }
  for _, c in ipairs(cases) do
    local res = ok({ url = HTTP .. "/inspect", method = c[1], body = c[2] }, c[1])
    eq(res.status, 200, c[1] .. " status")
    local seen = T.inspect(res.body)
    eq(seen.method, c[1], c[1] .. " method seen")
    eq(seen["body-length"], c[3], c[1] .. " body length seen")
  end
end)

test("the default method is GET, and a body is sent back exactly", function()
  eq(T.inspect(ok({ url = HTTP .. "/inspect" }).body).method, "GET", "default method")
  local res = ok({ url = HTTP .. "/echo", method = "POST", body = T.ALL_BYTES })
  eq(res.body, T.ALL_BYTES, "echoed body")
end)

test("HEAD has no body but the headers of a GET", function()
  local res = ok({ url = HTTP .. "/", method = "HEAD" })
  eq(res.status, 200, "status")
  eq(res.body, "", "body")
  eq(res.headers["content-length"], "16", "content-length of the GET body")
end)

test("204 and 304 come back with empty bodies", function()
  for _, code in ipairs({ 204, 304 }) do
    local res = ok({ url = HTTP .. "/status/" .. code })
    eq(res.status, code, "status")
    eq(res.body, "", code .. " body")
  end
  eq(ok({ url = HTTP .. "/status/204", method = "DELETE" }).status, 204, "DELETE 204")
end)

test("no Content-Type is added, unless the script gives one", function()
  local seen = T.inspect(ok({ url = HTTP .. "/inspect", method = "POST", body = "a=1" }).body)
  eq(seen["content-type"], "", "no content type")
  seen = T.inspect(ok({ url = HTTP .. "/inspect", method = "POST", body = "{}",
    headers = { ["Content-Type"] = "application/json" } }).body)
  eq(seen["content-type"], "application/json", "the script's content type")
end)

test("POST, PUT and PATCH without a body send Content-Length: 0; GET sends none", function()
  for _, method in ipairs({ "POST", "PUT", "PATCH" }) do
    local own = seen_headers(ok({ url = HTTP .. "/headers", method = method }).body)
    eq(own, "content-length: 0", method .. " headers")
  end
  eq((seen_headers(ok({ url = HTTP .. "/headers" }).body)), "", "GET headers")
end)

-- Headers -------------------------------------------------------------------

test("the server sees the request headers exactly: pairs in order, then names sorted", function()
  local res = ok({ url = HTTP .. "/headers", headers = {
    { "X-Rep", "1" }, { "X-Rep", "2" }, { "x-rep", "3" },
    Authorization = "Bearer x", Accept = "application/json", ["X-Empty"] = "", ["X-Count"] = 42,
  } })
  local own, standard = seen_headers(res.body)
  eq(own, table.concat({ "x-rep: 1", "x-rep: 2", "x-rep: 3", "authorization: Bearer x",
    "x-count: 42", "x-empty: " }, "\n"), "headers seen")
  eq(standard.accept, "application/json", "Accept replaced, not repeated")
  eq(standard["user-agent"], USER_AGENT, "user agent")
  eq(standard.host, HTTP:match("//(.*)$"), "host")
end)

test("a script's User-Agent replaces luanet's", function()
  local _, standard = seen_headers(ok({ url = HTTP .. "/headers", headers = { ["User-Agent"] = "game/1.0" } }).body)
  eq(standard["user-agent"], "game/1.0", "user agent")
end)

test("response headers: lower-case names, repeats joined in headers, separate in header_list", function()
  for _, base in ipairs({ HTTP, HTTPS }) do
    local res = ok({ url = base .. "/cookies" })
    eq(res.body, "cookies", "body")
    eq(res.headers["set-cookie"], "a=1; Path=/, b=2", base .. " joined set-cookie")
    eq(res.headers["x-twice"], "1, 2", base .. " joined x-twice")
    eq(res.headers["content-length"], "7", base .. " content-length")
    eq(res.headers["Set-Cookie"], nil, base .. " no mixed-case names")
    local lines = {}
    for i, pair in ipairs(res.header_list) do
      eq(#pair, 2, "pair " .. i .. " size")
      if pair[1] ~= "date" and pair[1] ~= "server" then lines[#lines + 1] = pair[1] .. "=" .. pair[2] end
    end
    eq(table.concat(lines, "|"), "set-cookie=a=1; Path=/|set-cookie=b=2|x-twice=1|x-twice=2|"
      .. "content-length=7|content-type=text/plain; charset=utf-8", base .. " header_list")
  end
end)

-- Redirects -----------------------------------------------------------------

test("a redirect chain: final URL, count and body", function()
  local res = ok({ url = HTTP .. "/redirect/3" })
  eq(res.status, 200, "status")
  eq(res.body, "redirected", "body")
  eq(res.url, HTTP .. "/redirect/0", "final url")
  eq(res.redirects, 3, "redirects")
  eq(res.headers.location, nil, "the final response's headers only")
end)

test("max_redirects: the chain may be exactly that long", function()
  eq(ok({ url = HTTP .. "/redirect/3", max_redirects = 3 }).redirects, 3, "3 of 3")
  eq(fails({ url = HTTP .. "/redirect/3", max_redirects = 2 }, "redirect"), "too many redirects (more than 2)", "message")
  eq(fails({ url = HTTP .. "/redirect/1", max_redirects = 0 }, "redirect"), "too many redirects (more than 0)", "0")
  eq(fails({ url = HTTP .. "/redirect/11" }, "redirect"), "too many redirects (more than 10)", "default 10")
end)

test("follow_redirects = false returns the 3xx itself, Location included", function()
  local res = ok({ url = HTTP .. "/redirect/3", follow_redirects = false })
  eq(res.status, 302, "status")
  eq(res.headers.location, "/redirect/2", "location")
  eq(res.body, "redirect", "body")
  eq(res.redirects, 0, "redirects")
  eq(res.url, HTTP .. "/redirect/3", "url")
end)

test("Authorization, Cookie and Host go on to the same origin only", function()
  local headers = { Authorization = "Bearer x", Cookie = "c=1", ["X-Other"] = "o", Host = "first.example" }
  local same = ok({ url = HTTP .. "/redirect-to?url=" .. urlencode("/headers"), headers = headers })
  eq(same.redirects, 1, "same-host redirect followed")
  local own, standard = seen_headers(same.body)
  eq(own, "authorization: Bearer x\ncookie: c=1\nx-other: o", "same host: kept")
  eq(standard.host, "first.example", "same host: the script's Host kept")
  local other = ok({ url = HTTP .. "/redirect-to?url=" .. urlencode(HTTP6 .. "/headers"), headers = headers })
  eq(other.url, HTTP6 .. "/headers", "cross-host redirect followed")
  own, standard = seen_headers(other.body)
  eq(own, "x-other: o", "another host: dropped")
  eq(standard.host, HTTP6:match("//(.*)$"), "another host: its own Host")
end)

test("methods across redirects: 303 to GET, 301/302 POST to GET, 307/308 keep all", function()
  local function hop(code, method)
    local res = ok({ url = HTTP .. "/redirect-to?code=" .. code .. "&url=" .. urlencode("/inspect"), method = method,
      body = "abcd", headers = { ["Content-Type"] = "text/x" } })
    eq(res.redirects, 1, code .. " " .. method .. " redirects")
    local seen = T.inspect(res.body)
    return seen.method .. " " .. seen["body-length"] .. " " .. seen["content-type"]
  end
  eq(hop(303, "PUT"), "GET 0 ", "303 PUT")
  eq(hop(303, "POST"), "GET 0 ", "303 POST")
  eq(hop(302, "POST"), "GET 0 ", "302 POST")
  eq(hop(301, "POST"), "GET 0 ", "301 POST")
  eq(hop(301, "PUT"), "PUT 4 text/x", "301 PUT")
  eq(hop(302, "PATCH"), "PATCH 4 text/x", "302 PATCH")
  eq(hop(307, "POST"), "POST 4 text/x", "307 POST")
  eq(hop(308, "PUT"), "PUT 4 text/x", "308 PUT")
  local head = ok({ url = HTTP .. "/redirect-to?code=303&url=" .. urlencode("/"), method = "HEAD" })
  eq(head.body .. head.headers["content-length"], "16", "303 HEAD stays HEAD")
end)

test("https is never redirected to http; other schemes are refused", function()
  eq(fails({ url = HTTPS .. "/redirect-to?url=" .. urlencode(HTTP .. "/") }, "redirect"),
    "redirect from https to http refused", "https to http")
  eq(fails({ url = HTTP .. "/redirect-to?url=" .. urlencode("ftp://127.0.0.1/x") }, "redirect"),
    "redirect to a forbidden scheme (ftp) refused", "ftp")
  local up = ok({ url = HTTP .. "/redirect-to?url=" .. urlencode(HTTPS .. "/") })
  eq(up.url, HTTPS .. "/", "http to https is allowed")
end)

-- TLS -----------------------------------------------------------------------

test("verify = false accepts an unknown CA and a wrong host name", function()
  eq(fails({ url = HTTPS_WRONG_CA .. "/" }, "tls"):sub(1, 32), "TLS: certificate verify failed: ", "checked by default")
  eq(ok({ url = HTTPS_WRONG_CA .. "/", verify = false }).body, "luanet test peer", "unknown CA")
  eq(ok({ url = HTTPS_WRONG_HOST .. "/", verify = false }).body, "luanet test peer", "wrong host")
  eq(fails({ url = HTTPS_WRONG_CA .. "/" }, "tls"):sub(1, 32), "TLS: certificate verify failed: ",
    "the next request checks again")
end)

test("ca_file: exactly these CAs for this request", function()
  eq(ok({ url = HTTPS_WRONG_CA .. "/", ca_file = OTHER_CA_FILE }).status, 200, "the other CA trusted")
  eq(fails({ url = HTTPS .. "/", ca_file = OTHER_CA_FILE }, "tls"):sub(1, 32), "TLS: certificate verify failed: ",
    "the trust store is not used beside it")
  local missing = fails({ url = HTTPS .. "/", ca_file = "/nonexistent/ca.pem" }, "tls")
  contains(missing, "/nonexistent/ca.pem", "message names the file")
  eq(ok({ url = HTTPS .. "/" }).status, 200, "the trust store again without ca_file")
end)

test("mutual TLS: the server requires a client certificate", function()
  eq(ok({ url = HTTPS_CLIENT_AUTH .. "/", client_cert = CLIENT_CERT, client_key = CLIENT_KEY }).body,
    "luanet test peer", "certificate and key files")
  eq(ok({ url = HTTPS_CLIENT_AUTH .. "/", client_cert = CLIENT_CERT_KEY }).body, "luanet test peer", "one file")
  fails({ url = HTTPS_CLIENT_AUTH .. "/" }, "tls", "no certificate")
  fails({ url = HTTPS_CLIENT_AUTH .. "/", client_cert = OTHER_CLIENT_CERT_KEY }, "tls", "a certificate of another CA")
  contains(fails({ url = HTTPS_CLIENT_AUTH .. "/", client_cert = "/nonexistent.pem" }, "tls"),
    "/nonexistent.pem", "a missing file")
end)

-- Proxies -------------------------------------------------------------------

test("a per-request proxy", function()
  local seen = T.inspect(ok({ url = HTTP .. "/inspect", proxy = PROXY }).body)
  matches(seen.via, VIA, "via the proxy")
  eq(T.inspect(ok({ url = HTTP .. "/inspect" }).body).via, "", "the next request goes direct")
  eq(ok({ url = HTTPS .. "/", proxy = PROXY }).body, "luanet test peer", "https through a CONNECT tunnel")
  eq(fails({ url = HTTP .. "/", proxy = "http://127.0.0.1:" .. CLOSED_PORT }, "proxy"),
    "connection refused by the proxy", "a dead proxy")
  eq(fails({ url = HTTP .. "/", proxy = "http://nonexistent.invalid:3128" }, "proxy"),
    "could not resolve proxy host 'nonexistent.invalid'", "an unknown proxy host")
end)

-- Runs `code` in a child interpreter with `vars` ("NAME=value" words) in
-- its environment; returns what it printed.
local function child(vars, code)
  local words = { "env", "-u", "http_proxy", "-u", "HTTP_PROXY", "-u", "no_proxy", "-u", "NO_PROXY" }
  for _, v in ipairs(vars) do words[#words + 1] = T.shquote(v) end
  words[#words + 1] = truthy(T.interpreter(), "the interpreter")
  words[#words + 1] = "-e"
  words[#words + 1] = T.shquote(code)
  local pipe = assert(io.popen(table.concat(words, " ") .. ' 2>&1; echo "exit $?"', "r"))
  local output = pipe:read("*a")
  pipe:close()
  return output
end

test("proxy = false overrides http_proxy; without it the environment's proxy is used", function()
  local code = [[
    local net = require "net"
    local function via(options)
      local res, err = net.request(options)
      if not res then return "failed: " .. err end
      return res.body:match("via=([^\n]*)")
    end
    local url = os.getenv("LUANET_HTTP") .. "/inspect"
    print("direct=" .. via{ url = url, proxy = false })
    print("environment=" .. via{ url = url })
  ]]
  local output = child({ "http_proxy=" .. PROXY }, code)
  local direct, environment = output:match("^direct=([^\n]*)\nenvironment=([^\n]*)\nexit 0\n$")
  truthy(direct, "child output " .. show(output))
  eq(direct, "", "proxy = false")
  matches(environment, VIA, "http_proxy")
end)

-- Limits and output ---------------------------------------------------------

test("max_body_bytes: a body may be exactly that long", function()
  eq(#ok({ url = HTTP .. "/bytes/1000", max_body_bytes = 1000 }).body, 1000, "1000 of 1000")
  eq(fails({ url = HTTP .. "/bytes/1000", max_body_bytes = 999 }, "too_large"), "response body larger than 999 bytes", "999")
  eq(fails({ url = HTTP .. "/chunked/5000", max_body_bytes = 0 }, "too_large"), "response body larger than 0 bytes", "chunked")
  eq(ok({ url = HTTP .. "/status/204", max_body_bytes = 0 }).status, 204, "an empty body within 0")
end)

test("output: the body goes to the file, res.body is empty", function()
  local path = temp_path()
  local res = ok({ url = HTTP .. "/bytes/300000", output = path })
  eq(res.status, 200, "status")
  eq(res.body, "", "body")
  eq(file_bytes(path), T.pattern(300000), "file content")
  eq(exists(path .. ".part"), false, "no .part left")
  -- A 4xx body is written like any other.
  res = ok({ url = HTTP .. "/status/404", output = path })
  eq(res.status, 404, "404 status")
  eq(file_bytes(path), "status 404", "404 body replaced the file")
  -- A redirect's own body is not written.
  ok({ url = HTTP .. "/redirect/2", output = path })
  eq(file_bytes(path), "redirected", "only the final body")
  os.remove(path)
end)

test("output: a failed transfer leaves no file and never touches an existing one", function()
  local path = temp_path()
  eq(fails({ url = HTTP .. "/truncated/100000", output = path }, "protocol"):sub(1, 28), "connection to " .. HTTP:match("//(.*)$"):sub(1, 14),
    "a body cut short")
  eq(exists(path), false, "no file")
  eq(exists(path .. ".part"), false, "no .part")
  local f = assert(io.open(path, "wb"))
  f:write("precious")
  f:close()
  fails({ url = HTTP .. "/truncated/100000", output = path }, "protocol", "cut again")
  fails({ url = HTTP .. "/bytes/5000", output = path, max_body_bytes = 4999 }, "too_large", "too large")
  fails({ url = HTTP .. "/slow/3000", output = path, timeout_ms = 100 }, "timeout", "timed out")
  eq(file_bytes(path), "precious", "the existing file is untouched")
  eq(exists(path .. ".part"), false, "no .part")
  os.remove(path)
end)

test("output: a file that cannot be written fails with kind io", function()
  local message = fails({ url = HTTP .. "/", output = "/nonexistent-dir/body" }, "io")
  eq(message:sub(1, 39), "cannot create '/nonexistent-dir/body.pa", "message")
end)

test("output: 100 MB to a file keeps peak memory flat (under 32 MiB more)", function()
  local path = temp_path()
  local code = [[
    local net = require "net"
    local function peak()
      for line in io.lines("/proc/self/status") do
        local kb = line:match("^VmHWM:%s+(%d+)")
        if kb then return tonumber(kb) end
      end
    end
    local base, path = os.getenv("LUANET_HTTP"), ]] .. string.format("%q", path) .. [[
    assert(net.request{ url = base .. "/bytes/1000", output = path })
    local before = peak()
    local res, err = net.request{ url = base .. "/bytes/100000000", output = path }
    local after = peak()
    local f = io.open(path, "rb")
    local size = f and f:seek("end")
    if f then f:close() end
    print(string.format("status=%s size=%s grew_kb=%d err=%s", tostring(res and res.status), tostring(size), after - before, tostring(err)))
  ]]
  local output = child({}, code)
  os.remove(path)
  local status, size, grew = output:match("^status=(%d+) size=(%d+) grew_kb=(%d+) err=nil\nexit 0\n$")
  truthy(status, "child output " .. show(output))
  eq(status, "200", "status")
  eq(size, "100000000", "file size")
  truthy(tonumber(grew) < 32 * 1024, "peak RSS grew by " .. grew .. " KiB")
end)

-- Versions, timings, kinds --------------------------------------------------

test("http_version: 2 over TLS by default or when asked; 1.1 when asked", function()
  local res = ok({ url = HTTPS .. "/inspect", http_version = "2" })
  eq(res.http_version, "2", "asked")
  eq(T.inspect(res.body)["http-version"], "2", "the server saw HTTP/2")
  eq(ok({ url = HTTPS .. "/inspect" }).http_version, "2", "default over TLS")
  res = ok({ url = HTTPS .. "/inspect", http_version = "1.1" })
  eq(res.http_version .. " " .. T.inspect(res.body)["http-version"], "1.1 1.1", "1.1 over TLS")
  eq(ok({ url = HTTP .. "/" }).http_version, "1.1", "plain http")
end)

test("timings are cumulative, each at least the one before, and add up", function()
  local phases = { "dns", "connect", "tls", "first_byte", "total" }
  for _, options in ipairs({
    { url = HTTP .. "/slow/150" },
    { url = HTTPS_WRONG_HOST .. "/slow/150", verify = false },
    { url = HTTP .. "/redirect-to?url=" .. urlencode("/slow/150") },
  }) do
    local t = ok(options).timings
    local last = 0
    for _, phase in ipairs(phases) do
      eq(type(t[phase]), "number", phase .. " type")
      truthy(t[phase] >= last, options.url .. ": " .. phase .. " " .. t[phase] .. " >= " .. last)
      last = t[phase]
    end
    truthy(t.first_byte >= 150, "the server's 150 ms are before the first byte: " .. t.first_byte)
    truthy(t.total < 10000, "no hang: " .. t.total)
  end
end)

test("failure kinds: connect, resolve, timeout, protocol", function()
  eq(fails({ url = "http://127.0.0.1:" .. CLOSED_PORT .. "/" }, "connect"), "connection refused (127.0.0.1:" .. CLOSED_PORT .. ")", "refused")
  eq(fails({ url = "http://nonexistent.invalid/" }, "resolve"), "could not resolve host 'nonexistent.invalid'", "resolve")
  eq(fails({ url = HTTP .. "/slow/3000", timeout_ms = 200 }, "timeout"), "timed out after 200 ms", "timeout")
  eq(fails({ url = HTTP .. "/redirect-to?url=" .. urlencode("/slow/3000"), timeout_ms = 300 }, "timeout"),
    "timed out after 300 ms", "the budget spans redirects")
  fails({ url = HTTP .. "/truncated/1000" }, "protocol", "a body cut short")
  eq(fails({ url = CUT_RELAY .. "/lines/2/" }, "protocol"),
    "connection to " .. CUT_RELAY:match("//(.*)$") .. " broken in the response headers", "cut in the headers")
end)

test("without options it behaves as net_http_get", function()
  local mine = T.inspect(ok({ url = HTTP .. "/inspect" }).body)
  local ok_, status, body = net_http_get(HTTP .. "/inspect")
  local contract = T.inspect(body)
  eq(ok_ and status, 200, "net_http_get")
  for _, key in ipairs({ "method", "content-type", "user-agent", "accept-encoding", "http-version", "via" }) do
    eq(mine[key], contract[key], key)
  end
  eq(ok({ url = HTTP .. "/gzip" }).body, string.rep("compressed hello ", 100), "decompressed")
end)

test("the option table is read raw: metamethods never run", function()
  local options = setmetatable({ url = HTTP .. "/" }, {
    __index = function() error("__index ran") end,
    __pairs = function() error("__pairs ran") end,
  })
  eq(ok(options).body, "luanet test peer", "body")
  local headers = setmetatable({ { "X-A", "1" } }, { __index = function() error("__index ran") end })
  eq((seen_headers(ok({ url = HTTP .. "/headers", headers = headers }).body)), "x-a: 1", "headers")
end)

-- Bad options ---------------------------------------------------------------

test("every bad option raises, naming it", function()
  local U = HTTP .. "/"
  local cases = {
    { "x", "bad argument #1 to 'net.request' (table expected, got string)" },
    { nil, "bad argument #1 to 'net.request' (table expected, got no value)" },
    { {}, "bad option 'url' to 'net.request' (string expected, got nil)" },
    { { url = 5 }, "bad option 'url' to 'net.request' (string expected, got number)" },
    { { url = "ftp://h/" }, "bad option 'url' to 'net.request' (unsupported URL scheme 'ftp' (expected http or https))" },
    { { url = "http://" }, "bad option 'url' to 'net.request' (invalid URL 'http://': empty host)" },
    { { url = U, timout = 5 }, "bad option 'timout' to 'net.request'" },
    { { url = U, [1] = true }, "bad option key to 'net.request' (string expected, got number)" },
    { { url = U, method = 5 }, "bad option 'method' to 'net.request' (string expected, got number)" },
    { { url = U, method = "GET /" }, "bad option 'method' to 'net.request' (method 'GET /' is not an HTTP token)" },
    { { url = U, method = "" }, "bad option 'method' to 'net.request' (method '' is not an HTTP token)" },
    { { url = U, headers = "A: b" }, "bad option 'headers' to 'net.request' (table expected, got string)" },
    { { url = U, headers = { ["Bad Name"] = "x" } }, "bad option 'headers' to 'net.request' (header name 'Bad Name' is not an HTTP token)" },
    { { url = U, headers = { ["A:"] = "x" } }, "bad option 'headers' to 'net.request' (header name 'A:' is not an HTTP token)" },
    { { url = U, headers = { A = "x\r\nB: y" } }, "bad option 'headers' to 'net.request' (the value of header 'A' contains a CR)" },
    { { url = U, headers = { A = "x\nB: y" } }, "bad option 'headers' to 'net.request' (the value of header 'A' contains a LF)" },
    { { url = U, headers = { A = "x\0" } }, "bad option 'headers' to 'net.request' (the value of header 'A' contains a NUL)" },
    { { url = U, headers = { A = {} } }, "bad option 'headers' to 'net.request' (the value of header 'A' must be a string, got table)" },
    { { url = U, headers = { A = 1.5 } }, "bad option 'headers' to 'net.request' (the value of header 'A' must be a string, got number)" },
    { { url = U, headers = { "A: b" } }, "bad option 'headers' to 'net.request' (entry 1 is not a {name, value} pair)" },
    { { url = U, headers = { { "A" } } }, "bad option 'headers' to 'net.request' (entry 1 is not a {name, value} pair)" },
    { { url = U, headers = { { "A B", "x" } } }, "bad option 'headers' to 'net.request' (header name 'A B' is not an HTTP token)" },
    { { url = U, headers = { { "A", "\r" } } }, "bad option 'headers' to 'net.request' (the value of header 'A' contains a CR)" },
    { { url = U, headers = { [true] = "x" } }, "bad option 'headers' to 'net.request' (names or {name, value} pairs expected, got a boolean key)" },
    { { url = U, body = 5 }, "bad option 'body' to 'net.request' (string expected, got number)" },
    { { url = U, timeout_ms = "5" }, "bad option 'timeout_ms' to 'net.request' (number expected, got string)" },
    { { url = U, timeout_ms = -1 }, "bad option 'timeout_ms' to 'net.request' (must be a non-negative number)" },
    { { url = U, connect_timeout_ms = 0 / 0 }, "bad option 'connect_timeout_ms' to 'net.request' (must be a non-negative number)" },
    { { url = U, follow_redirects = "no" }, "bad option 'follow_redirects' to 'net.request' (boolean expected, got string)" },
    { { url = U, max_redirects = -1 }, "bad option 'max_redirects' to 'net.request' (must be a whole number from 0 to 4294967295)" },
    { { url = U, max_redirects = 1.5 }, "bad option 'max_redirects' to 'net.request' (must be a whole number from 0 to 4294967295)" },
    { { url = U, verify = 0 }, "bad option 'verify' to 'net.request' (boolean expected, got number)" },
    { { url = U, ca_file = "" }, "bad option 'ca_file' to 'net.request' (a file name without NUL expected)" },
    { { url = U, ca_file = "a\0b" }, "bad option 'ca_file' to 'net.request' (a file name without NUL expected)" },
    { { url = U, client_cert = false }, "bad option 'client_cert' to 'net.request' (string expected, got boolean)" },
    { { url = U, client_key = "k.pem" }, "bad options to 'net.request' (client_key needs client_cert)" },
    { { url = U, proxy = true }, "bad option 'proxy' to 'net.request' (string or false expected, got boolean)" },
    { { url = U, proxy = "ftp://p/" }, "bad option 'proxy' to 'net.request' (unsupported URL scheme 'ftp' (expected http or https or socks4 or socks4a or socks5 or socks5h))" },
    { { url = U, max_body_bytes = -1 }, "bad option 'max_body_bytes' to 'net.request' (must be a whole number from 0 to 9223372036854775807)" },
    { { url = U, output = 5 }, "bad option 'output' to 'net.request' (string expected, got number)" },
    { { url = U, http_version = "3" }, "bad option 'http_version' to 'net.request' (\'3\' is not \"1.1\" or \"2\")" },
    { { url = U, http_version = 1.0 }, nil },
  }
  for i, c in ipairs(cases) do
    local ok_, err
    if c[1] == nil and i == 2 then
      ok_, err = pcall(net.request)
    else
      ok_, err = pcall(net.request, c[1])
    end
    if c[2] == nil then
      eq(ok_, false, "case " .. i .. " raises")
      matches(err, "^bad option 'http_version' to 'net.request' %('1' is not", "case " .. i)
    else
      eq(ok_, false, "case " .. i .. " raises")
      eq(err, c[2], "case " .. i)
    end
  end
  eq(ok({ url = U, http_version = 2 }).http_version, "2", "the number 2 is \"2\" (an h2c upgrade over http)")
end)
