#!/bin/sh
# check-policies-model.sh MODEL.pml - spin checks the state-word protocol
# model with the policies (-DMODES -DRATE: set_mode and the operator
# modes, the rate trip and the METRICS_ONLY marks, with the backoff step
# up to 2; two workers, the operator acting at most three times):
#   1. safety: every assertion, over the whole state space (exhaustive,
#      compressed; fails if the search is cut short);
#   2. liveness: the LTL property "recovers" under weak fairness, the
#      operator's last act setting NORMAL;
#   3. the model can fail: each variant with a known bug must violate an
#      assertion: the open period computed from the step of the first word
#      loaded (reused after a failed CAS), a METRICS_ONLY report that does
#      not check the generation, and a rate trip that gives up when
#      another report changed the count.
# Needs spin and a C compiler (tools/quickstart test installs spin).
. "$(dirname "$0")/spin-lib.sh"
policies="-DMODES -DRATE -DSTEP_CAP=2 -DOPS=3"

run safety "$policies" "-DSAFETY -DCOLLAPSE" "-m10000000 -w26"
grep -q "errors: 0" safety.out && complete safety || { echo "safety: FAILED"; cat safety.out; exit 1; }

run liveness "$policies -DHEALTHY" "-DCOLLAPSE -DNFAIR=4" "-a -f -m10000000 -w26"
grep -q "errors: 0" liveness.out && complete liveness || { echo "liveness: FAILED"; cat liveness.out; exit 1; }

for bug in STALE_PERIOD_BUG METRICS_LATE_BUG RATE_GIVE_UP_BUG; do
    run "$bug" "$policies -D$bug" "-DSAFETY" "-m10000000 -w24"
    grep -q "assertion violated" "$bug.out" || { echo "the $bug variant passed: the model cannot fail"; exit 1; }
done
echo "spin: with the policies, safety and liveness hold; the stale-period, metrics-late and rate-give-up variants are rejected"
