"""The proof under a real pre-fork server: gunicorn (Debian's) with 4
uvicorn workers serving gunicorn_app/routes.py, which looks routes up in a
real redis-server through `await breaker.call(...)`. Two servers run side
by side under the same load and the same outage: one whose workers share
one cbreaker circuit, one with a private breaker per worker. Redis is
SIGKILLed for OUTAGE seconds and started again on the same port.

Asserted: the shared server's Redis attempts during the outage are at most
threshold + one probe per reset window (+ the calls already in flight when
the circuit tripped); the private server makes several times more; every
request is answered (200, from Redis or the fallback); the shared circuit
is closed by one probe after Redis returns; each gunicorn stops cleanly on
SIGTERM (exit 0, no worker left) and no segment is left. Everything is
bounded in time and killed on failure. Prints the timeline (README).
"""

import http.client
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

import cbreaker
from conftest import required, shm_path, unique_name

APP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gunicorn_app")
WORKERS, CLIENTS_PER_SERVER = 4, 3
THRESHOLD, RESET_TIMEOUT = 3, 1.0  # as in gunicorn_app/routes.py
WARM, OUTAGE, RECOVER = 2.0, 3.0, 3.0
BUCKET = 0.5  # seconds per timeline row
BOOT_TIMEOUT, STOP_TIMEOUT = 60.0, 30.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, predicate, timeout):
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def redis_command(port, *commands):
    """Send commands (tuples of words) on one connection; the replies."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        out = b""
        for words in commands:
            out += b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in map(str.encode, words))
        s.sendall(out)
        replies = b""
        while replies.count(b"\r\n") < len(commands):
            chunk = s.recv(65536)
            if not chunk:
                break
            replies += chunk
        return replies


def seed_routes(port):
    assert redis_command(port, *[("SET", f"route:{i}", f"backend-{i % 7}") for i in range(100)]) == b"+OK\r\n" * 100


def redis_up(port):
    try:
        return redis_command(port, ("PING",)) == b"+PONG\r\n"
    except OSError:
        return False


def process_gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(entry))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return kids


class Stack:
    """The processes of the test; whatever is left is killed on exit."""

    def __init__(self, tmp):
        self.tmp, self.procs, self.client_pids = tmp, [], []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for pid in self.client_pids:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def start(self, argv, log, env=None):
        proc = subprocess.Popen(argv, stdout=open(self.tmp / log, "ab"), stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self.procs.append(proc)
        return proc

    def redis(self, port):
        """redis-server on port, once it answers PING."""
        proc = self.start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "no", "--dir", str(self.tmp)], "redis.log")
        wait_for("redis-server", lambda: redis_up(port) or proc.poll() is not None, BOOT_TIMEOUT)
        assert proc.poll() is None, (self.tmp / "redis.log").read_text()
        return proc

    def gunicorn(self, kind, port, redis_port, circuit):
        env = dict(os.environ, ROUTES_BREAKER=kind, ROUTES_CIRCUIT=circuit, ROUTES_REDIS_PORT=str(redis_port),
                   ROUTES_ATTEMPTS=str(self.tmp / f"attempts.{kind}"))
        # shared: --preload, the breaker is made in the master and inherited
        # across fork; private: each worker imports the app (and makes its own)
        preload = ["--preload"] if kind == "shared" else []
        proc = self.start([sys.executable, "-m", "gunicorn", "-k", "uvicorn.workers.UvicornWorker",
                           "-w", str(WORKERS), "-b", f"127.0.0.1:{port}", "-c", os.path.join(APP_DIR, "conf.py"),
                           "--pythonpath", APP_DIR, "--graceful-timeout", "10", *preload, "routes:app"],
                          f"gunicorn.{kind}.log", env)
        log = self.tmp / f"gunicorn.{kind}.log"
        wait_for(f"{WORKERS} {kind} workers",
                 lambda: log.read_text().count("Application startup complete") >= WORKERS or proc.poll() is not None,
                 BOOT_TIMEOUT)
        assert proc.poll() is None, log.read_text()
        return proc

    def client(self, port, t0, end, out):
        """A load process: one request at a time, a new connection each
        (so the kernel spreads them over the workers), until end."""
        pid = os.fork()
        if pid:
            self.client_pids.append(pid)
            return pid
        code = 1
        try:
            rows, i = [], 0
            while time.monotonic() < end:
                i += 1
                t = time.monotonic()
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    conn.request("GET", f"/route/{i % 100}")
                    resp = conn.getresponse()
                    body = json.loads(resp.read())
                    source = body["source"] if resp.status == 200 else f"http-{resp.status}"
                    conn.close()
                except Exception as exc:  # noqa: B902 - an unanswered request
                    source = "unanswered:" + type(exc).__name__
                rows.append((round(t - t0, 4), source))
                time.sleep(0.002)
            with open(out, "w") as f:
                json.dump(rows, f)
            code = 0
        finally:
            os._exit(code)


def attempts(path, t0):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [float(line.split()[0]) - t0 for line in f]


def timeline(results, tries, t_kill, t_back, end):
    """Rows of (t, per server: requests, fallback answers, Redis attempts)."""
    lines = ["    t(s)  | shared: req fallback redis | private: req fallback redis |"]
    t = 0.0
    while t < end:
        cells = []
        for kind in ("shared", "private"):
            in_bucket = [s for ts, s in results[kind] if t <= ts < t + BUCKET]
            fallback = sum(1 for s in in_bucket if s.startswith("fallback"))
            redis_n = sum(1 for ts in tries[kind] if t <= ts < t + BUCKET)
            cells.append(f"{len(in_bucket):10d} {fallback:8d} {redis_n:5d}")
        mark = " <- redis killed" if t <= t_kill < t + BUCKET else " <- redis back" if t <= t_back < t + BUCKET else ""
        lines.append(f"  {t:5.1f}   | {cells[0]} |  {cells[1]} |{mark}")
        t += BUCKET
    return "\n".join(lines)


def test_gunicorn_uvicorn_workers_share_one_circuit_in_front_of_redis(tmp_path, capsys):
    required("redis-server", shutil.which("redis-server"))
    for module in ("gunicorn", "uvicorn", "redis"):
        required(f"python3 module {module}", importlib.util.find_spec(module))
    circuit = unique_name("gunicorn")
    try:
        run_outage(tmp_path, capsys, circuit)
    finally:  # a failed run may not have reached gunicorn's on_exit
        if os.path.exists(shm_path(circuit)):
            cbreaker.unlink(circuit)


def run_outage(tmp_path, capsys, circuit):
    redis_port, shared_port, private_port = free_port(), free_port(), free_port()
    with Stack(tmp_path) as stack:
        redis = stack.redis(redis_port)
        seed_routes(redis_port)
        servers = {"shared": stack.gunicorn("shared", shared_port, redis_port, circuit),
                   "private": stack.gunicorn("private", private_port, redis_port, circuit)}
        t0 = time.monotonic()
        end = WARM + OUTAGE + RECOVER
        outs = {}
        for kind, port in (("shared", shared_port), ("private", private_port)):
            for c in range(CLIENTS_PER_SERVER):
                outs.setdefault(kind, []).append(tmp_path / f"client.{kind}.{c}.json")
                stack.client(port, t0, t0 + end, outs[kind][-1])

        time.sleep(max(0.0, t0 + WARM - time.monotonic()))
        redis.send_signal(signal.SIGKILL)
        redis.wait()
        t_kill = time.monotonic() - t0  # Redis is gone: every call from now on is during the outage
        time.sleep(OUTAGE)
        stack.redis(redis_port)
        t_back, wall_back = time.monotonic() - t0, time.time()
        seed_routes(redis_port)

        for pid in stack.client_pids:
            _, status = os.waitpid(pid, 0)
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"client {pid}: status {status}"
        stack.client_pids = []
        results = {kind: [row for out in outs[kind] for row in json.load(open(out))] for kind in outs}
        tries = {kind: attempts(tmp_path / f"attempts.{kind}", t0) for kind in outs}
        info = cbreaker.inspect(circuit)

        workers = {kind: children_of(proc.pid) for kind, proc in servers.items()}
        for kind, proc in servers.items():
            proc.send_signal(signal.SIGTERM)
        codes = {kind: proc.wait(timeout=STOP_TIMEOUT) for kind, proc in servers.items()}

    in_outage = {kind: sum(1 for t in tries[kind] if t_kill <= t < t_back) for kind in tries}
    windows = int((t_back - t_kill) / RESET_TIMEOUT) + 1
    in_flight = CLIENTS_PER_SERVER - 1  # calls admitted while CLOSED, still waiting when it tripped
    answered = {kind: sum(1 for _, s in results[kind] if s in ("redis", "redis-miss") or s.startswith("fallback"))
                for kind in results}
    history = list(reversed(info["history"]))
    after_back = [h for h in history if h["wall_ms"] >= wall_back * 1000]
    with capsys.disabled():
        print(f"\n\ngunicorn -k uvicorn.workers.UvicornWorker -w {WORKERS}, two servers side by side; "
              f"{CLIENTS_PER_SERVER} client processes each; threshold {THRESHOLD}, reset_timeout {RESET_TIMEOUT} s")
        print(f"redis-server SIGKILLed at {t_kill:.2f} s, back at {t_back:.2f} s\n")
        print(timeline(results, tries, t_kill, t_back, end))
        for kind in ("shared", "private"):
            print(f"\n{kind:8s}: {len(results[kind])} requests, {answered[kind]} answered, "
                  f"{len(tries[kind])} Redis calls, {in_outage[kind]} of them during the outage")
        print(f"\nshared circuit {circuit}: state {info['state']}, counters {info['counters']}")
        print("history (oldest first):")
        for h in history:
            mark = "  (after redis came back)" if h in after_back else ""
            print(f"  {h['time']}  {h['event']:26s} {h['from']:>9s} -> {h['to']:9s} {h['reason']:21s} pid {h['pid']}{mark}")
        print(f"gunicorn exit codes: {codes}\n")

    for kind in results:
        assert results[kind] and answered[kind] == len(results[kind]), f"{kind}: unanswered requests"
    assert in_outage["shared"] <= THRESHOLD + in_flight + windows, in_outage
    assert in_outage["private"] > in_outage["shared"], in_outage
    assert info["state"] == "CLOSED"
    assert [(h["event"], h["reason"]) for h in after_back] in (
        [("circuit_breaker_half_open", "reset_timeout_elapsed"), ("circuit_breaker_closed", "probe_succeeded")],
        [("circuit_breaker_closed", "probe_succeeded")],  # the probe went out just before "back" was noted
    ), after_back
    assert codes == {"shared": 0, "private": 0}
    for kind in workers:
        assert len(workers[kind]) == WORKERS and all(process_gone(pid) for pid in workers[kind]), workers
    assert not os.path.exists(shm_path(circuit))
