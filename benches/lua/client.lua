-- What every benchmark client shares: its command line and how it fails.
-- Loaded with dofile from the clients in this folder:
--
--   local fail, num, int, case, url, count =
--     dofile((arg[0]:match("^(.*/)") or "./") .. "client.lua")("luanet.lua")
--
-- fail(msg): message on stderr, exit status 1 (the orchestrator's contract).
-- num(s, what): a non-negative integer argument, or fail.
-- int(n): n as an integer string, whatever the Lua version's number type.
-- case, url, count: arguments 1 to 3.
return function(name)
  local function fail(msg)
    io.stderr:write(name, ": ", msg, "\n")
    os.exit(1)
  end

  local function num(s, what)
    local n = tonumber(s)
    if n == nil or n < 0 or n ~= math.floor(n) then
      fail("bad " .. what .. ": " .. tostring(s))
    end
    return n
  end

  local function int(n)
    return string.format("%.0f", n)
  end

  local case, url = arg[1], arg[2]
  if case == nil or url == nil then
    fail("usage: " .. name .. " CASE URL COUNT [SIZE]")
  end
  return fail, num, int, case, url, num(arg[3], "COUNT")
end
