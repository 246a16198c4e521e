"""The API around the calls: info() as `cbctl show --json`, the
table-driven config keywords, the log records of transitions, module
functions, attach, and permits reported by hand."""

import datetime
import inspect
import json
import logging
import os
import subprocess

import pytest

import cbreaker
from cbreaker import CircuitBreaker, CircuitBreakerOpenException, _cbreaker, _config


def keys_of(value):
    """The key structure of a JSON-like value (list items: the first's)."""
    if isinstance(value, dict):
        return {k: keys_of(v) for k, v in value.items()}
    if isinstance(value, list):
        return [keys_of(value[0])] if value else []
    return None


def test_info_matches_cbctl_show_json(names):
    name = names()
    b = CircuitBreaker(3, 60.0, name=name)
    b.trip()
    b.reset()
    out = subprocess.run([os.environ["CBCTL"], "show", name, "--json"], check=True, capture_output=True, text=True)
    shown = json.loads(out.stdout)["circuit"]
    mine = b.info()
    compared = mine
    if "window" not in shown:  # a cbctl without issue 10's fields (branch pol-bind before pol-cbctl is merged)
        compared = {k: v for k, v in mine.items() if k in shown}
        compared["config"] = {k: v for k, v in mine["config"].items() if k in shown["config"]}
        compared["history"] = [{k: v for k, v in t.items() if k in shown["history"][0]} for t in mine["history"]]
    else:
        for key in ("mode", "open_timeout_ms", "backoff_step", "window"):
            assert mine[key] == shown[key], key
    assert keys_of(compared) == keys_of(shown)
    for key in ("name", "state", "failures", "generation", "config", "segment", "counters"):
        assert compared[key] == shown[key], key
    assert [(t["event"], t["reason"], t["pid"], t["time"]) for t in mine["history"]] == [
        (t["event"], t["reason"], t["pid"], t["time"]) for t in shown["history"]
    ]
    assert cbreaker.inspect(name) == mine
    assert mine["config"] == {
        "failure_threshold": 3,
        "reset_timeout_ms": 60000,
        "probe_timeout_ms": 60000,
        "mode": "0600",
        "failure_rate": 0,
        "minimum_calls": 10,
        "window_ms": 10000,
        "slow_call_ms": 0,
        "slow_call_rate": 100,
        "backoff_multiplier_pct": 0,
        "max_reset_timeout_ms": 300000,
    }


def test_every_cb_config_field_is_a_keyword():
    sig = inspect.signature(CircuitBreaker)
    for c_name, unit, _min, _max, _doc in _cbreaker.CONFIG_FIELDS:
        keyword = c_name[:-3] if unit == "ms" else c_name
        assert keyword in sig.parameters, keyword
        assert keyword in CircuitBreaker.__doc__
    assert list(sig.parameters)[:2] == ["failure_threshold", "reset_timeout"]
    assert sig.parameters["mode"].default == 0o600
    assert "retry_after" in cbreaker.CircuitBreakerOpenException.__doc__


@pytest.mark.parametrize(
    "given, ms",
    [(0.2, 200), (1, 1000), (0.0004, 1), (0.0015, 2), (datetime.timedelta(minutes=2), 120000), (4294967.295, 4294967295)],
)
def test_seconds_to_ms(given, ms):
    assert _config.to_c({"reset_timeout": given}) == {"reset_timeout_ms": ms}


def test_flags_keep_config_and_refuse_what_others_may_write(names):
    name = names()
    CircuitBreaker(10, 5.0, name=name)
    # OPEN_KEEP_CONFIG: attach to the existing circuit without replacing its config
    kept = CircuitBreaker(name=name, flags=cbreaker.OPEN_KEEP_CONFIG)
    assert kept.info()["config"]["failure_threshold"] == 10
    assert "flags" not in kept.info()["config"]  # how to open, not stored
    CircuitBreaker(name=name)  # without it, the reference's defaults replace it
    assert kept.info()["config"]["failure_threshold"] == 3
    for bad in (4, -1):
        with pytest.raises(ValueError, match="flags"):
            CircuitBreaker(name=names(), flags=bad)
    fresh = names()
    with pytest.raises(ValueError, match="others may not write"):
        CircuitBreaker(name=fresh, mode=0o666)
    assert not os.path.exists(f"/dev/shm/cbreaker.{fresh}")


def test_config_round_trip(names):
    b = CircuitBreaker(5, 2.5, name=names(), probe_timeout=0.75, mode=0o640)
    assert b.config == {
        "failure_threshold": 5,
        "reset_timeout": 2.5,
        "probe_timeout": 0.75,
        "mode": 0o640,
        "failure_rate": None,  # a policy off (test_policies.py has them on)
        "minimum_calls": 10,
        "window": 10.0,
        "slow_call": None,
        "slow_call_rate": 100,
        "backoff_multiplier_pct": None,
        "max_reset_timeout": 300.0,
    }
    assert oct(os.stat(f"/dev/shm/cbreaker.{b.name}").st_mode & 0o777) == oct(0o640)
    assert CircuitBreaker(None, None).config["failure_threshold"] == 3  # None: the library's default


async def test_transitions_are_logged_with_attributes(make_breaker, caplog):
    logger = logging.getLogger("cbreaker.test")
    b = make_breaker(2, 0.2, logger=logger)

    async def fail():
        raise RuntimeError("down")

    async def ok():
        return 1

    with caplog.at_level(logging.INFO, logger="cbreaker.test"):
        for _ in range(2):
            with pytest.raises(RuntimeError):
                await b.call(fail)
        import asyncio

        await asyncio.sleep(0.5)
        await b.call(ok)
    records = [r for r in caplog.records if r.name == "cbreaker.test"]
    assert [r.getMessage() for r in records] == [
        "circuit_breaker_opened",
        "circuit_breaker_half_open",
        "circuit_breaker_closed",
    ]
    opened, half, closed = records
    assert opened.levelno == logging.WARNING and half.levelno == logging.INFO
    assert (opened.from_state, opened.to_state, opened.reason, opened.failures) == ("CLOSED", "OPEN", "threshold_reached", 2)
    assert (half.from_state, half.to_state, half.reason) == ("OPEN", "HALF_OPEN", "reset_timeout_elapsed")
    assert (closed.from_state, closed.to_state, closed.reason) == ("HALF_OPEN", "CLOSED", "probe_succeeded")
    assert all(r.pid == os.getpid() and r.circuit == b.name for r in records)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_default_logger_and_failing_handler(names, caplog):
    class Exploding(logging.Handler):
        def emit(self, record):
            raise RuntimeError("handler bug")

    logger = logging.getLogger("cbreaker.exploding")
    logger.addHandler(Exploding())
    logger.propagate = False
    b = CircuitBreaker(1, 60.0, name=names(), logger=logger)
    b.trip()  # logging.raiseExceptions prints the error; the trip stands
    assert b.state == "OPEN"
    with caplog.at_level(logging.WARNING, logger="cbreaker"):
        d = CircuitBreaker(1, 60.0, name=names())
        d.trip()
    assert [r.getMessage() for r in caplog.records if r.name == "cbreaker"] == ["circuit_breaker_opened"]


def test_module_functions(names):
    name = names()
    assert name not in cbreaker.list_circuits()
    CircuitBreaker(name=name)
    assert name in cbreaker.list_circuits()
    assert cbreaker.inspect(name)["state"] == "CLOSED"
    cbreaker.unlink(name)
    assert name not in cbreaker.list_circuits()
    with pytest.raises(FileNotFoundError):
        cbreaker.unlink(name)
    with pytest.raises(FileNotFoundError):
        cbreaker.inspect(name)
    assert cbreaker.library_version().count(".") == 2


def test_attach_keeps_the_config(names):
    name = names()
    with pytest.raises(FileNotFoundError):
        CircuitBreaker.attach(name)
    CircuitBreaker(7, 9.0, name=name)
    a = CircuitBreaker.attach(name)
    assert a.config["failure_threshold"] == 7 and a.config["reset_timeout"] == 9.0
    a.trip()
    assert CircuitBreaker.attach(name).state == "OPEN"


def test_permits_by_hand(make_breaker):
    b = make_breaker(1, 60.0)
    permit = b.acquire()
    permit.success()
    permit.failure()  # consumed: nothing
    assert permit.reported and b.state == "CLOSED"
    b.acquire().report(RuntimeError("down"))
    assert b.state == "OPEN"
    with pytest.raises(CircuitBreakerOpenException):
        b.acquire()


def test_a_dropped_probe_permit_is_released(make_breaker):
    b = make_breaker(1, 0.05, probe_timeout=60.0)  # only a release frees the slot
    b.trip()
    import time

    time.sleep(0.3)
    permit = b.acquire()
    assert permit.is_probe
    del permit
    assert b.acquire().is_probe  # not rejected: the slot was freed


def test_open_exception_text_and_pickle(names):
    import pickle

    b = CircuitBreaker(1, 60.0, name=names())
    b.trip()
    with pytest.raises(CircuitBreakerOpenException) as info:
        b.call_sync(print)
    exc = info.value
    assert isinstance(exc, cbreaker.CircuitBreakerError) and isinstance(exc, Exception)
    assert b.name in str(exc) and "OPEN" in str(exc)
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.name, copy.state, copy.retry_after) == (exc.name, exc.state, exc.retry_after)


def test_threads_share_a_breaker(make_breaker):
    import threading

    b = make_breaker(3, 60.0)
    errors = []

    def worker():
        try:
            for i in range(2000):
                b.call_sync(int, i)
        except BaseException as exc:  # noqa: B902 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counters = b.info()["counters"]
    assert errors == [] and counters["allowed"] == counters["successes"] == 8000


def test_decorator_guards_async_callable_objects(names):
    import asyncio

    class Lookup:
        async def __call__(self):
            raise ConnectionError("down")

    b = CircuitBreaker(2, 60.0, name=names())
    guarded = b(Lookup())
    for _ in range(2):
        with pytest.raises(ConnectionError):
            asyncio.run(guarded())
    assert b.state == "OPEN"

    async def stream():
        yield 1

    with pytest.raises(TypeError, match="async generator"):
        b(stream)


def test_open_exception_raised_by_reference_code():
    exc = CircuitBreakerOpenException("Circuit breaker is OPEN")
    assert str(exc) == "Circuit breaker is OPEN"
    assert (exc.name, exc.state, exc.retry_after) == (None, "OPEN", 0.0)


def test_logger_adapter_keeps_the_record_attributes(names):
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    base = logging.getLogger("cbreaker.test.adapter")
    base.addHandler(Keep())
    base.setLevel(logging.INFO)
    b = CircuitBreaker(1, 60.0, name=names(), logger=logging.LoggerAdapter(base, {"app": "router"}))
    b.trip()
    assert [r.getMessage() for r in records] == ["circuit_breaker_opened"]
    assert (records[0].circuit, records[0].to_state, records[0].app) == (b.name, "OPEN", "router")
