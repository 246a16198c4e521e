"""Shared fixtures of the Python tests: unique circuit names (removed
afterwards), a breaker factory for both kinds (named and private), and
`required`, which skips a test whose tool is missing unless
CBREAKER_REQUIRE_REDIS or CI is set (then it fails)."""

import itertools
import os

import pytest

import cbreaker

_counter = itertools.count(1)


def unique_name(tag):
    """test.py.TAG.PID.N, as tests/testlib.c names its circuits."""
    return f"test.py.{tag}.{os.getpid()}.{next(_counter)}"


def shm_path(name):
    return f"/dev/shm/cbreaker.{name}"


def required(what, available):
    if available:
        return
    if os.environ.get("CBREAKER_REQUIRE_REDIS") or os.environ.get("CI"):
        pytest.fail(f"{what} is missing (tools/quickstart test installs it)")
    pytest.skip(f"{what} is missing (tools/quickstart test installs it)")


@pytest.fixture
def names(request):
    """names() -> a fresh circuit name; every one is unlinked at the end."""
    made = []
    tag = request.node.name.split("[")[0].replace("test_", "")[:40]

    def make():
        made.append(unique_name(tag))
        return made[-1]

    yield make
    for name in made:
        try:
            cbreaker.unlink(name)
        except (FileNotFoundError, ValueError):
            pass


@pytest.fixture(params=["named", "private"])
def make_breaker(request, names):
    """make_breaker(...) -> a CircuitBreaker, named or private (both run)."""

    def make(*args, **kwargs):
        if request.param == "named":
            kwargs.setdefault("name", names())
        return cbreaker.CircuitBreaker(*args, **kwargs)

    make.kind = request.param
    return make
