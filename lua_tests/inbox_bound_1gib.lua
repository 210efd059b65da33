-- The inbox bound at scale, once (Lua 5.4): a server sends 1 GiB to a
-- script that does not read. The I/O thread stops reading at the default
-- bound (64 MiB), so TCP holds the server back and peak RSS stays under the
-- bound plus a small slack; then the script reads, and every message
-- arrives, in order.
--
--   python testpeer/serve.py -- env LUA_CPATH="/dir/with/?.so;;" \
--       lua5.4 lua_tests/runner.lua lua_tests/inbox_bound_1gib.lua

local T = ...
local eq, truthy = T.eq, T.truthy

require("net")

local MiB = 1024 * 1024
local BOUND = 64 * MiB -- the default max_queued_bytes
-- Beyond the bound: the message being read, tungstenite's buffers, the
-- Lua strings of a read not collected yet.
local SLACK = 16 * MiB
local WS = T.env("LUANET_WS")
local TAG = "gib-" .. tostring(os.time()) .. "-" .. tostring({}):match("0x(%x+)")

local status_kib = T.proc_status

local function sent()
  local ws = assert(ws_connect(WS .. "/flood-state?tag=" .. TAG))
  local answer = ws:recv(5000)
  ws:close()
  return tonumber(answer:match("^sent=(%d+)$"))
end

T.test("1 GiB to a script that does not read: RSS stays bounded, nothing is lost", function()
  local count, size = 1024, MiB
  collectgarbage()
  local before = status_kib("VmHWM")
  local ws = assert(ws_connect(WS .. "/flood?count=" .. count .. "&size=" .. size .. "&tag=" .. TAG))
  os.execute("sleep 3")
  local held = sent()
  os.execute("sleep 1")
  eq(sent(), held, "the server is stalled")
  truthy(held < count / 4, "held back: " .. held .. " of " .. count .. " MiB sent")
  local stalled_kib = status_kib("VmHWM") - before
  for i = 1, count do
    local msg, is_text = ws:recv(5000)
    if msg == nil or #msg ~= size or is_text or msg:sub(1, 8) ~= string.format("%08d", i)
        or msg:byte(size) ~= i % 256 then
      error("message " .. i .. " is wrong or missing (error: " .. tostring(ws:error()) .. ")", 0)
    end
  end
  eq(ws:recv(5000), "flood done", "the end, after every message")
  eq(ws:error(), nil, "no error")
  ws:close()
  local peak_kib = status_kib("VmHWM") - before
  print("# " .. string.format("server held at %d MiB sent; peak RSS growth: %.1f MiB while stalled, "
    .. "%.1f MiB in all (bound %d MiB + %d MiB slack)",
    held, stalled_kib / 1024, peak_kib / 1024, BOUND / MiB, SLACK / MiB))
  truthy(peak_kib * 1024 < BOUND + SLACK, "peak RSS growth " .. peak_kib .. " KiB")
end)
