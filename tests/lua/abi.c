/*
 * abi.c - prints the size and field offsets of every struct the LuaJIT
 * binding declares in its ffi.cdef (src/lua/cbreaker.lua), so that
 * test-cbreaker.lua can compare them with ffi.sizeof/ffi.offsetof: a field
 * added to the header but not to the cdef fails the test.
 */
#include <stddef.h>
#include <stdio.h>

#include "cbreaker.h"

#define SIZE(t) printf("%s %zu\n", #t, sizeof(t))
#define FIELD(t, f) printf("%s.%s %zu\n", #t, #f, offsetof(t, f))

int main(void)
{
    SIZE(cb_config);
    FIELD(cb_config, mode);
    FIELD(cb_config, failure_rate);
    FIELD(cb_config, max_reset_timeout_ms);
    FIELD(cb_config, flags);
    SIZE(cb_permit);
    SIZE(cb_transition);
    FIELD(cb_transition, wall_ms);
    FIELD(cb_transition, generation);
    FIELD(cb_transition, mode);
    FIELD(cb_transition, would_open);
    SIZE(cb_counters);
    SIZE(cb_info);
    FIELD(cb_info, state);
    FIELD(cb_info, config);
    FIELD(cb_info, ms_until_probe);
    FIELD(cb_info, probe_pid);
    FIELD(cb_info, probe_lease_ms);
    FIELD(cb_info, mode);
    FIELD(cb_info, open_timeout_ms);
    FIELD(cb_info, backoff_step);
    FIELD(cb_info, window_calls);
    FIELD(cb_info, window_failures);
    FIELD(cb_info, window_slow_calls);
    FIELD(cb_info, generation);
    FIELD(cb_info, segment_size);
    FIELD(cb_info, counters);
    FIELD(cb_info, history_len);
    FIELD(cb_info, history);
    SIZE(cb_event);
    FIELD(cb_event, transition);
    FIELD(cb_event, mono_ms);
    SIZE(cb_record);
    FIELD(cb_record, events);
    return 0;
}
