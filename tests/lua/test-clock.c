/*
 * test-clock.c - a manual clock for the Lua tests, as a C function the
 * library can call (cb_set_clock): it reads the uint64_t the test owns and
 * advances. A Lua callback would do, but not inside a JIT-compiled loop.
 */
#include <stdint.h>

uint64_t cbtest_clock_read(void *ctx);

uint64_t cbtest_clock_read(void *ctx)
{
    return __atomic_load_n((const uint64_t *)ctx, __ATOMIC_SEQ_CST);
}
