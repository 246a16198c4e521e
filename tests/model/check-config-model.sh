#!/bin/sh
# check-config-model.sh MODEL.pml - spin checks the config update model
# (tests/model/config.pml, the protocol of src/config.c):
#   1. safety: every assertion, over the whole state space (exhaustive,
#      compressed; fails if the search is cut short);
#   2. the model can fail: the variant that publishes with a plain store
#      instead of the CAS must violate the linearizability assertion.
# Needs spin and a C compiler (tools/quickstart test installs spin).
. "$(dirname "$0")/spin-lib.sh"

run safety "" "-DSAFETY -DCOLLAPSE" "-m10000000 -w26"
grep -q "errors: 0" safety.out && complete safety || { echo "safety: FAILED"; cat safety.out; exit 1; }

run publish-store-bug "-DPUBLISH_STORE" "-DSAFETY" "-m10000000 -w24"
grep -q "assertion violated" publish-store-bug.out || { echo "the buggy variant passed: the model cannot fail"; exit 1; }
echo "spin: the slot in force is always whole and updates are linearizable; the store variant is rejected"
