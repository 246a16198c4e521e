"""A small ASGI route service, run by gunicorn with uvicorn workers in
tests/python/test_gunicorn.py: GET /route/KEY looks the route up in Redis
(redis.asyncio) through `await breaker.call(...)` and answers from a
fallback when the breaker rejects the call or Redis fails. Every answer is
200 with a JSON body saying where it came from.

Environment: ROUTES_BREAKER ("shared": one host-wide circuit named
ROUTES_CIRCUIT; "private": a breaker per worker), ROUTES_REDIS_PORT, and
ROUTES_ATTEMPTS, a file that gets one line per call that reached Redis
(monotonic time, pid), written with O_APPEND by every worker.
"""

import json
import logging
import os
import sys
import time

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

import cbreaker

THRESHOLD, RESET_TIMEOUT = 3, 1.0
PROBE_TIMEOUT = 5.0  # longer than a lookup can take (2 x 0.5 s socket timeouts)
FALLBACK = b"upstream-default"

_handler = logging.StreamHandler(sys.stderr)
_handler.setFormatter(
    logging.Formatter(
        "%(asctime)s %(levelname)s %(message)s circuit=%(circuit)s from=%(from_state)s "
        "to=%(to_state)s reason=%(reason)s failures=%(failures)s pid=%(pid)s"
    )
)
_log = logging.getLogger("cbreaker")
_log.addHandler(_handler)
_log.setLevel(logging.INFO)
_log.propagate = False

if os.environ["ROUTES_BREAKER"] == "shared":
    breaker = cbreaker.CircuitBreaker(THRESHOLD, RESET_TIMEOUT, name=os.environ["ROUTES_CIRCUIT"],
                                      probe_timeout=PROBE_TIMEOUT)
else:  # per process
    breaker = cbreaker.CircuitBreaker(THRESHOLD, RESET_TIMEOUT, probe_timeout=PROBE_TIMEOUT)

_redis = None
_attempts = None


def _client():
    """One client per worker, made in the worker's event loop. A pooled
    connection that Redis dropped is reconnected once within the call."""
    global _redis, _attempts
    if _redis is None:
        _redis = aioredis.Redis(
            host="127.0.0.1",
            port=int(os.environ["ROUTES_REDIS_PORT"]),
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            retry=Retry(NoBackoff(), 1),
            retry_on_error=[RedisConnectionError],
        )
        _attempts = os.open(os.environ["ROUTES_ATTEMPTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    return _redis


async def lookup(key):
    client = _client()
    os.write(_attempts, b"%.6f %d\n" % (time.monotonic(), os.getpid()))
    return await client.get("route:" + key)


async def route(key):
    try:
        value = await breaker.call(lookup, key)
        return {"route": (value or FALLBACK).decode(), "source": "redis" if value else "redis-miss"}
    except cbreaker.CircuitBreakerOpenException as exc:
        return {"route": FALLBACK.decode(), "source": "fallback-open", "retry_after": exc.retry_after}
    except (RedisError, OSError) as exc:
        return {"route": FALLBACK.decode(), "source": "fallback-error", "error": type(exc).__name__}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path, status = scope["path"], 200
    if path.startswith("/route/"):
        body = await route(path[len("/route/") :])
    elif path == "/health":
        body = {"ok": True}
    else:
        body, status = {"error": "not found"}, 404
    body["pid"] = os.getpid()
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
