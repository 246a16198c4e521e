"""Across processes (fork): one circuit for every process on the host.
Children start together on a barrier (a pipe the parent closes); the
parent asserts every child's exit status and checks the outcome with an
independent observer: the circuit's own counters and history, read by
cbreaker.inspect (read-only, no handle)."""

import logging
import os
import select
import time
import traceback

import pytest

import cbreaker
from cbreaker import CircuitBreaker, CircuitBreakerOpenException

PAST_SHORT = 0.5  # well past a reset timeout of 0.2 s
DEADLINE = 60.0   # no child may take longer


class Children:
    """fork() n children that each wait on the barrier, then run body(i)
    and exit with what it returns (99 and a traceback if it raises)."""

    def __init__(self, n, body):
        go_r, self._go_w = os.pipe()
        self.pids = []
        for i in range(n):
            pid = os.fork()
            if pid == 0:
                code = 99
                try:
                    os.close(self._go_w)
                    os.read(go_r, 1)  # EOF when the parent closes: all start at once
                    code = body(i)
                except BaseException:  # noqa: B902 - reported through the exit status
                    traceback.print_exc()
                finally:
                    os._exit(code)
            self.pids.append(pid)
        os.close(go_r)

    def go(self):
        os.close(self._go_w)

    def wait(self):
        """Exit codes of all children, in fork order; kills them after DEADLINE."""
        codes, end = {}, time.monotonic() + DEADLINE
        while len(codes) < len(self.pids):
            for pid in self.pids:
                if pid in codes:
                    continue
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    assert os.WIFEXITED(status), f"child {pid} died: status {status}"
                    codes[pid] = os.WEXITSTATUS(status)
            if time.monotonic() > end:
                for pid in self.pids:
                    if pid not in codes:
                        os.kill(pid, 9)
                        os.waitpid(pid, 0)
                pytest.fail("children did not finish in time")
            time.sleep(0.01)
        return [codes[pid] for pid in self.pids]


def fail_once(breaker):
    try:
        breaker.call_sync(lambda: 1 / 0)
    except ZeroDivisionError:
        return 0
    return 1


@pytest.mark.parametrize("opened", ["before fork", "after fork"])
def test_failures_from_three_processes_trip_one_circuit(names, opened):
    name = names()
    parent = CircuitBreaker(3, 60.0, name=name)

    def child(i):
        b = parent if opened == "before fork" else CircuitBreaker(3, 60.0, name=name)
        return fail_once(b)

    kids = Children(3, child)
    kids.go()
    assert kids.wait() == [0, 0, 0]
    info = cbreaker.inspect(name)
    assert info["state"] == "OPEN" and parent.state == "OPEN"
    assert info["counters"]["failures"] == 3 and info["counters"]["trips"] == 1
    opened_by = info["history"][0]["pid"]
    assert opened_by in kids.pids and info["history"][0]["failures"] == 3
    with pytest.raises(CircuitBreakerOpenException):
        parent.call_sync(print)


def test_private_breakers_do_not_share(names):
    parent = CircuitBreaker(3, 60.0)  # private: each child its own copy
    kids = Children(3, lambda i: fail_once(parent))
    kids.go()
    assert kids.wait() == [0, 0, 0]
    assert parent.state == "CLOSED" and parent.failure_count == 0


def test_racing_processes_get_exactly_one_probe(names, tmp_path):
    """Rounds of N processes racing for the probe after the timeout: in
    each, one child holds the probe until every child has tried."""
    name, n, rounds = names(), 8, 3
    # probe_timeout: the holder keeps its probe while a loaded machine
    # schedules the others (a lease that expires grants another probe).
    breaker = CircuitBreaker(3, 0.2, name=name, probe_timeout=60.0)
    for round_ in range(rounds):
        breaker.trip()
        results_r, results_w = os.pipe()
        done_r, done_w = os.pipe()

        def child(i):
            os.close(done_w)  # else the parent's close would not reach EOF
            os.close(results_r)
            b = CircuitBreaker(3, 0.2, name=name, probe_timeout=60.0) if i % 2 else breaker  # both kinds of handle
            try:
                permit = b.acquire()
            except CircuitBreakerOpenException:
                os.write(results_w, b"R")
                return 0
            os.write(results_w, b"P" if permit.is_probe else b"A")
            os.read(done_r, 1)  # hold the probe until every child has tried
            permit.success()
            return 1

        kids = Children(n, child)
        os.close(results_w)
        os.close(done_r)
        time.sleep(PAST_SHORT)  # past the reset timeout (a lower bound only)
        kids.go()
        got = b""
        end = time.monotonic() + DEADLINE
        while len(got) < n and time.monotonic() < end:
            ready, _, _ = select.select([results_r], [], [], 1.0)
            if ready:
                chunk = os.read(results_r, n)
                if not chunk:
                    break
                got += chunk
        os.close(done_w)
        codes = kids.wait()
        os.close(results_r)
        assert sorted(got.decode()) == ["P"] + ["R"] * (n - 1), f"round {round_}: {got!r}"
        assert sorted(codes) == [0] * (n - 1) + [1]
        info = cbreaker.inspect(name)
        assert info["state"] == "CLOSED"
        assert info["counters"]["probes"] == round_ + 1  # the independent observer
        assert info["history"][0]["reason"] == "probe_succeeded"
        assert info["history"][0]["pid"] == kids.pids[codes.index(1)]


def test_each_transition_is_logged_once_across_processes(names, tmp_path):
    """Three processes fail, then four race for the probe: every process
    logs to one file; each transition appears there exactly once, from the
    process that made it."""
    name = names()
    log_file = tmp_path / "transitions.log"

    def breaker_logging_to_file():
        logger = logging.getLogger(f"cbreaker.test.{os.getpid()}")
        handler = logging.FileHandler(log_file)  # O_APPEND: one write per line
        handler.setFormatter(logging.Formatter("%(message)s %(circuit)s %(from_state)s %(to_state)s %(reason)s %(pid)s"))
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO)
        return CircuitBreaker(3, 0.2, name=name, logger=logger)

    CircuitBreaker(3, 0.2, name=name)
    fails = Children(3, lambda i: fail_once(breaker_logging_to_file()))
    fails.go()
    assert fails.wait() == [0, 0, 0]
    time.sleep(PAST_SHORT)

    def probe(i):
        b = breaker_logging_to_file()
        try:
            with b as permit:  # rejected, the probe, or a call after it closed
                return 1 if permit.is_probe else 2
        except CircuitBreakerOpenException:
            return 0

    probers = Children(4, probe)
    probers.go()
    assert probers.wait().count(1) == 1
    lines = [line.split() for line in log_file.read_text().splitlines()]
    assert [line[0] for line in lines] == ["circuit_breaker_opened", "circuit_breaker_half_open", "circuit_breaker_closed"]
    assert all(line[1] == name for line in lines)
    history = list(reversed(cbreaker.inspect(name)["history"]))
    assert [(h["event"], h["reason"], str(h["pid"])) for h in history] == [(l[0], l[4], l[5]) for l in lines]
    assert lines[0][5] in map(str, fails.pids) and lines[1][5] == lines[2][5] in map(str, probers.pids)


def test_a_child_dropping_a_copied_permit_leaves_the_probe_alone(names):
    b = CircuitBreaker(1, 0.05, name=names(), probe_timeout=60.0)
    b.trip()
    time.sleep(0.3)
    permit = b.acquire()
    assert permit.is_probe

    def child(i):
        global copied
        del copied  # the child's copy of the parent's probe permit: dropped, not released
        return 0

    global copied
    copied = permit
    del permit
    kids = Children(1, child)
    kids.go()
    assert kids.wait() == [0]
    with pytest.raises(CircuitBreakerOpenException):
        b.acquire()  # the parent still holds the probe
    del copied  # dropped in its own process: released
    assert b.acquire().is_probe
