"""cbreaker: one circuit breaker per dependency, shared by every process on
the host, with the API of the reference asyncio CircuitBreaker.

    from cbreaker import CircuitBreaker, CircuitBreakerOpenException

    redis_breaker = CircuitBreaker(3, 60.0, name="redis")   # host-wide
    route = await redis_breaker.call(redis.get, key)

A named breaker is the circuit /dev/shm/cbreaker.NAME that C programs and
cbctl see too; without a name it is private to the process. See
help(CircuitBreaker) for the calls and the configuration keywords.

Operator modes: breaker.set_mode(cbreaker.MODE_FORCED_OPEN) (or
MODE_DISABLED, MODE_METRICS_ONLY, MODE_NORMAL, or their names), host-wide;
breaker.mode reads it (see cbreaker.Mode).

Exceptions (see cbreaker._errors): CircuitBreakerError is the base of
CircuitBreakerOpenException (a rejected call), SegmentError (the object
under the name is not a usable circuit) and ModeError (reset() or trip()
while an operator mode is set). Bad names and values raise
ValueError, wrong types TypeError, permission problems PermissionError,
other system errors OSError.
"""

from __future__ import annotations

from typing import Any, Dict, List

from . import _cbreaker
from ._breaker import CircuitBreaker

# flags= of CircuitBreaker (cb_config.flags): also trust a circuit owned by
# another user of one of our groups; attach without replacing its config.
OPEN_TRUST_GROUP: int = _cbreaker.OPEN_TRUST_GROUP
OPEN_KEEP_CONFIG: int = _cbreaker.OPEN_KEEP_CONFIG
from ._errors import CircuitBreakerError, CircuitBreakerOpenException, ModeError, SegmentError
from ._modes import Mode

MODE_NORMAL = Mode.NORMAL
MODE_DISABLED = Mode.DISABLED
MODE_FORCED_OPEN = Mode.FORCED_OPEN
MODE_METRICS_ONLY = Mode.METRICS_ONLY

__all__ = [
    "CircuitBreaker",
    "CircuitBreakerError",
    "CircuitBreakerOpenException",
    "MODE_DISABLED",
    "MODE_FORCED_OPEN",
    "MODE_METRICS_ONLY",
    "MODE_NORMAL",
    "Mode",
    "ModeError",
    "OPEN_KEEP_CONFIG",
    "OPEN_TRUST_GROUP",
    "SegmentError",
    "inspect",
    "library_version",
    "list_circuits",
    "unlink",
]


def list_circuits() -> List[str]:
    """Names of the valid circuits on the host, in name order (cb_list;
    objects under /dev/shm/cbreaker.* that are not circuits are left out:
    `cbctl list` shows them)."""
    return _cbreaker.list_circuits()


def unlink(name: str) -> None:
    """Remove circuit NAME (cb_unlink). Processes that have it open keep
    using it; the next open creates a fresh one. FileNotFoundError if there
    is none, PermissionError if you may not remove it."""
    _cbreaker.unlink(name)


def inspect(name: str) -> Dict[str, Any]:
    """Snapshot of circuit NAME without opening it (cb_inspect: read-only,
    read permission is enough), as CircuitBreaker.info()."""
    return _cbreaker.inspect(name)


def library_version() -> str:
    """The version of libcbreaker in use."""
    return _cbreaker.version()
