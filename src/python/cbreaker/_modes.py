"""Operator modes (cb_mode): host-wide, kept in the circuit until changed.

    breaker.set_mode(cbreaker.MODE_FORCED_OPEN)   # or "forced_open"
    breaker.mode == cbreaker.MODE_FORCED_OPEN     # True, in every process

A Mode is a str (its value is the library's name, cb_mode_name), so the
constants, the names and what `mode` and info()["mode"] return compare
equal and can be passed back to set_mode().
"""

from __future__ import annotations

import enum
from typing import Any


class Mode(str, enum.Enum):
    """The values are the library's names (cb_mode_name; the extension's
    MODES lists them, a test compares). NORMAL: the state machine. DISABLED: every call allowed, nothing
    counts towards a trip. FORCED_OPEN: every call rejected, no probe
    (CircuitBreakerOpenException.retry_after is None). METRICS_ONLY: every
    call allowed; the failure count and the window are kept, and where a
    rule would trip a "circuit_breaker_would_open" record is logged once
    per crossing; the state never changes."""

    NORMAL = "normal"
    DISABLED = "disabled"
    FORCED_OPEN = "forced_open"
    METRICS_ONLY = "metrics_only"

    def __str__(self) -> str:
        return self.value


def mode_of(value: Any) -> Mode:
    """A Mode from a Mode or its name; TypeError or ValueError else."""
    if not isinstance(value, str):
        raise TypeError(f"mode must be a cbreaker.MODE_* constant or its name, not {type(value).__name__}")
    try:
        return Mode(value)
    except ValueError:
        names = ", ".join(repr(m.value) for m in Mode)
        raise ValueError(f"mode must be one of {names}, not {value!r}") from None

