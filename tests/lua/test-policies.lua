--[[
test-policies.lua - issue 10's policies through the LuaJIT binding, as TAP,
on a manual clock (a C function reading a counter this test owns: no
sleeps): the new options (round trip, bad values refused with nothing
created), operator modes (c:set_mode, c:mode, cb.MODE_*, each mode's effect
through acquire and the reports, reset/trip refused), the failure-rate and
slow-call rules and the window aging, backoff seen in c:info(), and the
would-open and mode lines in the key=value log format.

Environment (set by tests/lua/meson.build): CBREAKER_LUA_DIR,
CBREAKER_LIB_DIR, CBTEST_CLOCK_LIB.
]]

local lua_dir = assert(os.getenv("CBREAKER_LUA_DIR"))
local lib_dir = assert(os.getenv("CBREAKER_LIB_DIR"))
package.path = lua_dir .. "/?.lua;" .. package.path
package.cpath = lib_dir .. "/?.so;" .. package.cpath

local ffi = require "ffi"
local cb = require "cbreaker"

ffi.cdef [[
int getpid(void);
uint64_t cbtest_clock_read(void *ctx);
]]
local clock_lib = ffi.load(assert(os.getenv("CBTEST_CLOCK_LIB")))

-- ---------------------------------------------------------------- harness
local tests, names_made = {}, {}
local function test(name, fn)
    tests[#tests + 1] = { name, fn }
end

local function eq(got, want, what)
    if got ~= want then
        error(("%s: got %s, want %s"):format(what or "value", tostring(got), tostring(want)), 2)
    end
end

local function ok(cond, what)
    if not cond then
        error(what or "assertion failed", 2)
    end
end

local seq = 0
local function unique_name(tag)
    seq = seq + 1
    local name = ("test.lua-%s.%d.%d"):format(tag, ffi.C.getpid(), seq)
    cb.unlink(name)
    names_made[#names_made + 1] = name
    return name
end

local lines = {}
assert(cb.set_logger(function(line)
    lines[#lines + 1] = line
end))

local T0 = 1000000

-- A circuit on a manual clock: the handle, the clock, the name.
local function clocked(tag, opts)
    local name = unique_name(tag)
    local c, how = cb.open(name, opts)
    assert(c, how)
    local clock = ffi.new("uint64_t[1]", T0)
    assert(c:set_clock(clock_lib.cbtest_clock_read, clock))
    return c, clock, name
end

local function report(c, how, n)
    for _ = 1, n do
        local p, v = c:acquire()
        ok(p, "acquire rejected: " .. tostring(v))
        assert(c[how](c, p))
    end
end

local POLICY_OPTS = {
    failure_rate = 40,
    minimum_calls = 5,
    window = 2.5,
    slow_call = 0.25,
    slow_call_rate = 60,
    backoff_multiplier_pct = 150,
    max_reset_timeout = 90,
}

-- ---------------------------------------------------------------- options
test("the policy options round trip; reopening with them changes nothing", function()
    local name = unique_name("opts")
    local c, how = cb.open(name, POLICY_OPTS)
    eq(how, "created")
    local config = c:info().config
    eq(config.failure_rate, 40)
    eq(config.minimum_calls, 5)
    eq(config.window_ms, 2500)
    eq(config.slow_call_ms, 250)
    eq(config.slow_call_rate, 60)
    eq(config.backoff_multiplier_pct, 150)
    eq(config.max_reset_timeout_ms, 90000)
    local again, how2 = cb.open(name, POLICY_OPTS)
    eq(how2, "opened")
    again:close()
    c:close()
end)

test("policies are off by default; info() shows mode, open period, window", function()
    local c = assert(cb.open(unique_name("defaults"), {}))
    local info = c:info()
    eq(info.config.failure_rate, 0)
    eq(info.config.slow_call_ms, 0)
    eq(info.config.backoff_multiplier_pct, 0)
    eq(info.config.minimum_calls, 10)
    eq(info.config.window_ms, 10000)
    eq(info.config.slow_call_rate, 100)
    eq(info.config.max_reset_timeout_ms, 300000)
    eq(info.mode, "normal")
    eq(info.open_timeout_ms, 60000)
    eq(info.backoff_step, 0)
    eq(info.window.span_ms, 10000)
    eq(info.window.bucket_ms, 1000)
    eq(info.window.calls, 0)
    eq(info.window.failure_rate, nil, "no rate of an empty window")
    c:close()
end)

test("bad policy options: nil, err naming the option, nothing created", function()
    local name = unique_name("badopt")
    local cases = {
        { { failure_rate = 0 }, "option 'failure_rate': expected a whole number from 1 to 100" },
        { { failure_rate = 101 }, "option 'failure_rate'" },
        { { failure_rate = 50.5 }, "option 'failure_rate'" },
        { { slow_call_rate = 101 }, "option 'slow_call_rate'" },
        { { minimum_calls = 0 }, "option 'minimum_calls'" },
        { { window = 0.009 }, "option 'window': expected seconds from 0.01 to 3600" },
        { { window = 3600.001 }, "option 'window'" },
        { { window = "10" }, "option 'window'" },
        { { slow_call = 86400.001 }, "option 'slow_call'" },
        { { slow_call = -1 }, "option 'slow_call'" },
        { { backoff_multiplier_pct = 99 }, "option 'backoff_multiplier_pct': expected a whole number from 100" },
        { { backoff_multiplier_pct = 10001 }, "option 'backoff_multiplier_pct'" },
        { { max_reset_timeout = 0 }, "option 'max_reset_timeout'" },
        { { window_ms = 1000 }, "unknown option 'window_ms'" },
        { { backoff_multiplier = 2 }, "unknown option 'backoff_multiplier'" },
    }
    for _, case in ipairs(cases) do
        local c, err = cb.open(name, case[1])
        eq(c, nil, "open with " .. case[2])
        ok(err and err:find(case[2], 1, true), ("want '%s', got '%s'"):format(case[2], tostring(err)))
    end
    eq(cb.inspect(name), nil, "nothing created")
end)

-- ---------------------------------------------------------------- modes
test("set_mode returns the mode replaced; mode() reads it host-wide", function()
    eq(cb.MODE_NORMAL, "normal")
    eq(cb.MODE_DISABLED, "disabled")
    eq(cb.MODE_FORCED_OPEN, "forced_open")
    eq(cb.MODE_METRICS_ONLY, "metrics_only")
    local c, _, name = clocked("setmode")
    local other = assert(cb.open(name))
    eq(c:set_mode(cb.MODE_DISABLED), "normal")
    eq(other:mode(), "disabled")
    eq(c:set_mode("metrics_only"), "disabled")
    eq(c:set_mode(cb.MODE_FORCED_OPEN), "metrics_only")
    eq(cb.inspect(name).mode, "forced_open")
    local generation = c:info().generation
    eq(c:set_mode("forced_open"), "forced_open", "the mode in force")
    eq(c:info().generation, generation, "no transition")
    eq(other:set_mode("normal"), "forced_open")
    local h = c:info().history
    eq(h[1].reason, "mode")
    eq(h[1].mode, "normal")
    eq(h[2].mode, "forced_open")
    for _, bad in ipairs { "NORMAL", "open", "", 2, true } do
        local r, err = c:set_mode(bad)
        eq(r, nil, "set_mode " .. tostring(bad))
        ok(err:find("mode must be", 1, true), err)
    end
    eq(c:mode(), "normal")
    c:close()
    eq(select(2, c:set_mode("normal")), "circuit handle is closed")
    eq(select(2, c:mode()), "circuit handle is closed")
    other:close()
end)

test("disabled: every call allowed, nothing trips, the counters still count", function()
    local c = clocked("disabled", { failure_threshold = 2, failure_rate = 10, minimum_calls = 2 })
    c:set_mode("disabled")
    report(c, "failure", 6)
    eq(c:state(), "CLOSED")
    local info = c:info()
    eq(info.counters.failures, 6)
    eq(info.counters.trips, 0)
    eq(info.window.calls, 0, "nothing in the window")
    c:set_mode("normal")
    report(c, "failure", 2)
    eq(c:state(), "OPEN")
    c:close()
end)

test("forced_open: every call rejected, retry_after nil, no probe ever", function()
    local c, clock = clocked("forced", { reset_timeout = 1 })
    c:set_mode(cb.MODE_FORCED_OPEN)
    clock[0] = clock[0] + 3600 * 1000
    local p, verdict, retry = c:acquire()
    eq(p, nil)
    eq(verdict, "rejected")
    eq(retry, nil, "retry_after when forced open")
    local info = c:info()
    eq(info.state, "OPEN")
    eq(info.ms_until_probe, nil)
    eq(info.counters.probes, 0)
    eq(c:set_mode("normal"), "forced_open")
    local q, v = c:acquire()
    ok(q and v == "allowed", "allowed after normal")
    c:success(q)
    c:close()
end)

test("metrics_only: never rejects; would-open announced once per crossing", function()
    local c, _, name = clocked("metrics", { failure_threshold = 2, failure_rate = 50, minimum_calls = 4, window = 60 })
    lines = {}
    c:set_mode("metrics_only")
    report(c, "failure", 3) -- the threshold would trip at 2: once
    report(c, "success", 1) -- 3 of 4 failed: the rate would trip
    report(c, "failure", 2) -- the threshold again; the rate is still over: nothing new
    eq(c:state(), "CLOSED")
    eq(c:info().counters.trips, 0)
    eq(#lines, 4, "lines: " .. table.concat(lines, " | "))
    local pid = ffi.C.getpid()
    local pname = name:gsub("%p", "%%%0")
    local entered = "^event=circuit_breaker_closed circuit=%s from=CLOSED to=CLOSED reason=mode .* mode=metrics_only$"
    ok(lines[1]:match(entered:format(pname)), lines[1])
    local would = ("^event=circuit_breaker_would_open circuit=%s from=CLOSED to=OPEN reason=%s failures=%%d+ pid=%d "
        .. "wall_ms=%%d+ mode=metrics_only$")
    ok(lines[2]:match(would:format(pname, "threshold_reached", pid)), lines[2])
    ok(lines[3]:match(would:format(pname, "failure_rate", pid)), lines[3])
    ok(lines[4]:match(would:format(pname, "threshold_reached", pid)), lines[4])
    for _, h in ipairs(c:info().history) do
        ok(h.event ~= "circuit_breaker_would_open", "a would-open in the history")
    end
    c:set_mode("normal")
    eq(c:info().failures, 0, "normal resumes with a zero count")
    c:close()
end)

test("reset and trip in a mode: nil, message; nothing changed", function()
    local c = clocked("refused")
    for _, mode in ipairs { "disabled", "forced_open", "metrics_only" } do
        c:set_mode(mode)
        local generation = c:info().generation
        for _, m in ipairs { "reset", "trip" } do
            local r, err = c[m](c)
            eq(r, nil, m .. " in " .. mode)
            ok(err:find("operator mode", 1, true), err)
        end
        eq(c:info().generation, generation)
        eq(c:mode(), mode)
    end
    c:set_mode("normal")
    eq(c:trip(), "CLOSED")
    c:close()
end)

test("a mode change makes calls in flight late", function()
    local c = clocked("late", { failure_threshold = 1 })
    local p = assert(c:acquire())
    c:set_mode("disabled")
    c:failure(p)
    eq(c:info().counters.late, 1)
    c:close()
end)

-- ---------------------------------------------------------------- rules
test("failure rate: no trip below minimum_calls, trip at it; old calls age out", function()
    local c, clock = clocked("rate", { failure_threshold = 100, failure_rate = 50, minimum_calls = 4, window = 1 })
    report(c, "failure", 2)
    report(c, "success", 1)
    eq(c:state(), "CLOSED", "3 calls < minimum_calls")
    clock[0] = clock[0] + 1500 -- past the window: those three age out
    eq(c:info().window.calls, 0, "aged out")
    report(c, "failure", 1)
    report(c, "success", 2)
    eq(c:state(), "CLOSED", "1 of 3")
    report(c, "failure", 1) -- 2 of 4 = 50%
    eq(c:state(), "OPEN")
    eq(c:info().history[1].reason, "failure_rate")
    c:close()
end)

test("slow calls on the handle's clock trip by slow_call_rate", function()
    local c, clock = clocked("slow",
        { failure_threshold = 100, slow_call = 0.1, slow_call_rate = 50, minimum_calls = 2 })
    for _ = 1, 2 do
        local p = assert(c:acquire())
        clock[0] = clock[0] + 101 -- > slow_call
        c:success(p)
    end
    eq(c:state(), "OPEN")
    eq(c:info().history[1].reason, "slow_call_rate")
    eq(c:info().counters.failures, 0)
    c:close()
end)

test("backoff: each failed probe grows the open period, up to the cap", function()
    local c, clock = clocked("backoff", { failure_threshold = 1, reset_timeout = 1, probe_timeout = 60,
        backoff_multiplier_pct = 200, max_reset_timeout = 3 })
    report(c, "failure", 1)
    local seen = {}
    for _ = 1, 3 do
        local info = c:info()
        seen[#seen + 1] = info.open_timeout_ms .. "/" .. info.backoff_step
        clock[0] = clock[0] + info.open_timeout_ms + 100
        local p, v = c:acquire()
        eq(v, "probe")
        c:failure(p)
    end
    local info = c:info()
    seen[#seen + 1] = info.open_timeout_ms .. "/" .. info.backoff_step
    eq(table.concat(seen, " "), "1000/0 2000/1 3000/2 3000/2")
    clock[0] = clock[0] + 3100
    local p = assert(c:acquire())
    c:success(p)
    info = c:info()
    eq(info.state, "CLOSED")
    eq(info.open_timeout_ms, 1000, "back to reset_timeout")
    eq(info.backoff_step, 0)
    c:close()
end)

-- ---------------------------------------------------------------- run
print("1.." .. #tests)
local failed = 0
for i, t in ipairs(tests) do
    local good, err = pcall(t[2])
    if good then
        print(("ok %d - %s"):format(i, t[1]))
    else
        failed = failed + 1
        print(("not ok %d - %s"):format(i, t[1]))
        print("# " .. tostring(err):gsub("\n", "\n# "))
    end
end
for _, name in ipairs(names_made) do
    cb.unlink(name)
end
os.exit(failed == 0 and 0 or 1)
