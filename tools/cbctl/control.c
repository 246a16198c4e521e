/*
 * control.c - the commands that change a circuit (reset, trip, create,
 * rm) and the two that answer one question for scripts (state,
 * is-closed).
 *
 * reset and trip attach with cb_attach (never creating), apply the
 * operator transition, and print the state before and after: before is
 * what cb_reset / cb_trip return, the state their compare-and-swap
 * replaced ("INVALID" for a corrupt word), after the state they forced.
 *
 * reset and trip look at the circuit with cb_inspect before attaching,
 * so that an object that is not a circuit is refused at once with the
 * reason (see force()). While an operator mode is set (mode.c) the
 * library refuses both (CB_EMODE): the message names the mode and says
 * to run `cbctl enable NAME` first; exit CBCTL_MODE.
 */
#include <string.h>

#include "cbctl.h"

static int force(const struct options *o, const char *name, cb_state to)
{
    static cb_info info;
    /* Look first: on a directory cb_attach fails with EINVAL, which
     * would read as a usage error. An impossible state is what reset is
     * for: go on. (cb_attach then refuses what it does not trust.) */
    int rc = cb_inspect(name, &info);
    if (rc != 0 && rc != CB_ECORRUPT)
        return report_error(name, rc);
    cb_breaker *b = NULL;
    rc = cb_attach(name, &b);
    if (rc < 0)
        return report_error(name, rc);
    int before = to == CB_CLOSED ? cb_reset(b) : cb_trip(b);
    int looked = before == CB_EMODE ? cb_get_info(b, &info) : 0;
    cb_close(b);
    if (before == CB_EMODE) {
        cb_mode mode = looked == 0 || looked == CB_ECORRUPT ? info.mode : CB_MODE_NORMAL;
        fprintf(stderr, "cbctl: %s: %s refused: operator mode %s is set (cbctl %s); run 'cbctl enable %s' first\n",
                name, to == CB_CLOSED ? "reset" : "trip", cb_mode_name(mode), mode_verb(mode), name);
        return CBCTL_MODE;
    }
    if (before < 0)
        return report_error(name, before);
    if (!o->quiet)
        printf("%s: %s -> %s\n", name, cb_state_name((cb_state)before), cb_state_name(to));
    return CBCTL_OK;
}

int cmd_reset(const struct options *o, const char *name) { return force(o, name, CB_CLOSED); }
int cmd_trip(const struct options *o, const char *name) { return force(o, name, CB_OPEN); }

/* The config in one line; the policies only where they are on. */
static void describe(const cb_info *in, char *buf, size_t len)
{
    const cb_config *c = &in->config;
    char reset[32], probe[32], window[32], slow[32], cap[32], policies[256] = "";
    format_duration(c->reset_timeout_ms, reset, sizeof reset);
    format_duration(c->probe_timeout_ms, probe, sizeof probe);
    format_duration(c->window_ms, window, sizeof window);
    format_duration(c->slow_call_ms, slow, sizeof slow);
    format_duration(c->max_reset_timeout_ms, cap, sizeof cap);
    size_t n = 0;
    if (c->failure_rate)
        n += (size_t)snprintf(policies + n, sizeof policies - n, ", failure rate %u%%", (unsigned)c->failure_rate);
    if (c->slow_call_ms)
        n += (size_t)snprintf(policies + n, sizeof policies - n, ", slow call %s at %u%%", slow,
                              (unsigned)c->slow_call_rate);
    if (c->failure_rate || c->slow_call_ms)
        n += (size_t)snprintf(policies + n, sizeof policies - n, " (minimum %u calls in %s)",
                              (unsigned)c->minimum_calls, window);
    if (c->backoff_multiplier_pct)
        snprintf(policies + n, sizeof policies - n, ", backoff %u%% up to %s", (unsigned)c->backoff_multiplier_pct,
                 cap);
    snprintf(buf, len, "threshold %u, reset timeout %s, probe timeout %s%s, mode %04o",
             (unsigned)c->failure_threshold, reset, probe, policies, (unsigned)c->mode);
}

/* cb_open takes 0 for a policy that is off; cb_set_config, CB_CONFIG_OFF. */
static uint32_t for_open(uint32_t v) { return v == CB_CONFIG_OFF ? 0 : v; }

/*
 * Idempotent, for provisioning scripts: creates the circuit, or applies
 * the options given to an existing one and keeps the rest of its config.
 * One cb_open that creates with the options but keeps an existing
 * circuit's config, then, if it existed, one atomic cb_set_config of the
 * options given: a circuit that a server creates at the same moment keeps
 * every field the user left out (no look first, so nothing to go stale).
 */
int cmd_create(const struct options *o, const char *name)
{
    static cb_info info;
    cb_config cfg = o->cfg;
    cfg.failure_rate = for_open(cfg.failure_rate);
    cfg.slow_call_ms = for_open(cfg.slow_call_ms);
    cfg.backoff_multiplier_pct = for_open(cfg.backoff_multiplier_pct);
    cfg.flags = CB_OPEN_KEEP_CONFIG;
    cb_breaker *b = NULL;
    int rc = cb_open(name, &cfg, &b);
    if (rc < 0)
        return report_error(name, rc);
    if (rc != CB_CREATED) {
        int changed = cb_set_config(b, &o->cfg); /* options left out are 0: kept; off: CB_CONFIG_OFF */
        if (changed < 0) {
            cb_close(b);
            return report_error(name, changed);
        }
        rc = changed ? CB_CONFIG_UPDATED : CB_OPENED;
    }
    int looked = cb_get_info(b, &info);
    cb_close(b);
    if (looked != 0)
        return report_error(name, looked); /* an impossible state: say so */
    if (o->quiet)
        return CBCTL_OK;
    char what[512];
    describe(&info, what, sizeof what);
    const char *done = rc == CB_CREATED ? "created" : rc == CB_CONFIG_UPDATED ? "exists, config updated"
                                                                               : "exists, unchanged";
    printf("%s: %s (%s)\n", name, done, what);
    if (rc != CB_CREATED && o->mode_set && o->cfg.mode != info.config.mode)
        printf("%s: mode %04o kept: --mode applies only when creating\n", name, (unsigned)info.config.mode);
    return CBCTL_OK;
}

int cmd_rm(const struct options *o, const char *name)
{
    int rc = cb_unlink(name);
    if (rc < 0)
        return report_error(name, rc);
    if (!o->quiet)
        printf("%s: removed\n", name);
    return CBCTL_OK;
}

int cmd_state(const struct options *o, const char *name)
{
    static cb_info info;
    int rc = cb_inspect(name, &info);
    if (rc != 0)
        return report_error(name, rc);
    if (!o->quiet)
        printf("%s\n", cb_state_name(info.state));
    return CBCTL_OK;
}

/* Answers by exit status alone: 0 CLOSED, 1 OPEN or HALF_OPEN. */
int cmd_is_closed(const struct options *o, const char *name)
{
    (void)o;
    static cb_info info;
    int rc = cb_inspect(name, &info);
    if (rc != 0)
        return report_error(name, rc);
    return info.state == CB_CLOSED ? CBCTL_OK : 1;
}
