#!/usr/bin/python3
"""bench-nginx.py - cbreaker inside Debian's nginx (not a test).

 1. Per call, in one request that loops N times (content_by_lua): the
    healthy path of cbreaker through the FFI (acquire + success, a new
    permit per call as the recipe does) vs the same breaker written the way
    APISIX's api-breaker does it over an ngx.shared dict (a get in the
    access phase for the break deadline, a get in the log phase for the
    unhealthy count). Best of 5 requests each.
 2. Requests/s under wrk (Debian's) against a location proxying to a local
    upstream (a second server block of the same nginx), with and without
    the recipe's breaker (access_by_lua + log_by_lua), alternated 3 times.

Usage (from the checkout, after meson compile -C build):
  /usr/bin/python3 tools/bench-nginx.py [N]
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONF = r"""
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
@USER@
worker_processes 1;
daemon off;
pid logs/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
    access_log off;
    lua_package_path "@PREFIX@/lua/?.lua;;";
    lua_package_cpath "@PREFIX@/lib/?.so;;";
    lua_shared_dict breaker 1m;
    init_by_lua_block {
        cbreaker_backend = assert(require("cbreaker").open("@CIRCUIT@", { failure_threshold = 3, reset_timeout = 60 }))
        cbreaker_failure_status = { [500] = true, [502] = true, [503] = true, [504] = true }
    }
    upstream backend { server 127.0.0.1:@UP@; keepalive 32; }
    server {
        listen 127.0.0.1:@UP@;
        location / { return 200 "ok\n"; }
    }
    server {
        listen 127.0.0.1:@PORT@;
        location = /loop/cbreaker {
            content_by_lua_block {
                local c, n = cbreaker_backend, tonumber(ngx.var.arg_n)
                ngx.update_time()
                local t0 = ngx.now()
                for _ = 1, n do
                    local p = c:acquire()
                    c:success(p)
                end
                ngx.update_time()
                ngx.say((ngx.now() - t0) * 1e9 / n)
            }
        }
        location = /loop/shdict {
            content_by_lua_block {
                local dict, n, now = ngx.shared.breaker, tonumber(ngx.var.arg_n), ngx.now
                local function acquire() -- APISIX api-breaker, access phase
                    local open_until = dict:get("backend:open_until")
                    return not (open_until and open_until > now())
                end
                local function success() -- its log phase, healthy status
                    local unhealthy = dict:get("backend:unhealthy")
                    if unhealthy then
                        dict:delete("backend:unhealthy")
                    end
                end
                ngx.update_time()
                local t0 = ngx.now()
                for _ = 1, n do
                    if acquire() then
                        success()
                    end
                end
                ngx.update_time()
                ngx.say((ngx.now() - t0) * 1e9 / n)
            }
        }
        location = /plain {
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://backend/;
        }
        location = /guarded {
            access_by_lua_block {
                local permit, verdict, retry_after = cbreaker_backend:acquire()
                if not permit then
                    ngx.header["Retry-After"] = math.max(1, math.ceil(retry_after or 1))
                    return ngx.exit(503)
                end
                ngx.ctx.cb_permit = permit
            }
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://backend/;
            log_by_lua_block {
                local permit = ngx.ctx.cb_permit
                if not permit then return end
                local status = tonumber((ngx.var.upstream_status or ""):match("(%d+)%s*$"))
                if not status or ngx.status == 499 then
                    cbreaker_backend:release(permit)
                elseif cbreaker_failure_status[status] then
                    cbreaker_backend:failure(permit)
                else
                    cbreaker_backend:success(permit)
                end
            }
        }
    }
}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
    prefix = tempfile.mkdtemp(prefix="cbreaker-bench-nginx.")
    os.chmod(prefix, 0o755)
    for d in ("logs", "lua", "lib"):
        os.mkdir(os.path.join(prefix, d), 0o755)
    shutil.copy(os.path.join(ROOT, "src/lua/cbreaker.lua"), os.path.join(prefix, "lua"))
    shutil.copy(os.path.realpath(os.path.join(ROOT, "build/libcbreaker.so")), os.path.join(prefix, "lib/libcbreaker.so"))
    os.chmod(os.path.join(prefix, "lib/libcbreaker.so"), 0o755)
    os.chmod(os.path.join(prefix, "lua/cbreaker.lua"), 0o644)
    port, up = free_port(), free_port()
    circuit = "bench.nginx.%d" % os.getpid()
    conf = CONF
    for k, v in {"USER": "user nobody nogroup;" if os.geteuid() == 0 else "", "PREFIX": prefix,
                 "CIRCUIT": circuit, "UP": up, "PORT": port}.items():
        conf = conf.replace("@%s@" % k, str(v))
    with open(os.path.join(prefix, "nginx.conf"), "w") as f:
        f.write(conf)
    err = open(os.path.join(prefix, "logs/stderr.log"), "w")
    nginx = subprocess.Popen(["/usr/sbin/nginx", "-p", prefix, "-c", os.path.join(prefix, "nginx.conf"), "-e",
                              "stderr"], stdout=err, stderr=err)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/plain" % port, timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        base = "http://127.0.0.1:%d" % port
        loops = {}
        for what in ("cbreaker", "shdict"):
            urllib.request.urlopen("%s/loop/%s?n=%d" % (base, what, n // 10)).read()  # warm up, JIT
            loops[what] = min(float(urllib.request.urlopen("%s/loop/%s?n=%d" % (base, what, n)).read())
                              for _ in range(5))
        print("per call, best of 5 requests of %d calls (ns): cbreaker FFI %.1f, ngx.shared dict (APISIX style) "
              "%.1f: %.1fx" % (n, loops["cbreaker"], loops["shdict"], loops["shdict"] / loops["cbreaker"]))
        rps = {"plain": [], "guarded": []}
        for _ in range(3):
            for what in ("plain", "guarded"):
                out = subprocess.run(["wrk", "-t1", "-c16", "-d5s", "%s/%s" % (base, what)], capture_output=True,
                                     text=True, check=True).stdout
                line = [x for x in out.splitlines() if x.startswith("Requests/sec:")][0]
                rps[what].append(float(line.split()[1]))
        p, g = max(rps["plain"]), max(rps["guarded"])
        print("wrk -t1 -c16 -d5s, 1 nginx worker, best of 3: without the breaker %.0f req/s, with it %.0f req/s "
              "(%+.1f%%)" % (p, g, (g - p) * 100 / p))
        print("machine: %d CPUs, load average %s (shared with other jobs)" %
              (os.cpu_count(), open("/proc/loadavg").read().split()[0]))
    finally:
        nginx.terminate()
        nginx.wait()
        subprocess.run([os.path.join(ROOT, "build/tools/cbctl"), "rm", circuit], capture_output=True)
        shutil.rmtree(prefix, ignore_errors=True)


if __name__ == "__main__":
    main()
