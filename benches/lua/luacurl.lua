-- lua-curl benchmark client: Debian's lua-curl 0.3.0, Enrico Tassi's old
-- binding of the system libcurl (module "curl": curl.easy_init(),
-- c:setopt(curl.OPT_*, v), c:perform() -> 0, nil or code, message). One easy
-- handle is reused for every request, so libcurl keeps the connection alive
-- between them.
--
-- The binding has no curl_easy_getinfo, so the status code is taken from the
-- status line seen by OPT_HEADERFUNCTION (the last one, in case of a
-- "100 Continue"). Callbacks get (data, length) and must return two values:
-- the number of bytes handled and nil (or an error message).
-- OPT_POSTFIELDS is copied with strdup, so a body must not contain NUL bytes;
-- OPT_POSTFIELDSIZE gives its length.
--
-- Interpreters: lua5.1, lua5.2 (the only ABIs Debian builds it for).
--
-- Usage: <interp> luacurl.lua CASE URL COUNT [SIZE]
--   get URL COUNT              COUNT x GET on one handle: status 200, body non-empty
--   post URL COUNT SIZE        COUNT x POST of one SIZE-byte body: status 200
--   download URL COUNT         COUNT (0 or 1) x GET of a large body
--
-- The orchestrator times the process and subtracts a run with COUNT=0 (which
-- still loads the library and sets up the handle), so this script does not
-- time itself. On any mismatch or error: message on stderr, exit status 1. On
-- success exactly one line on stdout: "ok key=value ...".

local fail, num, int, case, url, count =
  dofile((arg[0]:match("^(.*/)") or "./") .. "client.lua")("luacurl.lua")

local curl = require("curl")

-- Per-request state the callbacks fill in.
local chunks, nchunks, status

local c = curl.easy_init()
c:setopt(curl.OPT_URL, url)
c:setopt(curl.OPT_NOSIGNAL, 1)
c:setopt(curl.OPT_WRITEFUNCTION, function(data, len)
  nchunks = nchunks + 1
  chunks[nchunks] = data
  return len, nil
end)
c:setopt(curl.OPT_HEADERFUNCTION, function(line, len)
  local code = line:match("^HTTP/[%d.]+ (%d%d%d)")
  if code then status = tonumber(code) end
  return len, nil
end)

-- One transfer with the options set so far; returns the status and the body.
local function perform(what)
  chunks, nchunks, status = {}, 0, nil
  local rc, err = c:perform()
  if rc ~= 0 then fail(what .. ": curl error " .. tostring(rc) .. ": " .. tostring(err)) end
  if status ~= 200 then fail(what .. ": status " .. tostring(status)) end
  return table.concat(chunks)
end

local cases = {}

function cases.get()
  local bytes = 0
  for i = 1, count do
    local body = perform("get #" .. i)
    if #body == 0 then fail("get #" .. i .. ": empty body") end
    bytes = bytes + #body
  end
  return "ops=" .. int(count) .. " bytes=" .. int(bytes)
end

cases.download = function()
  if count > 1 then fail("download: COUNT must be 0 or 1") end
  return cases.get()
end

function cases.post()
  local size = num(arg[4], "SIZE")
  local payload = string.rep("x", size)
  c:setopt(curl.OPT_POST, 1)
  c:setopt(curl.OPT_POSTFIELDSIZE, size)
  c:setopt(curl.OPT_POSTFIELDS, payload)
  c:setopt(curl.OPT_HTTPHEADER, { "Content-Type: application/octet-stream" })
  for i = 1, count do
    perform("post #" .. i)
  end
  return "ops=" .. int(count) .. " bytes=" .. int(count * size)
end

local run = cases[case]
if not run then fail("unknown case: " .. tostring(case)) end
io.stdout:write("ok ", run(), "\n")
