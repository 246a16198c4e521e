"""The configuration keywords of CircuitBreaker, derived from the C table.

The extension's CONFIG_FIELDS (src/python/ext/config.c) is the one list of
cb_config fields. Each becomes a keyword named as the C field without its
_ms suffix; an "ms" field is given in seconds here. A new cb_config field
is one row there and needs nothing here.
"""

from __future__ import annotations

import datetime
import math
import numbers
from typing import Any, Callable, Dict, NamedTuple

from . import _cbreaker

UINT32_MAX = 2**32 - 1

class _Mode(int):
    """Permission bits that show as such in help() (0o600, not 384)."""

    def __repr__(self) -> str:
        return oct(self)


# Defaults of the Python API where it states one; every other field is
# None: the library's default (a zero field in cb_config).
DEFAULTS: Dict[str, Any] = {"failure_threshold": 3, "reset_timeout": 60.0, "mode": _Mode(0o600)}


class Field(NamedTuple):
    keyword: str  # the Python keyword
    c_name: str   # the cb_config member
    unit: str     # "count", "ms" (seconds in Python) or "mode"
    doc: str


def _keyword(c_name: str, unit: str) -> str:
    return c_name[: -len("_ms")] if unit == "ms" and c_name.endswith("_ms") else c_name


def _integer(keyword: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{keyword} must be an int, not {type(value).__name__}")
    return int(value)


def _count(keyword: str, value: Any) -> int:
    n = _integer(keyword, value)
    if not 1 <= n <= UINT32_MAX:
        raise ValueError(f"{keyword} must be in 1..{UINT32_MAX}, not {n}")
    return n


def _mode(keyword: str, value: Any) -> int:
    n = _integer(keyword, value)
    if not 1 <= n <= 0o777 or n & 0o002:
        raise ValueError(f"{keyword} must be permission bits in 0o001..0o777 that others may not write "
                         f"(every other opener refuses such a segment), not {n:#o}")
    return n


def _flags(keyword: str, value: Any) -> int:
    n = _integer(keyword, value)
    known = _cbreaker.OPEN_TRUST_GROUP | _cbreaker.OPEN_KEEP_CONFIG
    if n & ~known or n < 0:
        raise ValueError(f"{keyword} must combine cbreaker.OPEN_TRUST_GROUP and OPEN_KEEP_CONFIG, not {n}")
    return n


def _seconds_to_ms(keyword: str, value: Any) -> int:
    """Seconds (int, float, Fraction, Decimal or timedelta) to whole ms:
    rounded to the nearest ms, at least 1 ms, at most UINT32_MAX ms."""
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{keyword} must be a number of seconds, not {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{keyword} must be a finite number of seconds > 0, not {value!r}")
    if seconds * 1000 > UINT32_MAX:
        raise ValueError(f"{keyword} must be at most {UINT32_MAX / 1000:.3f} s, not {value!r}")
    return max(1, min(UINT32_MAX, round(seconds * 1000)))


_CONVERT: Dict[str, Callable[[str, Any], int]] = {"ms": _seconds_to_ms, "mode": _mode, "flags": _flags}

FIELDS = tuple(Field(_keyword(c, unit), c, unit, doc) for c, unit, doc in _cbreaker.CONFIG_FIELDS)
_BY_KEYWORD = {f.keyword: f for f in FIELDS}


def to_c(settings: Dict[str, Any]) -> Dict[str, int]:
    """Keyword settings (None: the library default) to {cb_config field: int}.
    Raises TypeError for an unknown keyword or a wrong type, ValueError for a
    value out of range; nothing is opened before this has passed."""
    out: Dict[str, int] = {}
    for keyword, value in settings.items():
        field = _BY_KEYWORD.get(keyword)
        if field is None:
            raise TypeError(f"CircuitBreaker() got an unexpected keyword argument {keyword!r}")
        if value is not None:
            out[field.c_name] = _CONVERT.get(field.unit, _count)(keyword, value)
    return out


def from_c(config: Dict[str, Any]) -> Dict[str, Any]:
    """A stored config ({cb_config field: value}, as info() has it) in the
    Python API's keywords and units."""
    out: Dict[str, Any] = {}
    for field in FIELDS:
        if field.c_name in config:
            value = config[field.c_name]
            out[field.keyword] = value / 1000 if field.unit == "ms" else int(value, 8) if field.unit == "mode" else value
    return out


def describe() -> str:
    """One docstring line per keyword, for help(CircuitBreaker)."""
    unit = {"ms": " (seconds)"}
    return "\n".join(f"        {f.keyword}{unit.get(f.unit, '')}: {f.doc}" for f in FIELDS)
