/*
 * test-config.c - the stored config under concurrent updates.
 *
 *   mix      writers open one circuit with configs A and B at the same
 *            instant (started on a barrier), round after round, while an
 *            independent observer process reads cb_get_info in a loop:
 *            every snapshot, and the config after every round, is exactly
 *            one of the configs written, never a mix of them.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cbreaker.h"
#include "testlib.h"

#define MAX_WRITERS 8
#define MIX_ROUNDS 3000
#define DEADLINE_S 100

static const cb_config config_a = {5, 1000, 700, 0};
static const cb_config config_b = {9, 3000, 200, 0};

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

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("mix");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_two_writers_never_mix);
    tcase_add_test(tc, test_four_writers_never_mix);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
