"""The configuration keywords of CircuitBreaker, derived from the C table.

The extension's CONFIG_FIELDS (src/python/ext/config.c) is the one list of
cb_config fields. Each becomes a keyword named as the C field without its
_ms suffix; an "ms" field is given in seconds here; a "percent" field is an
int in percent (backoff_multiplier_pct=200 doubles). The row's range (from
the header's limits) is checked here, so that a bad value is a ValueError
naming the keyword and its range before anything is opened. A new
cb_config field is one row there and needs nothing here.
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
    unit: str     # "count", "percent", "ms" (seconds in Python), "mode" or "flags"
    min: int      # range of a value given, in the C unit (ms for "ms")
    max: int
    doc: str


def _keyword(c_name: str, unit: str) -> str:
    return c_name[: -len("_ms")] if unit == "ms" and c_name.endswith("_ms") else c_name


def _integer(keyword: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{keyword} must be an int, not {type(value).__name__}")
    return int(value)


def _count(field: Field, value: Any) -> int:
    n = _integer(field.keyword, value)
    if not field.min <= n <= field.max:
        raise ValueError(f"{field.keyword} must be in {field.min}..{field.max}, not {n}")
    return n


def _mode(field: Field, value: Any) -> int:
    keyword = field.keyword
    n = _integer(keyword, value)
    if not 1 <= n <= 0o777 or n & 0o002:
        raise ValueError(f"{keyword} must be permission bits in 0o001..0o777 that others may not write "
                         f"(every other opener refuses such a segment), not {n:#o}")
    return n


def _flags(field: Field, value: Any) -> int:
    keyword = field.keyword
    n = _integer(keyword, value)
    known = _cbreaker.OPEN_TRUST_GROUP | _cbreaker.OPEN_KEEP_CONFIG
    if n & ~known or n < 0:
        raise ValueError(f"{keyword} must combine cbreaker.OPEN_TRUST_GROUP and OPEN_KEEP_CONFIG, not {n}")
    return n


def _seconds_to_ms(field: Field, value: Any) -> int:
    """Seconds (int, float, Fraction, Decimal or timedelta) to whole ms:
    rounded to the nearest ms, at least 1 ms, within the field's range."""
    keyword = field.keyword
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
    ms = max(1, round(seconds * 1000)) if seconds * 1000 <= UINT32_MAX else UINT32_MAX + 1
    if not field.min <= ms <= field.max:
        raise ValueError(f"{keyword} must be from {field.min / 1000:g} to {field.max / 1000:.3f} s, not {value!r}")
    return ms


_CONVERT: Dict[str, Callable[[Field, Any], int]] = {"ms": _seconds_to_ms, "mode": _mode, "flags": _flags}

FIELDS = tuple(Field(_keyword(c, unit), c, unit, lo, hi, doc) for c, unit, lo, hi, doc in _cbreaker.CONFIG_FIELDS)
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
            out[field.c_name] = _CONVERT.get(field.unit, _count)(field, value)
    return out


def from_c(config: Dict[str, Any]) -> Dict[str, Any]:
    """A stored config ({cb_config field: value}, as info() has it) in the
    Python API's keywords and units. A field stored as 0 (a policy that is
    off) is None, as it is given: CircuitBreaker(**config) opens the same
    config."""
    out: Dict[str, Any] = {}
    for field in FIELDS:
        if field.c_name in config:
            value = config[field.c_name]
            if field.unit == "mode":
                out[field.keyword] = int(value, 8)
            elif value == 0:
                out[field.keyword] = None
            else:
                out[field.keyword] = value / 1000 if field.unit == "ms" else value
    return out


def describe() -> str:
    """One docstring line per keyword, for help(CircuitBreaker)."""
    unit = {"ms": " (seconds)", "percent": " (percent)"}
    return "\n".join(f"        {f.keyword}{unit.get(f.unit, '')}: {f.doc}" for f in FIELDS)
