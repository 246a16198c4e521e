"""gunicorn configuration of the route service test: the master removes
the shared circuit when it exits, so a clean stop leaves no segment."""

import os

import cbreaker


def on_exit(server):
    if os.environ.get("ROUTES_BREAKER") == "shared":
        try:
            cbreaker.unlink(os.environ["ROUTES_CIRCUIT"])
        except FileNotFoundError:
            pass
