-- LuaSocket (+ LuaSec for https URLs) benchmark client: HTTP with
-- socket.http.request in its generic form, the body collected with
-- ltn12.sink.table and joined with table.concat -- what scripts using
-- LuaSocket write.
--
-- Note: socket.http has no keep-alive. Every request opens a new TCP
-- connection (and sends "Connection: close"), so this measures a connect
-- per request; that is how LuaSocket users get HTTP.
--
-- Interpreters: lua5.1, lua5.2, lua5.3, lua5.4 (Debian lua-socket, lua-sec);
-- lua5.4 preferred.
--
-- Usage: <interp> luasocket.lua CASE URL COUNT [SIZE]
--   get URL COUNT              COUNT x GET: status 200, body non-empty
--   post URL COUNT SIZE        COUNT x POST of one SIZE-byte body: status 200
--   download URL COUNT         COUNT (0 or 1) x GET of a large body
--
-- The orchestrator times the process and subtracts a run with COUNT=0 (which
-- still loads the libraries), so this script does not time itself. On any
-- mismatch or error: message on stderr, exit status 1. On success exactly one
-- line on stdout: "ok key=value ...".

local fail, num, int, case, url, count =
  dofile((arg[0]:match("^(.*/)") or "./") .. "client.lua")("luasocket.lua")

local http = require("socket.http")
local ltn12 = require("ltn12")
if url:match("^https:") then
  -- LuaSec's https.request takes the same generic form.
  http = require("ssl.https")
end

-- One request in the generic form; returns the status code and the body.
local function request(method, body)
  local chunks = {}
  local req = { url = url, method = method, sink = ltn12.sink.table(chunks) }
  if body then
    req.source = ltn12.source.string(body)
    req.headers = {
      ["content-type"] = "application/octet-stream",
      ["content-length"] = tostring(#body),
    }
  end
  local ok, code, headers = http.request(req)
  if ok == nil then return nil, code end
  local data = table.concat(chunks)
  local length = headers and headers["content-length"]
  if length and tonumber(length) ~= #data then
    return nil, "body of " .. #data .. " bytes, Content-Length " .. length
  end
  return code, data
end

local cases = {}

function cases.get()
  local bytes = 0
  for i = 1, count do
    local code, body = request("GET")
    if code ~= 200 then fail("get #" .. i .. ": " .. tostring(code) .. " " .. tostring(body)) end
    if #body == 0 then fail("get #" .. i .. ": empty body") end
    bytes = bytes + #body
  end
  return "ops=" .. int(count) .. " bytes=" .. int(bytes)
end

function cases.post()
  local size = num(arg[4], "SIZE")
  local payload = string.rep("x", size)
  for i = 1, count do
    local code, body = request("POST", payload)
    if code ~= 200 then fail("post #" .. i .. ": " .. tostring(code) .. " " .. tostring(body)) end
  end
  return "ops=" .. int(count) .. " bytes=" .. int(count * size)
end

function cases.download()
  if count > 1 then fail("download: COUNT must be 0 or 1") end
  local bytes = 0
  for _ = 1, count do
    local code, body = request("GET")
    if code ~= 200 then fail("download: " .. tostring(code) .. " " .. tostring(body)) end
    if #body == 0 then fail("download: empty body") end
    bytes = bytes + #body
  end
  return "ops=" .. int(count) .. " bytes=" .. int(bytes)
end

local run = cases[case]
if not run then fail("unknown case: " .. tostring(case)) end
io.stdout:write("ok ", run(), "\n")
