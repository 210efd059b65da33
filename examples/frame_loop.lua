-- A frame loop that never blocks on the network: requests start with
-- net.fetch, every frame polls them, and a Server-Sent Events stream is
-- read piece by piece while it is open. Run it through testpeer/serve.py,
-- which sets LUANET_HTTP (CTest: example/frame_loop_lua).
local net = require "net"
local http = assert(os.getenv("LUANET_HTTP"), "run me under testpeer/serve.py")

local pending = {
  slow = net.fetch{ url = http .. "/delay?ms=400" },
  fast = net.fetch{ url = http .. "/delay?ms=50" },
  missing = net.fetch{ url = http .. "/status/404" },
}
local events = net.fetch{ url = http .. "/sse?n=3&ms=100", stream = true }
local results, streamed = {}, {}

local frame = 0
while next(pending) or events do
  frame = frame + 1
  for name, req in pairs(pending) do
    local res, err, kind = req:poll() -- nil while pending: no system call, no lock
    if res then
      print(("frame %d: %s -> %d %q"):format(frame, name, res.status, res.body))
      results[name], pending[name] = res.status, nil
    elseif err then
      print(("frame %d: %s failed: %s (%s)"):format(frame, name, err, kind))
      results[name], pending[name] = kind, nil
    end
  end
  if events then
    local chunk = events:read() -- "" when nothing new, nil once the stream ended
    if chunk == nil then
      print(("frame %d: event stream ended: %s"):format(frame, events:state()))
      events = nil
    elseif chunk ~= "" then
      for data in chunk:gmatch("data: ([^\n]*)") do
        print(("frame %d: event %q"):format(frame, data))
        streamed[#streamed + 1] = data
      end
    end
  end
  -- ... the rest of the frame: simulation, rendering ...
  net.fetch{ url = http .. "/delay?ms=16" }:wait() -- stands in for a 16 ms frame
end

assert(results.slow == 200 and results.fast == 200 and results.missing == 404, "statuses")
assert(table.concat(streamed, ",") == "event 1,event 2,event 3", "events")
print(("done in %d frames"):format(frame))
