--[[
loop.lua N NAME [own] - acquire + success through the LuaJIT binding in a loop
the JIT compiles (the healthy path, one named circuit; with "own", c:acquire(permit) refills one permit instead of
allocating one per call); prints ns per
acquire + success pair, the best of 5 rounds of N calls.
Run by tools/bench-lua/run (LUA_PATH/LUA_CPATH point at the build).
]]
local ffi = require "ffi"
local cb = require "cbreaker"
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } cbbench_timespec;
int clock_gettime(int clk, cbbench_timespec *ts);
]]
local ts = ffi.new("cbbench_timespec")
local function now_ns()
    ffi.C.clock_gettime(1, ts)
    return tonumber(ts.tv_sec) * 1e9 + tonumber(ts.tv_nsec)
end

local n, name = tonumber(arg[1]) or 10000000, arg[2] or "bench.lua"
local c = assert(cb.open(name, { failure_threshold = 3, reset_timeout = 60 }))

local own = cb.permit()
local loop
if arg[3] == "own" then -- the caller's permit, filled in place
    loop = function(calls)
        for _ = 1, calls do
            c:acquire(own)
            c:success(own)
        end
    end
else -- a new permit per admitted call
    loop = function(calls)
        for _ = 1, calls do
            local p = c:acquire()
            c:success(p)
        end
    end
end

loop(n / 10) -- warm up: compiled before the timed rounds
local best = math.huge
for _ = 1, 5 do
    local t0 = now_ns()
    loop(n)
    best = math.min(best, (now_ns() - t0) / n)
end
c:close()
cb.unlink(name)
print(("%.1f"):format(best))
