#!/bin/sh
# check-model.sh MODEL.pml - spin checks the state-word protocol model:
#   1. safety: every assertion, over the whole state space (exhaustive,
#      compressed; fails if the search is cut short);
#   2. liveness: the LTL property "recovers" under weak fairness;
#   3. the model can fail: the variant with the stale-clock bug that the
#      multi-process storm test found must violate an assertion.
# Needs spin and a C compiler (tools/quickstart test installs spin).
set -eu
model=$(realpath "$1")
command -v spin >/dev/null 2>&1 || { echo "spin is not installed (apt-get install spin)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# run NAME SPIN_FLAGS CC_FLAGS PAN_FLAGS: leaves pan's output in NAME.out
run() {
    rm -f pan pan.* ./*.trail
    spin -a $2 "$model" >"$1.spin" 2>&1 || { cat "$1.spin"; exit 1; }
    cc -O2 -w $3 -o pan pan.c
    ./pan $4 >"$1.out" 2>&1 || true
    grep -E "^(State-vector|pan: elapsed)|states, stored" "$1.out" | sed "s/^/$1: /"
}
complete() { ! grep -q "max search depth too small\|Search not completed" "$1.out"; }

run safety "" "-DSAFETY -DCOLLAPSE" "-m10000000 -w27"
grep -q "errors: 0" safety.out && complete safety || { echo "safety: FAILED"; cat safety.out; exit 1; }

run liveness "-DHEALTHY" "-DCOLLAPSE -DNFAIR=4" "-a -f -m10000000 -w27"
grep -q "errors: 0" liveness.out && complete liveness || { echo "liveness: FAILED"; cat liveness.out; exit 1; }

run stale-clock-bug "-DSTALE_CLOCK_BUG" "-DSAFETY" "-m10000000 -w24"
grep -q "assertion violated" stale-clock-bug.out || { echo "the buggy variant passed: the model cannot fail"; exit 1; }
echo "spin: safety and liveness hold; the stale-clock variant is rejected"
