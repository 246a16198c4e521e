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
 * reason (see force()).
 */
#include <errno.h>
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
    cb_close(b);
    if (before < 0)
        return report_error(name, before);
    if (!o->quiet)
        printf("%s: %s -> %s\n", name, cb_state_name((cb_state)before), cb_state_name(to));
    return CBCTL_OK;
}

int cmd_reset(const struct options *o, const char *name) { return force(o, name, CB_CLOSED); }
int cmd_trip(const struct options *o, const char *name) { return force(o, name, CB_OPEN); }

static void describe(const cb_info *in, char *buf, size_t len)
{
    char reset[32], probe[32];
    format_duration(in->config.reset_timeout_ms, reset, sizeof reset);
    format_duration(in->config.probe_timeout_ms, probe, sizeof probe);
    snprintf(buf, len, "threshold %u, reset timeout %s, probe timeout %s, mode %04o",
             (unsigned)in->config.failure_threshold, reset, probe, (unsigned)in->config.mode);
}

/*
 * Idempotent, for provisioning scripts: creates the circuit, or applies
 * the options given to an existing one and keeps the rest of its config
 * (cb_open would reset fields left out to the defaults).
 */
int cmd_create(const struct options *o, const char *name)
{
    static cb_info info;
    cb_config cfg = o->cfg;
    int rc = cb_inspect(name, &info);
    int existed = rc == 0;
    if (rc != 0 && rc != -ENOENT)
        return report_error(name, rc);
    if (existed) {
        if (!o->threshold_set)
            cfg.failure_threshold = info.config.failure_threshold;
        if (!o->reset_set)
            cfg.reset_timeout_ms = info.config.reset_timeout_ms;
        if (!o->probe_set)
            cfg.probe_timeout_ms = o->reset_set && info.config.probe_timeout_ms == info.config.reset_timeout_ms
                                       ? 0 /* it followed the reset timeout: let it follow on */
                                       : info.config.probe_timeout_ms;
    }
    cb_breaker *b = NULL;
    rc = cb_open(name, &cfg, &b);
    if (rc < 0)
        return report_error(name, rc);
    cb_get_info(b, &info);
    cb_close(b);
    if (o->quiet)
        return CBCTL_OK;
    char what[256];
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
