#!/bin/sh
# run-luajit.sh SCRIPT ARGS... - run a Lua test under Debian's luajit. When
# luajit is missing the test is skipped (exit 77), unless CI or
# CBREAKER_REQUIRE_REDIS is set (tools/quickstart test installs it): then
# it fails.
if ! command -v luajit >/dev/null 2>&1; then
    if [ -n "${CI:-}" ] || [ -n "${CBREAKER_REQUIRE_REDIS:-}" ]; then
        echo "luajit not found (tools/quickstart test installs it)" >&2
        exit 1
    fi
    echo "luajit not found: skipped" >&2
    exit 77
fi
exec luajit "$@"
