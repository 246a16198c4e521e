/*
 * test-config.c - the stored config under concurrent updates, and the
 * calls that change it (cb_open with a config, CB_OPEN_KEEP_CONFIG,
 * cb_set_config).
 *
 *   mix       writers open one circuit with configs A and B at the same
 *             instant (started on a barrier), round after round, while an
 *             independent observer process reads cb_get_info in a loop:
 *             every snapshot, and the config after every round, is exactly
 *             one of the configs written, never a mix of them; with two
 *             writers, the number told CB_CONFIG_UPDATED matches the
 *             changes seen.
 *   partial   cb_set_config updates of one field race with full updates of
 *             A and B: no snapshot ever shows a field reset to its default
 *             or a mix of A and B, only A or B with the partial updates'
 *             fields.
 *   killed    writers updating in a loop are SIGKILLed at random moments:
 *             the config in force is always one update's, and the next
 *             cb_open with a config replaces it. White box: updates killed
 *             between writing a slot and publishing it, in every slot at
 *             once, wedge nothing and change nothing; a damaged slot in
 *             force (a hostile writer) is seen and healed by the next
 *             cb_open with a config.
 *   api       cb_set_config: 1 / 0, zero fields kept, a probe timeout that
 *             followed the reset timeout follows on, -EINVAL for bad
 *             arguments, the new values drive the state machine;
 *             CB_OPEN_KEEP_CONFIG creates with cfg and keeps an existing
 *             config; unknown flag bits are -EINVAL and create nothing.
 *
 * White box: includes src/config.h and src/handle.h to read the slots.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cbreaker.h"
#include "config.h"
#include "handle.h"
#include "testlib.h"

#define MAX_WRITERS 8
#define MIX_ROUNDS 3000
#define DEADLINE_S 100

static const cb_config config_a = {.failure_threshold = 5, .reset_timeout_ms = 1000, .probe_timeout_ms = 700};
static const cb_config config_b = {.failure_threshold = 9, .reset_timeout_ms = 3000, .probe_timeout_ms = 200};

static int same_timeouts(const cb_config *x, const cb_config *y)
{
    return x->failure_threshold == y->failure_threshold && x->reset_timeout_ms == y->reset_timeout_ms &&
           x->probe_timeout_ms == y->probe_timeout_ms;
}

static const char *show(const cb_config *c, char *buf, size_t len)
{
    snprintf(buf, len, "{%u, %u, %u}", (unsigned)c->failure_threshold, (unsigned)c->reset_timeout_ms,
             (unsigned)c->probe_timeout_ms);
    return buf;
}

/* ------------------------------------------------------------------ */
/* The observer: a process that reads snapshots until told to stop     */
/* ------------------------------------------------------------------ */

/* Configs a snapshot may show; anything else is a mix (or a reset). */
struct allowed {
    unsigned count;
    cb_config configs[8];
};

static int is_allowed(const struct allowed *a, const cb_config *c)
{
    for (unsigned i = 0; i < a->count; i++)
        if (same_timeouts(&a->configs[i], c))
            return 1;
    return 0;
}

struct observer {
    const char *name;
    struct allowed allowed;
    _Atomic int stop;
    _Atomic unsigned long reads;
    _Atomic unsigned long bad;
    cb_config first_bad;
};

static int observe(void *arg)
{
    struct observer *o = arg;
    alarm(DEADLINE_S);
    cb_breaker *b = NULL;
    int rc = cb_attach(o->name, &b);
    if (rc < 0) {
        fprintf(stderr, "observer: cb_attach: %s\n", cb_strerror(rc));
        return 1;
    }
    static cb_info info;
    while (!atomic_load(&o->stop)) {
        if (cb_get_info(b, &info) != 0)
            return 2;
        atomic_fetch_add(&o->reads, 1);
        if (!is_allowed(&o->allowed, &info.config) && atomic_fetch_add(&o->bad, 1) == 0)
            o->first_bad = info.config;
    }
    cb_close(b);
    return 0;
}

static void observer_check(struct observer *o, pid_t pid)
{
    atomic_store(&o->stop, 1);
    tl_wait_ok(pid);
    char buf[64];
    ck_assert_msg(atomic_load(&o->bad) == 0, "observer saw %lu mixed snapshots of %lu, first %s",
                  atomic_load(&o->bad), atomic_load(&o->reads), show(&o->first_bad, buf, sizeof buf));
    ck_assert_uint_gt(atomic_load(&o->reads), 0);
}

/* ------------------------------------------------------------------ */
/* Writers opening with A or B at once, round after round              */
/* ------------------------------------------------------------------ */

struct mix {
    const char *name;
    unsigned writers, rounds;
    struct tl_barrier *start, *end; /* one pair per round */
    int rc[MIX_ROUNDS][MAX_WRITERS];
};

static unsigned writer_index; /* private: each child keeps the value forked with */

static const cb_config *config_of(unsigned writer)
{
    return writer % 2 ? &config_b : &config_a;
}

static int mix_writer(void *arg)
{
    struct mix *m = arg;
    unsigned me = writer_index;
    alarm(DEADLINE_S);
    for (unsigned r = 0; r < m->rounds; r++) {
        tl_barrier_wait(&m->start[r]);
        cb_breaker *b = NULL;
        m->rc[r][me] = cb_open(m->name, config_of(me), &b);
        cb_close(b);
        tl_barrier_wait(&m->end[r]);
    }
    return 0;
}

static void run_mix(unsigned writers, unsigned rounds)
{
    struct mix *m = tl_shared(sizeof *m);
    m->name = tl_unique_name("config-mix");
    m->writers = writers;
    m->rounds = rounds;
    m->start = tl_shared(rounds * sizeof *m->start);
    m->end = tl_shared(rounds * sizeof *m->end);
    for (unsigned r = 0; r < rounds; r++)
        m->start[r].parties = m->end[r].parties = writers + 1;

    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(m->name, &config_a, &b), CB_CREATED);
    struct observer *o = tl_shared(sizeof *o);
    o->name = m->name;
    o->allowed.count = 2;
    o->allowed.configs[0] = config_a;
    o->allowed.configs[1] = config_b;
    pid_t observer = tl_spawn(observe, o);
    pid_t pids[MAX_WRITERS];
    for (unsigned i = 0; i < writers; i++) {
        writer_index = i;
        pids[i] = tl_spawn(mix_writer, m);
    }

    static cb_info info;
    char buf[64];
    unsigned mixed = 0, first_mixed = 0;
    for (unsigned r = 0; r < rounds; r++) {
        ck_assert_int_eq(cb_get_info(b, &info), 0);
        cb_config before = info.config;
        tl_barrier_wait(&m->start[r]);
        tl_barrier_wait(&m->end[r]);
        ck_assert_int_eq(cb_get_info(b, &info), 0);
        if (!same_timeouts(&info.config, &config_a) && !same_timeouts(&info.config, &config_b)) {
            if (mixed++ == 0)
                first_mixed = r;
            continue;
        }
        /* With two writers, every CB_CONFIG_UPDATED is one change of the
         * stored config: an even count leaves it as it was. */
        if (writers == 2) {
            unsigned updated = 0;
            for (unsigned i = 0; i < writers; i++) {
                ck_assert_msg(m->rc[r][i] == CB_OPENED || m->rc[r][i] == CB_CONFIG_UPDATED,
                              "round %u writer %u: cb_open = %d", r, i, m->rc[r][i]);
                updated += m->rc[r][i] == CB_CONFIG_UPDATED;
            }
            ck_assert_msg(updated % 2 == !same_timeouts(&before, &info.config),
                          "round %u: %u writers told CB_CONFIG_UPDATED, config %s -> %s", r, updated,
                          show(&before, buf, sizeof buf), show(&info.config, buf + 32, 32));
        }
    }
    for (unsigned i = 0; i < writers; i++)
        tl_wait_ok(pids[i]);
    observer_check(o, observer);
    ck_assert_msg(mixed == 0, "%u of %u rounds left a mix of A and B (first: round %u)", mixed, rounds,
                  first_mixed);
    cb_close(b);
    ck_assert_int_eq(cb_unlink(m->name), 0);
}

START_TEST(test_two_writers_never_mix)
{
    run_mix(2, MIX_ROUNDS);
}
END_TEST

START_TEST(test_four_writers_never_mix)
{
    run_mix(4, MIX_ROUNDS / 2);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Partial updates racing with full ones                               */
/* ------------------------------------------------------------------ */

#define PARTIAL_ROUNDS 2000
static const cb_config only_reset = {.reset_timeout_ms = 4000};
static const cb_config only_threshold = {.failure_threshold = 11};

struct partial {
    const char *name;
    struct tl_barrier start[PARTIAL_ROUNDS], end[PARTIAL_ROUNDS];
};

/* Writer 0 opens with A, 1 sets B whole, 2 and 3 set one field each. */
static int partial_writer(void *arg)
{
    struct partial *p = arg;
    unsigned me = writer_index;
    alarm(DEADLINE_S);
    cb_breaker *b = NULL;
    if (cb_attach(p->name, &b) < 0)
        return 1;
    static const cb_config *const sets[] = {NULL, &config_b, &only_reset, &only_threshold};
    for (unsigned r = 0; r < PARTIAL_ROUNDS; r++) {
        tl_barrier_wait(&p->start[r]);
        int rc;
        if (me == 0) {
            cb_breaker *o = NULL;
            rc = cb_open(p->name, &config_a, &o);
            cb_close(o);
            rc = rc == CB_OPENED || rc == CB_CONFIG_UPDATED ? 0 : rc;
        } else {
            rc = cb_set_config(b, sets[me]);
            rc = rc == 0 || rc == 1 ? 0 : rc;
        }
        if (rc) {
            fprintf(stderr, "writer %u round %u: %d (%s)\n", me, r, rc, cb_strerror(rc));
            return 2;
        }
        tl_barrier_wait(&p->end[r]);
    }
    cb_close(b);
    return 0;
}

START_TEST(test_partial_updates_keep_other_fields)
{
    struct partial *p = tl_shared(sizeof *p);
    p->name = tl_unique_name("config-partial");
    for (unsigned r = 0; r < PARTIAL_ROUNDS; r++)
        p->start[r].parties = p->end[r].parties = 5;
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(p->name, &config_a, &b), CB_CREATED);

    /* A or B, each with or without either partial update's field. */
    struct observer *o = tl_shared(sizeof *o);
    o->name = p->name;
    const cb_config *whole[] = {&config_a, &config_b};
    for (unsigned w = 0; w < 2; w++)
        for (unsigned mask = 0; mask < 4; mask++) {
            cb_config c = *whole[w];
            if (mask & 1)
                c.reset_timeout_ms = only_reset.reset_timeout_ms;
            if (mask & 2)
                c.failure_threshold = only_threshold.failure_threshold;
            o->allowed.configs[o->allowed.count++] = c;
        }
    pid_t observer = tl_spawn(observe, o);
    pid_t pids[4];
    for (unsigned i = 0; i < 4; i++) {
        writer_index = i;
        pids[i] = tl_spawn(partial_writer, p);
    }
    static cb_info info;
    char buf[64];
    unsigned seen_partial = 0;
    for (unsigned r = 0; r < PARTIAL_ROUNDS; r++) {
        tl_barrier_wait(&p->start[r]);
        tl_barrier_wait(&p->end[r]);
        ck_assert_int_eq(cb_get_info(b, &info), 0);
        ck_assert_msg(is_allowed(&o->allowed, &info.config), "round %u left %s", r,
                      show(&info.config, buf, sizeof buf));
        seen_partial += info.config.reset_timeout_ms == only_reset.reset_timeout_ms ||
                        info.config.failure_threshold == only_threshold.failure_threshold;
    }
    for (unsigned i = 0; i < 4; i++)
        tl_wait_ok(pids[i]);
    observer_check(o, observer);
    ck_assert_uint_gt(seen_partial, 0); /* the partial updates did land */
    cb_close(b);
    ck_assert_int_eq(cb_unlink(p->name), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Writers killed mid-update                                           */
/* ------------------------------------------------------------------ */

#define KILL_ROUNDS 150

static const cb_config config_c = {.failure_threshold = 2, .reset_timeout_ms = 500, .probe_timeout_ms = 250};

struct churn {
    const char *name;
    _Atomic unsigned long updates;
};

/* Update for ever, by both ways, until killed. */
static int churn(void *arg)
{
    struct churn *c = arg;
    alarm(DEADLINE_S);
    cb_breaker *b = NULL;
    if (cb_attach(c->name, &b) < 0)
        return 1;
    for (unsigned i = 0;; i++) {
        atomic_fetch_add(&c->updates, 1);
        if (i % 2) {
            cb_breaker *o = NULL;
            if (cb_open(c->name, i % 4 == 1 ? &config_a : &config_b, &o) < 0)
                return 2;
            cb_close(o);
        } else if (cb_set_config(b, i % 4 == 0 ? &config_b : &config_a) < 0) {
            return 3;
        }
    }
}

/* The test's own reading of the layout: the slot config_current names,
 * and whether all its words carry that ticket (one update's config). */
static int read_in_force(const struct cb_segment *seg, cb_config *out)
{
    uint64_t current = atomic_load(&seg->config_current);
    const struct cb_config_slot *slot = &seg->config[current % CB_CONFIG_SLOTS];
    uint64_t w[CB_CF_COUNT];
    int whole = 1;
    for (unsigned f = 0; f < CB_CF_COUNT; f++) {
        w[f] = atomic_load(&slot->word[f]);
        whole &= (uint32_t)(w[f] >> 32) == (uint32_t)current;
    }
    *out = (cb_config){.failure_threshold = (uint32_t)w[CB_CF_THRESHOLD],
                       .reset_timeout_ms = (uint32_t)w[CB_CF_RESET_TIMEOUT],
                       .probe_timeout_ms = (uint32_t)w[CB_CF_PROBE_TIMEOUT]};
    return whole;
}

/* The config in force is one update's, whole, and one of these. */
static void assert_in_force(cb_breaker *b, const cb_config *x, const cb_config *y, const cb_config *z,
                            const char *when)
{
    cb_config c;
    char buf[64];
    ck_assert_msg(read_in_force(b->seg, &c) == 1, "%s: slot in force damaged: %s", when, show(&c, buf, sizeof buf));
    ck_assert_msg(same_timeouts(&c, x) || (y && same_timeouts(&c, y)) || (z && same_timeouts(&c, z)),
                  "%s: %s in force", when,
                  show(&c, buf, sizeof buf));
    /* The hot path reads the same. */
    ck_assert_uint_eq(cb_config_value(b->seg, CB_CF_THRESHOLD), c.failure_threshold);
    ck_assert_uint_eq(cb_config_value(b->seg, CB_CF_RESET_TIMEOUT), c.reset_timeout_ms);
    ck_assert_uint_eq(cb_config_value(b->seg, CB_CF_PROBE_TIMEOUT), c.probe_timeout_ms);
}

START_TEST(test_killed_writers_leave_one_config)
{
    struct churn *c = tl_shared(sizeof *c);
    c->name = tl_unique_name("config-killed");
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(c->name, &config_a, &b), CB_CREATED);
    unsigned seed = (unsigned)getpid();
    char when[64];
    unsigned landed = 0; /* rounds where the killed writers' updates showed */
    for (unsigned r = 0; r < KILL_ROUNDS; r++) {
        unsigned long begun = atomic_load(&c->updates);
        unsigned long target = (unsigned long)(rand_r(&seed) % 64);
        pid_t pids[2];
        for (unsigned i = 0; i < 2; i++)
            pids[i] = tl_spawn(churn, c);
        /* Kill after a random number of updates begun (0: perhaps before
         * the first), not after a time: under valgrind a child takes
         * milliseconds to start. Where in an update it lands is chance. */
        time_t give_up = time(NULL) + DEADLINE_S;
        while (atomic_load(&c->updates) - begun < target) {
            ck_assert_msg(time(NULL) < give_up, "round %u: %lu of %lu updates", r,
                          atomic_load(&c->updates) - begun, target);
            sched_yield();
        }
        for (unsigned i = 0; i < 2; i++) {
            ck_assert_int_eq(kill(pids[i], SIGKILL), 0);
            int status;
            ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
            ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "churn %u: status 0x%x", i,
                          status);
        }
        snprintf(when, sizeof when, "after kill %u", r);
        /* A or B; C if they were killed before their first update. */
        assert_in_force(b, &config_a, &config_b, &config_c, when);
        /* The next update lands, whole. */
        cb_config before;
        read_in_force(b->seg, &before);
        landed += !same_timeouts(&before, &config_c);
        cb_breaker *o = NULL;
        ck_assert_int_eq(cb_open(c->name, &config_c, &o),
                         same_timeouts(&before, &config_c) ? CB_OPENED : CB_CONFIG_UPDATED);
        cb_close(o);
        snprintf(when, sizeof when, "update after kill %u", r);
        assert_in_force(b, &config_c, NULL, NULL, when);
    }
    ck_assert_uint_gt(atomic_load(&c->updates), KILL_ROUNDS);
    ck_assert_uint_gt(landed, 0);
    cb_close(b);
    ck_assert_int_eq(cb_unlink(c->name), 0);
}
END_TEST

/* What an update killed after claiming its slot and writing (some of)
 * its words, before publishing, leaves behind: a ticket taken, a claim
 * based on the config in force, and words tagged with the ticket. */
static void die_mid_update(struct cb_segment *seg, unsigned words)
{
    uint64_t t = atomic_fetch_add(&seg->config_tickets, 1) + 1;
    uint64_t current = atomic_load(&seg->config_current);
    if (t % CB_CONFIG_SLOTS == current % CB_CONFIG_SLOTS)
        return; /* a real update never claims the slot in force */
    atomic_store(&seg->config[t % CB_CONFIG_SLOTS].claim, (uint64_t)(uint32_t)t << 32 | (uint32_t)current);
    for (unsigned f = 0; f < words; f++)
        atomic_store(&seg->config[t % CB_CONFIG_SLOTS].word[f], (uint64_t)(uint32_t)t << 32 | (4200 + f));
}

START_TEST(test_dead_writers_in_every_slot)
{
    const char *name = tl_unique_name("config-dead");
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(name, &config_a, &b), CB_CREATED);
    for (unsigned round = 0; round < 3; round++) {
        /* Every slot but the one in force is held by a dead update that
         * read the config in force (so might have published it). */
        for (unsigned i = 0; i < CB_CONFIG_SLOTS; i++)
            die_mid_update(b->seg, i % (CB_CF_COUNT + 1));
        assert_in_force(b, round % 2 ? &config_b : &config_a, NULL, NULL, "after the dead updates");
        static cb_info info;
        ck_assert_int_eq(cb_get_info(b, &info), 0);
        ck_assert(same_timeouts(&info.config, round % 2 ? &config_b : &config_a));
        /* Updates still land, whole, by either call. */
        const cb_config *next = round % 2 ? &config_a : &config_b;
        if (round == 1) {
            cb_breaker *o = NULL;
            ck_assert_int_eq(cb_open(name, next, &o), CB_CONFIG_UPDATED);
            cb_close(o);
        } else {
            ck_assert_int_eq(cb_set_config(b, next), 1);
        }
        assert_in_force(b, next, NULL, NULL, "after the next update");
    }
    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

START_TEST(test_damaged_slot_in_force_heals)
{
    const char *name = tl_unique_name("config-damaged");
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(name, &config_a, &b), CB_CREATED);
    /* A hostile writer puts another ticket's word into the slot in force. */
    uint64_t current = atomic_load(&b->seg->config_current);
    atomic_store(&b->seg->config[current % CB_CONFIG_SLOTS].word[CB_CF_RESET_TIMEOUT],
                 (uint64_t)((uint32_t)current + 3) << 32 | 4242);
    cb_config c;
    ck_assert_int_eq(read_in_force(b->seg, &c), 0);
    ck_assert_uint_eq(c.reset_timeout_ms, 4242); /* what the hot path uses too */
    /* The same config as before is no longer "the same": it is rewritten. */
    cb_breaker *o = NULL;
    ck_assert_int_eq(cb_open(name, &config_a, &o), CB_CONFIG_UPDATED);
    cb_close(o);
    assert_in_force(b, &config_a, NULL, NULL, "healed");
    ck_assert_int_eq(cb_open(name, &config_a, &o), CB_OPENED);
    cb_close(o);

    /* cb_set_config heals too, keeping what it reads for fields it is not
     * given (there is nothing better to keep). */
    current = atomic_load(&b->seg->config_current);
    atomic_store(&b->seg->config[current % CB_CONFIG_SLOTS].word[CB_CF_THRESHOLD],
                 (uint64_t)((uint32_t)current - 7) << 32 | 8);
    ck_assert_int_eq(cb_set_config(b, &only_reset), 1);
    cb_config want = config_a;
    want.failure_threshold = 8;
    want.reset_timeout_ms = only_reset.reset_timeout_ms;
    assert_in_force(b, &want, NULL, NULL, "healed by cb_set_config");
    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* cb_set_config and CB_OPEN_KEEP_CONFIG                               */
/* ------------------------------------------------------------------ */

static void assert_config(cb_breaker *b, uint32_t threshold, uint32_t reset, uint32_t probe)
{
    static cb_info info;
    ck_assert_int_eq(cb_get_info(b, &info), 0);
    ck_assert_uint_eq(info.config.failure_threshold, threshold);
    ck_assert_uint_eq(info.config.reset_timeout_ms, reset);
    ck_assert_uint_eq(info.config.probe_timeout_ms, probe);
}

START_TEST(test_set_config)
{
    const char *name = tl_unique_name("config-set");
    cb_breaker *b = NULL, *other = NULL;
    ck_assert_int_eq(cb_open(name, &config_a, &b), CB_CREATED); /* 5, 1000, 700 */
    ck_assert_int_eq(cb_open(name, NULL, &other), CB_OPENED);

    cb_config c = {0};
    ck_assert_int_eq(cb_set_config(b, &c), 0); /* nothing given: nothing changes */
    assert_config(b, 5, 1000, 700);
    c = (cb_config){.failure_threshold = 8};
    ck_assert_int_eq(cb_set_config(b, &c), 1);
    assert_config(other, 8, 1000, 700); /* one stored config */
    ck_assert_int_eq(cb_set_config(other, &c), 0);
    c = (cb_config){.reset_timeout_ms = 2000}; /* probe 700 was its own: kept */
    ck_assert_int_eq(cb_set_config(b, &c), 1);
    assert_config(b, 8, 2000, 700);
    c = (cb_config){.probe_timeout_ms = 2000};
    ck_assert_int_eq(cb_set_config(b, &c), 1);
    assert_config(b, 8, 2000, 2000);
    c = (cb_config){.reset_timeout_ms = 3000}; /* probe followed reset: follows on */
    ck_assert_int_eq(cb_set_config(b, &c), 1);
    assert_config(b, 8, 3000, 3000);
    c = (cb_config){.reset_timeout_ms = 4000, .probe_timeout_ms = 100};
    ck_assert_int_eq(cb_set_config(b, &c), 1);
    assert_config(b, 8, 4000, 100);

    /* The mode is the segment's, set at creation; flags change nothing. */
    c = (cb_config){.mode = 0640, .flags = CB_OPEN_KEEP_CONFIG};
    ck_assert_int_eq(cb_set_config(b, &c), 0);
    struct stat st;
    char path[256];
    snprintf(path, sizeof path, "/dev/shm/cbreaker.%s", name);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);

    /* Bad arguments: -EINVAL, nothing changes. */
    c = (cb_config){.failure_threshold = 1, .reset_timeout_ms = 1, .probe_timeout_ms = 1};
    ck_assert_int_eq(cb_set_config(NULL, &c), -EINVAL);
    ck_assert_int_eq(cb_set_config(b, NULL), -EINVAL);
    c = (cb_config){.failure_threshold = 1, .reset_timeout_ms = 1, .probe_timeout_ms = 1, .mode = 01000};
    ck_assert_int_eq(cb_set_config(b, &c), -EINVAL);
    c = (cb_config){.failure_threshold = 1, .reset_timeout_ms = 1, .probe_timeout_ms = 1, .flags = 1u << 31};
    ck_assert_int_eq(cb_set_config(b, &c), -EINVAL);
    assert_config(b, 8, 4000, 100);

    /* The new threshold is the one that trips, in every process. */
    c = (cb_config){.failure_threshold = 1};
    ck_assert_int_eq(cb_set_config(other, &c), 1);
    cb_permit p;
    ck_assert_int_eq(cb_acquire(b, &p), CB_ALLOWED);
    cb_failure(b, &p);
    ck_assert_int_eq(cb_get_state(other), CB_OPEN);
    cb_close(other);
    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);

    /* A private circuit has a stored config too. */
    ck_assert_int_eq(cb_open_private("private", &config_a, &b), CB_CREATED);
    c = (cb_config){.probe_timeout_ms = 300};
    ck_assert_int_eq(cb_set_config(b, &c), 1);
    assert_config(b, 5, 1000, 300);
    cb_close(b);
}
END_TEST

START_TEST(test_keep_config)
{
    const char *name = tl_unique_name("config-keep");
    cb_config keep_a = config_a, keep_b = config_b;
    keep_a.flags = keep_b.flags = CB_OPEN_KEEP_CONFIG;
    cb_breaker *b = NULL, *o = NULL;
    ck_assert_int_eq(cb_open(name, &keep_a, &b), CB_CREATED); /* absent: created with cfg */
    assert_config(b, 5, 1000, 700);
    ck_assert_int_eq(cb_open(name, &keep_b, &o), CB_OPENED); /* present: kept */
    assert_config(o, 5, 1000, 700);
    cb_close(o);
    ck_assert_int_eq(cb_open(name, &config_b, &o), CB_CONFIG_UPDATED); /* without the flag */
    cb_close(o);
    assert_config(b, 9, 3000, 200);
    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);

    /* Unknown flag bits: -EINVAL, and nothing is created. */
    cb_config bad = config_a;
    bad.flags = CB_OPEN_KEEP_CONFIG | 1u << 31;
    b = (cb_breaker *)&bad;
    ck_assert_int_eq(cb_open(name, &bad, &b), -EINVAL);
    ck_assert_ptr_null(b);
    char path[256];
    snprintf(path, sizeof path, "/dev/shm/cbreaker.%s", name);
    ck_assert_int_eq(access(path, F_OK), -1);
    ck_assert_int_eq(cb_open_private("private", &bad, &b), -EINVAL);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("mix");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_two_writers_never_mix);
    tcase_add_test(tc, test_four_writers_never_mix);
    suite_add_tcase(s, tc);
    tc = tcase_create("partial");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_partial_updates_keep_other_fields);
    suite_add_tcase(s, tc);
    tc = tcase_create("killed");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_killed_writers_leave_one_config);
    tcase_add_test(tc, test_dead_writers_in_every_slot);
    tcase_add_test(tc, test_damaged_slot_in_force_heals);
    suite_add_tcase(s, tc);
    tc = tcase_create("api");
    tcase_add_test(tc, test_set_config);
    tcase_add_test(tc, test_keep_config);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tl_run_suite(config_suite());
}
