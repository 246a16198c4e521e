#!/bin/sh
# check-model.sh MODEL.pml - spin checks the state-word protocol model
# with the backoff step, operator modes left NORMAL, no rate policy
# (check-policies-model.sh checks the modes and the rate trip):
#   1. safety: every assertion, over the whole state space (exhaustive,
#      compressed; fails if the search is cut short);
#   2. liveness: the LTL property "recovers" under weak fairness;
#   3. the model can fail: each variant with a known bug must violate an
#      assertion: the stale clock reading that the multi-process storm
#      test found, and the open period taken from a stale backoff step.
# Needs spin and a C compiler (tools/quickstart test installs spin).
. "$(dirname "$0")/spin-lib.sh"

run safety "" "-DSAFETY -DCOLLAPSE" "-m10000000 -w27"
grep -q "errors: 0" safety.out && complete safety || { echo "safety: FAILED"; cat safety.out; exit 1; }

run liveness "-DHEALTHY" "-DCOLLAPSE -DNFAIR=4" "-a -f -m10000000 -w27"
grep -q "errors: 0" liveness.out && complete liveness || { echo "liveness: FAILED"; cat liveness.out; exit 1; }

for bug in STALE_CLOCK_BUG STALE_PERIOD_BUG; do
    run "$bug" "-D$bug" "-DSAFETY" "-m10000000 -w24"
    grep -q "assertion violated" "$bug.out" || { echo "the $bug variant passed: the model cannot fail"; exit 1; }
done
echo "spin: safety and liveness hold; the stale-clock and stale-period variants are rejected"
