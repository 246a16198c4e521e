--[[
cbreaker.lua - the LuaJIT FFI binding of libcbreaker: one circuit breaker
per dependency, shared by every process on the host (every nginx worker,
and any C or Python process that opens the same name).

    local cb = require "cbreaker"
    local c, err = cb.open("redis", { failure_threshold = 3, reset_timeout = 60 })
    local permit, verdict, retry_after = c:acquire()
    if not permit then ... end          -- verdict "rejected", retry_after s
    ... call the dependency ...
    c:success(permit)  /  c:failure(permit)  /  c:release(permit)
    c:set_mode(cb.MODE_FORCED_OPEN)     -- operator modes, host-wide

Errors are returned as nil, message (the library's cb_strerror, or what
was wrong with an argument); no method throws. The state machine stays in
C: this file only converts arguments and results.

Transitions are made by exactly one process host-wide (the one whose CAS
won); that process logs them. The library copies them into a per-handle
cb_record (cb_record_listener, no C -> Lua callback, so acquire and the
reports stay JIT-compilable); every method that can make a transition
checks record.len afterwards and, rarely, formats and logs the events
(ngx.log at ngx.WARN inside nginx, stderr outside; cb.set_logger changes
that).
]]

local ffi = require "ffi"

local ffi_new = ffi.new
local ffi_string = ffi.string
local ffi_istype = ffi.istype
local ffi_gc = ffi.gc
local tonumber = tonumber
local type = type
local pairs = pairs
local setmetatable = setmetatable
local floor = math.floor
local concat = table.concat
local string_gmatch = string.gmatch
local string_match = string.match

ffi.cdef [[
typedef struct cb_breaker cb_breaker;
typedef enum cb_state { CB_CLOSED = 0, CB_OPEN = 1, CB_HALF_OPEN = 2 } cb_state;
typedef struct cb_config {
    uint32_t failure_threshold;
    uint32_t reset_timeout_ms;
    uint32_t probe_timeout_ms;
    uint32_t mode;
    uint32_t failure_rate;
    uint32_t minimum_calls;
    uint32_t window_ms;
    uint32_t slow_call_ms;
    uint32_t slow_call_rate;
    uint32_t backoff_multiplier_pct;
    uint32_t max_reset_timeout_ms;
    uint32_t flags;
} cb_config;
typedef struct cb_permit { uint64_t opaque[2]; } cb_permit;
typedef enum cb_verdict { CB_REJECTED = 0, CB_ALLOWED = 1, CB_PROBE = 2 } cb_verdict;
typedef enum cb_reason {
    CB_REASON_THRESHOLD, CB_REASON_TIMEOUT, CB_REASON_PROBE_SUCCEEDED, CB_REASON_PROBE_FAILED,
    CB_REASON_LEASE_EXPIRED, CB_REASON_RESET, CB_REASON_TRIP, CB_REASON_FAILURE_RATE,
    CB_REASON_SLOW_CALL_RATE, CB_REASON_MODE
} cb_reason;
typedef enum cb_mode {
    CB_MODE_NORMAL = 0, CB_MODE_DISABLED = 1, CB_MODE_FORCED_OPEN = 2, CB_MODE_METRICS_ONLY = 3
} cb_mode;
typedef struct cb_transition {
    cb_state from;
    cb_state to;
    cb_reason reason;
    uint32_t failures;
    int32_t pid;
    uint64_t wall_ms;
    uint32_t generation;
    cb_mode mode;
    uint32_t would_open;
} cb_transition;
typedef struct cb_counters {
    uint64_t allowed, rejected, successes, failures, released, late, trips, probes;
} cb_counters;
typedef struct cb_info {
    char name[201];
    cb_state state;
    uint32_t failures;
    cb_config config;
    uint64_t ms_until_probe;
    int32_t probe_pid;
    uint64_t probe_lease_ms;
    cb_mode mode;
    uint64_t open_timeout_ms;
    uint32_t backoff_step;
    uint64_t window_calls;
    uint64_t window_failures;
    uint64_t window_slow_calls;
    uint32_t generation;
    uint32_t layout_version;
    uint64_t segment_size;
    cb_counters counters;
    uint32_t history_len;
    cb_transition history[32];
} cb_info;
typedef struct cb_event {
    const char *circuit;
    cb_transition transition;
    uint64_t mono_ms;
} cb_event;
typedef struct cb_record {
    uint32_t len;
    uint32_t dropped;
    cb_event events[8];
} cb_record;
typedef void (*cb_listener)(const cb_event *event, void *ctx);

int cb_open(const char *name, const cb_config *cfg, cb_breaker **out);
int cb_attach(const char *name, cb_breaker **out);
int cb_open_private(const char *name, const cb_config *cfg, cb_breaker **out);
void cb_close(cb_breaker *b);
int cb_unlink(const char *name);
cb_verdict cb_acquire(cb_breaker *b, cb_permit *permit);
void cb_success(cb_breaker *b, cb_permit *permit);
void cb_failure(cb_breaker *b, cb_permit *permit);
void cb_release(cb_breaker *b, cb_permit *permit);
cb_state cb_get_state(cb_breaker *b);
int cb_get_info(cb_breaker *b, cb_info *out);
int cb_inspect(const char *name, cb_info *out);
int cb_reset(cb_breaker *b);
int cb_trip(cb_breaker *b);
int cb_set_mode(cb_breaker *b, cb_mode mode);
const char *cb_mode_name(cb_mode m);
void cb_set_listener(cb_breaker *b, cb_listener fn, void *ctx);
void cb_record_listener(const cb_event *event, void *ctx);
int cb_format_event(const cb_event *event, char *buf, size_t len);
const char *cb_event_name(const cb_transition *t);
const char *cb_state_name(cb_state s);
const char *cb_reason_name(cb_reason r);
void cb_set_clock(cb_breaker *b, uint64_t (*now_ms)(void *ctx), void *ctx);
const char *cb_strerror(int err);
const char *cb_version(void);
typedef struct { long tv_sec; long tv_nsec; } cb_lua_timespec;
int clock_gettime(int clk, cb_lua_timespec *ts);
]]

-- The library: libcbreaker.so (or its soname) in a package.cpath directory
-- first, as OpenResty's own FFI modules look for theirs, then wherever the
-- dynamic linker finds it; when neither works, the error lists every path
-- tried.
local function load_library()
    local names = { "libcbreaker.so", "libcbreaker.so.2" }
    local tried = {}
    for template in string_gmatch(package.cpath, "[^;]+") do
        local dir = string_match(template, "^(.*/)")
        if dir then
            for _, so in ipairs(names) do
                local path = dir .. so
                local f = io.open(path, "rb")
                if f then
                    f:close()
                    local ok, lib = pcall(ffi.load, path)
                    if ok then
                        return lib
                    end
                    tried[#tried + 1] = path .. " (" .. tostring(lib) .. ")"
                else
                    tried[#tried + 1] = path
                end
            end
        end
    end
    for _, so in ipairs(names) do
        local ok, lib = pcall(ffi.load, so)
        if ok then
            return lib
        end
        tried[#tried + 1] = so .. " (system search path: " .. tostring(lib) .. ")"
    end
    error("cbreaker: could not load libcbreaker.so; tried:\n  " .. concat(tried, "\n  "), 3)
end

local C = load_library()

local cb_acquire = C.cb_acquire
local cb_success = C.cb_success
local cb_failure = C.cb_failure
local cb_release = C.cb_release
local cb_get_state = C.cb_get_state
local cb_get_info = C.cb_get_info

local permit_t = ffi.typeof("cb_permit")
local config_t = ffi.typeof("cb_config")
local record_t = ffi.typeof("cb_record")
local breaker_pp = ffi.typeof("cb_breaker *[1]")

-- Allocated once per module, never per call.
local info_buf = ffi_new("cb_info")
local scratch_permit = ffi_new(permit_t)
local line_buf_len = 512
local line_buf = ffi_new("char[?]", line_buf_len)

local mono_ts = ffi_new("cb_lua_timespec")
local CLOCK_MONOTONIC_COARSE = 6 -- the library's clock (Linux)

local CB_REJECTED, CB_PROBE = 0, 2
local state_names = { [0] = "CLOSED", [1] = "OPEN", [2] = "HALF_OPEN" }
local CB_MODE_FORCED_OPEN = 2
local open_results = { [0] = "opened", [1] = "created", [2] = "config_updated" }

local _M = { version = ffi_string(C.cb_version()) }

local function strerror(rc)
    return ffi_string(C.cb_strerror(rc))
end

-- ---------------------------------------------------------------- config
-- One row per cb_config field: the option's name, the C field and how a
-- Lua value becomes the C value. Options are named as in the Python
-- binding: the C name without "_ms", in seconds where C counts ms. A new
-- cb_config field is one row here (open() and info() both read the
-- table) plus its line in the cdef above (the ABI test fails without it).
-- A row's min and max (in the C unit, from the header's limits) bound a
-- value given; percent fields are whole percents (backoff_multiplier_pct
-- = 200 doubles the open period); a policy left out is off (or its
-- default). The library checks again (cb_open: nil, its message).
local UINT32_MAX = 4294967295

local function to_count(v, min, max)
    if type(v) ~= "number" or v ~= floor(v) or v < min or v > max then
        return nil, "expected a whole number from " .. min .. " to " .. max
    end
    return v
end

local function to_ms(v, min, max)
    if type(v) ~= "number" or v ~= v or v <= 0 then
        return nil, "expected a positive number of seconds"
    end
    local ms = floor(v * 1000 + 0.5)
    if ms < min or ms > max then
        return nil, "expected seconds from " .. min / 1000 .. " to " .. max / 1000
    end
    return ms
end

local function to_mode(v)
    if type(v) == "string" and string_match(v, "^[0-7]+$") then
        v = tonumber(v, 8)
    end
    if type(v) ~= "number" or v ~= floor(v) or v < 1 or v > 511 then
        return nil, "expected permission bits from \"0001\" to \"0777\" (a string of octal digits, or a number)"
    end
    return v
end

local function to_flags(v)
    if type(v) ~= "number" or v ~= floor(v) or v < 0 or v > UINT32_MAX then
        return nil, "expected a whole number (CB_OPEN_* bits)"
    end
    return v
end

local config_fields = {
    failure_threshold = { "failure_threshold", to_count, 1, UINT32_MAX },
    reset_timeout = { "reset_timeout_ms", to_ms, 1, UINT32_MAX },
    probe_timeout = { "probe_timeout_ms", to_ms, 1, UINT32_MAX },
    mode = { "mode", to_mode },
    failure_rate = { "failure_rate", to_count, 1, 100 },
    minimum_calls = { "minimum_calls", to_count, 1, UINT32_MAX },
    window = { "window_ms", to_ms, 10, 3600000 }, -- CB_WINDOW_MS_MIN, _MAX
    slow_call = { "slow_call_ms", to_ms, 1, 86400000 }, -- CB_SLOW_CALL_MS_MAX
    slow_call_rate = { "slow_call_rate", to_count, 1, 100 },
    backoff_multiplier_pct = { "backoff_multiplier_pct", to_count, 100, 10000 }, -- CB_BACKOFF_MULTIPLIER_MAX
    max_reset_timeout = { "max_reset_timeout_ms", to_ms, 1, UINT32_MAX },
    flags = { "flags", to_flags },
}

-- opts -> a fresh cb_config (opening is not a hot path), or nil, err.
local function make_config(opts)
    if opts == nil then
        return nil
    end
    if type(opts) ~= "table" then
        return nil, "options must be a table"
    end
    local cfg = ffi_new(config_t)
    for key, value in pairs(opts) do
        local field = config_fields[key]
        if not field then
            return nil, "unknown option '" .. tostring(key) .. "'"
        end
        local converted, err = field[2](value, field[3], field[4])
        if not converted then
            return nil, "option '" .. key .. "': " .. err
        end
        cfg[field[1]] = converted
    end
    return cfg
end

-- ---------------------------------------------------------------- logging
local function default_logger()
    local ngx = rawget(_G, "ngx")
    if ngx and type(ngx.log) == "function" and ngx.WARN then
        local ngx_log, WARN = ngx.log, ngx.WARN
        return function(line)
            ngx_log(WARN, line)
        end
    end
    return function(line)
        io.stderr:write(line, "\n")
    end
end

local logger = default_logger()

-- cb.set_logger(fn): fn(line) is called for each transition this process
-- makes (never on a hot path); nil restores the default.
function _M.set_logger(fn)
    if fn ~= nil and type(fn) ~= "function" then
        return nil, "logger must be a function or nil"
    end
    logger = fn or default_logger()
    return true
end

-- Log and empty the record: runs only after a transition. A logger that
-- throws loses its line, never the caller's call.
local function flush(rec)
    local len = rec.len
    for i = 0, len - 1 do
        local n = C.cb_format_event(rec.events + i, line_buf, line_buf_len)
        if n > 0 then
            pcall(logger, ffi_string(line_buf, n < line_buf_len and n or line_buf_len - 1))
        end
    end
    if rec.dropped > 0 then -- not from the binding: it polls after every call
        pcall(logger, "event=circuit_breaker_events_dropped count=" .. tonumber(rec.dropped))
    end
    rec.len = 0
    rec.dropped = 0
end

-- ---------------------------------------------------------------- handles
local mt = {}
mt.__index = mt

local function close_handle(b)
    C.cb_close(b)
end

local function wrap(rc, out)
    local b = ffi_gc(out[0], close_handle)
    local rec = ffi_new(record_t)
    C.cb_set_listener(b, C.cb_record_listener, rec)
    return setmetatable({ b = b, rec = rec }, mt), open_results[rc] or rc
end

local function check_name(name)
    if type(name) ~= "string" then
        return "circuit name must be a string"
    end
end

-- open_with(C.cb_open or C.cb_open_private, name, opts) -> handle, result
local function open_with(open_fn, name, opts)
    local err = check_name(name)
    if err then
        return nil, err
    end
    local cfg
    cfg, err = make_config(opts)
    if err then
        return nil, err
    end
    local out = ffi_new(breaker_pp)
    local rc = open_fn(name, cfg, out)
    if rc < 0 then
        return nil, strerror(rc)
    end
    return wrap(rc, out)
end

-- cb.open(name [, opts]) -> handle, "created" | "opened" | "config_updated"
-- opts nil attaches with the stored config (defaults when created here).
function _M.open(name, opts)
    return open_with(C.cb_open, name, opts)
end

-- cb.attach(name) -> handle: an existing circuit only (never creates).
function _M.attach(name)
    local err = check_name(name)
    if err then
        return nil, err
    end
    local out = ffi_new(breaker_pp)
    local rc = C.cb_attach(name, out)
    if rc < 0 then
        return nil, strerror(rc)
    end
    return wrap(rc, out)
end

-- cb.open_private(name [, opts]) -> handle: a circuit of this process alone
-- (after fork, each worker its own copy): for comparisons.
function _M.open_private(name, opts)
    return open_with(C.cb_open_private, name, opts)
end

-- cb.unlink(name) -> true: removes the name; open handles keep working.
function _M.unlink(name)
    local err = check_name(name)
    if err then
        return nil, err
    end
    local rc = C.cb_unlink(name)
    if rc < 0 then
        return nil, strerror(rc)
    end
    return true
end

local closed_err = "circuit handle is closed"
local permit_err = "permit must be a permit from acquire()"

-- Seconds until a rejected caller should try again: until the probe may
-- go (OPEN) or until the probe's lease runs out (HALF_OPEN). A snapshot
-- (cb_get_info, ~0.4 us) is taken once; later rejections count down from
-- it on the same coarse monotonic clock until it runs out, so a storm of
-- rejections costs a clock read each. The hint can only come out short
-- (the circuit re-opened meanwhile): the caller retries early and gets a
-- fresh one. Not cached under c:set_clock (the library's clock is not
-- ours then). nil when an operator forced the circuit open: no time
-- admits a call then, only a change of mode.
local function retry_after(self, b)
    local now
    if not self.custom_clock then
        ffi.C.clock_gettime(CLOCK_MONOTONIC_COARSE, mono_ts)
        now = tonumber(mono_ts.tv_sec) * 1000 + tonumber(mono_ts.tv_nsec) / 1e6
        local until_ms = self.retry_until
        if until_ms and now < until_ms then
            return (until_ms - now) / 1000
        end
    end
    if cb_get_info(b, info_buf) < 0 then
        return 0
    end
    if info_buf.mode == CB_MODE_FORCED_OPEN then
        self.retry_until = nil
        return nil
    end
    local ms = tonumber(info_buf.state == 1 and info_buf.ms_until_probe or info_buf.probe_lease_ms)
    if now then
        self.retry_until = now + ms
    end
    return ms / 1000
end

-- c:acquire([permit]) -> permit, "allowed" | "probe"; or nil, "rejected",
-- seconds. Without an argument each admitted call gets a new permit (a
-- 16-byte cdata); a loop that holds one call at a time can pass its own
-- (cb.permit()), which is filled in and returned: no allocation at all.
function mt.acquire(self, permit)
    local b = self.b
    if not b then
        return nil, closed_err
    end
    local into = permit
    if into == nil then
        into = scratch_permit
    elseif not ffi_istype(permit_t, into) then
        return nil, permit_err
    end
    local verdict = cb_acquire(b, into)
    local rec = self.rec
    if rec.len ~= 0 then
        flush(rec)
    end
    if verdict == CB_REJECTED then
        return nil, "rejected", retry_after(self, b)
    end
    if permit == nil then
        permit = ffi_new(permit_t, into)
    end
    return permit, verdict == CB_PROBE and "probe" or "allowed"
end

-- cb.permit() -> an empty permit, for c:acquire(permit).
function _M.permit()
    return ffi_new(permit_t)
end

local function reporter(report)
    return function(self, permit)
        local b = self.b
        if not b then
            return nil, closed_err
        end
        if not ffi_istype(permit_t, permit) then
            return nil, permit_err
        end
        report(b, permit)
        local rec = self.rec
        if rec.len ~= 0 then
            flush(rec)
        end
        return true
    end
end

-- c:success(permit), c:failure(permit), c:release(permit) -> true
-- A report empties the permit: reporting it again does nothing.
mt.success = reporter(cb_success)
mt.failure = reporter(cb_failure)
mt.release = reporter(cb_release)

-- c:state() -> "CLOSED" | "OPEN" | "HALF_OPEN"
function mt.state(self)
    local b = self.b
    if not b then
        return nil, closed_err
    end
    return state_names[tonumber(cb_get_state(b))]
end

local function control(fn)
    return function(self)
        local b = self.b
        if not b then
            return nil, closed_err
        end
        local rc = fn(b)
        if self.rec.len ~= 0 then
            flush(self.rec)
        end
        if rc < 0 then
            return nil, strerror(rc)
        end
        return state_names[rc] or "INVALID"
    end
end

-- c:reset() / c:trip() -> the state it replaced; nil, message while an
-- operator mode is set (nothing changed: c:set_mode("normal") first)
mt.reset = control(C.cb_reset)
mt.trip = control(C.cb_trip)

-- ---------------------------------------------------------------- modes
-- Operator modes (cb_mode), host-wide, named as cb_mode_name names them;
-- cb.MODE_* are those names.
local mode_names, mode_values = {}, {}
for value = 0, 3 do
    local name = ffi_string(C.cb_mode_name(value))
    mode_names[value] = name
    mode_values[name] = value
end
_M.MODE_NORMAL = mode_names[0]
_M.MODE_DISABLED = mode_names[1]
_M.MODE_FORCED_OPEN = mode_names[2]
_M.MODE_METRICS_ONLY = mode_names[3]

-- c:set_mode(mode) -> the name of the mode it replaced; mode is one of
-- cb.MODE_* ("normal", "disabled", "forced_open", "metrics_only").
function mt.set_mode(self, mode)
    local b = self.b
    if not b then
        return nil, closed_err
    end
    local value = mode_values[mode]
    if not value then
        return nil, "mode must be \"normal\", \"disabled\", \"forced_open\" or \"metrics_only\""
    end
    local rc = C.cb_set_mode(b, value)
    if self.rec.len ~= 0 then
        flush(self.rec)
    end
    if rc < 0 then
        return nil, strerror(rc)
    end
    self.retry_until = nil
    return mode_names[rc]
end

-- c:mode() -> the operator mode's name
function mt.mode(self)
    local b = self.b
    if not b then
        return nil, closed_err
    end
    local rc = cb_get_info(b, info_buf)
    if rc < 0 then
        return nil, strerror(rc)
    end
    return mode_names[tonumber(info_buf.mode)]
end

local function mode_string(mode)
    return ("%04o"):format(tonumber(mode))
end

local function iso_time(wall_ms)
    local s = floor(wall_ms / 1000)
    return os.date("!%Y-%m-%dT%H:%M:%S", s) .. (".%03dZ"):format(wall_ms - s * 1000)
end

-- part x 100 / whole floored to hundredths, as cbctl shows a rate; nil
-- for an empty window.
local function rate(part, whole)
    if whole == 0 then
        return nil
    end
    return floor(part * 10000 / whole) / 100
end

-- The snapshot as a table, with the names `cbctl show --json` uses.
local function info_table(info)
    local state = tonumber(info.state)
    local mode = tonumber(info.mode)
    local calls, failures, slow = tonumber(info.window_calls), tonumber(info.window_failures),
        tonumber(info.window_slow_calls)
    local t = {
        name = ffi_string(info.name),
        state = state_names[state] or "INVALID",
        failures = tonumber(info.failures),
        generation = tonumber(info.generation),
        mode = mode_names[mode] or "unknown",
        open_timeout_ms = tonumber(info.open_timeout_ms),
        backoff_step = tonumber(info.backoff_step),
        window = {
            span_ms = tonumber(info.config.window_ms),
            bucket_ms = floor(tonumber(info.config.window_ms) / 10),
            calls = calls,
            failures = failures,
            slow_calls = slow,
            failure_rate = rate(failures, calls),
            slow_call_rate = rate(slow, calls),
        },
        ms_until_probe = state == 1 and mode ~= CB_MODE_FORCED_OPEN and tonumber(info.ms_until_probe) or nil,
        probe_pid = info.probe_pid ~= 0 and tonumber(info.probe_pid) or nil,
        probe_lease_ms = state == 2 and tonumber(info.probe_lease_ms) or nil,
        config = {},
        segment = {
            layout_version = tonumber(info.layout_version),
            size = tonumber(info.segment_size),
        },
        counters = {},
        history = {},
    }
    for _, field in pairs(config_fields) do -- C names, as cbctl shows them
        t.config[field[1]] = tonumber(info.config[field[1]])
    end
    t.config.mode = mode_string(info.config.mode)
    local k = info.counters
    for _, name in ipairs { "allowed", "rejected", "successes", "failures", "released", "late", "trips", "probes" } do
        t.counters[name] = tonumber(k[name])
    end
    for i = 0, tonumber(info.history_len) - 1 do
        local h = info.history[i]
        local wall_ms = tonumber(h.wall_ms)
        t.history[i + 1] = {
            time = iso_time(wall_ms),
            wall_ms = wall_ms,
            event = ffi_string(C.cb_event_name(h)),
            from = ffi_string(C.cb_state_name(h.from)),
            to = ffi_string(C.cb_state_name(h.to)),
            reason = ffi_string(C.cb_reason_name(h.reason)),
            failures = tonumber(h.failures),
            pid = tonumber(h.pid),
            mode = mode_names[tonumber(h.mode)] or "unknown",
        }
    end
    return t
end

-- c:info() -> table (as `cbctl show --json` shows the circuit)
function mt.info(self)
    local b = self.b
    if not b then
        return nil, closed_err
    end
    local rc = cb_get_info(b, info_buf)
    if rc < 0 then
        return nil, strerror(rc)
    end
    return info_table(info_buf)
end

-- cb.inspect(name) -> the same table, read-only, without a handle.
function _M.inspect(name)
    local err = check_name(name)
    if err then
        return nil, err
    end
    local rc = C.cb_inspect(name, info_buf)
    if rc < 0 then
        return nil, strerror(rc)
    end
    return info_table(info_buf)
end

-- c:set_clock(fn, ctx): the library's cb_set_clock, for tests: fn must be
-- a C function pointer (uint64_t (*)(void *)), never a Lua function.
function mt.set_clock(self, fn, ctx)
    local b = self.b
    if not b then
        return nil, closed_err
    end
    if fn ~= nil and type(fn) ~= "cdata" then
        return nil, "clock must be a C function pointer or nil"
    end
    C.cb_set_clock(b, fn, ctx)
    self.custom_clock = fn ~= nil
    self.retry_until = nil
    return true
end

-- c:close(): unmap now rather than at garbage collection. The circuit stays.
function mt.close(self)
    local b = self.b
    if b then
        self.b = nil
        C.cb_close(ffi_gc(b, nil))
    end
    return true
end

return _M
