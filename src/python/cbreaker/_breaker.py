"""CircuitBreaker: the reference's asyncio circuit breaker API over a
cbreaker circuit (host-wide when named, process-private otherwise).

The state machine is the library's: this class only asks for a permit
before a call and reports how the call went. Rules (the reference's):
failure_threshold consecutive failures open the circuit; while OPEN calls
are rejected without calling the function; after reset_timeout one caller
becomes the probe (HALF_OPEN), every other caller is still rejected; the
probe's success closes the circuit, its failure re-opens it for a fresh
reset_timeout. The policies of the library (a failure rate or a slow-call
rate over a time window, backoff of the open period) are keywords too, and
an operator mode (set_mode) can disable the circuit, force it open or
let it only announce the trips it would make.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
from typing import Any, Awaitable, Callable, Dict, Optional, Tuple, Type, TypeVar, Union

from . import _cbreaker, _config
from ._logging import LoggerLike, transition_logger
from ._modes import Mode, mode_of

T = TypeVar("T")
ExcludeSpec = Union[Type[BaseException], Tuple[Type[BaseException], ...]]

# Permits of the `with breaker:` blocks entered in this context (task or
# thread), innermost last: ((breaker, permit), ...).
_ACTIVE: contextvars.ContextVar[Tuple[Tuple["CircuitBreaker", _cbreaker.Permit], ...]] = contextvars.ContextVar(
    "cbreaker_active_permits", default=()
)


def _exception_classes(exclude: Any) -> Tuple[Type[BaseException], ...]:
    if isinstance(exclude, type):
        exclude = (exclude,)
    try:
        classes = tuple(exclude)
    except TypeError:
        raise TypeError(f"exclude must be an exception class or an iterable of them, not {exclude!r}") from None
    for c in classes:
        if not (isinstance(c, type) and issubclass(c, BaseException)):
            raise TypeError(f"exclude must hold exception classes, not {c!r}")
    return classes


def _logger(logger: Optional[LoggerLike]) -> LoggerLike:
    if logger is None:
        return logging.getLogger("cbreaker")
    if not callable(getattr(logger, "log", None)):
        raise TypeError(f"logger must be a logging.Logger or LoggerAdapter, not {type(logger).__name__}")
    return logger


class CircuitBreaker:
    """A circuit breaker whose state lives in a cbreaker circuit.

    CircuitBreaker(failure_threshold=3, reset_timeout=60.0, *, name=None,
    private=False, probe_timeout=None, mode=0o600, exclude=(), logger=None)

    name: the host-wide circuit /cbreaker.NAME (letters, digits, '.', '_',
        '-'; at most 200), shared with every process, C program and cbctl
        that opens it; created if missing. Opening it with a config that
        differs from the stored one replaces the stored one. A breaker
        created before fork() is shared by the children.
        None: a breaker of this process alone (after fork each child has
        its own copy), exactly the reference's behaviour.
    private: True gives a process-private breaker labelled with name.
    exclude: exception classes that are not the dependency's fault: they
        release the permit (no verdict) and propagate, as cancellation does.
    logger: where transitions are logged (default logging.getLogger("cbreaker")).

    Configuration keywords (cb_config fields; None: the library's default,
    which for a policy is off):
{config}

    The rate rules: after each call reported with a verdict, the circuit
    trips when, over the last `window` seconds (10 buckets), calls >=
    minimum_calls and failures x 100 >= failure_rate x calls (or slow
    calls x 100 >= slow_call_rate x calls, a call being slow when reported
    more than `slow_call` seconds after its acquire). Backoff: each failed
    probe multiplies the open period by backoff_multiplier_pct / 100, up
    to max_reset_timeout; info()["open_timeout_ms"] is the current one.
    Operator modes (set_mode, the `mode` property; not the `mode=`
    keyword, which is permission bits): see cbreaker.Mode.

    Calls: await breaker.call(func, ...), breaker.call_sync(func, ...),
    @breaker on a sync or async function, `with breaker:` and
    `async with breaker:`. A rejected call raises
    CircuitBreakerOpenException without calling anything. An exception
    that is an Exception (and not excluded) counts as a failure and is
    re-raised unchanged; other BaseExceptions (asyncio.CancelledError,
    KeyboardInterrupt) release the permit.
    """

    def __init__(
        self,
        failure_threshold: Optional[int] = 3,
        reset_timeout: Optional[float] = 60.0,
        *,
        name: Optional[str] = None,
        private: bool = False,
        exclude: ExcludeSpec = (),
        logger: Optional[LoggerLike] = None,
        **config: Any,
    ) -> None:
        for keyword, default in _config.DEFAULTS.items():
            config.setdefault(keyword, default)
        config.update(failure_threshold=failure_threshold, reset_timeout=reset_timeout)
        c_config = _config.to_c(config)
        if not isinstance(private, bool):
            raise TypeError(f"private must be a bool, not {type(private).__name__}")
        classes, logger = _exception_classes(exclude), _logger(logger)  # all checked before opening
        self._setup(_cbreaker.Handle(name, c_config, private=private or name is None), classes, logger)

    @classmethod
    def attach(
        cls, name: str, *, exclude: ExcludeSpec = (), logger: Optional[LoggerLike] = None
    ) -> "CircuitBreaker":
        """The existing circuit NAME with the config it has (cb_attach):
        never creates it, never changes its config. FileNotFoundError if
        there is no such circuit."""
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        classes, logger = _exception_classes(exclude), _logger(logger)
        self = cls.__new__(cls)
        self._setup(_cbreaker.Handle(name, None, attach=True), classes, logger)
        return self

    def _setup(self, handle: _cbreaker.Handle, exclude: Tuple[Type[BaseException], ...], logger: LoggerLike) -> None:
        handle.exclude = exclude
        handle.on_events = transition_logger(logger, handle.name)
        self._handle = handle
        self._acquire = handle.acquire  # bound once: the hot path calls it
        self._name = handle.name
        # The sync hot path, done in C with the same contract as the method
        # below, which this instance attribute shadows (help() shows that).
        self.call_sync = handle.call_sync

    # ---- the calls -------------------------------------------------------

    async def call(self, func: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Await func(*args, **kwargs) through the breaker (the reference's
        contract). Raises CircuitBreakerOpenException, without awaiting
        func, when the breaker rejects the call. An exception from func is
        recorded (failure, or no verdict for cancellation and `exclude`)
        and re-raised unchanged; a result is recorded as a success and
        returned unchanged."""
        permit = self._acquire()
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            permit.report(exc)
            raise
        permit.success()
        return result

    def call_sync(self, func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """call() for a synchronous func (gunicorn's sync workers): raises
        CircuitBreakerOpenException without calling func when rejected;
        records func's exception (a failure, or no verdict for
        non-Exceptions and `exclude`) and re-raises it unchanged; records a
        result as a success and returns it unchanged."""
        return self._handle.call_sync(func, *args, **kwargs)

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """@breaker: guard every call of a sync or an async function (an
        `async def` function, or an object whose __call__ is one). A sync
        function that returns an awaitable is guarded as sync: its outcome
        is known only when awaited, so decorate the coroutine function."""
        if not callable(func):
            raise TypeError(f"@CircuitBreaker decorates a function, not {type(func).__name__}")
        if inspect.isasyncgenfunction(func) or inspect.isasyncgenfunction(getattr(func, "__call__", None)):
            raise TypeError("@CircuitBreaker cannot guard an async generator: its calls have no single outcome")
        if inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(getattr(func, "__call__", None)):

            @functools.wraps(func)
            async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                return await self.call(func, *args, **kwargs)

            return guarded_async

        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            return self.call_sync(func, *args, **kwargs)

        return guarded

    def acquire(self) -> _cbreaker.Permit:
        """A permit for one call, for code that reports by hand: call
        permit.success(), permit.failure(), permit.release() or
        permit.report(exc) once (a permit is also a context manager).
        Raises CircuitBreakerOpenException when rejected."""
        return self._acquire()

    def __enter__(self) -> _cbreaker.Permit:
        permit = self._acquire()
        _ACTIVE.set(_ACTIVE.get() + ((self, permit),))
        return permit

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> bool:
        active = _ACTIVE.get()
        for i in range(len(active) - 1, -1, -1):
            if active[i][0] is self:
                _ACTIVE.set(active[:i] + active[i + 1 :])
                active[i][1].report(exc if exc_type is not None else None)
                return False
        raise RuntimeError("CircuitBreaker.__exit__ without a matching __enter__ in this context")

    async def __aenter__(self) -> _cbreaker.Permit:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> bool:
        return self.__exit__(exc_type, exc, tb)

    # ---- the circuit -----------------------------------------------------

    @property
    def name(self) -> Optional[str]:
        """The circuit's name; None for an unnamed private breaker."""
        return self._name

    @property
    def private(self) -> bool:
        """True for a process-private breaker."""
        return self._handle.private

    @property
    def state(self) -> str:
        """'CLOSED', 'OPEN' or 'HALF_OPEN' (no transition is made)."""
        return self._handle.state

    @property
    def mode(self) -> Mode:
        """The operator mode, host-wide: cbreaker.MODE_NORMAL, MODE_DISABLED,
        MODE_FORCED_OPEN or MODE_METRICS_ONLY (a Mode: a str equal to its
        name). Not the `mode=` keyword, which is the segment's permission
        bits (config["mode"])."""
        return Mode(self._handle.mode)

    def set_mode(self, mode: Union[Mode, str]) -> Mode:
        """Set the operator mode of the circuit, for every process using it
        (cb_set_mode): a cbreaker.MODE_* constant or its name ('normal',
        'disabled', 'forced_open', 'metrics_only'). Returns the mode it
        replaced. Setting the mode in force changes nothing; any other
        change is one transition (reason 'mode', logged) and makes the
        permits of calls in flight late. MODE_NORMAL resumes from CLOSED
        with a zero count and a new window."""
        return Mode(self._handle.set_mode(mode_of(mode).value))

    @property
    def failure_count(self) -> int:
        """Consecutive failures counted so far (CLOSED; 0 otherwise)."""
        return self._handle.failures

    @property
    def config(self) -> Dict[str, Any]:
        """The circuit's stored config, in this API's keywords and units."""
        return _config.from_c(self._handle.info()["config"])

    def info(self) -> Dict[str, Any]:
        """Everything the circuit holds, as `cbctl show NAME --json` prints
        under "circuit": name, state, failures, generation, ms_until_probe,
        probe_pid, probe_lease_ms (None when they do not apply; so is
        ms_until_probe when forced open), mode (the operator mode's name),
        open_timeout_ms (the open period now, grown by backoff),
        backoff_step (failed probes in a row), window (the rate rules'
        window now: span_ms, bucket_ms, calls, failures, slow_calls, and
        failure_rate, slow_call_rate in percent floored to hundredths,
        None while it is empty), config (C field names and units),
        segment, counters (summed over all processes), history (newest
        first; each with the mode in force after it)."""
        return self._handle.info()

    def reset(self) -> str:
        """Force CLOSED (count 0, probe slot freed); returns the state
        replaced. ModeError while an operator mode is set (nothing changed)."""
        return self._handle.reset()

    def trip(self) -> str:
        """Force OPEN with a fresh reset_timeout; returns the state
        replaced. ModeError while an operator mode is set (nothing changed)."""
        return self._handle.trip()

    def __repr__(self) -> str:
        kind = "private" if self.private else "shared"
        return f"<CircuitBreaker {self._name!r} {kind} {self.state}>"


def _signature() -> inspect.Signature:
    """__init__'s signature as help() shows it, with the config keywords."""
    P = inspect.Parameter
    params = [
        P("self", P.POSITIONAL_OR_KEYWORD),
        P("failure_threshold", P.POSITIONAL_OR_KEYWORD, default=3, annotation=Optional[int]),
        P("reset_timeout", P.POSITIONAL_OR_KEYWORD, default=60.0, annotation=Optional[float]),
        P("name", P.KEYWORD_ONLY, default=None, annotation=Optional[str]),
        P("private", P.KEYWORD_ONLY, default=False, annotation=bool),
    ]
    for field in _config.FIELDS:
        if field.keyword not in ("failure_threshold", "reset_timeout"):
            kind = Optional[float] if field.unit == "ms" else Optional[int]  # percent: int
            params.append(P(field.keyword, P.KEYWORD_ONLY, default=_config.DEFAULTS.get(field.keyword), annotation=kind))
    params += [
        P("exclude", P.KEYWORD_ONLY, default=(), annotation=ExcludeSpec),
        P("logger", P.KEYWORD_ONLY, default=None, annotation=Optional[LoggerLike]),
    ]
    return inspect.Signature(params, return_annotation=None)


CircuitBreaker.__init__.__signature__ = _signature()  # type: ignore[attr-defined]
CircuitBreaker.__doc__ = (CircuitBreaker.__doc__ or "").replace("{config}", _config.describe())
