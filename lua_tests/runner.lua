-- A tiny test runner for luanet. Runs under Lua 5.1 to 5.4 and LuaJIT.
--
-- Usage: lua runner.lua FILE.lua [FILE.lua ...]
--
-- Each test file is loaded as a chunk and called with one argument, the
-- table T of helpers below:
--
--   local T = ...
--   T.test("name", function() T.eq(1 + 1, 2, "sum") end)
--
-- Besides the assertions, T holds what several files share: T.env for the
-- peer's addresses, byte patterns, T.interpreter for child processes and
-- checks of net_http_* results.
--
-- A file may also return a list of {name, function} pairs; both ways can
-- be mixed. Tests run in order, each under xpcall with a traceback, and
-- print "ok - name" or "not ok - name: message" (traceback lines follow,
-- prefixed by "# "). The last line is "N passed, N failed"; the exit
-- status is 0 when nothing failed, 1 otherwise. A file that fails to load
-- counts as one failed test.
--
-- Environment: LUANET_TEST_FILTER, a Lua pattern; when set, only tests
-- whose name matches it run. LUANET_GC_STRESS=1 makes the collector run
-- without pause and a full collection happen every few hundred VM
-- instructions and between tests, to shake out __gc and ownership bugs.

local T = {}
local tests = {}

function T.test(name, fn)
  tests[#tests + 1] = { name, fn }
end

-- A readable, one-line rendering of a value; long strings are cut.
local function escape(s)
  return (s:gsub("[%c\128-\255\\\"]", function(c)
    return string.format("\\%d", c:byte())
  end))
end

local function show(v)
  if type(v) == "string" then
    if #v > 120 then
      return string.format('"%s"... (string of %d bytes)', escape(v:sub(1, 60)), #v)
    end
    return '"' .. escape(v) .. '"'
  end
  if math.type and type(v) == "number" then
    return tostring(v) .. " (" .. math.type(v) .. ")"
  end
  return tostring(v)
end
T.show = show

local function prefix(what)
  if what then return tostring(what) .. ": " end
  return ""
end

-- Exact equality (==). For two different strings, tells the lengths and
-- the first byte where they differ.
function T.eq(actual, expected, what)
  if actual == expected then return end
  local msg = prefix(what) .. "expected " .. show(expected) .. ", got " .. show(actual)
  if type(actual) == "string" and type(expected) == "string" then
    local i, n = 1, math.min(#actual, #expected)
    while i <= n and actual:byte(i) == expected:byte(i) do i = i + 1 end
    msg = msg .. string.format(" (lengths: expected %d, got %d; first difference at byte %d",
      #expected, #actual, i)
    if #actual > 120 or #expected > 120 then
      msg = msg .. ": expected " .. show(expected:sub(i, i + 15)) .. "..., got " .. show(actual:sub(i, i + 15)) .. "..."
    end
    msg = msg .. ")"
  end
  error(msg, 2)
end

function T.truthy(v, what)
  if not v then
    error(prefix(what) .. "expected a true value, got " .. show(v), 2)
  end
  return v
end

-- str must be a string matching the Lua pattern pat.
function T.matches(str, pat, what)
  if type(str) ~= "string" or not str:find(pat) then
    error(prefix(what) .. "expected a string matching " .. show(pat) .. ", got " .. show(str), 2)
  end
  return str
end

-- str must be a string containing sub (plain text, no pattern).
function T.contains(str, sub, what)
  if type(str) ~= "string" or not str:find(sub, 1, true) then
    error(prefix(what) .. "expected a string containing " .. show(sub) .. ", got " .. show(str), 2)
  end
  return str
end

-- str must be a string starting with start (plain text).
function T.starts(str, start, what)
  if type(str) ~= "string" or str:sub(1, #start) ~= start then
    error(prefix(what) .. "expected a string starting with " .. show(start) .. ", got " .. show(str), 2)
  end
  return str
end

-- fn() must raise an error whose message (converted by tostring)
-- contains sub (plain text). Returns the message.
function T.raises(fn, sub, what)
  local ok, err = pcall(fn)
  if ok then
    error(prefix(what) .. "expected an error containing " .. show(sub) .. ", but no error was raised", 2)
  end
  err = tostring(err)
  if sub and not err:find(sub, 1, true) then
    error(prefix(what) .. "expected an error containing " .. show(sub) .. ", got " .. show(err), 2)
  end
  return err
end

-- Pack all results of a call, keeping their number (trailing nils too).
function T.pack(...)
  return { n = select("#", ...), ... }
end

-- An error message: exactly expected (mode nil or "exact") or starting with
-- it (mode "prefix", plain text).
function T.message(actual, expected, mode, what)
  if mode == "prefix" then
    T.starts(actual, expected, what)
  elseif mode == nil or mode == "exact" then
    T.eq(actual, expected, what)
  else
    error("T.message: unknown mode " .. show(mode), 2)
  end
end

-- Helpers shared by the test files -------------------------------------------

-- The value of an environment variable set by testpeer/serve.py; raises
-- (failing the file as it loads) when it is unset or empty.
function T.env(name)
  local v = os.getenv(name)
  if v == nil or v == "" then
    error(name .. " is not set: run the tests under testpeer/serve.py", 0)
  end
  return v
end

-- All 256 byte values in order: byte i (from 0) is i.
do
  local t = {}
  for i = 0, 255 do t[#t + 1] = string.char(i) end
  T.ALL_BYTES = table.concat(t)
end

-- n bytes where byte k (from 0) is k % 256, as the peer's /bytes and /chunked.
function T.pattern(n)
  return string.rep(T.ALL_BYTES, math.ceil(n / 256)):sub(1, n)
end

-- A number of this process's /proc/self/status ("Threads", "VmRSS" and
-- "VmHWM" in KiB, ...); nil where there is no /proc.
function T.proc_status(field)
  local f = io.open("/proc/self/status", "r")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return tonumber(text:match("\n" .. field .. ":%s*(%d+)"))
end

-- s as one single-quoted word for the POSIX shell.
function T.shquote(s)
  return "'" .. s:gsub("'", [['\'']]) .. "'"
end

-- The shell command that started this interpreter: arg's negative indexes
-- (the interpreter and its options), each quoted; nil when arg has none.
function T.interpreter()
  if type(arg) ~= "table" then return nil end
  local i = 0
  while arg[i - 1] ~= nil do i = i - 1 end
  if i == 0 then return nil end
  local parts = {}
  for j = i, -1 do parts[#parts + 1] = T.shquote(tostring(arg[j])) end
  return table.concat(parts, " ")
end

-- The peer's /inspect body ("key=value\n" lines) as a table.
function T.inspect(body)
  local t = {}
  for k, v in tostring(body):gmatch("([^=\n]+)=([^\n]*)\n") do t[k] = v end
  return t
end

-- r is T.pack(net_http_get/post(...)): a success, exactly the contract's
-- three values true, status, body (the message is a fourth value only on
-- failure). The body is checked exactly unless body is nil.
function T.check_ok(r, status, body, what)
  what = what or "request"
  if r[1] ~= true then
    error(what .. ": expected ok == true, got " .. show(r[1]) .. " with error " .. show(r[4]), 2)
  end
  T.eq(r.n, 3, what .. ": number of results")
  T.eq(r[2], status, what .. ": status")
  if body ~= nil then T.eq(r[3], body, what .. ": body") end
  T.eq(type(r[3]), "string", what .. ": type of body")
end

-- r is T.pack(net_http_get/post(...)) of the peer's /inspect: checked as
-- T.check_ok(r, 200, nil, what); returns T.inspect of its body.
function T.inspect_ok(r, what)
  T.check_ok(r, 200, nil, what)
  return T.inspect(r[3])
end

-- r is T.pack(net_http_get/post(...)): a failure, false, 0, "", message;
-- the message is checked as T.message does with mode (nil: exactly).
function T.check_fail(r, message, mode, what)
  what = what or "request"
  T.eq(r.n, 4, what .. ": number of results")
  if r[1] ~= false then
    error(what .. ": expected ok == false, got " .. show(r[1]) .. " (status " .. show(r[2]) .. ")", 2)
  end
  T.eq(r[2], 0, what .. ": status on failure")
  T.eq(r[3], "", what .. ": body on failure")
  T.message(r[4], message, mode, what .. ": error message")
end

local function handler(e)
  local msg
  if type(e) == "string" then msg = e else msg = "error object: " .. show(e) end
  return { msg = msg, tb = debug.traceback("", 2) }
end

local function comment(text)
  return (text:gsub("\n", "\n# "))
end

local passed, failed = 0, 0

local function report_failure(name, e)
  failed = failed + 1
  io.stdout:write("not ok - ", name, ": ", comment(e.msg), "\n")
  if e.tb then
    local tb = e.tb:gsub("^\n", "")
    io.stdout:write("# ", comment(tb), "\n")
  end
  io.stdout:flush()
end

local files = { ... }
if #files == 0 then
  io.stderr:write("usage: lua runner.lua FILE.lua [FILE.lua ...]\n")
  os.exit(2)
end

for _, path in ipairs(files) do
  local chunk, err = loadfile(path)
  if not chunk then
    report_failure(path, { msg = "cannot load: " .. tostring(err) })
  else
    local ok, ret = xpcall(function() return chunk(T) end, handler)
    if not ok then
      report_failure(path, ret)
    elseif type(ret) == "table" then
      for _, t in ipairs(ret) do tests[#tests + 1] = t end
    end
  end
end

local filter = os.getenv("LUANET_TEST_FILTER")
if filter == "" then filter = nil end

local gc_stress = os.getenv("LUANET_GC_STRESS") == "1"
if gc_stress then
  collectgarbage("setpause", 0)
  collectgarbage("setstepmul", 1000)
  -- Count hooks only run in the interpreter: LuaJIT's traces skip them.
  if jit then jit.off() end
  debug.sethook(function() collectgarbage() end, "", 500)
end

for _, t in ipairs(tests) do
  local name, fn = t[1], t[2]
  if not filter or tostring(name):find(filter) then
    local ok, e = xpcall(function() return fn() end, handler)
    if gc_stress then collectgarbage() collectgarbage() end
    if ok then
      passed = passed + 1
      io.stdout:write("ok - ", tostring(name), "\n")
      io.stdout:flush()
    else
      report_failure(tostring(name), e)
    end
  end
end

io.stdout:write(string.format("%d passed, %d failed\n", passed, failed))
io.stdout:flush()
os.exit(failed == 0 and 0 or 1)
