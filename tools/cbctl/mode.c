/*
 * mode.c - the operator modes: `cbctl disable|force-open|metrics-only|
 * enable NAME` (cb_set_mode with DISABLED, FORCED_OPEN, METRICS_ONLY,
 * NORMAL).
 *
 * Like reset and trip (control.c): look with cb_inspect first (an object
 * that is not a circuit is refused with the reason; an impossible state
 * word is no obstacle: a mode replaces it), attach with cb_attach (never
 * creating; CB_EOWNER for a segment not trusted), set, and print the mode
 * before and after: before is what cb_set_mode returns, the mode its
 * compare-and-swap replaced, e.g. "redis: mode normal -> forced_open".
 * Setting the mode in force changes nothing and says so ("(unchanged)").
 * A state word holding an impossible state is replaced by any mode
 * ("mode invalid -> normal": enable repairs it, as reset does).
 */
#include "cbctl.h"

static int set_mode(const struct options *o, const char *name, cb_mode mode)
{
    static cb_info info;
    int rc = cb_inspect(name, &info);
    if (rc != 0 && rc != CB_ECORRUPT)
        return report_error(name, rc);
    int was_corrupt = rc == CB_ECORRUPT;
    cb_breaker *b = NULL;
    rc = cb_attach(name, &b);
    if (rc < 0)
        return report_error(name, rc);
    int before = cb_set_mode(b, mode);
    cb_close(b);
    if (before < 0)
        return report_error(name, before);
    /* A corrupt word reads as mode normal (0), yet setting any mode
     * replaces it: say "invalid", as reset does, never "unchanged". */
    if (!o->quiet)
        printf("%s: mode %s -> %s%s\n", name, was_corrupt ? "invalid" : cb_mode_name((cb_mode)before),
               cb_mode_name(mode), before == (int)mode && !was_corrupt ? " (unchanged)" : "");
    return CBCTL_OK;
}

int cmd_disable(const struct options *o, const char *name) { return set_mode(o, name, CB_MODE_DISABLED); }
int cmd_force_open(const struct options *o, const char *name) { return set_mode(o, name, CB_MODE_FORCED_OPEN); }
int cmd_metrics_only(const struct options *o, const char *name)
{
    return set_mode(o, name, CB_MODE_METRICS_ONLY);
}
int cmd_enable(const struct options *o, const char *name) { return set_mode(o, name, CB_MODE_NORMAL); }

/* The operator's verb for each mode, for messages. */
const char *mode_verb(cb_mode mode)
{
    switch (mode) {
    case CB_MODE_DISABLED:
        return "disable";
    case CB_MODE_FORCED_OPEN:
        return "force-open";
    case CB_MODE_METRICS_ONLY:
        return "metrics-only";
    case CB_MODE_NORMAL:
        break;
    }
    return "enable";
}
