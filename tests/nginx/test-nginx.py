#!/usr/bin/python3
"""test-nginx.py - Debian's nginx + libnginx-mod-http-lua with the LuaJIT
binding, as a real server (issue 12). Run by meson test (suite 'nginx'):

  test-nginx.py outage   nginx (4 workers, as nobody when run as root) in
      front of an upstream HTTP server this script starts, under load from
      client processes; the upstream is killed for 3 s and started again.
      Asserts, from the upstream's attempts as nginx logged them and from
      the circuit's counters (cbctl --json): at most threshold (+ requests
      in flight or not yet reported at the trip) + one probe per reset window reached
      the dead upstream; every client request answered 200 or 503 with
      Retry-After; one probe closed the circuit after the upstream
      returned; the failure count survives `nginx -s reload` and a full
      restart; nginx stops with no worker left. Pattern A: the circuit is
      opened in init_by_lua_block by the master (root), mode 0600; the
      workers (nobody) use the mapping they inherit and never open the name.
      The same outage against nginx's own max_fails=3 fail_timeout=RESET on
      a two-server group without a zone, for comparison (printed, not
      asserted beyond being worse or equal).
  test-nginx.py shared   pattern B: the workers open the circuit by name
      (init_worker_by_lua_block). A root-made 0600 circuit is refused to
      them (Permission denied, logged; nginx proxies unguarded); one they
      create is theirs (nobody, 0600): root's cbctl refuses it (not
      trusted: exit 3) and the workers' user controls it; a root-made 0660
      one of the workers' group is shared: failures reported by a C program
      (cb-report) trip it for
      the nginx workers, failures seen by nginx make the C program's
      acquire rejected, and `cbctl reset` closes it for both.

Skipped (77) when nginx, the Lua module or luajit is missing, failed
instead when CI or CBREAKER_REQUIRE_REDIS is set. Everything nginx's
workers read is copied to a 0755 temporary prefix first (the checkout may
sit under /root).
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import http.client
import http.server

NGINX = "/usr/sbin/nginx"
LUA_MODULE = "/usr/lib/nginx/modules/ngx_http_lua_module.so"
THRESHOLD = 3
RESET = 1  # seconds: reset_timeout of the outage run
CLIENTS = 4
OUTAGE = 3.0  # seconds the upstream is down

OPEN_SNIPPET = """local err
        cbreaker_backend, err = require("cbreaker").open("@CIRCUIT@",
            { failure_threshold = 3, reset_timeout = @RESET@, mode = "@MODE@" })
        if not cbreaker_backend then
            ngx.log(ngx.ERR, "cbreaker: cannot open @CIRCUIT@: ", err)
        end"""

MAX_FAILS_CONF = """load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
@USER@
worker_processes 4;
daemon off;
pid logs/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
    log_format attempts '$msec $request_time $status "$upstream_addr" "$upstream_status" $pid';
    access_log logs/access.log attempts;
    upstream backend {
        server 127.0.0.1:@UPSTREAM_PORT@ max_fails=3 fail_timeout=@RESET@s;
        server 127.0.0.1:@UPSTREAM_PORT2@ max_fails=3 fail_timeout=@RESET@s;
    }
    server {
        listen 127.0.0.1:@PORT@;
        proxy_connect_timeout 1s;
        proxy_read_timeout 2s;
        location / { proxy_pass http://backend; }
    }
}
"""


CHILDREN = []  # every process started, killed when the test ends


def spawn(args, **kw):
    p = subprocess.Popen(args, **kw)
    CHILDREN.append(p)
    return p


def kill_children():
    for p in CHILDREN:
        if p.poll() is None:
            p.kill()
            p.wait()


def log(*a):
    print("#", *a, flush=True)


def fail(msg):
    print("FAIL:", msg, flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    log("ok:", msg)


def skip_or_fail(why):
    if os.environ.get("CI") or os.environ.get("CBREAKER_REQUIRE_REDIS"):
        fail(why + " (tools/quickstart test installs it)")
    print("SKIP:", why)
    sys.exit(77)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- upstream
def upstream_main(ports, logfile):
    """The upstream: 200 'ok' on every port; one line per request seen.
    /cut: a 200 that promises 100 bytes, sends 3 and closes (an upstream
    dying mid-response)."""
    lock = threading.Lock()
    out = open(logfile, "a", buffering=1)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            with lock:
                out.write("%.6f %d\n" % (time.time(), self.server.server_port))
            body = b"ok\n"
            self.send_response(200)
            self.send_header("Content-Length", "100" if self.path == "/cut" else str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            if self.path == "/cut":
                self.wfile.flush()
                self.close_connection = True

        def log_message(self, *a):
            pass

    servers = []
    for p in ports:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", p), Handler)
        servers.append(srv)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    signal.sigwait([signal.SIGTERM])


class Upstream:
    def __init__(self, ports, logfile):
        self.ports, self.logfile, self.proc = ports, logfile, None

    def start(self):
        self.proc = spawn([sys.executable, __file__, "--upstream", self.logfile]
                                     + [str(p) for p in self.ports])
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.ports[-1]), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        fail("upstream did not start")

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def seen(self):
        with open(self.logfile) as f:
            return [float(line.split()[0]) for line in f if line.strip()]


# ---------------------------------------------------------------- clients
def client_main(url, outfile, stopfile):
    """A client process: sequential GETs until stopfile exists; one line per
    request: start end status retry_after (or 'error' and why)."""
    host, port = url.split(":")
    with open(outfile, "w", buffering=1) as out:
        while not os.path.exists(stopfile):
            start = time.time()
            try:
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
                conn.request("GET", "/")
                r = conn.getresponse()
                body = r.read()
                out.write("%.6f %.6f %d %s %s\n" % (start, time.time(), r.status,
                                                    r.getheader("Retry-After", "-"), (body.split() or [b"-"])[0].decode(errors="replace")))
                conn.close()
            except Exception as e:  # counted as unanswered
                out.write("%.6f %.6f error %s\n" % (start, time.time(), type(e).__name__))
            time.sleep(0.005)


class Clients:
    def __init__(self, work, port, n):
        self.stop = os.path.join(work, "clients.stop")
        self.files = [os.path.join(work, "client%d.out" % i) for i in range(n)]
        self.procs = [spawn([sys.executable, __file__, "--client", "127.0.0.1:%d" % port, f, self.stop])
                      for f in self.files]

    def finish(self):
        open(self.stop, "w").close()
        for p in self.procs:
            check_status(p.wait(timeout=30), 0, "client process")
        rows = []
        for f in self.files:
            with open(f) as fh:
                rows += [line.split() for line in fh]
        return rows


def check_status(got, want, what):
    if got != want:
        fail("%s exited with %s" % (what, got))


# ---------------------------------------------------------------- nginx
class Nginx:
    def __init__(self, prefix, conf_text):
        self.prefix = prefix
        self.conf = os.path.join(prefix, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf_text)
        self.stderr = os.path.join(prefix, "logs", "stderr.log")
        self.proc = None

    def start(self, port):
        err = open(self.stderr, "a")
        self.proc = spawn([NGINX, "-p", self.prefix, "-c", self.conf, "-e", "stderr"],
                                     stdout=err, stderr=err)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                fail("nginx exited at start:\n" + self.log())
            if len(self.workers()) == 4:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        fail("nginx did not start:\n" + self.log())

    def log(self):
        with open(self.stderr) as f:
            return f.read()

    def workers(self):
        """pids of the master's children (workers)."""
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    stat = f.read()
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.proc.pid and b"worker process" in cmd:
                out.append(int(d))
        return sorted(out)

    def reload(self):
        old = set(self.workers())
        os.kill(self.proc.pid, signal.SIGHUP)
        deadline = time.time() + 15
        while time.time() < deadline:
            now = set(self.workers())
            if len(now) == 4 and not now & old:
                return
            time.sleep(0.05)
        fail("reload did not replace the workers")

    def stop(self):
        """nginx -s quit; returns once the master is gone; asserts that no
        worker is left."""
        workers = self.workers()
        subprocess.run([NGINX, "-p", self.prefix, "-c", self.conf, "-e", "stderr", "-s", "quit"], check=True,
                       stderr=subprocess.DEVNULL)
        check_status(self.proc.wait(timeout=30), 0, "nginx master")
        left = [w for w in workers if os.path.exists("/proc/%d" % w)]
        check(not left, "nginx stopped with no worker left (%d workers before)" % len(workers))


def get(port, path="/"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, r.getheader("Retry-After"), body


def cbctl_json(name):
    out = subprocess.run([os.environ["CBCTL"], "--json", "show", name], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)["circuit"]


def cbctl(*args):
    return subprocess.run([os.environ["CBCTL"]] + list(args), check=True, capture_output=True, text=True).stdout


def cbctl_as_nobody(prefix, *args):
    """The prefix's copy of cbctl run as the workers' user (nobody:nogroup)."""
    def drop():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    return subprocess.run([os.path.join(prefix, "cbctl")] + list(args), capture_output=True, text=True,
                          preexec_fn=drop, env={"LD_LIBRARY_PATH": os.path.join(prefix, "lib")})


def make_prefix():
    """A 0755 prefix under /tmp with the module and the library in it."""
    prefix = tempfile.mkdtemp(prefix="cbreaker-nginx.")
    os.chmod(prefix, 0o755)
    for d in ("logs", "lua", "lib"):
        os.mkdir(os.path.join(prefix, d), 0o755)
        os.chmod(os.path.join(prefix, d), 0o755)
    shutil.copy(os.environ["CBREAKER_LUA"], os.path.join(prefix, "lua", "cbreaker.lua"))
    shutil.copy(os.environ["CBREAKER_LIB"], os.path.join(prefix, "lib", "libcbreaker.so"))
    soname = ".".join(os.path.basename(os.environ["CBREAKER_LIB"]).split(".")[:3])  # libcbreaker.so.MAJOR
    os.symlink("libcbreaker.so", os.path.join(prefix, "lib", soname))  # what cbctl asks for
    shutil.copy(os.environ["CBCTL"], os.path.join(prefix, "cbctl"))
    os.chmod(os.path.join(prefix, "lua", "cbreaker.lua"), 0o644)
    os.chmod(os.path.join(prefix, "lib", "libcbreaker.so"), 0o755)
    os.chmod(os.path.join(prefix, "cbctl"), 0o755)
    return prefix


def fill(text, **kw):
    for k, v in kw.items():
        text = text.replace("@%s@" % k, str(v))
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        fail("template placeholders left: %s" % left)
    return text


def recipe(prefix, port, upstream_port, circuit, mode, in_master, lua_dir=None, lib_dir=None,
           user=os.geteuid() == 0, reset=None):
    reset = RESET if reset is None else reset
    with open(os.environ["TEMPLATE"]) as f:
        text = f.read()
    opener = OPEN_SNIPPET.replace("@CIRCUIT@", circuit).replace("@RESET@", str(reset)).replace("@MODE@", mode)
    return fill(text, USER="user nobody nogroup;" if user else "",
                LUA_DIR=lua_dir or os.path.join(prefix, "lua"), LIB_DIR=lib_dir or os.path.join(prefix, "lib"),
                RESET=reset,
                OPEN_IN_MASTER=opener if in_master else "-- opened in each worker",
                OPEN_IN_WORKER=opener if not in_master else "-- opened in the master (init_by_lua_block)",
                UPSTREAM_PORT=upstream_port, PORT=port)


def test_readme():
    """The README's recipe is the template the tests run, filled in."""
    with open(os.environ["README"]) as f:
        readme = f.read()
    blocks = re.findall(r"```nginx\n(.*?)```", readme, re.S)
    check(len(blocks) == 1, "one nginx block in the README")
    body = open(os.environ["TEMPLATE"]).read()
    body = body[body.index("load_module"):]  # the template's header comment is not in the README
    want = recipe(None, 8080, 8081, "backend", "0600", True, lua_dir="/usr/local/share/lua/5.1",
                  lib_dir="/usr/local/lib/x86_64-linux-gnu", user=True, reset=60)
    want = want[want.index("load_module"):]
    check(blocks[0] == want, "the README's recipe is tests/nginx/cbreaker-nginx.conf.in filled in")


def attempts(prefix, t0, t1):
    """Attempts that hit the dead upstream: servers in $upstream_addr whose
    $upstream_status is 502 or 504 (connect refused, timeout; not nginx's
    "no live upstreams", logged with the group's name), of requests that
    started in [t0, t1), from nginx's access log. Returns the attempts and
    the requests that made at least one."""
    n = hit = 0
    with open(os.path.join(prefix, "logs", "access.log")) as f:
        for line in f:
            m = re.match(r'(\S+) (\S+) (\d+) "([^"]*)" "([^"]*)"', line)
            start = float(m.group(1)) - float(m.group(2))
            if t0 <= start < t1:
                addrs = re.split(r", | : ", m.group(4))
                statuses = re.split(r", | : ", m.group(5))
                k = sum(1 for a, st in zip(addrs, statuses)
                        if re.match(r"\d+\.\d+\.\d+\.\d+:\d+$", a) and st in ("502", "504"))
                n += k
                hit += k > 0
    return n, hit


# ---------------------------------------------------------------- outage
def outage_run(prefix, conf, port, upstream, circuit=None):
    """Load, kill the upstream for OUTAGE s, start it again; returns the
    numbers and the client rows."""
    nginx = Nginx(prefix, conf)
    upstream.start()
    nginx.start(port)
    clients = Clients(prefix, port, CLIENTS)
    time.sleep(1.5)
    before = cbctl_json(circuit) if circuit else None
    t_kill = time.time()
    upstream.kill()
    t_killed = time.time()
    time.sleep(OUTAGE)
    during = cbctl_json(circuit) if circuit else None
    upstream.start()
    t_back = time.time()  # listening again
    back = cbctl_json(circuit) if circuit else None
    time.sleep(RESET + 2.0)
    rows = clients.finish()
    after = cbctl_json(circuit) if circuit else None
    r = {
        "attempts": attempts(prefix, t_kill, t_back)[0],
        "hit": attempts(prefix, t_kill, t_back)[1],
        "requests": len(rows),
        "outage_requests": sum(1 for row in rows if t_kill <= float(row[0]) < t_back),
        "statuses": {},
        # responses the SIGKILL cut short: the upstream had sent its status
        # line (nginx passed it on) and died before the body; the circuit
        # had already admitted them, so they are the kill's, not the circuit's
        "cut": [row for row in rows if row[2] == "error"
                and float(row[0]) < t_killed and float(row[1]) >= t_kill],
        "before": before, "during": during, "back": back, "after": after, "t_kill": t_kill, "t_back": t_back,
        "rows": rows, "nginx": nginx,
    }
    for row in rows:
        if row in r["cut"]:
            continue
        key = row[2] if row[2] != "error" else "error " + row[3]
        r["statuses"][key] = r["statuses"].get(key, 0) + 1
    return r


def test_outage():
    circuit = "test.nginx-outage.%d" % os.getpid()
    subprocess.run([os.environ["CBCTL"], "rm", circuit], capture_output=True)
    prefix = make_prefix()
    try:
        port, up1, up2 = free_port(), free_port(), free_port()
        upstream = Upstream([up1, up2], os.path.join(prefix, "upstream.log"))
        conf = recipe(prefix, port, up1, circuit, "0600", in_master=True)
        r = outage_run(prefix, conf, port, upstream, circuit)
        nginx = r["nginx"]
        windows = int(OUTAGE / RESET) + 1
        # admitted before the trip: the threshold, plus what other clients
        # had in flight or answered but not yet reported (the log phase runs
        # after the answer is sent): two per client at most
        in_flight = 2 * CLIENTS - 1
        bound = THRESHOLD + in_flight + windows
        log("cbreaker: %d requests, %d started during the %.0f s outage; statuses %s" %
            (r["requests"], r["outage_requests"], OUTAGE, r["statuses"]))
        log("cbreaker: upstream attempts during the outage: %d (bound %d = threshold %d + %d in flight + %d probes)"
            % (r["attempts"], bound, THRESHOLD, in_flight, windows))
        d0, d1 = r["before"]["counters"], r["during"]["counters"]
        log("cbreaker: circuit counters over the outage: allowed +%d, rejected +%d, failures +%d, trips +%d, "
            "probes +%d" % (d1["allowed"] - d0["allowed"], d1["rejected"] - d0["rejected"],
                             d1["failures"] - d0["failures"], d1["trips"] - d0["trips"], d1["probes"] - d0["probes"]))
        check(r["attempts"] <= bound, "at most threshold + in-flight + one probe per reset window hit the dead "
              "upstream (%d <= %d)" % (r["attempts"], bound))
        # Admitted calls that did not succeed: the snapshot before the kill
        # is taken a moment early, and calls the live upstream answered in
        # that moment are admitted and succeed; none succeeds while it is dead.
        unsuccessful = (d1["allowed"] - d0["allowed"]) - (d1["successes"] - d0["successes"])
        check(unsuccessful <= bound, "the circuit admitted at most as many calls that did not succeed (%d)" %
              unsuccessful)
        check(d1["trips"] - d0["trips"] >= 1, "the circuit tripped")
        check(set(r["statuses"]) <= {"200", "503"} and len(r["cut"]) <= CLIENTS,
              "every client request answered 200 or 503 (%s), but for %d in flight when the upstream was killed"
              % (r["statuses"], len(r["cut"])))
        fallbacks = [row for row in r["rows"] if row[2] == "503"]
        check(fallbacks and all(row[3] != "-" and int(row[3]) >= 1 and row[4] == "fallback" for row in fallbacks),
              "every 503 is the fallback with Retry-After (%d)" % len(fallbacks))
        after = r["after"]
        check(after["state"] == "CLOSED", "closed after the upstream returned")
        h = after["history"]
        check(h[0]["reason"] == "probe_succeeded" and h[1]["reason"] == "reset_timeout_elapsed",
              "closed by one probe (last transitions: %s, %s)" % (h[0]["reason"], h[1]["reason"]))
        check(after["counters"]["probes"] - r["back"]["counters"]["probes"] <= 1,
              "at most one probe after the upstream returned")
        check(after["config"]["mode"] == "0600" and os.stat("/dev/shm/cbreaker." + circuit).st_uid == os.geteuid(),
              "pattern A: made by the master's user with mode 0600, used by the workers (%s)" %
              ("nobody" if os.geteuid() == 0 else "the same user"))
        if os.geteuid() == 0:
            users = {os.stat("/proc/%d" % w).st_uid for w in nginx.workers()}
            check(users == {65534}, "the workers run as nobody")
        transitions = [line for line in nginx.log().splitlines() if "event=circuit_breaker_" in line]
        check(len(transitions) == len(h) and all("circuit=" + circuit in t for t in transitions),
              "each transition logged once, by the worker that made it (%d lines, %d in history)" %
              (len(transitions), len(h)))
        for t in transitions[:4]:
            log("  ", t)

        # a 200 the upstream cuts short (fewer bytes than its Content-Length)
        # is a failure, not a success
        cbctl("reset", circuit)
        try:
            get(port, "/cut")
            fail("a response cut short reaches the client whole")
        except http.client.IncompleteRead:
            pass
        deadline = time.time() + 10
        while cbctl_json(circuit)["failures"] != 1 and time.time() < deadline:
            time.sleep(0.05)
        check(cbctl_json(circuit)["failures"] == 1, "a response the upstream cut short counts as a failure")

        # survival: a failure count of 2 outlives a reload and a restart
        cbctl("reset", circuit)
        upstream.kill()
        for _ in range(THRESHOLD - 1):
            check(get(port)[0] == 503, "a failed request gets the fallback")
        check(cbctl_json(circuit)["failures"] == THRESHOLD - 1, "two failures counted")
        nginx.reload()
        check(cbctl_json(circuit)["failures"] == THRESHOLD - 1, "the count survives nginx -s reload")
        nginx.stop()
        nginx.start(port)
        check(cbctl_json(circuit)["failures"] == THRESHOLD - 1, "the count survives a full restart")
        trips = cbctl_json(circuit)["counters"]["trips"]
        get(port)
        c = cbctl_json(circuit)
        check(c["state"] == "OPEN" and c["counters"]["trips"] == trips + 1,
              "one more failure after the restart trips it: the count carried over")
        nginx.stop()
        upstream.start()
        upstream.kill()

        # nginx alone: max_fails per worker, two servers, no zone
        mf_prefix = make_prefix()
        try:
            mf_conf = fill(MAX_FAILS_CONF, USER="user nobody nogroup;" if os.geteuid() == 0 else "",
                           UPSTREAM_PORT=up1, UPSTREAM_PORT2=up2, RESET=RESET, PORT=port)
            m = outage_run(mf_prefix, mf_conf, port, upstream)
            log("max_fails: %d requests; statuses %s" % (m["requests"], m["statuses"]))
            log("max_fails: upstream attempts during the outage: %d" % m["attempts"])
            m["nginx"].stop()
            upstream.kill()
            for name, x in (("cbreaker", r), ("max_fails", m)):
                print("RESULT %-9s outage %.0f s, reset %d s, %d clients: %d requests during the outage, "
                      "%d upstream attempts hit the dead upstream, by %d requests; whole run answered %s" %
                      (name, OUTAGE, RESET, CLIENTS, x["outage_requests"], x["attempts"], x["hit"],
                       x["statuses"]), flush=True)
            check(m["attempts"] >= r["attempts"], "max_fails let at least as many attempts through")
        finally:
            shutil.rmtree(mf_prefix, ignore_errors=True)
    finally:
        subprocess.run([os.environ["CBCTL"], "rm", circuit], capture_output=True)
        shutil.rmtree(prefix, ignore_errors=True)


# ---------------------------------------------------------------- shared
def report(circuit, what, n=1):
    """The C side: cb-report NAME acquire|failure|success N; prints verdicts."""
    return subprocess.run([os.environ["CB_REPORT"], circuit, what, str(n)], capture_output=True, text=True,
                          check=True).stdout.split()


def test_shared():
    circuit = "test.nginx-shared.%d" % os.getpid()
    subprocess.run([os.environ["CBCTL"], "rm", circuit], capture_output=True)
    prefix = make_prefix()
    port, up = free_port(), free_port()
    upstream = Upstream([up], os.path.join(prefix, "upstream.log"))
    global RESET
    RESET = 60  # no probe during this test
    try:
        upstream.start()
        if os.geteuid() == 0:
            # pattern B with a circuit root made 0600: the workers may not open it
            cbctl("create", circuit, "--threshold", "3", "--reset-timeout", "60s", "--mode", "0600")
            nginx = Nginx(prefix, recipe(prefix, port, up, circuit, "0600", in_master=False))
            nginx.start(port)
            check(get(port)[0] == 200, "unguarded: nginx still proxies")
            check("cannot open %s: Permission denied" % circuit in nginx.log(),
                  "pattern B: workers (nobody) get Permission denied on a root 0600 circuit")
            nginx.stop()
            cbctl("rm", circuit)
            # pattern B, the workers create it: theirs, 0600; root does not
            # trust a segment of another user (a squatter's, for all it
            # knows): the workers' user controls it
            nginx = Nginx(prefix, recipe(prefix, port, up, circuit, "0600", in_master=False))
            open(nginx.stderr, "w").close()
            nginx.start(port)
            check(get(port)[0] == 200 and "cannot open" not in nginx.log(), "pattern B: the workers create it")
            st = os.stat("/dev/shm/cbreaker." + circuit)
            check(st.st_uid == 65534 and st.st_mode & 0o777 == 0o600, "owned by nobody, mode 0600")
            refused = subprocess.run([os.environ["CBCTL"], "trip", circuit], capture_output=True, text=True)
            check(refused.returncode == 3 and "not trusted" in refused.stderr,
                  "root's cbctl refuses the workers' segment (exit %d: %s)" % (refused.returncode,
                                                                               refused.stderr.strip()))
            tripped = cbctl_as_nobody(prefix, "trip", circuit)
            check(tripped.returncode == 0 and get(port)[0] == 503,
                  "the workers' user trips it with cbctl (%s)" % tripped.stderr.strip())
            nginx.stop()
            cbctl("rm", circuit)  # root may remove any name
            # pattern B, root provisions it for the workers: 0660, their group
            cbctl("create", circuit, "--threshold", "3", "--reset-timeout", "60s", "--mode", "0660")
            os.chown("/dev/shm/cbreaker." + circuit, -1, 65534)
        nginx = Nginx(prefix, recipe(prefix, port, up, circuit, "0660", in_master=False))
        open(nginx.stderr, "w").close()
        nginx.start(port)
        check(get(port)[0] == 200 and "cannot open" not in nginx.log(),
              "pattern B with mode 0660 and the workers' group: the workers open it by name")
        check(report(circuit, "failure", 3) == ["allowed"] * 3, "the C program reports 3 failures")
        status, retry, body = get(port)
        check(status == 503 and int(retry) >= 1 and body == b"fallback\n",
              "failures from the C program trip it for nginx (503, Retry-After %s)" % retry)
        cbctl("reset", circuit)
        check(get(port)[0] == 200, "cbctl reset closes it for nginx")
        check(report(circuit, "acquire") == ["allowed"], "and for the C program")
        upstream.kill()
        for _ in range(THRESHOLD):
            get(port)
        check(cbctl_json(circuit)["state"] == "OPEN", "failures seen by nginx trip it")
        check(report(circuit, "acquire") == ["rejected"], "the C program is rejected")
        upstream.start()
        check(get(port)[0] == 503, "nginx rejects too")
        cbctl("reset", circuit)
        check(report(circuit, "acquire") == ["allowed"] and get(port)[0] == 200,
              "cbctl reset closes it for both")
        nginx.stop()
        upstream.kill()
    finally:
        subprocess.run([os.environ["CBCTL"], "rm", circuit], capture_output=True)
        shutil.rmtree(prefix, ignore_errors=True)


def main():
    if sys.argv[1] == "--upstream":
        return upstream_main([int(p) for p in sys.argv[3:]], sys.argv[2])
    if sys.argv[1] == "--client":
        return client_main(*sys.argv[2:5])
    if sys.argv[1] == "readme":
        test_readme()
        print("PASS")
        return
    if not os.access(NGINX, os.X_OK):
        skip_or_fail("nginx is not installed")
    if not os.path.exists(LUA_MODULE):
        skip_or_fail("libnginx-mod-http-lua is not installed")
    try:
        {"outage": test_outage, "shared": test_shared}[sys.argv[1]]()
    finally:
        kill_children()
    print("PASS")


if __name__ == "__main__":
    main()
