#!/bin/sh
# test-cbdemo.sh CBDEMO - cbdemo end to end with its embedded upstream:
#  1. a short run of the default demo: the pool trips once after the
#     threshold, one probe per window, closes on the first probe after the
#     upstream is back, nothing lost, exit 0, segment removed;
#  2. the same with --per-process: every worker trips its own circuit;
#  3. the master's duties: a SIGKILLed worker is restarted and the pool
#     keeps serving (checked with `cbdemo load`), SIGTERM stops it all with
#     status 0, no process and no segment left.
set -eu
cbdemo=$1
tmp=$(mktemp -d /tmp/test-cbdemo.XXXXXX)
name=test.cbdemo.$$
pid=

cleanup() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true # the master stops its workers
        wait "$pid" 2>/dev/null || true
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "/dev/shm/cbreaker.$name"
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
    echo "FAIL: $*"
    for f in "$tmp"/*.out; do
        [ -f "$f" ] && { echo "---- $f ----"; cat "$f"; }
    done
    exit 1
}

# in FILE, the line numbers of lines matching PATTERN
lines() { grep -n -- "$2" "$1" | cut -d: -f1; }

# ---- 1. the default demo, shortened: down at 1 s, up at 2.3 s, reset 500 ms
out=$tmp/shared.out
"$cbdemo" --name "$name" --duration 4 --down-at 1 --up-at 2.3 --reset-ms 500 >"$out" 2>&1 ||
    fail "shared run: exit status $?"
[ "$(grep -c 'threshold_reached' "$out")" -eq 1 ] ||
    fail "shared run: want exactly one trip by threshold"
[ "$(grep -c 'OPEN      -> HALF_OPEN' "$out")" -eq 3 ] ||
    fail "shared run: want 3 probes (2 windows while down, 1 after)"
[ "$(grep -c 'HALF_OPEN -> CLOSED     probe_succeeded' "$out")" -eq 1 ] ||
    fail "shared run: want one close by a successful probe"
opened=$(lines "$out" 'CLOSED    -> OPEN' | head -1)
closed=$(lines "$out" 'HALF_OPEN -> CLOSED' | head -1)
[ "$opened" -lt "$closed" ] || fail "shared run: closed before it opened"
failing=$(grep 'upstream call failed' "$out" | awk '{print $3}' | sort -u | wc -l)
[ "$failing" -ge 2 ] || fail "shared run: want failures from several workers, got $failing"
grep -q 'one circuit for the pool: at most threshold + windows = 3 + 2 = 5 calls: yes' "$out" ||
    fail "shared run: more upstream calls than threshold + windows"
grep -q 'recovery: pid [0-9]*.s probe closed the circuit' "$out" || fail "shared run: no recovery line"
grep -q ', 0 lost or unanswered' "$out" || fail "shared run: requests lost"
[ ! -e "/dev/shm/cbreaker.$name" ] || fail "shared run: segment left behind"
echo "ok 1 shared circuit: one trip, one probe per window, closed on the first probe after recovery"

# ---- 2. --per-process: each of the 4 workers trips on its own
out=$tmp/per-process.out
"$cbdemo" --per-process --name "$name" --duration 4 --down-at 1 --up-at 2.3 --reset-ms 500 >"$out" 2>&1 ||
    fail "per-process run: exit status $?"
[ "$(grep -c 'threshold_reached' "$out")" -eq 4 ] || fail "per-process run: want 4 trips, one per worker"
[ "$(grep -c 'probe_succeeded' "$out")" -eq 4 ] || fail "per-process run: want 4 closes, one per worker"
grep -q ', 0 lost or unanswered' "$out" || fail "per-process run: requests lost"
[ ! -e "/dev/shm/cbreaker.$name" ] || fail "per-process run: a shared segment was made"
echo "ok 2 per-process breakers: 4 trips, 4 recovery probes"

# ---- 3. restart a killed worker; SIGTERM stops everything
out=$tmp/server.out
setsid "$cbdemo" --no-load --name "$name" >"$out" 2>&1 &
pid=$!
port=
for _ in $(seq 50); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || fail "server: no listening line"
sleep 0.3
victim=$(sed -n 's/^workers: pids \([0-9]*\).*/\1/p' "$out")
[ -n "$victim" ] || fail "server: no worker found"
kill -KILL "$victim" || fail "server: cannot kill worker $victim"
for _ in $(seq 50); do
    grep -q 'restarted as pid' "$out" && break
    sleep 0.1
done
grep -q "worker pid $victim was killed by signal 9" "$out" || fail "server: the kill was not noticed"
grep -q 'restarted as pid' "$out" || fail "server: the worker was not restarted"
"$cbdemo" load --port "$port" --rate 100 --clients 2 --duration 1.5 >"$tmp/load.out" 2>&1 || fail "load: exit status $?"
grep -q ', 0 lost$' "$tmp/load.out" || fail "load: requests lost after the restart"
grep -q 'sent [1-9][0-9]*: [1-9][0-9]* from the upstream' "$tmp/load.out" || fail "load: nothing served"
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
[ "$status" -eq 0 ] || fail "server: exit status $status after SIGTERM"
if kill -0 -- "-$pid" 2>/dev/null; then fail "server: processes left after the master exited"; fi
pid=
[ ! -e "/dev/shm/cbreaker.$name" ] || fail "server: segment left behind"
grep -q 'workers restarted by the master: 1' "$out" || fail "server: restart not counted"
echo "ok 3 master: killed worker restarted, clean SIGTERM shutdown, nothing left"
trap - EXIT # (dash leaks a trap string that runs at exit: valgrind setup)
cleanup
echo "3 passed, 0 failed"
