/*
 * test-record.c - transitions reported without a callback into the caller
 * (src/record.c):
 *
 *   cb_format_event     the exact key=value line, NUL-terminated when
 *                       truncated, the full length returned as snprintf
 *                       does, -EINVAL for NULL event, NULL buf, len 0.
 *   cb_log_listener     writes that same line plus a newline, in one write.
 *   cb_record_listener  copies each transition this process makes, oldest
 *                       first, with the circuit name; counts what does not
 *                       fit in CB_RECORD_MAX as dropped; ignores NULLs; and
 *                       across forked processes each transition lands in
 *                       the record of exactly one process (the one whose
 *                       CAS made it).
 */
#include <check.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cbreaker.h"
#include "testlib.h"

#define T0 UINT64_C(1000000)
#define RESET 1000u

static cb_event sample_event(void)
{
    cb_event ev = {
        .circuit = "redis",
        .transition = {.from = CB_CLOSED, .to = CB_OPEN, .reason = CB_REASON_THRESHOLD,
                       .failures = 3, .pid = 1234, .wall_ms = 1700000000123u, .generation = 7},
        .mono_ms = 42,
    };
    return ev;
}

static const char sample_line[] = "event=circuit_breaker_opened circuit=redis from=CLOSED to=OPEN "
                                  "reason=threshold_reached failures=3 pid=1234 wall_ms=1700000000123 mode=normal";

START_TEST(format_line)
{
    cb_event ev = sample_event();
    char buf[512];
    int n = cb_format_event(&ev, buf, sizeof buf);
    ck_assert_int_eq(n, (int)strlen(sample_line));
    ck_assert_str_eq(buf, sample_line);
}
END_TEST

START_TEST(format_truncates)
{
    cb_event ev = sample_event();
    char buf[11];
    memset(buf, 'x', sizeof buf);
    int n = cb_format_event(&ev, buf, sizeof buf);
    ck_assert_int_eq(n, (int)strlen(sample_line));
    ck_assert_str_eq(buf, "event=circ");
}
END_TEST

START_TEST(format_bad_arguments)
{
    cb_event ev = sample_event();
    char buf[64] = "untouched";
    ck_assert_int_eq(cb_format_event(NULL, buf, sizeof buf), -EINVAL);
    ck_assert_int_eq(cb_format_event(&ev, NULL, sizeof buf), -EINVAL);
    ck_assert_int_eq(cb_format_event(&ev, buf, 0), -EINVAL);
    ck_assert_str_eq(buf, "untouched");
}
END_TEST

START_TEST(log_listener_writes_the_same_line)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_eq(dup2(fds[1], STDERR_FILENO), STDERR_FILENO);
    cb_event ev = sample_event();
    cb_log_listener(&ev, NULL);
    cb_log_listener(NULL, NULL); /* ignored */
    ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    close(fds[1]);
    char got[600] = {0};
    ssize_t n = read(fds[0], got, sizeof got - 1);
    close(fds[0]);
    char want[600];
    snprintf(want, sizeof want, "%s\n", sample_line);
    ck_assert_int_eq((int)n, (int)strlen(want));
    ck_assert_str_eq(got, want);
}
END_TEST

/* A clocked circuit with a record listener. */
static cb_breaker *open_recorded(const char *tag, struct tl_clock **clk, cb_record *rec)
{
    cb_config cfg = {.failure_threshold = 3, .reset_timeout_ms = RESET};
    *clk = tl_clock_new(T0);
    cb_breaker *b = tl_open_clocked(tl_unique_name(tag), &cfg, *clk);
    memset(rec, 0, sizeof *rec);
    cb_set_listener(b, cb_record_listener, rec);
    return b;
}

static void fail_once(cb_breaker *b)
{
    cb_permit p;
    ck_assert_int_ne(cb_acquire(b, &p), CB_REJECTED);
    cb_failure(b, &p);
}

START_TEST(record_every_transition_in_order)
{
    struct tl_clock *clk;
    cb_record rec;
    cb_breaker *b = open_recorded("rec-order", &clk, &rec);
    fail_once(b);
    fail_once(b);
    ck_assert_uint_eq(rec.len, 0);
    fail_once(b);
    ck_assert_uint_eq(rec.len, 1);
    tl_clock_advance(clk, RESET + 100);
    cb_permit p;
    ck_assert_int_eq(cb_acquire(b, &p), CB_PROBE);
    cb_success(b, &p);
    ck_assert_uint_eq(rec.len, 3);
    ck_assert_uint_eq(rec.dropped, 0);
    const cb_reason reasons[] = {CB_REASON_THRESHOLD, CB_REASON_TIMEOUT, CB_REASON_PROBE_SUCCEEDED};
    const cb_state to[] = {CB_OPEN, CB_HALF_OPEN, CB_CLOSED};
    for (unsigned i = 0; i < 3; i++) {
        ck_assert_int_eq(rec.events[i].transition.reason, reasons[i]);
        ck_assert_int_eq(rec.events[i].transition.to, to[i]);
        ck_assert_int_eq(rec.events[i].transition.pid, getpid());
        ck_assert_ptr_eq(rec.events[i].circuit, rec.events[0].circuit);
    }
    ck_assert_uint_eq(rec.events[0].transition.failures, 3);
    char line[512];
    ck_assert_int_gt(cb_format_event(&rec.events[0], line, sizeof line), 0);
    ck_assert_ptr_nonnull(strstr(line, "event=circuit_breaker_opened circuit=test."));
    ck_assert_ptr_nonnull(strstr(line, ".rec-order."));
    ck_assert_ptr_nonnull(strstr(line, " reason=threshold_reached failures=3 "));
    cb_info info;
    ck_assert_int_eq(cb_get_info(b, &info), 0);
    ck_assert_str_eq(rec.events[0].circuit, info.name);
    cb_unlink(info.name);
    cb_close(b);
}
END_TEST

START_TEST(record_counts_what_does_not_fit)
{
    struct tl_clock *clk;
    cb_record rec;
    cb_breaker *b = open_recorded("rec-full", &clk, &rec);
    for (unsigned i = 0; i < CB_RECORD_MAX + 3; i++)
        ck_assert_int_ge(cb_trip(b), 0);
    ck_assert_uint_eq(rec.len, CB_RECORD_MAX);
    ck_assert_uint_eq(rec.dropped, 3);
    for (unsigned i = 0; i < CB_RECORD_MAX; i++)
        ck_assert_int_eq(rec.events[i].transition.reason, CB_REASON_TRIP);
    /* emptied by the caller, it fills again */
    rec.len = rec.dropped = 0;
    ck_assert_int_ge(cb_reset(b), 0);
    ck_assert_uint_eq(rec.len, 1);
    ck_assert_int_eq(rec.events[0].transition.reason, CB_REASON_RESET);
    cb_record_listener(NULL, &rec);
    cb_record_listener(&rec.events[0], NULL);
    ck_assert_uint_eq(rec.len, 1);
    cb_info info;
    ck_assert_int_eq(cb_get_info(b, &info), 0);
    cb_unlink(info.name);
    cb_close(b);
}
END_TEST

/* Forked processes each fail once: the trip lands in exactly one record. */
#define PROCS 6
struct shared_counts {
    _Atomic unsigned recorded;
    _Atomic unsigned procs_with_event;
};

struct child_arg {
    cb_breaker *b;
    struct tl_barrier *start;
    struct shared_counts *counts;
};

static int child_fail(void *p)
{
    struct child_arg *a = p;
    cb_record rec = {0};
    cb_set_listener(a->b, cb_record_listener, &rec);
    tl_barrier_wait(a->start);
    cb_permit permit;
    if (cb_acquire(a->b, &permit) != CB_REJECTED)
        cb_failure(a->b, &permit);
    atomic_fetch_add(&a->counts->recorded, rec.len);
    if (rec.len)
        atomic_fetch_add(&a->counts->procs_with_event, 1);
    return rec.dropped == 0 && rec.len <= 1 ? 0 : 1;
}

START_TEST(record_once_per_host)
{
    cb_config cfg = {.failure_threshold = 3, .reset_timeout_ms = 60000};
    cb_breaker *b = NULL;
    const char *name = tl_unique_name("rec-host");
    ck_assert_int_ge(cb_open(name, &cfg, &b), 0);
    struct child_arg arg = {b, tl_barrier_new(PROCS), tl_shared(sizeof(struct shared_counts))};
    pid_t pids[PROCS];
    for (int i = 0; i < PROCS; i++)
        pids[i] = tl_spawn(child_fail, &arg);
    for (int i = 0; i < PROCS; i++)
        tl_wait_ok(pids[i]);
    ck_assert_int_eq(cb_get_state(b), CB_OPEN);
    ck_assert_uint_eq(atomic_load(&arg.counts->recorded), 1);
    ck_assert_uint_eq(atomic_load(&arg.counts->procs_with_event), 1);
    cb_unlink(name);
    cb_close(b);
}
END_TEST

static Suite *record_suite(void)
{
    Suite *s = suite_create("record");
    TCase *tc = tcase_create("format");
    tcase_add_test(tc, format_line);
    tcase_add_test(tc, format_truncates);
    tcase_add_test(tc, format_bad_arguments);
    tcase_add_test(tc, log_listener_writes_the_same_line);
    suite_add_tcase(s, tc);
    tc = tcase_create("record");
    tcase_add_test(tc, record_every_transition_in_order);
    tcase_add_test(tc, record_counts_what_does_not_fit);
    tcase_add_test(tc, record_once_per_host);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tl_run_suite(record_suite());
}
