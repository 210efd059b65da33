-- 10,000 WebSockets in one process (Lua 5.4), once: each receives a
-- broadcast. All are delivered, the library's threads stay as they were
-- with one socket, and each socket costs at most 48 KiB of RSS. Run with
-- RLIMIT_NOFILE raised (lua_tests/CMakeLists.txt does it with ulimit).
--
--   python testpeer/serve.py -- sh -c 'ulimit -n 20000; exec "$@"' sh \
--       env LUA_CPATH="/dir/with/?.so;;" lua5.4 lua_tests/runner.lua lua_tests/broadcast_10k.lua

local T = ...
local eq, truthy = T.eq, T.truthy

require("net")

local SOCKETS = 10000
local PER_SOCKET_KIB = 48
local WS = T.env("LUANET_WS")
local TAG = "crowd-" .. tostring(os.time()) .. "-" .. tostring({}):match("0x(%x+)")

local status = T.proc_status

T.test("10,000 sockets each receive a broadcast, on fixed threads, in bounded memory", function()
  local first = assert(ws_connect(WS .. "/join?tag=" .. TAG))
  local threads = status("Threads")
  collectgarbage()
  local rss_before = status("VmRSS")
  local sockets = { first }
  for i = 2, SOCKETS do
    local ws, err = ws_connect(WS .. "/join?tag=" .. TAG)
    if not ws then error("socket " .. i .. ": " .. tostring(err), 0) end
    sockets[i] = ws
  end
  eq(status("Threads"), threads, "threads with 10,000 sockets open, as with one")
  local trigger = assert(ws_connect(WS .. "/broadcast?tag=" .. TAG .. "&text=hello%20all"))
  eq(trigger:recv(10000), "sent=" .. SOCKETS, "the server sent to every socket")
  trigger:close()
  -- A frame loop: poll every socket until each has its message.
  local pending, rounds = SOCKETS, 0
  local got = {}
  while pending > 0 and rounds < 20000 do
    rounds = rounds + 1
    for i = 1, SOCKETS do
      if not got[i] then
        local msg, is_text = sockets[i]:poll()
        if msg ~= nil then
          if msg ~= "hello all" or is_text ~= true then
            error("socket " .. i .. " got " .. T.show(msg), 0)
          end
          got[i] = true
          pending = pending - 1
        end
      end
    end
    if pending > 0 then first:recv(1) end
  end
  eq(pending, 0, "every socket got the broadcast (after " .. rounds .. " rounds)")
  local per_socket = (status("VmRSS") - rss_before) / (SOCKETS - 1)
  eq(status("Threads"), threads, "threads after the broadcast")
  print(string.format("# %d sockets: %d threads throughout, %.1f KiB of RSS per socket",
    SOCKETS, threads, per_socket))
  truthy(per_socket <= PER_SOCKET_KIB, string.format("%.1f KiB per socket", per_socket))
  for i = 1, SOCKETS do sockets[i]:close() end
end)
