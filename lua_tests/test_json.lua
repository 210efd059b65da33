-- JSON tests for luanet: net.json_encode, net.json_decode, net.null and the
-- globals json_encode / json_decode (set only when the host has none).
--
--   env LUA_CPATH="/dir/with/?.so;;" lua5.4 lua_tests/runner.lua lua_tests/test_json.lua
--
-- Needs no server. Code for Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT alike; on 5.1,
-- 5.2 and LuaJIT numbers have no integer subtype.

local T = ...
local eq, truthy, matches = T.eq, T.truthy, T.matches
local starts, contains, raises, pack, show = T.starts, T.contains, T.raises, T.pack, T.show
local test = T.test

local net = require("net")
local encode, decode = net.json_encode, net.json_decode

local HAS_INTEGERS = math.type ~= nil

-- Deep comparison: returns nil when equal, else a description of the first
-- difference (with its path).
local function diff(a, b, path)
  path = path or "value"
  if type(a) ~= type(b) then
    return path .. ": " .. show(a) .. " vs " .. show(b) .. " (types differ)"
  end
  if type(a) ~= "table" then
    if a ~= b and not (a ~= a and b ~= b) then
      return path .. ": " .. show(a) .. " vs " .. show(b)
    end
    if HAS_INTEGERS and type(a) == "number" and math.type(a) ~= math.type(b) then
      return path .. ": " .. show(a) .. " vs " .. show(b) .. " (subtypes differ)"
    end
    return nil
  end
  for k, v in pairs(a) do
    local d = diff(v, b[k], path .. "[" .. show(k) .. "]")
    if d then return d end
  end
  for k, v in pairs(b) do
    if a[k] == nil then
      return path .. "[" .. show(k) .. "]: missing on the left, " .. show(v) .. " on the right"
    end
  end
  return nil
end

local function same(actual, expected, what)
  local d = diff(actual, expected)
  if d then error((what and (what .. ": ") or "") .. d, 2) end
end

local function enc(v, expected, what)
  local r = pack(encode(v))
  eq(r.n, 1, (what or "json_encode") .. ": number of results")
  eq(r[1], expected, what or ("json_encode of " .. show(v)))
end

local function int_type(v, what)
  if HAS_INTEGERS then eq(math.type(v), "integer", (what or "value") .. ": math.type") end
end

local function float_type(v, what)
  if HAS_INTEGERS then eq(math.type(v), "float", (what or "value") .. ": math.type") end
end

-- Runs `code` in a fresh interpreter (the one running us); returns its output.
local function run_child(code)
  local exe = T.interpreter()
  truthy(exe, "the interpreter's name in arg")
  local p = assert(io.popen(exe .. " -e " .. T.shquote(code) .. " 2>&1", "r"))
  local out = p:read("*a")
  p:close()
  return out
end

-- The module and the globals -------------------------------------------------

test("net.json_encode, net.json_decode and net.null exist", function()
  eq(type(net.json_encode), "function", "type(net.json_encode)")
  eq(type(net.json_decode), "function", "type(net.json_decode)")
  eq(type(net.null), "userdata", "type(net.null)")
end)

test("globals json_encode / json_decode are net.json_* when the host had none", function()
  truthy(rawequal(json_encode, net.json_encode), "json_encode == net.json_encode")
  truthy(rawequal(json_decode, net.json_decode), "json_decode == net.json_decode")
  local out = run_child('local net = require "net"; '
    .. 'print(rawequal(json_encode, net.json_encode), rawequal(json_decode, net.json_decode))')
  eq(out, "true\ttrue\n", "in a fresh interpreter")
end)

test("a host's own json_encode / json_decode are kept", function()
  eq(run_child('json_encode = function() return "host" end; require "net"; print(json_encode({}))'),
    "host\n", "host json_encode")
  eq(run_child('json_decode = "mine"; local net = require "net"; '
    .. 'print(json_decode, rawequal(json_encode, net.json_encode))'),
    "mine\ttrue\n", "host json_decode, net json_encode")
end)

-- Encoding: tables -------------------------------------------------------------

test("keys 1..n make an array", function()
  enc({ 1, 2, 3 }, "[1,2,3]")
  enc({ "a" }, '["a"]')
  enc({ true, false, "x", 2.5 }, '[true,false,"x",2.5]')
  enc({ [1] = "a", [2] = "b" }, '["a","b"]')
end)

test("any other table is an object (empty table too)", function()
  enc({}, "{}")
  enc({ [1] = 1, [3] = 3 }, '{"1":1,"3":3}')
  enc({ [2] = "x" }, '{"2":"x"}')
  enc({ [1] = "a", x = 1 }, '{"1":"a","x":1}')
  enc({ [0] = "z", [1] = "a" }, '{"0":"z","1":"a"}')
  enc({ [-1] = true }, '{"-1":true}')
  enc({ [1.5] = 1 }, '{"1.5":1}')
end)

test("object keys are sorted", function()
  enc({ b = 1, a = 2 }, '{"a":2,"b":1}')
  enc({ zeta = 1, alpha = 2, mid = 3, Beta = 4 }, '{"Beta":4,"alpha":2,"mid":3,"zeta":1}')
  enc({ [10] = 1, [2] = 2 }, '{"10":1,"2":2}')
end)

test("nested structures", function()
  enc({ a = { 1, { b = true } }, c = false }, '{"a":[1,{"b":true}],"c":false}')
  enc({ { {} } }, "[[{}]]")
  enc({ list = { "x", { y = { 1, 2 } } } }, '{"list":["x",{"y":[1,2]}]}')
end)

test("a table reached twice (not a cycle) is encoded twice", function()
  local shared = { 1 }
  enc({ a = shared, b = shared }, '{"a":[1],"b":[1]}')
  enc({ shared, shared }, "[[1],[1]]")
end)

-- Encoding: scalars ---------------------------------------------------------------

test("nil, net.null, booleans", function()
  enc(nil, "null")
  enc(net.null, "null")
  enc(true, "true")
  enc(false, "false")
  enc({ 1, net.null, 3 }, "[1,null,3]")
  enc({ a = net.null }, '{"a":null}')
end)

test("integers are JSON integers", function()
  enc(3, "3")
  enc(0, "0")
  enc(-7, "-7")
  enc(2147483648, "2147483648")
  enc(-2147483649, "-2147483649")
  if HAS_INTEGERS then
    enc(math.maxinteger, tostring(math.maxinteger), "math.maxinteger")
    enc(math.mininteger, tostring(math.mininteger), "math.mininteger")
  end
end)

test("floats: 1.0 (5.3+) or 1 (5.1/5.2/LuaJIT), 1.5, -2.25, 0.1", function()
  if HAS_INTEGERS then
    enc(1.0, "1.0", "1.0 on Lua 5.3+")
  else
    enc(1.0, "1", "1.0 without an integer subtype")
  end
  enc(1.5, "1.5")
  enc(-2.25, "-2.25")
  enc(0.1, "0.1")
end)

test("NaN and infinities raise", function()
  local e = raises(function() encode(0 / 0) end, "json_encode: cannot encode the number")
  contains(e, "NaN", "NaN message")
  e = raises(function() encode(math.huge) end, "json_encode: cannot encode the number")
  contains(e, "inf", "inf message")
  e = raises(function() encode(-math.huge) end, "json_encode: cannot encode the number")
  contains(e, "inf", "-inf message")
  raises(function() encode({ 1, 0 / 0 }) end, "json_encode: cannot encode the number", "NaN in an array")
end)

test("strings are escaped per JSON", function()
  enc('a"b\n', '"a\\"b\\n"')
  enc("back\\slash", '"back\\\\slash"')
  enc("tab\there\r", '"tab\\there\\r"')
  enc("\1\31", '"\\u0001\\u001f"')
  enc("", '""')
  enc("a/b", '"a/b"')
  enc("h\195\169llo \226\156\147", '"h\195\169llo \226\156\147"')
  enc({ ['k"ey'] = "v" }, '{"k\\"ey":"v"}')
end)

test("invalid UTF-8 strings raise", function()
  raises(function() encode("\255") end, "json_encode: cannot encode a string that is not valid UTF-8")
  raises(function() encode({ "ok", "a\192b" }) end,
    "json_encode: cannot encode a string that is not valid UTF-8", "in an array")
  raises(function() encode({ ["\237\160\128"] = 1 }) end,
    "json_encode: cannot encode a string that is not valid UTF-8", "as a key")
end)

test("a table that contains itself raises", function()
  local t = {}
  t.self = t
  raises(function() encode(t) end, "json_encode: cannot encode a table that contains itself")
  local a = { 1 }
  a[2] = { a }
  raises(function() encode(a) end, "json_encode: cannot encode a table that contains itself", "deeper")
end)

test("100 and 128 nested tables encode; 129 raise", function()
  local t = {}
  for _ = 1, 99 do t = { t } end
  enc(t, string.rep("[", 99) .. "{}" .. string.rep("]", 99), "100 levels")
  t = {}
  for _ = 1, 127 do t = { t } end
  enc(t, string.rep("[", 127) .. "{}" .. string.rep("]", 127), "128 levels")
  t = {}
  for _ = 1, 128 do t = { t } end
  raises(function() encode(t) end, "json_encode: nesting deeper than 128 levels", "129 levels")
  t = {}
  for _ = 1, 100000 do t = { t } end
  raises(function() encode(t) end, "json_encode: nesting deeper than 128 levels", "100000 levels")
end)

test("functions and boolean keys raise", function()
  raises(function() encode(print) end, "json_encode: cannot encode a function")
  raises(function() encode({ f = function() end }) end, "json_encode: cannot encode a function", "in a table")
  raises(function() encode({ [true] = 1 }) end, "json_encode: cannot encode a table key of type boolean")
end)

-- Decoding ----------------------------------------------------------------------------

test("objects and arrays decode to tables", function()
  local v = decode('{"a":1,"b":[1,2,{"c":null}],"d":"x"}')
  same(v, { a = 1, b = { 1, 2, { c = net.null } }, d = "x" })
  truthy(rawequal(v.b[3].c, net.null), "null is net.null")
  same(decode("[]"), {}, "[]")
  same(decode("{}"), {}, "{}")
  same(decode('[1,null,3]'), { 1, net.null, 3 }, "[1,null,3]")
  eq(#decode('[1,null,3]'), 3, "length of [1,null,3]")
  same(decode('[[["deep"]]]'), { { { "deep" } } }, "nested arrays")
  local k = decode('{"1":"a"}')
  eq(k["1"], "a", 'key "1" stays a string')
  eq(k[1], nil, "no integer key 1")
end)

test("scalars decode", function()
  truthy(rawequal(decode("null"), net.null), "null")
  eq(decode("true"), true, "true")
  eq(decode("false"), false, "false")
  eq(decode('"s"'), "s", "string")
  eq(decode(" 7 "), 7, "whitespace around")
end)

test("numbers: integers stay integers, 2.5 is 2.5", function()
  local v = decode("3")
  eq(v, 3, "3")
  int_type(v, "3")
  v = decode("-42")
  eq(v, -42, "-42")
  int_type(v, "-42")
  v = decode("[1,2]")
  int_type(v[1], "array element")
  v = decode("2.5")
  eq(v, 2.5, "2.5")
  float_type(v, "2.5")
  v = decode("1.0")
  eq(v, 1, "1.0")
  float_type(v, "1.0")
  eq(decode("1e2"), 100, "1e2")
  eq(decode("-0.125"), -0.125, "-0.125")
  if HAS_INTEGERS then
    v = decode("9223372036854775807")
    eq(v, math.maxinteger, "maxinteger")
    int_type(v, "maxinteger")
  end
end)

test("strings with escapes decode to UTF-8", function()
  eq(decode('"\\u00e9"'), "\195\169", "\\u00e9")
  eq(decode('"\\ud83d\\ude00"'), "\240\159\152\128", "surrogate pair")
  eq(decode('"a\\"b\\n\\t\\\\\\/"'), 'a"b\n\t\\/', "short escapes")
  eq(decode('"\\u0000x"'), "\0x", "\\u0000")
  eq(decode('"h\195\169"'), "h\195\169", "raw UTF-8")
end)

test("invalid JSON raises", function()
  for _, text in ipairs({ "", "{", "[1,]", "nul", "{'a':1}", "1 2", '{"a"}', '"\\x"', "[1", "01" }) do
    local e = raises(function() decode(text) end, nil, "decode " .. show(text))
    starts((e:gsub("^[^:]*:%d+: ", "")), "json_decode: invalid JSON:", "decode " .. show(text))
  end
end)

test("non-string argument raises", function()
  raises(function() decode(nil) end, "bad argument #1 to 'json_decode' (string expected, got nil)")
  raises(function() decode({}) end, "bad argument #1 to 'json_decode' (string expected, got table)")
end)

-- Round trips -----------------------------------------------------------------------------

test("round trips of nested structures", function()
  local values = {
    { 1, 2, 3 },
    { a = 1, b = { c = { d = { "e", false, true } } } },
    { users = { { name = "ann", tags = { "x", "y" }, age = 31 }, { name = "bob", tags = {}, score = 2.5 } } },
    { matrix = { { 1, 2 }, { 3, 4 }, { 5, { 6, { 7 } } } } },
    { text = "line\nnext \"quoted\" \226\130\172", empty = "" },
    { n = net.null, list = { net.null, 1 } },
  }
  for i, v in ipairs(values) do
    local text = encode(v)
    same(decode(text), v, "value #" .. i .. " via " .. text)
    eq(encode(decode(text)), text, "value #" .. i .. " encoded twice")
  end
end)

test("decode then encode gives back canonical text", function()
  local texts = {
    '{"a":[1,2,{"b":null}],"c":"d"}',
    '[{},[{}],{"a":{}}]',
    '{"x":-1,"y":2.5,"z":[true,false]}',
  }
  for _, text in ipairs(texts) do
    eq(encode(decode(text)), text, text)
  end
end)
