"""Misuse: bad names, wrong types, values out of range, a segment the user
may not open, a foreign object under the name. Each is a clear Python
exception, and nothing is created or changed."""

import errno
import math
import os

import pytest

import cbreaker
from cbreaker import CircuitBreaker, SegmentError, _cbreaker
from conftest import shm_path


def shm_names():
    return set(os.listdir("/dev/shm"))


@pytest.mark.parametrize("name", ["", "a" * 201, "a/b", "a b", "é", "x\0y", "*"])
def test_bad_names(name):
    before = shm_names()
    with pytest.raises(ValueError):
        CircuitBreaker(name=name)
    with pytest.raises(ValueError):
        CircuitBreaker(name=name, private=True)
    with pytest.raises(ValueError):
        cbreaker.unlink(name)
    assert shm_names() == before


@pytest.mark.parametrize("name", [b"redis", 3, ["redis"], object()])
def test_names_of_the_wrong_type(name):
    with pytest.raises(TypeError):
        CircuitBreaker(name=name)
    with pytest.raises(TypeError):
        cbreaker.unlink(name)
    with pytest.raises(TypeError):
        cbreaker.inspect(name)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"failure_threshold": 0}, ValueError),
        ({"failure_threshold": -1}, ValueError),
        ({"failure_threshold": 2**32}, ValueError),
        ({"failure_threshold": True}, TypeError),
        ({"failure_threshold": 3.0}, TypeError),
        ({"failure_threshold": "3"}, TypeError),
        ({"reset_timeout": 0}, ValueError),
        ({"reset_timeout": -1.0}, ValueError),
        ({"reset_timeout": math.nan}, ValueError),
        ({"reset_timeout": math.inf}, ValueError),
        ({"reset_timeout": 1e300}, ValueError),
        ({"reset_timeout": 4294967.296}, ValueError),
        ({"reset_timeout": 10**400}, ValueError),
        ({"reset_timeout": True}, TypeError),
        ({"reset_timeout": "60"}, TypeError),
        ({"probe_timeout": -0.5}, ValueError),
        ({"mode": 0o1000}, ValueError),
        ({"mode": 0}, ValueError),
        ({"mode": "0600"}, TypeError),
        ({"reset_timeout_ms": 100}, TypeError),
        ({"window_ms": 1000}, TypeError),
        ({"exclude": [1]}, TypeError),
        ({"exclude": 3}, TypeError),
        ({"logger": "cbreaker"}, TypeError),
        ({"private": 1}, TypeError),
    ],
)
def test_bad_config_creates_nothing(names, kwargs, error):
    name = names()
    with pytest.raises(error):
        CircuitBreaker(name=name, **kwargs)
    assert not os.path.exists(shm_path(name))


def test_bad_config_changes_nothing(names):
    name = names()
    CircuitBreaker(4, 5.0, name=name)
    with pytest.raises(ValueError):
        CircuitBreaker(4, -5.0, name=name)
    assert cbreaker.inspect(name)["config"]["reset_timeout_ms"] == 5000


def test_extension_types_resist_misuse():
    with pytest.raises(TypeError):
        _cbreaker.Permit()
    bare = _cbreaker.Handle.__new__(_cbreaker.Handle)
    for method in (bare.acquire, bare.reset, bare.trip, bare.info):
        with pytest.raises(ValueError):
            method()
    with pytest.raises(ValueError):
        bare.state
    with pytest.raises(TypeError):
        _cbreaker.Handle("x", {"no_such_field": 1})
    with pytest.raises(TypeError):
        _cbreaker.Handle("x", {"failure_threshold": "1"})
    with pytest.raises(ValueError):
        _cbreaker.Handle("x", {"failure_threshold": 2**40})
    with pytest.raises(TypeError):
        _cbreaker.Handle("x", [("failure_threshold", 1)])
    with pytest.raises(ValueError):
        _cbreaker.Handle(None, None)  # a shared circuit needs a name
    h = _cbreaker.Handle(None, None, private=True)
    with pytest.raises(TypeError):
        h.exclude = [KeyError]
    with pytest.raises(TypeError):
        h.exclude = (1,)
    with pytest.raises(TypeError):
        h.on_events = 3
    with pytest.raises(TypeError):
        h.acquire().report("not an exception")
    b = CircuitBreaker()
    with pytest.raises(TypeError):
        b(3)
    with pytest.raises(RuntimeError):
        b.__exit__(None, None, None)


def test_foreign_object_under_the_name(names):
    name = names()
    garbage = os.urandom(4096)
    with open(shm_path(name), "wb") as f:
        f.write(garbage)
    with pytest.raises(SegmentError) as info:
        CircuitBreaker(name=name)
    assert info.value.name == name and info.value.code == -30602  # CB_ENOTCB
    assert "not a cbreaker segment" in str(info.value)
    assert isinstance(info.value, cbreaker.CircuitBreakerError)
    with pytest.raises(SegmentError):
        CircuitBreaker.attach(name)
    with pytest.raises(SegmentError):
        cbreaker.inspect(name)
    assert name not in cbreaker.list_circuits()
    with open(shm_path(name), "rb") as f:
        assert f.read() == garbage


def test_a_segment_the_user_may_not_open(names):
    """As nobody, in a forked child (the package is already loaded: nothing
    of the build tree is executed after dropping privileges)."""
    name = names()
    owner = CircuitBreaker(3, 60.0, name=name)  # root's, mode 0600
    before = owner.info()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        verdict = b"no exception"
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                CircuitBreaker(5, 1.0, name=name)
            except PermissionError as exc:
                verdict = b"PermissionError " + str(exc).encode()
                try:
                    cbreaker.unlink(name)
                    verdict += b"; unlink succeeded"
                except PermissionError:
                    pass
            except BaseException as exc:  # noqa: B902 - reported to the parent
                verdict = repr(exc).encode()
        finally:
            os.write(write, verdict)
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        verdict = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert verdict.startswith("PermissionError") and "unlink" not in verdict, verdict
    after = owner.info()
    assert after["config"] == before["config"] and after["generation"] == before["generation"]


CB_ERROR_BASE = -30600


@pytest.mark.parametrize(
    "code, expected",
    [
        (CB_ERROR_BASE - 1, ValueError),  # CB_ENAME
        (-errno.EINVAL, ValueError),
        (-errno.EACCES, PermissionError),
        (-errno.EPERM, PermissionError),
        (CB_ERROR_BASE - 2, SegmentError),  # CB_ENOTCB
        (CB_ERROR_BASE - 3, SegmentError),  # CB_EVERSION
        (CB_ERROR_BASE - 4, SegmentError),  # CB_ESIZE
        (CB_ERROR_BASE - 5, SegmentError),  # CB_ELAYOUT
        (CB_ERROR_BASE - 6, SegmentError),  # CB_EBUSY
        (CB_ERROR_BASE - 7, SegmentError),  # CB_ECORRUPT
        (CB_ERROR_BASE - 9, cbreaker.ModeError),  # CB_EMODE
        (CB_ERROR_BASE - 10, SegmentError),  # newer than this package: still a SegmentError
        (CB_ERROR_BASE - 77, SegmentError),
        (-errno.ENOENT, FileNotFoundError),
        (-errno.ENOSPC, OSError),
    ],
)
def test_error_codes_become_documented_exceptions(code, expected):
    exc = _cbreaker._exception_for(code, "redis")
    assert type(exc) is expected or (expected is OSError and type(exc) is OSError)
    assert "redis" in str(exc)
    if isinstance(exc, OSError):
        assert exc.errno == -code and exc.filename == "redis"
    if isinstance(exc, SegmentError):
        assert exc.code == code and exc.name == "redis"


def test_a_foreign_owner_is_a_permission_error():
    """CB_EOWNER (CB_ERROR_BASE - 8: a segment of an owner the library does
    not trust) is a PermissionError."""
    assert _cbreaker.FOREIGN_OWNER_CODE == CB_ERROR_BASE - 8
    exc = _cbreaker._exception_for(CB_ERROR_BASE - 8, "redis")
    assert isinstance(exc, PermissionError) and exc.errno == errno.EPERM and exc.filename == "redis"


WEIRD = [None, -1, 0, 2**100, -(2**100), 1.5, math.nan, "", "x" * 5000, "ok", b"ok", (), [], {}, object(), True,
         KeyError, KeyError("k"), print]


def test_whatever_is_passed_the_interpreter_survives(names):
    """Every entry point with every kind of junk: an exception or a
    result, never a crash."""
    name = names()
    b = CircuitBreaker(name=name)
    entry_points = [cbreaker.unlink, cbreaker.inspect, CircuitBreaker, CircuitBreaker.attach, b.call_sync,
                    b, _cbreaker._exception_for, lambda v: _cbreaker.Handle(v, v),
                    lambda v: _cbreaker.Handle(name, {"failure_threshold": v}),
                    lambda v: CircuitBreaker(v, v), lambda v: CircuitBreaker(name=name, reset_timeout=v),
                    lambda v: CircuitBreaker(name=name, exclude=v), lambda v: CircuitBreaker(name=name, logger=v),
                    lambda v: b.acquire().report(v), lambda v: setattr(b._handle, "exclude", v),
                    lambda v: setattr(b._handle, "on_events", v)]
    for entry in entry_points:
        for value in WEIRD:
            if entry is cbreaker.unlink and value == "ok":
                continue
            try:
                entry(value)
            except Exception:  # noqa: B902 - any clean exception will do
                pass
    b._handle.on_events = None
    b._handle.exclude = ()
    b.reset()  # the junk called through call_sync and the decorator tripped it
    assert b.call_sync(int, "7") == 7 and b.state == "CLOSED"
