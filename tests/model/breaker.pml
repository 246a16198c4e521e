/*
 * breaker.pml - a Promela model of the state-word protocol in
 * src/breaker.c, checked by spin (tests/model/check-model.sh).
 *
 * One step here is one atomic access to the state word there, named after
 * the "Model step" comments in breaker.c: load, take_probe,
 * count_failure / clear_count / trip_threshold, probe_report, reset, trip,
 * refresh_stamp.
 * N worker processes call acquire and report; a killer may SIGKILL any
 * worker but worker 0 at any step (Promela's unless); an operator may
 * reset and trip; a clock lets timeouts elapse.
 *
 * Abstractions, each exact for the protocol's decisions:
 *  - The generation is not stored. A process remembers whether the word
 *    it loaded is unchanged (word_cur) and whether no generation bump has
 *    happened since (gen_cur); a bump clears every such flag and every
 *    permit's validity. That is a generation that never wraps.
 *  - Time is one flag, elapsed: whether the current OPEN stamp's reset
 *    timeout, or the current lease's probe timeout, has passed. Every
 *    transition that writes a new stamp clears it; the clock sets it at
 *    any later moment. A process reads the clock after loading the word
 *    (as breaker.c does); if the word has changed by then, its reading
 *    is arbitrary, and its CAS will fail.
 *  - The stamp refresh: after a step that installs a stamp (take_probe,
 *    trip_threshold, a failed probe's report, trip), its installer CASes
 *    that word, if still unchanged, to the same state and generation with
 *    a fresh stamp: elapsed is cleared, permits keep their validity. The
 *    Refresher takes that step for the installer, at any moment while the
 *    word is unchanged, or never: every stall of the installer before its
 *    refresh, and the clock not having moved (no refresh), are covered;
 *    one refresh stands for the loop of them, each the same step. (It may
 *    also refresh for an installer killed since: more behaviours, not
 *    fewer.)
 *
 * Checked:
 *  safety (assertions): a probe is granted only when the timeout of the
 *    word it replaces has passed, or the slot is free, so at most one
 *    probe with an unexpired lease exists at any time; a report changes
 *    the state only through a permit of the current generation; no
 *    failure of the current generation is lost or counted twice; the
 *    count in CLOSED stays below the threshold; a refresh replaces only
 *    an unchanged word that a step installed with a stamp.
 *  liveness (LTL, weak fairness, -DHEALTHY): with a healthy dependency
 *    (every call succeeds, and a live probe reports within probe_timeout)
 *    and worker 0 calling forever, every state other than CLOSED is
 *    followed by CLOSED, whoever else is killed when.
 */

#ifndef N
#define N 3
#endif
#define THRESHOLD 2

#define CLOSED 0
#define OPEN 1
#define HALF 2

/* The state word. */
byte st = CLOSED;
byte count = 0;       /* CLOSED: consecutive failures */
bool slot_free = false; /* HALF: no probe in flight */

bool elapsed = false; /* the current stamp's timeout has passed */
bool refreshable = false; /* the word was installed with a stamp, unchanged since */

bool word_cur[N];   /* the word process i loaded is still the word */
bool call_valid[N]; /* i holds a call permit of the current generation */
bool probe_valid[N];/* i holds the probe permit of the current word */
bool killed[N];

byte fails_applied = 0; /* ghost: failures counted in this generation */
byte k; /* loop index of the inlines below, only used inside atomic steps */

inline any_word_change() {
    for (k : 0 .. N - 1) { word_cur[k] = false };
    refreshable = false
}

/* A new generation: every loaded word and every permit is stale, and
 * the new word's stamp (if any) is fresh. */
inline bump() {
    for (k : 0 .. N - 1) { word_cur[k] = false; call_valid[k] = false; probe_valid[k] = false }
    elapsed = false;
    refreshable = false;
    fails_applied = 0
}

/* Model step "load", with the clock read that follows it and the local
 * decision taken on the loaded word. Reading the clock in the same step
 * is exact for every decision that a CAS then acts on: if the word
 * changes before the CAS, the CAS fails and the process loads again. */
inline load_and_decide(first) {
    atomic {
        wst = st; wcount = count; wfree = slot_free; word_cur[me] = true;
#ifndef STALE_CLOCK_BUG
        e = elapsed;
#else
        /* The bug the storm test found: the clock read once per acquire,
         * before the loop, reused after a failed CAS. check-model.sh
         * expects spin to reject this variant. */
        if :: first -> e = elapsed :: else -> skip fi;
#endif
        if
        :: wst == CLOSED -> call_valid[me] = true; verdict = 1
        :: (wst == OPEN && !e) || (wst == HALF && !wfree && !e) -> verdict = 0
        :: else -> verdict = 3 /* try to take the probe */
        fi;
        wst = 0; wfree = false; /* consumed: keep states equal */
#ifndef STALE_CLOCK_BUG
        e = false
#else
        skip
#endif
    }
}

inline acquire() {
    load_and_decide(true);
    do
    :: verdict != 3 -> break
    :: verdict == 3 ->
        /* Model step "take_probe". */
        if
        :: atomic { word_cur[me] ->
            /* The replaced word's timeout has really passed, or the
             * slot is free: no probe with a live lease is displaced. */
            assert((st == OPEN && elapsed) || (st == HALF && (slot_free || elapsed)));
            st = HALF; slot_free = false; bump(); probe_valid[me] = true;
            refreshable = true; verdict = 2 }
        :: !word_cur[me] -> load_and_decide(false)
        fi
    od
}

inline report_call() {
    do
    :: atomic { !(st == CLOSED && call_valid[me]) -> break } /* late */
    :: atomic { st == CLOSED && call_valid[me] && (outcome == 2 || (outcome == 0 && count == 0)) -> break }
    :: atomic { st == CLOSED && call_valid[me] && (outcome == 1 || (outcome == 0 && count > 0)) ->
                wcount = count; word_cur[me] = true }
        /* Model steps "clear_count" / "count_failure" / "trip_threshold". */
        if
        :: atomic { word_cur[me] ->
            assert(call_valid[me] && fails_applied == count);
            if
            :: outcome == 0 -> count = 0; fails_applied = 0; any_word_change()
            :: outcome == 1 && wcount + 1 >= THRESHOLD -> st = OPEN; count = 0; bump(); refreshable = true
            :: outcome == 1 && wcount + 1 < THRESHOLD -> count++; fails_applied++; any_word_change()
            fi;
            assert(st != CLOSED || count < THRESHOLD) }
            break
        :: !word_cur[me] -> skip /* load again */
        fi
    od
}
/* Model step "probe_report": one CAS from exactly the granted word. */
inline report_probe(outcome) {
    atomic {
        if
        :: probe_valid[me] ->
            assert(st == HALF && !slot_free);
            if
            :: outcome == 0 -> st = CLOSED; count = 0
            :: outcome == 1 -> st = OPEN
            :: outcome == 2 -> slot_free = true
            fi;
            bump();
            refreshable = (outcome == 1)
        :: !probe_valid[me] -> skip /* late */
        fi
    }
}

proctype Worker(byte me) {
    byte wst, wcount, verdict, outcome;
    bool wfree, e;
    {
        do
        :: true ->
            /* Forget the last call: keeps equal states equal. */
            d_step { wcount = 0; verdict = 0; outcome = 0; e = false; word_cur[me] = false; call_valid[me] = false }
            acquire();
            if
            :: verdict == 0 -> skip
            :: verdict != 0 ->
#ifdef HEALTHY
                outcome = 0;
#else
                if :: outcome = 0 :: outcome = 1 :: outcome = 2 fi;
#endif
                if
                :: verdict == 1 -> report_call()
                :: verdict == 2 -> report_probe(outcome)
                fi
            fi
        od
    } unless {
        /* Killed: its permits die with it; a probe's lease stays in the word. */
        atomic { killed[me] -> word_cur[me] = false; call_valid[me] = false; probe_valid[me] = false }
    }
}

/* SIGKILL at any step, of any worker but worker 0 (who keeps calling). */
active proctype Killer() {
    do
    :: killed[1] = true
    :: killed[2] = true
    :: break
    od
}

/* cbctl reset and trip, each at most once, from any state. */
active proctype Operator() {
    if
    :: atomic { bump(); st = OPEN; count = 0; refreshable = true } /* Model step "trip" */
    :: atomic { bump(); st = CLOSED; count = 0 }        /* Model step "reset" */
    :: skip
    fi
}

/* Model step "refresh_stamp", the installer's CAS of its own unchanged
 * word to the same state and generation with a fresh stamp: the timeout
 * starts again; no generation bump, so every permit stays as valid as it
 * was (the probe's permit is issued with the refreshed word). Once the
 * word changed, the CAS fails: nothing to do. */
active proctype Refresher() {
    do
    :: atomic { refreshable ->
        assert(st == OPEN || (st == HALF && !slot_free));
        any_word_change(); elapsed = false }
    od
}

/* Time passes: the current stamp's timeout elapses some time later. A
 * healthy dependency answers a probe within probe_timeout, so its lease
 * can only run out once its holder is dead. */
#ifdef HEALTHY
#define LEASE_CAN_EXPIRE (!probe_valid[0] && !probe_valid[1] && !probe_valid[2])
#else
#define LEASE_CAN_EXPIRE true
#endif
active proctype Clock() {
    do
    :: (st == OPEN || (st == HALF && !slot_free && LEASE_CAN_EXPIRE)) && !elapsed -> elapsed = true
    od
}

init {
    /* Start from any state. */
    atomic {
        if
        :: st = CLOSED
        :: st = CLOSED; count = THRESHOLD - 1; fails_applied = THRESHOLD - 1
        :: st = OPEN
        :: st = HALF; slot_free = true
        :: st = HALF; slot_free = false /* held by a process already dead */
        fi;
        refreshable = false; /* whatever the operator did before: not installed */
        run Worker(0); run Worker(1); run Worker(2)
    }
}

#ifdef HEALTHY
ltl recovers { [] (st != CLOSED -> <> (st == CLOSED)) }
#endif
