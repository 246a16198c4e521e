"""The policies of issue 10 through the Python binding: the new config
keywords (round trip, validation), operator modes (set_mode, mode, each
mode's effect through call() and call_sync(), ModeError), a failure-rate
trip made by two real processes, backoff seen in info(), slow calls, and
the log records of would-open and mode events. Timeouts are short real
ones; a test only waits well past one, never races it."""

import logging
import os
import time

import pytest

import cbreaker
from cbreaker import CircuitBreaker, CircuitBreakerOpenException, Mode, ModeError, _cbreaker
from test_processes import Children

POLICY_KEYWORDS = {
    "failure_rate": 40,
    "minimum_calls": 5,
    "window": 2.5,
    "slow_call": 0.25,
    "slow_call_rate": 60,
    "backoff_multiplier_pct": 150,
    "max_reset_timeout": 90.0,
}
POLICY_C = {
    "failure_rate": 40,
    "minimum_calls": 5,
    "window_ms": 2500,
    "slow_call_ms": 250,
    "slow_call_rate": 60,
    "backoff_multiplier_pct": 150,
    "max_reset_timeout_ms": 90000,
}


class Boom(Exception):
    pass


def boom():
    raise Boom("down")


def fail_sync(b, n):
    for _ in range(n):
        with pytest.raises(Boom):
            b.call_sync(boom)


def records_of(caplog, logger_name):
    return [r for r in caplog.records if r.name == logger_name]


# ---------------------------------------------------------------- config


def test_every_policy_field_is_one_row_and_a_keyword():
    rows = {c_name: (unit, lo, hi) for c_name, unit, lo, hi, _doc in _cbreaker.CONFIG_FIELDS}
    assert rows["failure_rate"] == ("percent", 1, 100)
    assert rows["slow_call_rate"] == ("percent", 1, 100)
    assert rows["minimum_calls"][0] == "count"
    assert rows["window_ms"] == ("ms", 10, 3600000)  # CB_WINDOW_MS_MIN, _MAX
    assert rows["slow_call_ms"] == ("ms", 1, 86400000)  # CB_SLOW_CALL_MS_MAX
    assert rows["backoff_multiplier_pct"] == ("percent", 100, 10000)  # CB_BACKOFF_MULTIPLIER_MAX
    assert rows["max_reset_timeout_ms"][0] == "ms"
    for keyword in POLICY_KEYWORDS:
        assert keyword in CircuitBreaker.__doc__, keyword


def test_policy_config_round_trip(names):
    name = names()
    b = CircuitBreaker(4, 2.0, name=name, **POLICY_KEYWORDS)
    stored = b.info()["config"]
    assert {k: stored[k] for k in POLICY_C} == POLICY_C
    assert {k: b.config[k] for k in POLICY_KEYWORDS} == POLICY_KEYWORDS
    again = CircuitBreaker(name=name, **b.config)  # the same config: nothing replaced
    assert again.info()["config"] == stored
    assert cbreaker.inspect(name)["config"] == stored


def test_policies_off_by_default_and_resolved(make_breaker):
    b = make_breaker(3, 60.0)
    stored = b.info()["config"]
    assert (stored["failure_rate"], stored["slow_call_ms"], stored["backoff_multiplier_pct"]) == (0, 0, 0)
    assert (stored["minimum_calls"], stored["window_ms"], stored["slow_call_rate"]) == (10, 10000, 100)
    assert stored["max_reset_timeout_ms"] == 300000
    config = b.config  # an off policy reads back as None, as it is given
    assert (config["failure_rate"], config["slow_call"], config["backoff_multiplier_pct"]) == (None, None, None)
    assert (config["minimum_calls"], config["window"], config["max_reset_timeout"]) == (10, 10.0, 300.0)
    assert b.mode == cbreaker.MODE_NORMAL
    info = b.info()
    assert (info["mode"], info["open_timeout_ms"], info["backoff_step"]) == ("normal", 60000, 0)
    assert info["window"] == {
        "span_ms": 10000,
        "bucket_ms": 1000,
        "calls": 0,
        "failures": 0,
        "slow_calls": 0,
        "failure_rate": None,
        "slow_call_rate": None,
    }


def test_backoff_100_is_off(names):
    b = CircuitBreaker(name=names(), backoff_multiplier_pct=100)
    assert b.info()["config"]["backoff_multiplier_pct"] == 0
    assert b.config["backoff_multiplier_pct"] is None


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"failure_rate": 0}, ValueError, r"failure_rate must be in 1\.\.100, not 0"),
        ({"failure_rate": 101}, ValueError, r"failure_rate must be in 1\.\.100"),
        ({"failure_rate": 50.0}, TypeError, "failure_rate must be an int"),
        ({"failure_rate": True}, TypeError, "failure_rate"),
        ({"slow_call_rate": 101}, ValueError, "slow_call_rate"),
        ({"minimum_calls": 0}, ValueError, "minimum_calls"),
        ({"minimum_calls": "10"}, TypeError, "minimum_calls"),
        ({"window": 0.009}, ValueError, r"window must be from 0\.01 to 3600\.000 s"),
        ({"window": 3600.001}, ValueError, "window"),
        ({"window": 0}, ValueError, "window"),
        ({"window": "10"}, TypeError, "window"),
        ({"slow_call": 86400.001}, ValueError, "slow_call"),
        ({"slow_call": -1}, ValueError, "slow_call"),
        ({"backoff_multiplier_pct": 99}, ValueError, r"backoff_multiplier_pct must be in 100\.\.10000"),
        ({"backoff_multiplier_pct": 10001}, ValueError, "backoff_multiplier_pct"),
        ({"backoff_multiplier_pct": 2.0}, TypeError, "backoff_multiplier_pct"),
        ({"max_reset_timeout": 0}, ValueError, "max_reset_timeout"),
        ({"window_ms": 1000}, TypeError, "unexpected keyword argument 'window_ms'"),
        ({"backoff_multiplier": 2}, TypeError, "unexpected keyword argument 'backoff_multiplier'"),
    ],
)
def test_bad_policy_values_create_nothing(names, kwargs, error, match):
    name = names()
    with pytest.raises(error, match=match):
        CircuitBreaker(name=name, **kwargs)
    assert not os.path.exists(f"/dev/shm/cbreaker.{name}")


def test_the_library_refuses_what_slips_past_the_keywords(names):
    """The extension's Handle takes raw cb_config values: the library's own
    check (-EINVAL) is a ValueError with the library's message."""
    name = names()
    for bad in ({"failure_rate": 101}, {"window_ms": 5}, {"backoff_multiplier_pct": 50}, {"slow_call_rate": 200}):
        with pytest.raises(ValueError, match=f"{name}: Invalid argument"):
            _cbreaker.Handle(name, bad)
    assert not os.path.exists(f"/dev/shm/cbreaker.{name}")


# ---------------------------------------------------------------- modes


def test_mode_constants_are_the_library_names():
    assert [m.value for m in Mode] == list(_cbreaker.MODES)
    assert (cbreaker.MODE_NORMAL, cbreaker.MODE_DISABLED, cbreaker.MODE_FORCED_OPEN, cbreaker.MODE_METRICS_ONLY) == (
        "normal",
        "disabled",
        "forced_open",
        "metrics_only",
    )
    assert str(cbreaker.MODE_FORCED_OPEN) == "forced_open"


def test_set_mode_returns_the_mode_replaced(make_breaker):
    b = make_breaker(3, 60.0)
    assert b.set_mode(cbreaker.MODE_DISABLED) is Mode.NORMAL
    assert b.mode is Mode.DISABLED
    assert b.set_mode("metrics_only") == "disabled"
    assert b.set_mode(Mode.FORCED_OPEN) == cbreaker.MODE_METRICS_ONLY
    assert b.info()["mode"] == "forced_open"
    generation = b.info()["generation"]
    assert b.set_mode("forced_open") == "forced_open"  # the mode in force: no transition
    assert b.info()["generation"] == generation
    assert b.set_mode("normal") == "forced_open"
    assert [(t["reason"], t["mode"]) for t in b.info()["history"][:4]] == [
        ("mode", "normal"),
        ("mode", "forced_open"),
        ("mode", "metrics_only"),
        ("mode", "disabled"),
    ]


def test_bad_modes_change_nothing(make_breaker):
    b = make_breaker(3, 60.0)
    bad_modes = (("NORMAL", ValueError), ("open", ValueError), ("", ValueError), (2, TypeError), (None, TypeError))
    for bad, error in bad_modes:
        with pytest.raises(error, match="mode must be"):
            b.set_mode(bad)
    with pytest.raises(ValueError, match="mode must be"):
        b._handle.set_mode("forced")  # the C layer checks too
    assert b.mode == "normal" and b.info()["history"] == []


def test_a_mode_is_host_wide(names):
    name = names()
    a, other = CircuitBreaker(name=name), CircuitBreaker(name=name)
    a.set_mode(cbreaker.MODE_FORCED_OPEN)
    assert other.mode == "forced_open" and cbreaker.inspect(name)["mode"] == "forced_open"
    with pytest.raises(CircuitBreakerOpenException):
        other.call_sync(print)


async def test_disabled_allows_every_call_and_never_trips(make_breaker):
    b = make_breaker(2, 60.0, failure_rate=10, minimum_calls=2)
    b.set_mode("disabled")

    async def fail():
        raise Boom("down")

    for _ in range(5):
        with pytest.raises(Boom):
            await b.call(fail)
    fail_sync(b, 5)
    info = b.info()
    assert (b.state, info["failures"], info["counters"]["failures"], info["counters"]["trips"]) == ("CLOSED", 0, 10, 0)
    assert info["window"]["calls"] == 0  # nothing counts towards a trip
    b.set_mode("normal")
    fail_sync(b, 2)
    assert b.state == "OPEN"


async def test_forced_open_rejects_every_call_without_a_probe(make_breaker):
    b = make_breaker(3, 0.05)
    b.set_mode(cbreaker.MODE_FORCED_OPEN)
    called = []

    async def dep():
        called.append(1)

    time.sleep(0.2)  # far past reset_timeout: still no probe
    with pytest.raises(CircuitBreakerOpenException) as raised:
        await b.call(dep)
    with pytest.raises(CircuitBreakerOpenException) as raised_sync:
        b.call_sync(called.append, 1)
    assert called == []
    for exc in (raised.value, raised_sync.value):
        assert (exc.state, exc.retry_after) == ("OPEN", None)
        assert "forced open" in str(exc)
    info = b.info()
    counters = info["counters"]
    assert (b.state, info["ms_until_probe"], counters["probes"], counters["rejected"]) == ("OPEN", None, 0, 2)
    assert b.set_mode("normal") == "forced_open"
    assert b.state == "CLOSED"
    await b.call(dep)
    assert called == [1]


async def test_metrics_only_never_rejects_and_keeps_counting(make_breaker):
    b = make_breaker(2, 60.0)
    b.set_mode(cbreaker.MODE_METRICS_ONLY)
    fail_sync(b, 5)

    async def ok():
        return "answer"

    assert await b.call(ok) == "answer"
    info = b.info()
    assert (b.state, info["counters"]["failures"], info["counters"]["successes"], info["counters"]["trips"]) == (
        "CLOSED",
        5,
        1,
        0,
    )
    fail_sync(b, 1)
    assert b.failure_count == 1  # the success cleared the count, as in CLOSED
    b.set_mode("normal")  # resumes from CLOSED with a zero count
    assert b.failure_count == 0
    fail_sync(b, 2)
    assert b.state == "OPEN"


@pytest.mark.parametrize("mode", ["disabled", "forced_open", "metrics_only"])
def test_reset_and_trip_refused_in_a_mode(make_breaker, mode):
    b = make_breaker(3, 60.0)
    b.set_mode(mode)
    generation = b.info()["generation"]
    for control in (b.reset, b.trip):
        with pytest.raises(ModeError) as raised:
            control()
        assert isinstance(raised.value, cbreaker.CircuitBreakerError)
        assert raised.value.code == _cbreaker.MODE_ERROR_CODE
        assert "operator mode" in str(raised.value)
    assert b.info()["generation"] == generation and b.mode == mode
    b.set_mode("normal")
    assert b.trip() == "CLOSED" and b.reset() == "OPEN"


def test_a_mode_change_makes_calls_in_flight_late(make_breaker):
    b = make_breaker(1, 60.0)
    permit = b.acquire()
    b.set_mode("disabled")
    permit.failure()
    assert b.info()["counters"]["late"] == 1
    b.set_mode("normal")
    assert b.state == "CLOSED"


# ---------------------------------------------------------------- rules through the binding


def test_failure_rate_trip_made_by_two_processes(names):
    """Child 0 reports 5 failures, then child 1 (its own handle, opened by
    name) 5 successes: below minimum_calls (10) nothing trips; the 10th
    call makes 5 of 10 = 50% and trips, reason failure_rate, made by child
    1. The threshold (100) cannot fire."""
    name = names()
    config = dict(failure_rate=50, minimum_calls=10, window=60.0)
    parent = CircuitBreaker(100, 60.0, name=name, **config)
    turn_r, turn_w = os.pipe()

    def child(i):
        if i == 0:
            os.close(turn_r)
            for _ in range(5):
                try:
                    parent.call_sync(boom)
                except Boom:
                    pass
            ok = parent.state == "CLOSED" and parent.info()["window"]["failures"] == 5
            os.write(turn_w, b"x")
            return 0 if ok else 1
        os.close(turn_w)
        os.read(turn_r, 1)  # child 0 has reported
        mine = CircuitBreaker(100, 60.0, name=name, **config)
        for _ in range(4):
            mine.call_sync(int)
        if mine.state != "CLOSED" or mine.info()["window"]["calls"] != 9:
            return 2
        mine.call_sync(int)
        return 0 if mine.state == "OPEN" else 3

    kids = Children(2, child)
    os.close(turn_r)
    os.close(turn_w)
    kids.go()
    assert kids.wait() == [0, 0]
    info = cbreaker.inspect(name)
    assert info["state"] == "OPEN" and info["counters"]["trips"] == 1
    last = info["history"][0]
    assert (last["reason"], last["from"], last["to"], last["pid"]) == ("failure_rate", "CLOSED", "OPEN", kids.pids[1])
    assert (info["counters"]["failures"], info["counters"]["successes"]) == (5, 5)


def test_slow_calls_trip(make_breaker):
    b = make_breaker(100, 60.0, slow_call=0.05, slow_call_rate=50, minimum_calls=2)
    b.call_sync(time.sleep, 0.3)  # far slower than 0.05 s on a coarse clock
    assert b.state == "CLOSED" and b.info()["window"]["slow_calls"] == 1
    b.call_sync(time.sleep, 0.3)
    assert b.state == "OPEN"
    assert b.info()["history"][0]["reason"] == "slow_call_rate"


def test_backoff_grows_the_open_period_in_info(make_breaker):
    b = make_breaker(1, 0.1, backoff_multiplier_pct=200, max_reset_timeout=0.3, probe_timeout=60.0)
    fail_sync(b, 1)
    seen = []
    for _ in range(3):
        info = b.info()
        seen.append((info["open_timeout_ms"], info["backoff_step"]))
        assert info["ms_until_probe"] <= info["open_timeout_ms"] + 20  # + clock ticks (the header's caveat)
        time.sleep(info["open_timeout_ms"] / 1000 + 0.2)  # well past the period
        fail_sync(b, 1)  # the probe fails
    info = b.info()
    seen.append((info["open_timeout_ms"], info["backoff_step"]))
    assert seen == [(100, 0), (200, 1), (300, 2), (300, 2)]  # doubled, then the cap
    time.sleep(0.5)
    b.call_sync(int)  # probe success: back to reset_timeout
    info = b.info()
    assert (b.state, info["open_timeout_ms"], info["backoff_step"]) == ("CLOSED", 100, 0)


# ---------------------------------------------------------------- log records


def test_would_open_and_mode_records(make_breaker, caplog):
    logger = logging.getLogger("cbreaker.test.policies")
    b = make_breaker(2, 60.0, failure_rate=50, minimum_calls=4, window=60.0, logger=logger)
    with caplog.at_level(logging.INFO, logger="cbreaker.test.policies"):
        b.set_mode(cbreaker.MODE_METRICS_ONLY)
        fail_sync(b, 3)  # the threshold would trip at 2: announced once
        b.call_sync(int)  # 3 of 4 failed: the rate would trip
        fail_sync(b, 2)  # still over the rate (mark set): nothing new; the threshold again
        b.set_mode("forced_open")
        b.set_mode("normal")
    records = records_of(caplog, "cbreaker.test.policies")
    got = [(r.getMessage(), r.reason, r.mode, r.from_state, r.to_state) for r in records]
    assert got == [
        ("circuit_breaker_closed", "mode", "metrics_only", "CLOSED", "CLOSED"),
        ("circuit_breaker_would_open", "threshold_reached", "metrics_only", "CLOSED", "OPEN"),
        ("circuit_breaker_would_open", "failure_rate", "metrics_only", "CLOSED", "OPEN"),
        ("circuit_breaker_would_open", "threshold_reached", "metrics_only", "CLOSED", "OPEN"),
        ("circuit_breaker_opened", "mode", "forced_open", "CLOSED", "OPEN"),
        ("circuit_breaker_closed", "mode", "normal", "OPEN", "CLOSED"),
    ]
    would = records[1]
    assert would.levelno == logging.WARNING and would.failures == 2
    assert would.pid == os.getpid() and would.circuit == b.name
    assert b.state == "CLOSED" and b.info()["counters"]["trips"] == 1  # only forced_open entered OPEN
    assert all(h["event"] != "circuit_breaker_would_open" for h in b.info()["history"])  # not recorded


def test_every_record_carries_the_mode(make_breaker, caplog):
    logger = logging.getLogger("cbreaker.test.plain")
    b = make_breaker(1, 60.0, logger=logger)
    with caplog.at_level(logging.INFO, logger="cbreaker.test.plain"):
        fail_sync(b, 1)
    (opened,) = records_of(caplog, "cbreaker.test.plain")
    assert (opened.getMessage(), opened.reason) == ("circuit_breaker_opened", "threshold_reached")
    assert opened.mode == "normal"


def test_open_exception_forced_open_pickles(names):
    import pickle

    b = CircuitBreaker(name=names())
    b.set_mode("forced_open")
    with pytest.raises(CircuitBreakerOpenException) as raised:
        b.call_sync(print)
    copy = pickle.loads(pickle.dumps(raised.value))
    assert (copy.name, copy.state, copy.retry_after) == (b.name, "OPEN", None)
