/*
 * show.c - `cbctl show NAME`: everything cb_info holds about one circuit
 * (state, operator mode, open period and backoff step, the window's
 * figures and rates, config, segment, all counters, the transition
 * history newest first), as aligned text or as a JSON document.
 *
 * Rates are percentages of the window's calls, floored (format_percent):
 * a rate shown at or above the configured one is one the rule trips on.
 */
#include "cbctl.h"

/* What an operator mode does, for the text. */
static const char *mode_effect(cb_mode m)
{
    switch (m) {
    case CB_MODE_DISABLED:
        return " (every call allowed, nothing trips it)";
    case CB_MODE_FORCED_OPEN:
        return " (every call rejected, no probe)";
    case CB_MODE_METRICS_ONLY:
        return " (every call allowed, would-open events only)";
    case CB_MODE_NORMAL:
        break;
    }
    return "";
}

static void print_window(FILE *f, const cb_info *in)
{
    char a[64], b[64];
    const cb_config *c = &in->config;
    format_duration(c->window_ms, a, sizeof a);
    format_duration(c->window_ms / 10, b, sizeof b);
    fprintf(f, "window (last %s, 10 buckets of %s%s)\n", a, b,
            c->failure_rate || c->slow_call_ms ? "" : "; off: no rate rule");
    fprintf(f, "  %-15s %llu\n", "calls", (unsigned long long)in->window_calls);
    format_percent(in->window_failures, in->window_calls, 1, a, sizeof a);
    fprintf(f, "  %-15s %llu (%s%s)\n", "failures", (unsigned long long)in->window_failures, a,
            in->window_calls ? "%" : "");
    format_percent(in->window_slow_calls, in->window_calls, 1, a, sizeof a);
    fprintf(f, "  %-15s %llu (%s%s)\n", "slow calls", (unsigned long long)in->window_slow_calls, a,
            in->window_calls ? "%" : "");
}

static void print_policies(FILE *f, const cb_config *c)
{
    char a[64];
    if (c->failure_rate)
        fprintf(f, "  %-15s %u%%\n", "failure rate", (unsigned)c->failure_rate);
    else
        fprintf(f, "  %-15s off\n", "failure rate");
    fprintf(f, "  %-15s %u\n", "minimum calls", (unsigned)c->minimum_calls);
    format_duration(c->window_ms, a, sizeof a);
    fprintf(f, "  %-15s %s\n", "window", a);
    format_duration(c->slow_call_ms, a, sizeof a);
    fprintf(f, "  %-15s %s\n", "slow call", c->slow_call_ms ? a : "off");
    fprintf(f, "  %-15s %u%%\n", "slow call rate", (unsigned)c->slow_call_rate);
    if (c->backoff_multiplier_pct)
        fprintf(f, "  %-15s %u%% per failed probe\n", "backoff", (unsigned)c->backoff_multiplier_pct);
    else
        fprintf(f, "  %-15s off\n", "backoff");
    format_duration(c->max_reset_timeout_ms, a, sizeof a);
    fprintf(f, "  %-15s %s\n", "max reset", a);
}

static void print_text(FILE *f, const cb_info *in, uint64_t now)
{
    char a[64], b[64], c[64];
    fprintf(f, "circuit %s\n", in->name);
    fprintf(f, "  %-15s %s\n", "state", cb_state_name(in->state));
    fprintf(f, "  %-15s %s%s\n", "operator mode", cb_mode_name(in->mode), mode_effect(in->mode));
    if (in->state == CB_CLOSED)
        fprintf(f, "  %-15s %u of %u\n", "failures", (unsigned)in->failures,
                (unsigned)in->config.failure_threshold);
    if (in->mode == CB_MODE_FORCED_OPEN) {
        fprintf(f, "  %-15s never (forced open: 'cbctl enable %s' resumes)\n", "probe in", in->name);
    } else if (in->state == CB_OPEN) {
        format_duration(in->ms_until_probe, a, sizeof a);
        fprintf(f, "  %-15s %s\n", "probe in", in->ms_until_probe ? a : "due (next call is the probe)");
    }
    if (in->state == CB_HALF_OPEN) {
        if (in->probe_pid) {
            format_duration(in->probe_lease_ms, a, sizeof a);
            fprintf(f, "  %-15s pid %d, lease %s left\n", "probe", (int)in->probe_pid, a);
        } else {
            fprintf(f, "  %-15s %s\n", "probe", in->probe_lease_ms ? "in flight" : "none (next call is the probe)");
        }
    }
    format_duration(in->open_timeout_ms, a, sizeof a);
    fprintf(f, "  %-15s %s (backoff step %u)\n", "open period", a, (unsigned)in->backoff_step);
    fprintf(f, "  %-15s %u\n", "generation", (unsigned)in->generation);
    print_window(f, in);

    format_duration(in->config.reset_timeout_ms, a, sizeof a);
    format_duration(in->config.probe_timeout_ms, b, sizeof b);
    fprintf(f, "config\n");
    fprintf(f, "  %-15s %u failures\n", "threshold", (unsigned)in->config.failure_threshold);
    fprintf(f, "  %-15s %s\n", "reset timeout", a);
    fprintf(f, "  %-15s %s\n", "probe timeout", b);
    print_policies(f, &in->config);
    fprintf(f, "  %-15s %04o\n", "mode", (unsigned)in->config.mode);
    fprintf(f, "segment\n");
    fprintf(f, "  %-15s %u\n", "layout version", (unsigned)in->layout_version);
    fprintf(f, "  %-15s %llu bytes\n", "size", (unsigned long long)in->segment_size);

    const cb_counters *k = &in->counters;
    fprintf(f, "counters\n");
    fprintf(f, "  %-15s %llu\n", "allowed", (unsigned long long)k->allowed);
    fprintf(f, "  %-15s %llu\n", "rejected", (unsigned long long)k->rejected);
    fprintf(f, "  %-15s %llu\n", "successes", (unsigned long long)k->successes);
    fprintf(f, "  %-15s %llu\n", "failures", (unsigned long long)k->failures);
    fprintf(f, "  %-15s %llu\n", "released", (unsigned long long)k->released);
    fprintf(f, "  %-15s %llu\n", "late", (unsigned long long)k->late);
    fprintf(f, "  %-15s %llu\n", "trips", (unsigned long long)k->trips);
    fprintf(f, "  %-15s %llu\n", "probes", (unsigned long long)k->probes);

    fprintf(f, "history (newest first; the segment keeps the last %u)\n", (unsigned)CB_HISTORY_MAX);
    if (in->history_len == 0)
        return;
    fprintf(f, "  %-23s  %10s  %-9s  %-9s  %-21s  %5s  %7s  %s\n", "TIME", "AGO", "FROM", "TO", "REASON", "FAILS",
            "PID", "MODE");
    for (unsigned i = 0; i < in->history_len; i++) {
        const cb_transition *t = &in->history[i];
        format_local_time(t->wall_ms, b, sizeof b);
        format_ago(t->wall_ms, now, c, sizeof c);
        fprintf(f, "  %-23s  %10s  %-9s  %-9s  %-21s  %5u  %7d  %s\n", b, c, cb_state_name(t->from),
                cb_state_name(t->to), cb_reason_name(t->reason), (unsigned)t->failures, (int)t->pid,
                cb_mode_name(t->mode));
    }
}

/* A percentage with two decimals (floored), null for an empty window. */
static void put_rate(struct json *j, const char *key, uint64_t part, uint64_t whole)
{
    char buf[32];
    if (whole == 0) {
        json_null(j, key);
        return;
    }
    format_percent(part, whole, 2, buf, sizeof buf);
    json_number_text(j, key, buf);
}

static void print_json(FILE *f, const cb_info *in, uint64_t now)
{
    struct json j;
    char buf[64];
    json_start(&j, f);
    json_object_begin(&j, NULL);
    json_header(&j, now);
    json_object_begin(&j, "circuit");
    json_string(&j, "name", in->name);
    json_string(&j, "state", cb_state_name(in->state));
    json_uint(&j, "failures", in->failures);
    json_uint(&j, "generation", in->generation);
    json_string(&j, "mode", cb_mode_name(in->mode));
    json_uint(&j, "open_timeout_ms", in->open_timeout_ms);
    json_uint(&j, "backoff_step", in->backoff_step);
    if (in->state == CB_OPEN && in->mode != CB_MODE_FORCED_OPEN)
        json_uint(&j, "ms_until_probe", in->ms_until_probe);
    else
        json_null(&j, "ms_until_probe");
    if (in->probe_pid)
        json_uint(&j, "probe_pid", (uint64_t)in->probe_pid);
    else
        json_null(&j, "probe_pid");
    if (in->state == CB_HALF_OPEN)
        json_uint(&j, "probe_lease_ms", in->probe_lease_ms);
    else
        json_null(&j, "probe_lease_ms");

    json_object_begin(&j, "window");
    json_uint(&j, "span_ms", in->config.window_ms);
    json_uint(&j, "bucket_ms", in->config.window_ms / 10);
    json_uint(&j, "calls", in->window_calls);
    json_uint(&j, "failures", in->window_failures);
    json_uint(&j, "slow_calls", in->window_slow_calls);
    put_rate(&j, "failure_rate", in->window_failures, in->window_calls);
    put_rate(&j, "slow_call_rate", in->window_slow_calls, in->window_calls);
    json_object_end(&j);

    json_object_begin(&j, "config");
    json_uint(&j, "failure_threshold", in->config.failure_threshold);
    json_uint(&j, "reset_timeout_ms", in->config.reset_timeout_ms);
    json_uint(&j, "probe_timeout_ms", in->config.probe_timeout_ms);
    json_uint(&j, "failure_rate", in->config.failure_rate);
    json_uint(&j, "minimum_calls", in->config.minimum_calls);
    json_uint(&j, "window_ms", in->config.window_ms);
    json_uint(&j, "slow_call_ms", in->config.slow_call_ms);
    json_uint(&j, "slow_call_rate", in->config.slow_call_rate);
    json_uint(&j, "backoff_multiplier_pct", in->config.backoff_multiplier_pct);
    json_uint(&j, "max_reset_timeout_ms", in->config.max_reset_timeout_ms);
    snprintf(buf, sizeof buf, "%04o", (unsigned)in->config.mode);
    json_string(&j, "mode", buf);
    json_object_end(&j);

    json_object_begin(&j, "segment");
    json_uint(&j, "layout_version", in->layout_version);
    json_uint(&j, "size", in->segment_size);
    json_object_end(&j);

    const cb_counters *k = &in->counters;
    json_object_begin(&j, "counters");
    json_uint(&j, "allowed", k->allowed);
    json_uint(&j, "rejected", k->rejected);
    json_uint(&j, "successes", k->successes);
    json_uint(&j, "failures", k->failures);
    json_uint(&j, "released", k->released);
    json_uint(&j, "late", k->late);
    json_uint(&j, "trips", k->trips);
    json_uint(&j, "probes", k->probes);
    json_object_end(&j);

    json_array_begin(&j, "history");
    for (unsigned i = 0; i < in->history_len; i++) {
        const cb_transition *t = &in->history[i];
        json_object_begin(&j, NULL);
        format_iso_time(t->wall_ms, buf, sizeof buf);
        json_string(&j, "time", buf);
        json_uint(&j, "wall_ms", t->wall_ms);
        json_string(&j, "event", cb_event_name(t));
        json_string(&j, "from", cb_state_name(t->from));
        json_string(&j, "to", cb_state_name(t->to));
        json_string(&j, "reason", cb_reason_name(t->reason));
        json_uint(&j, "failures", t->failures);
        json_uint(&j, "pid", (uint64_t)(uint32_t)t->pid);
        json_string(&j, "mode", cb_mode_name(t->mode));
        json_object_end(&j);
    }
    json_array_end(&j);
    json_object_end(&j);
    json_object_end(&j);
    json_finish(&j);
}

int cmd_show(const struct options *o, const char *name)
{
    static cb_info info; /* large: not on the stack */
    int rc = cb_inspect(name, &info);
    if (rc != 0)
        return report_error(name, rc);
    if (o->quiet)
        return CBCTL_OK;
    uint64_t now = wall_now_ms();
    if (o->json)
        print_json(stdout, &info, now);
    else
        print_text(stdout, &info, now);
    return CBCTL_OK;
}
