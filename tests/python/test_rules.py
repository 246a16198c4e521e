"""Every rule of the reference CircuitBreaker, on a named (host-wide) and a
private breaker. Timeouts are short real ones; a test waits well past a
timeout before expecting a probe, and asserts "not yet" only with a
timeout far longer than the test (no racing sleeps)."""

import asyncio
import time

import pytest

from cbreaker import CircuitBreakerOpenException

SHORT = 0.2  # reset timeout of tests that wait for the probe
HOLD = 60.0  # probe_timeout of tests that hold a probe: its lease never runs out
PAST_SHORT = 0.5  # well past SHORT, even on a loaded machine's coarse clock


class Boom(Exception):
    pass


class Dependency:
    """An async and a sync dependency that count their calls."""

    def __init__(self):
        self.calls = 0

    async def fail(self, exc=None):
        self.calls += 1
        raise exc or Boom("down")

    async def ok(self, value="pong"):
        self.calls += 1
        return value

    def fail_sync(self):
        self.calls += 1
        raise Boom("down")

    def ok_sync(self, value="pong"):
        self.calls += 1
        return value


async def fail_times(breaker, dep, n):
    for _ in range(n):
        with pytest.raises(Boom):
            await breaker.call(dep.fail)


async def test_three_consecutive_failures_trip(make_breaker):
    b, dep = make_breaker(3, 60.0), Dependency()
    await fail_times(b, dep, 2)
    assert b.state == "CLOSED" and b.failure_count == 2
    await fail_times(b, dep, 1)
    assert b.state == "OPEN"
    assert b.info()["counters"]["trips"] == 1


async def test_success_clears_the_count(make_breaker):
    b, dep = make_breaker(3, 60.0), Dependency()
    await fail_times(b, dep, 2)
    assert await b.call(dep.ok) == "pong"
    assert b.failure_count == 0
    await fail_times(b, dep, 2)
    assert b.state == "CLOSED"


async def test_rejection_does_not_await_func(make_breaker):
    b, dep = make_breaker(3, 60.0), Dependency()
    await fail_times(b, dep, 3)
    created = []

    def factory():  # would create the coroutine: must not even be called
        created.append(1)
        return dep.ok()

    async def via_factory():
        return await factory()

    with pytest.raises(CircuitBreakerOpenException) as info:
        await b.call(via_factory)
    assert created == [] and dep.calls == 3
    assert info.value.state == "OPEN" and info.value.name == b.name
    assert 50.0 < info.value.retry_after <= 60.1
    with pytest.raises(CircuitBreakerOpenException):
        b.call_sync(dep.ok_sync)
    assert dep.calls == 3
    assert b.info()["counters"]["rejected"] == 2


async def test_one_probe_after_the_timeout(make_breaker):
    b, dep = make_breaker(3, SHORT, probe_timeout=HOLD), Dependency()
    await fail_times(b, dep, 3)
    await asyncio.sleep(PAST_SHORT)
    gate = asyncio.Event()

    async def slow_probe():
        dep.calls += 1
        await gate.wait()
        return "probed"

    probe = asyncio.ensure_future(b.call(slow_probe))
    while dep.calls < 4:  # the probe is in flight
        await asyncio.sleep(0.001)
    assert b.state == "HALF_OPEN"
    for _ in range(5):
        with pytest.raises(CircuitBreakerOpenException) as info:
            await b.call(dep.ok)
        assert info.value.state == "HALF_OPEN"
    gate.set()
    assert await probe == "probed"
    assert b.state == "CLOSED" and b.failure_count == 0
    assert dep.calls == 4 and b.info()["counters"]["probes"] == 1


async def test_not_before_the_timeout(make_breaker):
    b, dep = make_breaker(3, 60.0), Dependency()
    await fail_times(b, dep, 3)
    await asyncio.sleep(PAST_SHORT)
    with pytest.raises(CircuitBreakerOpenException):
        await b.call(dep.ok)
    assert b.state == "OPEN" and b.info()["counters"]["probes"] == 0


async def test_probe_failure_reopens_with_a_fresh_timeout(make_breaker):
    b, dep = make_breaker(3, 1.0), Dependency()
    await fail_times(b, dep, 3)
    await asyncio.sleep(1.3)
    with pytest.raises(Boom):
        await b.call(dep.fail)  # the probe
    # More than reset_timeout has passed since the trip: only a fresh
    # timeout, started by the probe's failure, can still be running.
    info = b.info()
    assert info["state"] == "OPEN" and info["ms_until_probe"] > 0
    assert info["history"][0]["reason"] == "probe_failed"
    with pytest.raises(CircuitBreakerOpenException):
        await b.call(dep.ok)
    assert dep.calls == 4


async def test_probe_success_closes_and_clears(make_breaker):
    b, dep = make_breaker(3, SHORT), Dependency()
    await fail_times(b, dep, 3)
    await asyncio.sleep(PAST_SHORT)
    assert await b.call(dep.ok, "back") == "back"
    assert b.state == "CLOSED" and b.failure_count == 0
    await fail_times(b, dep, 2)  # the count starts again from zero
    assert b.state == "CLOSED"


async def test_exceptions_and_results_unchanged(make_breaker):
    b, dep = make_breaker(3, 60.0), Dependency()
    exc = Boom("this one")
    with pytest.raises(Boom) as raised:
        await b.call(dep.fail, exc)
    assert raised.value is exc
    result = object()
    assert await b.call(dep.ok, result) is result
    assert await b.call(dep.ok, value=result) is result
    with pytest.raises(Boom) as raised:
        b.call_sync(lambda: (_ for _ in ()).throw(exc))
    assert raised.value is exc
    assert b.call_sync(dep.ok_sync, result) is result


async def test_cancellation_releases_the_probe_at_once(make_breaker):
    b, dep = make_breaker(3, SHORT, probe_timeout=HOLD), Dependency()
    await fail_times(b, dep, 3)
    await asyncio.sleep(PAST_SHORT)
    started = asyncio.Event()

    async def hang():
        started.set()
        await asyncio.sleep(3600)

    probe = asyncio.ensure_future(b.call(hang))
    await started.wait()
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    # Released, not failed: the next caller is the probe, now.
    assert b.state == "HALF_OPEN"
    assert await b.call(dep.ok) == "pong"
    assert b.state == "CLOSED"
    counters = b.info()["counters"]
    assert counters["released"] == 1 and counters["probes"] == 2


async def test_excluded_exceptions_release(make_breaker):
    b, dep = make_breaker(3, SHORT, probe_timeout=HOLD, exclude=(KeyError,)), Dependency()
    for _ in range(5):  # excluded: never counted
        with pytest.raises(KeyError):
            await b.call(dep.fail, KeyError("client's fault"))
    assert b.state == "CLOSED" and b.failure_count == 0
    await fail_times(b, dep, 3)
    await asyncio.sleep(PAST_SHORT)
    with pytest.raises(KeyError):
        await b.call(dep.fail, KeyError("probe"))  # releases the probe
    assert b.state == "HALF_OPEN"
    assert await b.call(dep.ok) == "pong"
    assert b.state == "CLOSED"


async def test_sync_decorator_and_with(make_breaker):
    b, dep = make_breaker(3, SHORT), Dependency()

    @b
    def sync_ok(x):
        return x * 2

    @b
    async def async_fail():
        raise Boom("down")

    assert sync_ok(21) == 42 and sync_ok.__name__ == "sync_ok"
    with pytest.raises(Boom):
        await async_fail()
    with pytest.raises(Boom):
        with b:
            raise Boom("down")
    assert b.failure_count == 2
    with b as permit:
        assert not permit.is_probe
    assert b.failure_count == 0
    with pytest.raises(Boom):
        async with b:
            raise Boom("down")
    await fail_times(b, dep, 2)
    assert b.state == "OPEN"
    with pytest.raises(CircuitBreakerOpenException):
        with b:
            pytest.fail("ran inside an open breaker")
    with pytest.raises(CircuitBreakerOpenException):
        sync_ok(1)
    await asyncio.sleep(PAST_SHORT)
    async with b as permit:
        assert permit.is_probe
    assert b.state == "CLOSED"


async def test_nested_with_blocks_report_their_own_permits(make_breaker):
    b = make_breaker(3, 60.0)
    other = make_breaker(3, 60.0)
    with pytest.raises(Boom):
        with b:
            with other:
                pass
            raise Boom("outer")
    assert b.failure_count == 1 and other.failure_count == 0


async def test_concurrent_tasks_with_async_with(make_breaker):
    b = make_breaker(3, 60.0)
    gate = asyncio.Event()

    async def task(fail):
        async with b:
            await gate.wait()
            if fail:
                raise Boom("down")

    tasks = [asyncio.ensure_future(task(i % 2 == 0)) for i in range(4)]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [type(r) for r in results] == [Boom, type(None), Boom, type(None)]
    counters = b.info()["counters"]
    assert counters["failures"] == 2 and counters["successes"] == 2


async def test_trip_and_reset(make_breaker):
    b, dep = make_breaker(3, 60.0), Dependency()
    assert b.trip() == "CLOSED" and b.state == "OPEN"
    with pytest.raises(CircuitBreakerOpenException):
        await b.call(dep.ok)
    assert b.reset() == "OPEN" and b.state == "CLOSED"
    assert await b.call(dep.ok) == "pong"
    reasons = [t["reason"] for t in b.info()["history"]]
    assert reasons[:2] == ["reset", "trip"]


def test_call_sync_follows_the_same_rules(make_breaker):
    b, dep = make_breaker(2, SHORT, exclude=(KeyError,)), Dependency()
    for exc in (KeyError("excluded"), KeyboardInterrupt(), SystemExit(3)):
        with pytest.raises(type(exc)) as raised:
            b.call_sync(lambda: (_ for _ in ()).throw(exc))
        assert raised.value is exc
    assert b.failure_count == 0 and b.info()["counters"]["released"] == 3
    assert b.call_sync(lambda *a, **k: (a, k), 1, 2, x=3) == ((1, 2), {"x": 3})
    with pytest.raises(TypeError):
        b.call_sync()
    for _ in range(2):
        with pytest.raises(Boom):
            b.call_sync(dep.fail_sync)
    assert b.state == "OPEN"
    time.sleep(PAST_SHORT)
    with pytest.raises(Boom):
        b.call_sync(dep.fail_sync)  # the probe fails: OPEN again
    assert b.state == "OPEN" and b.info()["history"][0]["reason"] == "probe_failed"
    b.reset()
    assert type(b).call_sync(b, dep.ok_sync, "unbound") == "unbound"  # the documented method
