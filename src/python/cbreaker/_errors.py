"""The exceptions of cbreaker (the C layer raises them too).

Exception
 +-- CircuitBreakerError            base of cbreaker's own exceptions
      +-- CircuitBreakerOpenException   the breaker rejected the call
      +-- SegmentError                  /dev/shm/cbreaker.NAME is not a usable
      |                                 circuit (foreign, corrupt, other version)
      +-- ModeError                     reset()/trip() refused: an operator mode
                                        is set (CB_EMODE); set_mode('normal') first

Besides these: a bad name or bad config value is a ValueError, a wrong type
a TypeError, a permission problem a PermissionError, and any other system
error an OSError with its errno (FileNotFoundError for unlink of a missing
circuit). Messages are the library's (cb_strerror).
"""

from __future__ import annotations

from typing import Optional


class CircuitBreakerError(Exception):
    """Base class of the exceptions cbreaker defines."""


class CircuitBreakerOpenException(CircuitBreakerError):
    """The breaker rejected the call: the dependency was not called.

    Attributes:
        name: the circuit's name (None for an unnamed private breaker).
        state: 'OPEN', or 'HALF_OPEN' while another caller holds the probe.
        retry_after: seconds until a probe may go, as `cbctl show` shows it
            (OPEN: until the open period has passed; HALF_OPEN: what is
            left of the probe's lease); None when an operator forced the
            circuit open (mode 'forced_open'): no time will admit a call,
            only a change of mode.
    """

    # Raised on every rejection, the hot path of an outage: no __init__ of
    # our own (BaseException's, in C, keeps the arguments (name, state,
    # retry_after)); the attributes read them back. Code written for the
    # reference raises it with a message only: then name is None, state
    # 'OPEN', retry_after 0.0, and str() is the message.

    def _raised_by_us(self) -> bool:
        return (
            len(self.args) == 3
            and isinstance(self.args[1], str)
            and (self.args[2] is None or isinstance(self.args[2], float))
        )

    @property
    def name(self) -> Optional[str]:
        return self.args[0] if self._raised_by_us() else None

    @property
    def state(self) -> str:
        return self.args[1] if self._raised_by_us() else "OPEN"

    @property
    def retry_after(self) -> Optional[float]:
        return self.args[2] if self._raised_by_us() else 0.0

    def __str__(self) -> str:
        if not self._raised_by_us():
            return super().__str__()
        what = "breaker" if self.name is None else f"circuit {self.name!r}"
        if self.retry_after is None:
            return f"{what} is forced open by an operator: no call until its mode changes"
        return f"{what} is {self.state}: retry after {self.retry_after:.3f} s"


class SegmentError(CircuitBreakerError):
    """The object /dev/shm/cbreaker.NAME is not a circuit this library can use.

    Attributes:
        code: the library's error code (CB_ENOTCB, CB_EVERSION, CB_ESIZE,
            CB_ELAYOUT, CB_EBUSY, CB_ECORRUPT, ...: negative ints).
        name: the circuit's name, or None.
    """

    def __init__(self, message: str, code: int = 0, name: Optional[str] = None) -> None:
        super().__init__(message, code, name)
        self.message = message
        self.code = code
        self.name = name

    def __str__(self) -> str:
        return self.message if self.name is None else f"{self.name}: {self.message}"


class ModeError(CircuitBreakerError):
    """reset() or trip() refused because an operator mode is set
    (CB_EMODE): set_mode('normal') first. Nothing was changed.

    Attributes:
        code: the library's error code (CB_EMODE, a negative int).
        name: the circuit's name, or None.
    """

    def __init__(self, message: str, code: int = 0, name: Optional[str] = None) -> None:
        super().__init__(message, code, name)
        self.message = message
        self.code = code
        self.name = name

    def __str__(self) -> str:
        return self.message if self.name is None else f"{self.name}: {self.message}"
