/*
 * breaker.pml - a Promela model of the state-word protocol in
 * src/breaker.c, checked by spin: tests/model/check-model.sh checks it
 * with N = 3 workers and the policies off (-DSTEP_CAP=0: no backoff; no
 * rate trip; no modes); check-policies-model.sh with the backoff step
 * (-DSTEP_CAP=2), the operator modes (-DMODES) and the rate trip (-DRATE),
 * N = 2 and up to 3 operator acts (three workers with the policies would
 * not fit the test's time).
 *
 * One step here is one atomic access to the state word there, named after
 * the "Model step" comments in breaker.c: load, take_probe,
 * count_failure / clear_count / trip_threshold, rate_trip, probe_report /
 * backoff_step, reset, trip, refresh_stamp, and with -DMODES set_mode and
 * metrics_mark.
 * N worker processes call acquire and report; a killer may SIGKILL any
 * worker but worker 0 at any step (Promela's unless); an operator may
 * reset and trip (and, with -DMODES, set modes); a clock lets timeouts
 * elapse.
 *
 * Abstractions, each exact for the protocol's decisions:
 *  - The generation is not stored. A process remembers whether the word
 *    it loaded is unchanged (word_cur) and whether no generation bump has
 *    happened since (call_valid, probe_valid); a bump clears every such
 *    flag. That is a generation that never wraps.
 *  - Time is age, the ticks since the current word's stamp, counted up
 *    to the timeout that matters: PERIOD(step) for OPEN (the open period
 *    grows with the backoff step), LEASE for a held HALF_OPEN. Every
 *    transition that writes a new stamp sets it to 0; the clock adds a
 *    tick at any later moment. A process reads the clock after loading
 *    the word (as breaker.c does) and compares with the period of the
 *    step in that same word; if the word has changed by then, its reading
 *    is arbitrary, and its CAS will fail.
 *  - The backoff step: 0..STEP_CAP, period(step) = step + 1 ticks. A
 *    failed probe increments it up to the cap (the time cap reached is
 *    the same "no increment"); take_probe, lease expiry, release, a
 *    refresh and a trip from OPEN/HALF_OPEN keep it; every other
 *    transition writes 0.
 *  - The window (-DRATE): after a report that counts (a success or
 *    failure of the current generation that did not trip by threshold),
 *    the window's verdict is a nondeterministic choice, "trips" or not. A trip is
 *    then rate_trip: CAS CLOSED(g, any count) -> OPEN(g+1, step 0),
 *    retried while the word is CLOSED of generation g. (In METRICS_ONLY
 *    the verdict sets or clears the rate rule's crossed mark instead:
 *    metrics_mark; both rate rules take the same step, one is modelled.)
 *  - METRICS_ONLY's failure count saturates at THRESHOLD: the only
 *    decision on it is count >= THRESHOLD.
 *  - The stamp refresh: after a step that installs a stamp (take_probe,
 *    trip_threshold, rate_trip, a failed probe's report, trip), its
 *    installer CASes that word, if still unchanged, to the same state,
 *    generation and step with a fresh stamp: age 0, permits keep their
 *    validity. The Refresher takes that step for the installer, at any
 *    moment while the word is unchanged, or never: every stall of the
 *    installer before its refresh, and the clock not having moved (no
 *    refresh), are covered; one refresh stands for the loop of them, each
 *    the same step. (It may also refresh for an installer killed since:
 *    more behaviours, not fewer.)
 *
 * Checked:
 *  safety (assertions): a probe is granted only when the timeout of the
 *    word it replaces has passed (for OPEN, the period of that word's
 *    own backoff step), or the slot is free, so at most one probe with an
 *    unexpired lease exists at any time; a report changes the state only
 *    through a permit of the current generation; no failure of the
 *    current generation is lost or counted twice; the count in CLOSED
 *    stays below the threshold; a trip (threshold or rate) is one CAS
 *    from the CLOSED word of the reporting permit's generation, and a
 *    rate decision is dropped only once that generation is gone (each
 *    trip of one generation happens exactly once); the backoff step never
 *    exceeds its cap and is 0 in every word but OPEN/HALF_OPEN; a refresh
 *    replaces only an unchanged word that a step installed with a stamp.
 *    With -DMODES: in FORCED_OPEN no call is admitted; in DISABLED and
 *    METRICS_ONLY no call is rejected and the word stays the operator's
 *    mode (no step but set_mode leaves a mode: the machine never opens,
 *    reset and trip are refused); METRICS_ONLY's threshold mark is set
 *    exactly while the count has crossed the threshold (so the would-open
 *    event, announced by the CAS that sets it, comes once per crossing).
 *  liveness (LTL, weak fairness, -DHEALTHY): with a healthy dependency
 *    (every call succeeds, fast, so no window trips, and a live probe
 *    reports within probe_timeout), modes left NORMAL (with -DMODES: the
 *    operator's last act sets NORMAL) and worker 0 calling forever, every
 *    state other than CLOSED is followed by CLOSED, whoever else is
 *    killed when.
 *
 * Variants spin must reject (the scripts check it): STALE_CLOCK_BUG (a
 * clock reading reused after a failed CAS), STALE_PERIOD_BUG (the open
 * period computed from the step of the first word loaded, reused after a
 * failed CAS; needs a step cap > 0), RATE_GIVE_UP_BUG (-DRATE: rate_trip
 * gives up when another report changed the count), METRICS_LATE_BUG
 * (-DMODES: a METRICS_ONLY report that does not check the generation).
 */

#ifndef N
#ifdef MODES
#define N 2
#else
#define N 3
#endif
#endif
#define THRESHOLD 2
#ifndef STEP_CAP
#define STEP_CAP 1
#endif
#define PERIOD(s) ((s) + 1) /* ticks: the open period of backoff step s */
#define LEASE 1             /* ticks: probe_timeout */

#define CLOSED 0
#define OPEN 1
#define HALF 2
#define MODE 3 /* an operator mode other than NORMAL */

#define NORMAL 0
#define DISABLED 1
#define FORCED_OPEN 2
#define METRICS_ONLY 3

/* The state word. */
byte st = CLOSED;
byte count = 0;       /* CLOSED, METRICS_ONLY: consecutive failures */
byte step = 0;        /* OPEN, HALF: backoff step; 0 in every other word */
bool slot_free = false; /* HALF: no probe in flight */
#ifdef MODES
byte mode = NORMAL;   /* MODE: the operator mode */
bool thr_mark = false;  /* METRICS_ONLY: threshold crossed, announced */
bool rate_mark = false; /* METRICS_ONLY: rate rule crossed, announced */
byte op_mode = NORMAL;  /* ghost: the mode of the operator's last set_mode */
#endif

byte age = 0;         /* ticks since the current word's stamp */
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
    age = 0;
    refreshable = false;
    fails_applied = 0
}

#ifdef STALE_PERIOD_BUG
#define OPEN_PERIOD PERIOD(pstep)
#else
#define OPEN_PERIOD PERIOD(step)
#endif
#define TIMED_OUT ((st == OPEN && age >= OPEN_PERIOD) || (st == HALF && age >= LEASE))

/* Model step "load", with the clock read that follows it and the local
 * decision taken on the loaded word. Reading the clock in the same step
 * is exact for every decision that a CAS then acts on: if the word
 * changes before the CAS, the CAS fails and the process loads again. */
inline load_and_decide(first) {
    atomic {
        wst = st; wfree = slot_free; word_cur[me] = true;
#ifdef STALE_PERIOD_BUG
        /* The open period computed once, from the step of the first word
         * loaded, and reused after a failed CAS. */
        if :: first -> pstep = step :: else -> skip fi;
#endif
#ifndef STALE_CLOCK_BUG
        e = TIMED_OUT;
#else
        /* The bug the storm test found: the clock read once per acquire,
         * before the loop, reused after a failed CAS. check-model.sh
         * expects spin to reject this variant. */
        if :: first -> e = TIMED_OUT :: else -> skip fi;
#endif
        if
        :: wst == CLOSED -> call_valid[me] = true; verdict = 1
#ifdef MODES
        :: wst == MODE && mode != FORCED_OPEN -> call_valid[me] = true; verdict = 1
        :: wst == MODE && mode == FORCED_OPEN -> verdict = 0
#endif
        :: (wst == OPEN && !e) || (wst == HALF && !wfree && !e) -> verdict = 0
        :: (wst == OPEN && e) || (wst == HALF && (wfree || e)) -> verdict = 3 /* try to take the probe */
        fi;
#ifdef MODES
        /* FORCED_OPEN admits no call; DISABLED and METRICS_ONLY reject none. */
        assert(wst != MODE || (verdict == 0) == (mode == FORCED_OPEN));
#endif
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
        /* Model step "take_probe" (the backoff step goes along). */
        if
        :: atomic { word_cur[me] ->
            /* The replaced word's timeout has really passed (for OPEN,
             * the period of its own step), or the slot is free: no probe
             * with a live lease is displaced, none comes early. */
            assert((st == OPEN && age >= PERIOD(step)) || (st == HALF && (slot_free || age >= LEASE)));
            st = HALF; slot_free = false; bump(); probe_valid[me] = true;
            refreshable = true; verdict = 2 }
        :: !word_cur[me] -> load_and_decide(false)
        fi
    od
}

#ifdef METRICS_LATE_BUG
/* The bug: a METRICS_ONLY report that checks the mode, not the generation. */
#define MO_REPORTS (st == MODE && mode == METRICS_ONLY)
#else
#define MO_REPORTS (call_valid[me] && st == MODE && mode == METRICS_ONLY)
#endif

/* A call's report. Leaves verdict 1 if the report counts in the window
 * (a verdict of the current generation that did not trip by threshold). */
inline report_call() {
    do
#ifdef MODES
    :: atomic { !call_valid[me] && !MO_REPORTS -> verdict = 0; break } /* late */
#else
    :: atomic { !call_valid[me] -> verdict = 0; break } /* late */
#endif
    :: atomic { call_valid[me] && st == CLOSED && (outcome == 2 || (outcome == 0 && count == 0)) ->
                if :: outcome == 2 -> verdict = 0 :: else -> skip fi; break }
    :: atomic { call_valid[me] && st == CLOSED && (outcome == 1 || (outcome == 0 && count > 0)) ->
                wcount = count; word_cur[me] = true }
        /* Model steps "clear_count" / "count_failure" / "trip_threshold". */
        if
        :: atomic { word_cur[me] ->
            assert(call_valid[me] && fails_applied == count);
            if
            :: outcome == 0 -> count = 0; fails_applied = 0; any_word_change()
            :: outcome == 1 && wcount + 1 >= THRESHOLD ->
                st = OPEN; count = 0; step = 0; bump(); refreshable = true; verdict = 0
            :: outcome == 1 && wcount + 1 < THRESHOLD -> count++; fails_applied++; any_word_change()
            fi;
            wcount = 0;
            assert(st != CLOSED || count < THRESHOLD) }
            break
        :: !word_cur[me] -> skip /* load again */
        fi
#ifdef MODES
    :: atomic { call_valid[me] && st == MODE && mode == DISABLED -> verdict = 0; break } /* the counters only */
    :: atomic { MO_REPORTS && (outcome == 2 || (outcome == 0 && count == 0)) ->
                if :: outcome == 2 -> verdict = 0 :: else -> skip fi; break }
    :: atomic { MO_REPORTS && (outcome == 1 || (outcome == 0 && count > 0)) -> word_cur[me] = true }
        /* Model step "metrics_mark" with the count: as in CLOSED, but the
         * threshold sets the mark (announcing would-open) instead of
         * tripping; a success clears count and mark. */
        if
        :: atomic { word_cur[me] ->
            assert(call_valid[me] && fails_applied == count);
            if
            :: outcome == 0 -> count = 0; fails_applied = 0; thr_mark = false
            :: outcome == 1 ->
                if :: count < THRESHOLD -> count++; fails_applied++ :: else -> skip fi;
                if :: count >= THRESHOLD && !thr_mark -> thr_mark = true :: else -> skip fi
            fi;
            any_word_change() }
            break
        :: !word_cur[me] -> skip /* load again */
        fi
#endif
    od
}

/* The window after a report that counts: e is its verdict. CLOSED: a
 * trip, once (Model step "rate_trip"); METRICS_ONLY: the rate rule's
 * mark follows the verdict (Model step "metrics_mark"). Each retried
 * while the word is of the permit's generation and still needs it. */
#ifdef MODES
#define WINDOW_ACTS (call_valid[me] && ((st == CLOSED && e) || (st == MODE && mode == METRICS_ONLY && rate_mark != e)))
#else
#define WINDOW_ACTS (call_valid[me] && st == CLOSED && e)
#endif
inline evaluate_window() {
    if :: e = true :: e = false fi;
    do
    :: atomic { !WINDOW_ACTS -> break } /* nothing to do, or the generation moved: someone else transitioned */
    :: atomic { WINDOW_ACTS -> word_cur[me] = true }
        if
        :: atomic { word_cur[me] ->
            assert(call_valid[me]);
            if
            :: st == CLOSED -> st = OPEN; count = 0; step = 0; bump(); refreshable = true
#ifdef MODES
            :: st == MODE -> rate_mark = e; any_word_change()
#endif
            fi }
            break
        :: !word_cur[me] ->
#ifdef RATE_GIVE_UP_BUG
            break /* the bug: another report changed the count, give up */
#else
            skip /* load again */
#endif
        fi
    od
}

/* Model steps "probe_report" / "backoff_step": one CAS from exactly the
 * granted word. */
inline report_probe(outcome) {
    atomic {
        if
        :: probe_valid[me] ->
            assert(st == HALF && !slot_free);
            if
            :: outcome == 0 -> st = CLOSED; count = 0; step = 0
            :: outcome == 1 -> st = OPEN; if :: step < STEP_CAP -> step++ :: else -> skip fi
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
#ifdef STALE_PERIOD_BUG
    byte pstep;
#endif
    {
        do
        :: true ->
            /* The last call's rate decision (verdict 1, e: the window
             * trips) was not dropped while its generation is current and
             * CLOSED: the trip happened, or someone else's transition
             * made it unneeded. Then forget the last call: keeps equal
             * states equal. */
            d_step {
                assert(!(verdict == 1 && call_valid[me] && st == CLOSED && e));
                wcount = 0; verdict = 0; outcome = 0; e = false; word_cur[me] = false; call_valid[me] = false
            }
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
                :: verdict == 1 ->
                    report_call();
#if defined(RATE) && !defined(HEALTHY)
                    if :: verdict == 1 -> evaluate_window() :: else -> skip fi
#endif
                :: verdict == 2 -> report_probe(outcome)
                fi
            fi
        od
    } unless {
        /* Killed: its permits die with it; a probe's lease stays in the word. */
        atomic { killed[me] -> word_cur[me] = false; call_valid[me] = false; probe_valid[me] = false; e = false }
    }
}

/* SIGKILL at any step, of any worker but worker 0 (who keeps calling). */
proctype Killer() {
    do
    :: killed[1] = true
#if N > 2
    :: killed[2] = true
#endif
    :: break
    od
}

/* Model steps "trip" / "reset": refused (CB_EMODE) on a mode's word. A
 * trip keeps the step of OPEN/HALF_OPEN. */
#ifdef MODES
#define OP_REFUSED (st == MODE)
#else
#define OP_REFUSED false
#endif
inline trip() {
    atomic {
        if
        :: OP_REFUSED -> skip
        :: !OP_REFUSED ->
            if :: st != OPEN && st != HALF -> step = 0 :: else -> skip fi;
            bump(); st = OPEN; count = 0; slot_free = false; refreshable = true
        fi
    }
}
inline reset() {
    atomic {
        if
        :: OP_REFUSED -> skip
        :: !OP_REFUSED -> bump(); st = CLOSED; count = 0; step = 0; slot_free = false
        fi
    }
}

#ifdef MODES
/* Model step "set_mode": from any word; nothing if the mode is the
 * word's already; NORMAL installs CLOSED(g+1, 0), a mode MODE(g+1, m). */
inline set_mode(m) {
    atomic {
        if
        :: (st == MODE && mode == m) || (st != MODE && m == NORMAL) -> skip
        :: !((st == MODE && mode == m) || (st != MODE && m == NORMAL)) ->
            bump();
            if :: m == NORMAL -> st = CLOSED :: else -> st = MODE fi;
            mode = m; count = 0; step = 0; slot_free = false; thr_mark = false; rate_mark = false;
            op_mode = m
        fi
    }
}

#ifndef OPS
#define OPS 2
#endif
/* cbctl reset, trip and the modes, at most OPS acts, from any state;
 * healthy, the last act sets NORMAL. */
proctype Operator() {
    byte ops = 0;
    do
    :: ops < OPS ->
        if
        :: trip()
        :: reset()
        :: set_mode(NORMAL)
        :: set_mode(DISABLED)
        :: set_mode(FORCED_OPEN)
        :: set_mode(METRICS_ONLY)
        fi;
        ops++
    :: break
    od;
#ifdef HEALTHY
    set_mode(NORMAL)
#endif
}
#else
/* cbctl reset and trip, each at most once, from any state. */
proctype Operator() {
    if
    :: trip()
    :: reset()
    :: skip
    fi
}
#endif

/* Model step "refresh_stamp", the installer's CAS of its own unchanged
 * word to the same state, generation and step with a fresh stamp: the
 * timeout starts again; no generation bump, so every permit stays as
 * valid as it was (the probe's permit is issued with the refreshed word).
 * Once the word changed, the CAS fails: nothing to do. */
proctype Refresher() {
    do
    :: atomic { refreshable ->
        assert(st == OPEN || (st == HALF && !slot_free));
        any_word_change(); age = 0 }
    od
}

/* Time passes: the current stamp's timeout elapses some time later. A
 * healthy dependency answers a probe within probe_timeout, so its lease
 * can only run out once its holder is dead. */
#ifdef HEALTHY
#if N > 2
#define LEASE_CAN_EXPIRE (!probe_valid[0] && !probe_valid[1] && !probe_valid[2])
#else
#define LEASE_CAN_EXPIRE (!probe_valid[0] && !probe_valid[1])
#endif
#else
#define LEASE_CAN_EXPIRE true
#endif
proctype Clock() {
    do
    :: atomic { ((st == OPEN && age < PERIOD(step)) || (st == HALF && !slot_free && age < LEASE && LEASE_CAN_EXPIRE)) -> age++ }
    od
}

#ifndef HEALTHY
/* Invariants of every word: the step within its cap and only in
 * OPEN/HALF_OPEN; with modes, the word is the operator's mode while one
 * is set (nothing but set_mode leaves it), and METRICS_ONLY's threshold
 * mark is set exactly while the count has crossed. Blocked until broken. */
#ifdef MODES
#define MODE_INV ((op_mode == NORMAL && st != MODE) || (op_mode != NORMAL && st == MODE && mode == op_mode)) && \
    (st != MODE || (mode == METRICS_ONLY && thr_mark == (count >= THRESHOLD)) || \
     (mode != METRICS_ONLY && count == 0 && !thr_mark && !rate_mark))
#else
#define MODE_INV true
#endif
#define INV (step <= STEP_CAP && (st == OPEN || st == HALF || step == 0) && (st != CLOSED || count < THRESHOLD) && MODE_INV)
proctype Invariants() {
end: atomic { !(INV) -> assert(INV) }
}
#endif

init {
    /* Start from any state, then start everyone. */
    atomic {
        if
        :: st = CLOSED
        :: st = CLOSED; count = THRESHOLD - 1; fails_applied = THRESHOLD - 1
        :: st = OPEN
        :: st = HALF; slot_free = true
        :: st = HALF; slot_free = false /* held by a process already dead */
        fi;
        refreshable = false; /* whatever the operator did before: not installed */
        for (k : 0 .. N - 1) { run Worker(k) };
        k = 0;
        run Killer(); run Operator(); run Refresher(); run Clock();
#ifndef HEALTHY
        run Invariants()
#else
        skip
#endif
    }
}

#ifdef HEALTHY
ltl recovers { [] (st != CLOSED -> <> (st == CLOSED)) }
#endif
