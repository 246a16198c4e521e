/*
 * cbreaker.h - one circuit breaker per dependency, shared by every process
 * on the host.
 *
 * A circuit lives in the POSIX shared-memory object /cbreaker.NAME. Every
 * process that opens NAME (or inherits an open handle across fork()) sees
 * the same circuit: failures reported by any worker count towards one
 * threshold, the whole pool trips together, and exactly one process,
 * pool-wide, gets the HALF_OPEN probe. The circuit is changed only by
 * lock-free compare-and-swap on one 64-bit word; no call blocks.
 *
 * States (the reference asyncio CircuitBreaker, threshold 3, timeout 60 s):
 *   CLOSED     calls go through; failure_threshold consecutive failures trip
 *              the circuit to OPEN; a success sets the count back to 0.
 *   OPEN       calls are rejected at once until reset_timeout has passed
 *              since the trip; then the first caller becomes the probe.
 *   HALF_OPEN  one probe is in flight, every other call is rejected. Probe
 *              success closes the circuit, probe failure re-opens it with a
 *              fresh reset_timeout. A probe that is not reported within
 *              probe_timeout (its holder died or hung) loses its lease and
 *              the next caller becomes the probe.
 *
 * Errors are negative ints: -errno for system errors, or one of the CB_E*
 * codes below, which sit in a range of their own. cb_strerror() explains
 * both.
 *
 * Caveats:
 *  - Processes share a circuit only if they share /dev/shm and the IPC
 *    namespace. Timeouts use CLOCK_MONOTONIC_COARSE, which is per time
 *    namespace: processes in different time namespaces must not share one.
 *  - Timeouts are kept with the coarse monotonic clock: a probe is admitted
 *    no earlier than reset_timeout after the trip and at most two clock
 *    ticks (2 x 4 ms on a HZ=250 kernel) later. "After the trip" is the
 *    moment the trip took effect, also when the tripping process was
 *    preempted between reading the clock and tripping: it then re-stamps
 *    the trip. Only a process stalled for longer than reset_timeout in that
 *    window lets another process probe on its older stamp. Likewise a
 *    probe's lease runs probe_timeout from the moment it was granted.
 *  - A permit is a value: a report empties it, so reporting it again does
 *    nothing (a copy of it, reported too, would count). A permit from an
 *    older state of the circuit (the circuit moved on while the call ran)
 *    changes nothing and is counted as a late report.
 *  - Who can write each byte of a segment is trusted. cb_open and
 *    cb_attach use an existing segment only if it is owned by the caller's
 *    euid or root (or, with CB_OPEN_TRUST_GROUP, by a user whose segment's
 *    group is one of the caller's) and is not writable by others; else
 *    CB_EOWNER, before reading it (also for a segment with a second name:
 *    a hard link would alias two circuits). So a local user who creates a name
 *    first (a squatter) cannot capture another user's circuit. What
 *    remains: a user the mode lets write the segment (its owner and group)
 *    can trip or wedge the circuit, or truncate the segment so that the
 *    next access of every process mapping it faults (SIGBUS); nothing in
 *    the library does that, and cb_unlink only removes the name. POSIX
 *    ACLs on /dev/shm objects are not looked at. cb_inspect and cb_list
 *    apply no owner check: they only read (a private copy; they map
 *    nothing, so no object can make them fault), and show a foreign
 *    segment too.
 *  - A new segment is complete (mode, config, READY) before its name
 *    exists: it is built in an unnamed O_TMPFILE file and linked under the
 *    name (without O_TMPFILE or /proc: under /dev/shm/.cbreaker-new.*, not
 *    listed, then linked). A creator killed at any point leaves nothing
 *    under the name (the fallback may leave its dot file).
 *  - The history (cb_info.history) is for display: an entry can be
 *    missing (its writer killed mid-entry, or recorded while the snapshot
 *    was read), never shown half-written or mixed with another one.
 *  - Counter stripes are exact across pid namespaces (containers sharing
 *    /dev/shm): a process holds an OFD lock (fcntl F_OFD_SETLK) on one byte
 *    per counter stripe its threads claimed, through one descriptor per
 *    circuit counted in that the library opens (close-on-exec) at the
 *    first claim and keeps until the process exits; the kernel drops the
 *    locks when the process dies, and only then may others take its
 *    stripes over. Each handle also keeps a descriptor until cb_close.
 *    Do not close descriptors you did not open (a close-everything loop
 *    after cb_open): another process could then take over stripes this
 *    one still writes, and counts would be lost. The library keeps at most
 *    128 lock descriptors and never takes one when half of RLIMIT_NOFILE
 *    is in use; beyond that, or without /proc (needed to reopen the file,
 *    also in fork children) and the circuit's name, a process's threads
 *    count in one shared stripe with atomic adds: exact, slower under
 *    contention. A removed circuit's memory is freed once every process
 *    that counted in it has exited.
 */
#ifndef CBREAKER_H
#define CBREAKER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && !defined(CB_NO_EXPORT_ATTRIBUTE)
#define CB_EXPORT __attribute__((visibility("default")))
#else
#define CB_EXPORT
#endif

#define CB_VERSION_MAJOR 0
#define CB_VERSION_MINOR 3
#define CB_VERSION_PATCH 0
#define CB_VERSION_STRING "0.3.0"

/** Longest circuit name, in characters (letters, digits, '.', '_', '-'). */
#define CB_NAME_MAX 200
/** Number of transitions the segment remembers (cb_info.history). */
#define CB_HISTORY_MAX 32

/* Defaults applied to zero fields of cb_config. */
#define CB_DEFAULT_FAILURE_THRESHOLD 3u
#define CB_DEFAULT_RESET_TIMEOUT_MS 60000u
#define CB_DEFAULT_MODE 0600u
#define CB_DEFAULT_MINIMUM_CALLS 10u
#define CB_DEFAULT_WINDOW_MS 10000u
#define CB_DEFAULT_SLOW_CALL_RATE 100u
#define CB_DEFAULT_MAX_RESET_TIMEOUT_MS 300000u
/* Limits of the policy fields (cb_resolve_config: beyond them, -EINVAL). */
#define CB_WINDOW_MS_MIN 10u          /* ten buckets of at least 1 ms */
#define CB_WINDOW_MS_MAX 3600000u     /* one hour */
#define CB_SLOW_CALL_MS_MAX 86400000u /* one day */
#define CB_BACKOFF_MULTIPLIER_MAX 10000u /* percent: x100 per failed probe */
/* Failed probes in a row that grow the open period (then it stays). */
#define CB_BACKOFF_STEPS_MAX 15u

/* The library's own error codes, far below any errno value. */
#define CB_ERROR_BASE (-30600)
enum {
    CB_ENAME = CB_ERROR_BASE - 1,     /* name empty, too long or bad char   */
    CB_ENOTCB = CB_ERROR_BASE - 2,    /* object is not a cbreaker segment   */
    CB_EVERSION = CB_ERROR_BASE - 3,  /* segment of another layout version  */
    CB_ESIZE = CB_ERROR_BASE - 4,     /* segment truncated or grown         */
    CB_ELAYOUT = CB_ERROR_BASE - 5,   /* segment shaped by other constants  */
    CB_EBUSY = CB_ERROR_BASE - 6,     /* segment not initialized yet        */
    CB_ECORRUPT = CB_ERROR_BASE - 7,  /* state word holds an impossible value */
    CB_EOWNER = CB_ERROR_BASE - 8,    /* segment owned by another user or
                                         writable by others: not trusted  */
    CB_EMODE = CB_ERROR_BASE - 9,     /* refused in an operator mode: set
                                         CB_MODE_NORMAL first            */
    CB_ELAST = CB_EMODE
};

/* Non-negative results of cb_open(). */
enum {
    CB_OPENED = 0,         /* attached to a circuit with the same config     */
    CB_CREATED = 1,        /* created and initialized the circuit            */
    CB_CONFIG_UPDATED = 2  /* attached; the stored config was replaced by cfg */
};

typedef struct cb_breaker cb_breaker; /* opaque per-process handle */

typedef enum cb_state { CB_CLOSED = 0, CB_OPEN = 1, CB_HALF_OPEN = 2 } cb_state;

/*
 * What a circuit does; zero fields take the defaults, and with every
 * policy field zero a circuit behaves exactly as cbreaker 0.2 did.
 *
 * Failure rate (off unless failure_rate is set). Calls reported with a
 * verdict (cb_success, cb_failure) while CLOSED count in a window of
 * window_ms split into 10 buckets of window_ms / 10, in the bucket of the
 * moment they are reported. Not counted: releases (no verdict), late
 * reports (their state has gone), probes (a probe's own report decides
 * HALF_OPEN), and anything while DISABLED. After each counted report the
 * circuit trips (reason CB_REASON_FAILURE_RATE) when, over the buckets of
 * the last window_ms, calls >= minimum_calls and failures x 100 >=
 * failure_rate x calls. failure_threshold keeps working beside it: the
 * rule that fires first trips. The window restarts whenever the circuit
 * closes (probe success, cb_reset, CB_MODE_NORMAL): calls counted before
 * never count again. A change of window_ms applies to the counts already
 * kept (counts falling in a bucket of another width may be dropped). The
 * window spans 10 x (window_ms / 10) ms: a window_ms that is not a
 * multiple of 10 is used rounded down to one. Each multiplication of the
 * open period (backoff) adds at least 1 ms.
 *
 * Slow calls (off unless slow_call_ms is set). A call is slow when the
 * time from its cb_acquire to its report, on the handle's clock (the one
 * cb_set_clock replaces; by default the coarse clock, so a few ms of
 * resolution), is > slow_call_ms. The circuit trips (reason
 * CB_REASON_SLOW_CALL_RATE) when slow calls x 100 >= slow_call_rate x
 * calls over the same window, with the same minimum_calls. A slow failure
 * counts as both. Checked after the failure-rate rule.
 *
 * Backoff (off unless backoff_multiplier_pct > 100). Each failed probe
 * multiplies the open period by backoff_multiplier_pct / 100, up to
 * max_reset_timeout_ms (0: 300000; never below reset_timeout_ms), for at
 * most CB_BACKOFF_STEPS_MAX failed probes in a row. The step is kept in
 * the state word, so every process computes the same period. A
 * successful probe, cb_reset and the circuit closing return it to
 * reset_timeout_ms; a trip from CLOSED starts at reset_timeout_ms;
 * cb_trip keeps the step of an OPEN or HALF_OPEN circuit.
 */
typedef struct cb_config {
    uint32_t failure_threshold; /* 0: 3 */
    uint32_t reset_timeout_ms;  /* 0: 60000 */
    uint32_t probe_timeout_ms;  /* 0: reset_timeout_ms */
    uint32_t mode;              /* permission bits of a new segment; 0: 0600 */
    uint32_t failure_rate;      /* percent, 1-100; 0: rule off */
    uint32_t minimum_calls;     /* calls in the window before a rate rule
                                   trips; 0: 10 */
    uint32_t window_ms;         /* CB_WINDOW_MS_MIN..MAX; 0: 10000 */
    uint32_t slow_call_ms;      /* up to CB_SLOW_CALL_MS_MAX; 0: rule off */
    uint32_t slow_call_rate;    /* percent, 1-100; 0: 100 */
    uint32_t backoff_multiplier_pct; /* 101..CB_BACKOFF_MULTIPLIER_MAX;
                                        0 or 100: off */
    uint32_t max_reset_timeout_ms;   /* cap of the open period; 0: 300000 */
    uint32_t flags;             /* CB_OPEN_* bits; 0: none */
} cb_config;

/* cb_config.flags for cb_open(): also trust an existing segment owned by
 * another user when its group is the caller's effective group or one of
 * its supplementary groups (still never one writable by others). For
 * cooperating users of one group; the creator makes the segment's group
 * that group (its egid when it creates, or chgrp) and gives it mode 0660. */
#define CB_OPEN_TRUST_GROUP 1u
/* cb_config.flags for cb_open(): create the circuit with cfg if it does
 * not exist, but attach to an existing one without replacing its stored
 * config (CB_OPENED even when it differs). */
#define CB_OPEN_KEEP_CONFIG 2u

/* Filled in by cb_acquire(); a report consumes it. */
typedef struct cb_permit {
    uint64_t opaque[2];
} cb_permit;

typedef enum cb_verdict {
    CB_REJECTED = 0, /* do not call the dependency; the permit is empty */
    CB_ALLOWED = 1,  /* call it, then report the outcome */
    CB_PROBE = 2     /* call it: this process holds the one HALF_OPEN probe */
} cb_verdict;

/* Why a transition happened. */
typedef enum cb_reason {
    CB_REASON_THRESHOLD = 0,      /* CLOSED -> OPEN: threshold reached       */
    CB_REASON_TIMEOUT = 1,        /* OPEN -> HALF_OPEN: reset_timeout passed */
    CB_REASON_PROBE_SUCCEEDED = 2, /* HALF_OPEN -> CLOSED                    */
    CB_REASON_PROBE_FAILED = 3,   /* HALF_OPEN -> OPEN                       */
    CB_REASON_LEASE_EXPIRED = 4,  /* HALF_OPEN -> HALF_OPEN: new probe taken */
    CB_REASON_RESET = 5,          /* any -> CLOSED by cb_reset()             */
    CB_REASON_TRIP = 6,           /* any -> OPEN by cb_trip()                */
    CB_REASON_FAILURE_RATE = 7,   /* CLOSED -> OPEN: failure rate reached    */
    CB_REASON_SLOW_CALL_RATE = 8, /* CLOSED -> OPEN: slow-call rate reached  */
    CB_REASON_MODE = 9            /* an operator mode set by cb_set_mode()   */
} cb_reason;

/*
 * Operator modes: host-wide, kept in the state word until changed with
 * cb_set_mode(), seen by every process on its next call.
 *   NORMAL        the state machine above.
 *   DISABLED      every call allowed; nothing counts towards a trip (the
 *                 counters still count; no window, no failure count).
 *                 cb_get_state() says CB_CLOSED.
 *   FORCED_OPEN   every call rejected, no probe, whatever the timeouts.
 *                 cb_get_state() says CB_OPEN; ms_until_probe is 0.
 *   METRICS_ONLY  every call allowed (it never rejects); the failure
 *                 count, the window and the counters are kept as in
 *                 CLOSED, and where a rule would trip, a "would open"
 *                 event (cb_transition.would_open) is announced once per
 *                 crossing: once when the failure count reaches the
 *                 threshold (again only after a success cleared it), once
 *                 when a rate rule becomes true (again only after it was
 *                 found false). The state never changes: cb_get_state()
 *                 says CB_CLOSED. Would-open events are not in the history.
 * Entering a mode and leaving it are each one transition (reason
 * CB_REASON_MODE): permits issued before are late. Leaving a mode
 * (CB_MODE_NORMAL) resumes from CLOSED with a zero count and a new window.
 * cb_reset() and cb_trip() are refused (CB_EMODE) while a mode is set, so
 * an ops script cannot undo an operator's decision by accident.
 */
typedef enum cb_mode {
    CB_MODE_NORMAL = 0,
    CB_MODE_DISABLED = 1,
    CB_MODE_FORCED_OPEN = 2,
    CB_MODE_METRICS_ONLY = 3
} cb_mode;

/* One transition, as handed to a listener and kept in the segment. */
typedef struct cb_transition {
    cb_state from;
    cb_state to;
    cb_reason reason;
    uint32_t failures;  /* consecutive failures that caused it, else 0 */
    int32_t pid;        /* process whose compare-and-swap made it */
    uint64_t wall_ms;   /* CLOCK_REALTIME, ms since the epoch (display only) */
    uint32_t generation; /* the generation it installed (cb_info.generation
                            until the next change of the word) */
    cb_mode mode;        /* the operator mode in force after it */
    uint32_t would_open; /* 1: METRICS_ONLY announces a trip it did not make
                            (from CLOSED, to OPEN, reason = the rule); the
                            state did not change */
} cb_transition;

/* Counters summed over all processes since the segment was created. */
typedef struct cb_counters {
    uint64_t allowed;   /* acquires that returned CB_ALLOWED or CB_PROBE */
    uint64_t rejected;  /* acquires that returned CB_REJECTED */
    uint64_t successes; /* success reports applied to the current state */
    uint64_t failures;  /* failure reports applied to the current state */
    uint64_t released;  /* permits released without a verdict */
    uint64_t late;      /* reports from an earlier state, ignored */
    uint64_t trips;     /* transitions into OPEN, for any reason */
    uint64_t probes;    /* CB_PROBE verdicts */
} cb_counters;

/* A snapshot of everything the segment holds (cb_get_info). */
typedef struct cb_info {
    char name[CB_NAME_MAX + 1];
    cb_state state;
    uint32_t failures;          /* consecutive failures (CLOSED), else 0 */
    cb_config config;           /* as stored; zero fields already resolved */
    uint64_t ms_until_probe;    /* OPEN: ms until a probe is allowed, else 0 */
    int32_t probe_pid;          /* HALF_OPEN: pid of the probe holder, else 0 */
    uint64_t probe_lease_ms;    /* HALF_OPEN: ms left on its lease, else 0 */
    cb_mode mode;               /* operator mode (cb_set_mode) */
    uint64_t open_timeout_ms;   /* the open period now: reset_timeout_ms
                                   grown by backoff_step failed probes */
    uint32_t backoff_step;      /* OPEN, HALF_OPEN: failed probes in a row
                                   that grew the open period (it stops
                                   growing at the cap) */
    /* The window now (see cb_config): CLOSED and METRICS_ONLY, the one
     * counting; OPEN, HALF_OPEN, FORCED_OPEN, the one last in force (what
     * tripped it), as it ages; DISABLED, 0. */
    uint64_t window_calls;
    uint64_t window_failures;
    uint64_t window_slow_calls;
    uint32_t generation;        /* bumped by every transition, probe grant
                                   and probe release (22 bits, wraps) */
    uint32_t layout_version;
    uint64_t segment_size;      /* bytes */
    cb_counters counters;
    uint32_t history_len;               /* valid entries in history */
    cb_transition history[CB_HISTORY_MAX]; /* newest first */
} cb_info;

/* A transition made by this process, as passed to a listener. */
typedef struct cb_event {
    const char *circuit;
    cb_transition transition;
    uint64_t mono_ms; /* CLOCK_MONOTONIC_COARSE (or the cb_set_clock clock) */
} cb_event;

typedef void (*cb_listener)(const cb_event *event, void *ctx);

/* What a function run by cb_call() says about its own outcome. */
typedef enum cb_outcome {
    CB_SUCCESS = 0,  /* the dependency answered */
    CB_FAILURE = 1,  /* the dependency failed: counts towards the threshold */
    CB_NO_VERDICT = 2 /* cancelled or the caller's fault: release the permit */
} cb_outcome;

typedef cb_outcome (*cb_call_fn)(void *arg);

/**
 * Open circuit NAME, creating /cbreaker.NAME if it does not exist.
 * cfg: NULL attaches with whatever config the circuit has (defaults when
 * it is created here). Non-NULL: zero fields take the defaults; if the
 * circuit exists with a different config (any field but mode and flags), the stored config
 * is replaced and CB_CONFIG_UPDATED is returned, so a restarted server's
 * new config takes effect (unless cfg->flags has CB_OPEN_KEEP_CONFIG).
 * The replacement is atomic: processes opening with configs A and B at
 * once leave exactly A or B stored (the one published last), never a mix,
 * and a process killed while replacing it leaves the config as it was.
 * Each is told CB_CONFIG_UPDATED if its config replaced a different one,
 * even if another replaced it again a moment later. cfg->mode applies
 * only to a segment created here. Many processes may open one new name at
 * once: all get the same circuit, exactly one gets CB_CREATED, and that
 * one's cfg->mode is the segment's mode (whatever the umask). Nothing is
 * ever visible under the name before it is a complete segment. An
 * existing segment must be trusted (see the caveats): owned by the
 * caller's euid or root, or with cfg->flags CB_OPEN_TRUST_GROUP by a user
 * of one of the caller's groups, and not writable by others. Safe to call
 * before fork(); children use the inherited handle. Not a cancellation
 * point (cancellation is deferred until it returns).
 *
 * Returns CB_OPENED, CB_CREATED or CB_CONFIG_UPDATED and sets *out; or
 *   -EINVAL      out or name NULL, cfg->mode has bits beyond 0777 or
 *                lets others write (0002: every opener would refuse it),
 *                cfg->flags has bits this library does not know, or a
 *                policy field is outside its range (see cb_config)
 *   CB_ENAME     name empty, longer than CB_NAME_MAX or with a bad char
 *   -EACCES      no permission to open the segment read-write
 *   CB_EOWNER    segment owned by another user than the caller or root
 *                (and not trusted through CB_OPEN_TRUST_GROUP), or
 *                writable by others; nothing in it was read or changed
 *   CB_ENOTCB    /cbreaker.NAME is not a cbreaker segment
 *   CB_EVERSION  segment made by another layout version of the library
 *   CB_ESIZE     segment size is not what its header says (truncated/grown)
 *   CB_ELAYOUT   segment shaped by other constants (stripes, ring, word)
 *   CB_EBUSY     the object exists but is not ready: an older library
 *                version is creating it, or left it half-made (no wait;
 *                cb_unlink removes it)
 *   -EAGAIN      the name kept being removed between our attempts
 *   -ENOMEM, -EMFILE, -ENOSPC, ...  from open, linkat, ftruncate or mmap
 */
CB_EXPORT int cb_open(const char *name, const cb_config *cfg, cb_breaker **out);

/* cb_set_config(): a policy field set to this turns the policy off (or
 * back to its default), as 0 does in cb_open(); 0 keeps the stored value. */
#define CB_CONFIG_OFF UINT32_MAX

/**
 * Replace the stored config (threshold, timeouts and policies) with cfg's
 * non-zero fields, keeping the stored value of each zero field (a field
 * CB_CONFIG_OFF: its default, which turns a policy off), as one atomic
 * update: it applies to the config in force when it lands (it is retried if another
 * update lands first), so it never resets a field it was not given and
 * never leaves a mix. One exception keeps "probe timeout 0: the reset
 * timeout" meaning the same: with probe_timeout_ms 0 and a new
 * reset_timeout_ms, a stored probe timeout equal to the stored reset
 * timeout follows the new reset timeout. cfg->mode and cfg->flags change
 * nothing (a segment's mode is set when it is created).
 *
 * Returns 1 if the stored config changed, 0 if it already held those
 * values, or -EINVAL (b or cfg NULL, cfg->mode has bits beyond 0777,
 * cfg->flags has unknown bits, or a policy field outside its range: see
 * cb_config; checked on the config that would result).
 */
CB_EXPORT int cb_set_config(cb_breaker *b, const cb_config *cfg);

/**
 * Like cb_open(cfg NULL) but never creates: -ENOENT if NAME does not
 * exist. The same owner check (the default policy: CB_EOWNER for a
 * segment of another user than the caller or root, or writable by
 * others). Other errors as cb_open(). For tools that control circuits.
 */
CB_EXPORT int cb_attach(const char *name, cb_breaker **out);

/**
 * A circuit of this process alone, in private memory: after fork() each
 * child has its own copy, as with a per-worker breaker library. For
 * comparisons (demo, benchmark); name only labels its events. Returns
 * CB_CREATED, or -EINVAL (out NULL, bad mode), CB_ENAME, -ENOMEM.
 */
CB_EXPORT int cb_open_private(const char *name, const cb_config *cfg, cb_breaker **out);

/** Unmap and free the handle. The circuit stays. NULL is ignored. */
CB_EXPORT void cb_close(cb_breaker *b);

/**
 * Remove /cbreaker.NAME. Processes that have it open keep using it; new
 * opens create a fresh circuit. No owner check: it only removes a name,
 * which the sticky /dev/shm lets only the object's owner or root do (so
 * root removes a squatter's segment with it). Returns 0, CB_ENAME,
 * -ENOENT, -EACCES, -EPERM.
 */
CB_EXPORT int cb_unlink(const char *name);

/**
 * Ask to call the dependency. Fills *permit (always; empty on rejection).
 * Healthy path (CLOSED): one load of the state word, two of the config
 * in force and one add to this process's counter stripe; no shared
 * write, and no clock read unless slow_call_ms is set. With a rate policy
 * on, a report also reads the clock and adds to the stripe's bucket; it
 * sums the window (every stripe in use) only while the window holds a
 * failure or a slow call.
 * b or permit NULL: returns CB_REJECTED, not counted.
 */
CB_EXPORT cb_verdict cb_acquire(cb_breaker *b, cb_permit *permit);

/**
 * Report the outcome of a call admitted by cb_acquire(). A report
 * consumes the permit (*permit is emptied), so a second report of it is
 * ignored and never counts twice. Reports of empty permits (rejections,
 * already reported), NULL arguments or permits from another circuit are
 * ignored and not counted. Reports (releases too) from an earlier state
 * are counted as late and change nothing. Any thread or process may
 * report a permit, not only the one that acquired it. (The permit is not
 * const, unlike the first draft of this API: reporting changes it.)
 */
CB_EXPORT void cb_success(cb_breaker *b, cb_permit *permit);
CB_EXPORT void cb_failure(cb_breaker *b, cb_permit *permit);
/** No verdict (cancelled, client error): a probe's slot is freed at once. */
CB_EXPORT void cb_release(cb_breaker *b, cb_permit *permit);

/**
 * Run fn(arg) through the breaker. Returns CB_REJECTED without calling fn
 * when the circuit rejects; otherwise calls fn, records the outcome it
 * returns, and returns CB_ALLOWED or CB_PROBE. fn's own result travels
 * through arg, so it can never be mistaken for a rejection.
 */
CB_EXPORT cb_verdict cb_call(cb_breaker *b, cb_call_fn fn, void *arg);

/** Current state (one load; no transition is made). CB_CLOSED if b NULL. */
CB_EXPORT cb_state cb_get_state(cb_breaker *b);

/**
 * Snapshot of the circuit into *out. Returns 0, -EINVAL (NULL argument),
 * or CB_ECORRUPT when the state word holds an impossible state (the rest
 * of *out is still filled; cb_reset() repairs it).
 */
CB_EXPORT int cb_get_info(cb_breaker *b, cb_info *out);

/**
 * Snapshot circuit NAME without a handle: a user with read permission
 * only can inspect it. Never creates, repairs or waits, and never maps the
 * object: it is read with pread into a private copy, so an object that
 * its owner shrinks meanwhile gives CB_ESIZE, never SIGBUS. The copy is
 * not atomic with writers: the state (and everything derived from it) is
 * one value of the state word, read last; counters and history may be a
 * moment older, and a transition recorded during the copy may be missing
 * from the history, never shown half-written. Returns 0 (or CB_ECORRUPT,
 * *out still filled), or
 *   -EINVAL (out NULL), CB_ENAME, -ENOENT, -EACCES, -ENOMEM,
 *   CB_ENOTCB, CB_EVERSION, CB_ESIZE, CB_ELAYOUT as cb_open(),
 *   CB_ESIZE     also: the object shrank while it was read
 *   CB_EBUSY     the segment is not initialized (see cb_open)
 * No owner check (it only reads): a segment cb_open would refuse with
 * CB_EOWNER is shown too.
 */
CB_EXPORT int cb_inspect(const char *name, cb_info *out);

/*
 * Called by cb_list() for one object: info is the snapshot when err is 0
 * or CB_ECORRUPT, NULL otherwise (err says why the object is not a valid
 * circuit, as cb_inspect() would). Return non-zero to stop the listing.
 */
typedef int (*cb_list_fn)(const char *name, const cb_info *info, int err, void *ctx);

/**
 * Call fn for every /dev/shm/cbreaker.* object on the host, in name
 * order, valid or not: a broken object is reported, never skipped, and
 * does not stop the listing. Each object is read as cb_inspect() reads
 * it, so no object, whoever owns it, can kill the caller with SIGBUS.
 * Returns 0, the non-zero value fn returned,
 * -EINVAL (fn NULL), -ENOMEM, or -errno if /dev/shm cannot be read.
 */
CB_EXPORT int cb_list(cb_list_fn fn, void *ctx);

/**
 * Operator controls. cb_reset: force CLOSED, count 0, probe slot freed.
 * cb_trip: force OPEN now, for a fresh open period (reset_timeout, or the
 * backoff period of an OPEN or HALF_OPEN circuit's step). Calls in flight
 * become late. Each is one transition, even from the state it forces.
 * Returns the state it replaced (CB_CLOSED, CB_OPEN or CB_HALF_OPEN, all
 * >= 0; 3 if the word was corrupt), -EINVAL (b NULL), or CB_EMODE when an
 * operator mode is set (nothing changed; see cb_mode).
 */
CB_EXPORT int cb_reset(cb_breaker *b);
CB_EXPORT int cb_trip(cb_breaker *b);

/**
 * Set the circuit's operator mode (see cb_mode), host-wide. Setting the
 * mode in force changes nothing (no transition). Returns the mode it
 * replaced (>= 0), or -EINVAL (b NULL, mode not a cb_mode).
 */
CB_EXPORT int cb_set_mode(cb_breaker *b, cb_mode mode);

/** "normal", "disabled", "forced_open", "metrics_only"; "unknown" else. */
CB_EXPORT const char *cb_mode_name(cb_mode m);

/**
 * Call fn for every transition this handle's process makes (each is made
 * by exactly one process: the one whose compare-and-swap won). Called
 * synchronously, after the transition, in the calling thread. fn NULL
 * removes the listener. Set it before sharing the handle between threads.
 */
CB_EXPORT void cb_set_listener(cb_breaker *b, cb_listener fn, void *ctx);

/**
 * A ready listener: writes one key=value line per transition to stderr in
 * a single write(2), e.g.
 *   event=circuit_breaker_opened circuit=redis from=CLOSED to=OPEN
 *   reason=threshold_reached failures=3 pid=1234 wall_ms=...
 * ctx is unused.
 */
CB_EXPORT void cb_log_listener(const cb_event *event, void *ctx);

/**
 * Write event as one key=value line (no newline) into buf, as
 * cb_log_listener writes it:
 *   event=circuit_breaker_opened circuit=redis from=CLOSED to=OPEN
 *   reason=threshold_reached failures=3 pid=1234 wall_ms=...
 * Returns the line's length as snprintf does (len or more: buf holds a
 * truncated line, always NUL-terminated), or -EINVAL (event or buf NULL,
 * len 0).
 */
CB_EXPORT int cb_format_event(const cb_event *event, char *buf, size_t len);

/** Events a cb_record holds between two polls. */
#define CB_RECORD_MAX 8

/*
 * Transitions kept for a caller that polls instead of being called back
 * (a LuaJIT FFI caller: a C -> Lua callback would abort its traces).
 * Owned by the caller, zeroed before use; the caller takes events[0 ..
 * len-1] (oldest first) and sets len and dropped back to 0. event.circuit
 * points into the handle: valid until cb_close().
 */
typedef struct cb_record {
    uint32_t len;     /* events held in events[] */
    uint32_t dropped; /* events that came while events[] was full */
    cb_event events[CB_RECORD_MAX];
} cb_record;

/**
 * A ready listener that copies each event into the cb_record ctx points
 * to (nothing else: no I/O, no allocation). Install it with
 * cb_set_listener(b, cb_record_listener, &record) and poll record.len
 * after each call that can make a transition (cb_acquire, the reports,
 * cb_reset, cb_trip). The record is not locked: use one per thread.
 * event or ctx NULL: ignored.
 */
CB_EXPORT void cb_record_listener(const cb_event *event, void *ctx);

/**
 * The event named after the state t enters, as the reference logs it:
 * "circuit_breaker_opened", "circuit_breaker_half_open",
 * "circuit_breaker_closed"; "circuit_breaker_would_open" for a would-open
 * announcement (t->would_open); "circuit_breaker_unknown" for t NULL or
 * an invalid state.
 */
CB_EXPORT const char *cb_event_name(const cb_transition *t);
/** "CLOSED", "OPEN", "HALF_OPEN"; "INVALID" for anything else. */
CB_EXPORT const char *cb_state_name(cb_state s);
/**
 * "threshold_reached", "reset_timeout_elapsed", "probe_succeeded",
 * "probe_failed", "probe_lease_expired", "reset", "trip", "failure_rate",
 * "slow_call_rate", "mode"; "unknown" else.
 */
CB_EXPORT const char *cb_reason_name(cb_reason r);

/**
 * Replace the handle's monotonic clock (ms) with now_ms(ctx), for tests
 * and simulations; NULL restores the default. Every process using the
 * circuit must see the same clock (put ctx in shared memory). Set it
 * before sharing the handle.
 */
CB_EXPORT void cb_set_clock(cb_breaker *b, uint64_t (*now_ms)(void *ctx), void *ctx);

/** Message for a cb_* error code or a negated errno. Never NULL. */
CB_EXPORT const char *cb_strerror(int err);

/** The library's version string, e.g. "0.1.0". */
CB_EXPORT const char *cb_version(void);

#ifdef __cplusplus
}
#endif

#endif /* CBREAKER_H */
