/*
 * metrics.c - `cbctl metrics`: every valid circuit in the Prometheus text
 * exposition format (version 0.0.4), for node_exporter's textfile
 * collector:
 *
 *   cbctl metrics > /var/lib/node_exporter/cbreaker.prom.tmp &&
 *       mv /var/lib/node_exporter/cbreaker.prom.tmp /var/lib/node_exporter/cbreaker.prom
 *
 * Each family is written once, HELP then TYPE then one sample per circuit
 * (label circuit="NAME"; names are letters, digits, '.', '_', '-', so
 * they need no escaping). Objects that are not valid circuits are left
 * out, with a line on stderr.
 *
 * The operator mode is one gauge with the mode as a number, named in its
 * HELP (like cbreaker_state), not a gauge per mode label: one series per
 * circuit, and `cbreaker_mode != 0` finds every circuit held by an
 * operator. Rates are percentages of the calls in the window, floored to
 * hundredths (as cbctl show), 0 when the window holds no call.
 */
#include "cbctl.h"

enum value {
    V_STATE, V_FAILURES, V_ALLOWED, V_REJECTED, V_SUCCESSES, V_FAILED, V_RELEASED, V_LATE,
    V_TRIPS, V_PROBES, V_UNTIL_PROBE, V_FAILURE_RATE, V_SLOW_CALL_RATE, V_OPEN_SECONDS, V_MODE
};

static const struct family {
    const char *name;
    const char *type;
    const char *help;
    const char *result; /* the result="..." label, or NULL */
    enum value value;
} families[] = {
    {"cbreaker_state", "gauge", "Circuit state: 0 closed, 1 open, 2 half-open.", NULL, V_STATE},
    {"cbreaker_failures", "gauge", "Consecutive failures counted while closed.", NULL, V_FAILURES},
    {"cbreaker_calls_total", "counter",
     "Calls by result: allowed or rejected on acquire; success, failure, released or late on report.",
     "allowed", V_ALLOWED},
    {"cbreaker_calls_total", NULL, NULL, "rejected", V_REJECTED},
    {"cbreaker_calls_total", NULL, NULL, "success", V_SUCCESSES},
    {"cbreaker_calls_total", NULL, NULL, "failure", V_FAILED},
    {"cbreaker_calls_total", NULL, NULL, "released", V_RELEASED},
    {"cbreaker_calls_total", NULL, NULL, "late", V_LATE},
    {"cbreaker_trips_total", "counter", "Transitions into the open state, for any reason.", NULL, V_TRIPS},
    {"cbreaker_probes_total", "counter", "Half-open probes granted.", NULL, V_PROBES},
    {"cbreaker_seconds_until_probe", "gauge", "Seconds until an open circuit lets a probe through (0 otherwise).",
     NULL, V_UNTIL_PROBE},
    {"cbreaker_failure_rate", "gauge",
     "Failed calls in the rate window, in percent of its calls (0 when it holds none).", NULL, V_FAILURE_RATE},
    {"cbreaker_slow_call_rate", "gauge",
     "Slow calls in the rate window, in percent of its calls (0 when it holds none).", NULL, V_SLOW_CALL_RATE},
    {"cbreaker_open_seconds", "gauge",
     "The open period now: the reset timeout grown by backoff after failed probes.", NULL, V_OPEN_SECONDS},
    {"cbreaker_mode", "gauge", "Operator mode: 0 normal, 1 disabled, 2 forced_open, 3 metrics_only.", NULL,
     V_MODE},
};

static void put_seconds(FILE *f, uint64_t ms)
{
    fprintf(f, "%llu.%03u\n", (unsigned long long)(ms / 1000), (unsigned)(ms % 1000));
}

static void put_rate(FILE *f, uint64_t part, uint64_t whole)
{
    char buf[32];
    format_percent(part, whole, 2, buf, sizeof buf);
    fprintf(f, "%s\n", whole ? buf : "0");
}

static void put_value(FILE *f, const cb_info *in, enum value v)
{
    const cb_counters *k = &in->counters;
    uint64_t n = 0;
    switch (v) {
    case V_STATE:
        n = (uint64_t)in->state;
        break;
    case V_FAILURES:
        n = in->failures;
        break;
    case V_ALLOWED:
        n = k->allowed;
        break;
    case V_REJECTED:
        n = k->rejected;
        break;
    case V_SUCCESSES:
        n = k->successes;
        break;
    case V_FAILED:
        n = k->failures;
        break;
    case V_RELEASED:
        n = k->released;
        break;
    case V_LATE:
        n = k->late;
        break;
    case V_TRIPS:
        n = k->trips;
        break;
    case V_PROBES:
        n = k->probes;
        break;
    case V_UNTIL_PROBE:
        put_seconds(f, in->state == CB_OPEN ? in->ms_until_probe : 0);
        return;
    case V_FAILURE_RATE:
        put_rate(f, in->window_failures, in->window_calls);
        return;
    case V_SLOW_CALL_RATE:
        put_rate(f, in->window_slow_calls, in->window_calls);
        return;
    case V_OPEN_SECONDS:
        put_seconds(f, in->open_timeout_ms);
        return;
    case V_MODE:
        n = (uint64_t)in->mode;
        break;
    }
    fprintf(f, "%llu\n", (unsigned long long)n);
}

int cmd_metrics(const struct options *o)
{
    struct entries e;
    int rc = read_all(&e);
    if (rc < 0)
        return report_error("/dev/shm", rc);
    for (size_t i = 0; i < e.n; i++)
        if (e.v[i].err)
            fprintf(stderr, "cbctl: %s: left out: %s\n", e.v[i].name, error_text_for(e.v[i].name, e.v[i].err));
    for (size_t fi = 0; fi < sizeof families / sizeof families[0] && !o->quiet; fi++) {
        const struct family *fam = &families[fi];
        if (fam->type) {
            printf("# HELP %s %s\n", fam->name, fam->help);
            printf("# TYPE %s %s\n", fam->name, fam->type);
        }
        for (size_t i = 0; i < e.n; i++) {
            if (e.v[i].err)
                continue;
            if (fam->result)
                printf("%s{circuit=\"%s\",result=\"%s\"} ", fam->name, e.v[i].name, fam->result);
            else
                printf("%s{circuit=\"%s\"} ", fam->name, e.v[i].name);
            put_value(stdout, &e.v[i].info, fam->value);
        }
    }
    entries_free(&e);
    return CBCTL_OK;
}
