#!/bin/sh
# check-model.sh MODEL.pml - spin checks the state-word protocol model
# with three workers and the policies off (-DSTEP_CAP=0: no backoff; no
# rate trip; modes left NORMAL), the default config; check-policies-model.sh
# checks the backoff step, the modes and the rate trip:
#   1. safety: every assertion, over the whole state space (exhaustive,
#      compressed; fails if the search is cut short);
#   2. liveness: the LTL property "recovers" under weak fairness;
#   3. the model can fail: the variant with the stale-clock bug that the
#      multi-process storm test found must violate an assertion.
# Needs spin and a C compiler (tools/quickstart test installs spin).
. "$(dirname "$0")/spin-lib.sh"

run safety "-DSTEP_CAP=0" "-DSAFETY -DCOLLAPSE" "-m10000000 -w27"
grep -q "errors: 0" safety.out && complete safety || { echo "safety: FAILED"; cat safety.out; exit 1; }

run liveness "-DSTEP_CAP=0 -DHEALTHY" "-DCOLLAPSE -DNFAIR=4" "-a -f -m10000000 -w27"
grep -q "errors: 0" liveness.out && complete liveness || { echo "liveness: FAILED"; cat liveness.out; exit 1; }

run stale-clock-bug "-DSTEP_CAP=0 -DSTALE_CLOCK_BUG" "-DSAFETY" "-m10000000 -w24"
grep -q "assertion violated" stale-clock-bug.out || { echo "the buggy variant passed: the model cannot fail"; exit 1; }
echo "spin: safety and liveness hold; the stale-clock variant is rejected"
