#!/bin/sh
# check-config-model.sh MODEL.pml - spin checks the config update model
# (tests/model/config.pml, the protocol of src/config.c):
#   1. safety: every assertion, over the whole state space (exhaustive,
#      compressed; fails if the search is cut short);
#   2. the model can fail: the variant that publishes with a plain store
#      instead of the CAS must violate the linearizability assertion.
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

run safety "" "-DSAFETY -DCOLLAPSE" "-m10000000 -w26"
grep -q "errors: 0" safety.out && complete safety || { echo "safety: FAILED"; cat safety.out; exit 1; }

run publish-store-bug "-DPUBLISH_STORE" "-DSAFETY" "-m10000000 -w24"
grep -q "assertion violated" publish-store-bug.out || { echo "the buggy variant passed: the model cannot fail"; exit 1; }
echo "spin: the slot in force is always whole and updates are linearizable; the store variant is rejected"
