"""Transition log records.

The library announces a transition only in the process whose
compare-and-swap made it; the extension hands it here when the call that
made it returns. So each transition is logged once on the host. The
message is the reference's event name; the record carries circuit,
from_state, to_state, reason, failures, pid and mode (the operator mode
in force after it: 'normal' unless one is set) as attributes (a JSON
formatter shows them). circuit_breaker_opened is a WARNING, the others
are INFO. In mode 'metrics_only' a trip the circuit would have made is
logged once per crossing as "circuit_breaker_would_open" (a WARNING; from
CLOSED to OPEN with the rule's reason, mode 'metrics_only'), though the
state does not change. A change of mode is a transition with reason
'mode', named after the state it shows (forced_open: opened).
"""

from __future__ import annotations

import logging
from typing import Callable, List, Optional, Tuple, Union

Event = Tuple[str, str, str, str, int, int, int, str]  # as the extension builds it
LoggerLike = Union[logging.Logger, logging.LoggerAdapter]

_LEVELS = {"circuit_breaker_opened": logging.WARNING, "circuit_breaker_would_open": logging.WARNING}


def transition_logger(logger: LoggerLike, circuit: Optional[str]) -> Callable[[List[Event]], None]:
    """The on_events hook of a handle: one log record per transition."""

    def log_transitions(events: List[Event]) -> None:
        for event, from_state, to_state, reason, failures, pid, _wall_ms, mode in events:
            ours = {
                "circuit": circuit,
                "from_state": from_state,
                "to_state": to_state,
                "reason": reason,
                "failures": failures,
                "pid": pid,
                "mode": mode,
            }
            if isinstance(logger, logging.LoggerAdapter):
                # an adapter's process() replaces `extra` with its own:
                # keep both, ours winning
                msg, kwargs = logger.process(event, {})
                kwargs["extra"] = {**(kwargs.get("extra") or {}), **ours}
                logger.logger.log(_LEVELS.get(event, logging.INFO), msg, **kwargs)
            else:
                logger.log(_LEVELS.get(event, logging.INFO), event, extra=ours)

    return log_transitions
