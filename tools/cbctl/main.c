/*
 * main.c - cbctl's options, usage text and command dispatch.
 *
 *   cbctl [OPTIONS] COMMAND [NAME]
 *
 * Options may come before or after the command. Each command says how
 * many arguments it takes and which options apply to it; anything else is
 * a usage error (exit 2) with one line on stderr and nothing on stdout.
 * The commands themselves live in table.c (list), show.c, control.c,
 * mode.c, watch.c and metrics.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cbctl.h"

/* Which options a command accepts (--quiet: all of them). */
enum {
    O_JSON = 1 << 0,
    O_COLUMNS = 1 << 1,  /* -o, -n */
    O_INTERVAL = 1 << 2,
    O_CREATE = 1 << 3    /* --threshold, --reset-timeout, --probe-timeout, --mode and the policies */
};

static const struct command {
    const char *name;
    const char *args;
    unsigned options;
    const char *help;
    int (*run)(const struct options *o);                        /* no NAME */
    int (*run_name)(const struct options *o, const char *name); /* NAME (watch: optional) */
} commands[] = {
    {"list", "", O_JSON | O_COLUMNS, "every circuit on the host, one row each", cmd_list, NULL},
    {"show", "NAME", O_JSON, "one circuit in full: state, mode, window, config, counters, history", NULL, cmd_show},
    {"state", "NAME", 0, "print the state alone: CLOSED, OPEN or HALF_OPEN", NULL, cmd_state},
    {"is-closed", "NAME", 0, "exit 0 if CLOSED, 1 if OPEN or HALF_OPEN; prints nothing", NULL, cmd_is_closed},
    {"reset", "NAME", 0, "force CLOSED (count 0); prints the state before and after", NULL, cmd_reset},
    {"trip", "NAME", 0, "force OPEN with a fresh reset timeout; prints before and after", NULL, cmd_trip},
    {"force-open", "NAME", 0, "operator mode: reject every call, no probe, until enable", NULL, cmd_force_open},
    {"disable", "NAME", 0, "operator mode: allow every call, trip on nothing, until enable", NULL, cmd_disable},
    {"metrics-only", "NAME", 0, "operator mode: allow every call, announce would-open events", NULL,
     cmd_metrics_only},
    {"enable", "NAME", 0, "leave the operator mode: CLOSED, count 0, a new window", NULL, cmd_enable},
    {"create", "NAME", O_CREATE, "create a circuit, or set the options given on an existing one", NULL,
     cmd_create},
    {"rm", "NAME", 0, "remove a circuit (processes that have it open keep using it)", NULL, cmd_rm},
    {"watch", "[NAME]", O_COLUMNS | O_INTERVAL,
     "redraw the list every second (not on a terminal: print each transition)", cmd_watch_all,
     cmd_watch},
    {"metrics", "", 0, "every circuit in the Prometheus text format", cmd_metrics, NULL},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "Usage: cbctl [OPTIONS] COMMAND [NAME]\n\n"
               "Inspect and control the circuit breakers of this host: every circuit is a\n"
               "shared-memory segment /dev/shm/cbreaker.NAME that all processes share.\n\n"
               "Commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        char left[32];
        snprintf(left, sizeof left, "%s %s", commands[i].name, commands[i].args);
        fprintf(f, "  %-17s %s\n", left, commands[i].help);
    }
    fprintf(f, "\nOptions:\n"
               "  -j, --json              list, show: a JSON document (\"version\", \"timestamp\", ...)\n"
               "  -q, --quiet             print nothing on stdout: the exit status answers\n"
               "  -o, --output COLUMNS    list, watch: comma-separated columns (below)\n"
               "  -n, --noheadings        list, watch: no header line\n"
               "  -i, --interval DURATION watch: time between looks (1s; 100ms if not a terminal)\n"
               "      --threshold N       create: consecutive failures that trip it (default 3)\n"
               "      --reset-timeout DURATION\n"
               "                          create: time OPEN before a probe (default 60s)\n"
               "      --probe-timeout DURATION\n"
               "                          create: the probe's lease (default: the reset timeout)\n"
               "      --mode OCTAL        create: permission bits of a new segment (default 0600)\n"
               "      --failure-rate PCT  create: trip at this failure rate in the window, 1-100 or off\n"
               "      --minimum-calls N   create: calls in the window before a rate trips it (10)\n"
               "      --window DURATION   create: the window of the rates, 10ms-1h (10s)\n"
               "      --slow-call DURATION\n"
               "                          create: a call longer than this is slow, or off (off)\n"
               "      --slow-call-rate PCT\n"
               "                          create: trip at this slow-call rate, 1-100 (100)\n"
               "      --backoff PCT       create: each failed probe multiplies the open period\n"
               "                          by PCT/100, 101-10000, or off (off; 200 doubles it)\n"
               "      --max-reset-timeout DURATION\n"
               "                          create: the longest open period with backoff (5m)\n"
               "  -h, --help              this text\n"
               "  -V, --version           the library version\n\n"
               "DURATION is an integer and a unit: 500ms, 30s, 5m, 2h.\n\n"
               "Columns of list (those marked -o only with -o; --json has them all):\n");
    columns_usage(f);
    fprintf(f, "\nExit status:\n"
               "  0  success (is-closed: the circuit is CLOSED)\n"
               "  1  no such circuit (is-closed: also OPEN or HALF_OPEN)\n"
               "  2  usage error: command, option, duration or circuit name\n"
               "  3  permission denied, or a segment not trusted (owner and mode are shown)\n"
               "  4  not a valid circuit segment (magic, layout version, size, shape, not\n"
               "     initialized, impossible state) or another error; stderr says which\n"
               "  5  reset, trip: refused while an operator mode is set (cbctl enable NAME)\n\n"
               "See cbctl(1).\n");
}

static int parse_uint(const char *s, unsigned base, unsigned long max, uint32_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    char *end;
    unsigned long v = strtoul(s, &end, (int)base);
    if (errno || *end || v == 0 || v > max)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* A percentage 1-100 ("50" or "50%"); "off" gives CB_CONFIG_OFF when
 * off_ok. 0 or -1. */
static int parse_percent(const char *s, int off_ok, uint32_t *out)
{
    if (off_ok && s && strcmp(s, "off") == 0) {
        *out = CB_CONFIG_OFF;
        return 0;
    }
    char digits[16];
    size_t len = s ? strlen(s) : 0;
    if (len == 0 || len >= sizeof digits)
        return -1;
    snprintf(digits, sizeof digits, "%.*s", (int)(s[len - 1] == '%' ? len - 1 : len), s);
    return parse_uint(digits, 10, 100, out);
}

/* A duration within [min, max] ms; "off" gives CB_CONFIG_OFF when off_ok. */
static int parse_duration_in(const char *s, uint32_t min, uint32_t max, int off_ok, uint32_t *out)
{
    if (off_ok && s && strcmp(s, "off") == 0) {
        *out = CB_CONFIG_OFF;
        return 0;
    }
    uint32_t ms;
    if (parse_duration(s, &ms) || ms < min || ms > max)
        return -1;
    *out = ms;
    return 0;
}

/* The backoff multiplier: 100 (off) to CB_BACKOFF_MULTIPLIER_MAX percent,
 * or "off". */
static int parse_backoff(const char *s, uint32_t *out)
{
    if (s && strcmp(s, "off") == 0) {
        *out = CB_CONFIG_OFF;
        return 0;
    }
    char digits[16];
    size_t len = s ? strlen(s) : 0;
    if (len == 0 || len >= sizeof digits)
        return -1;
    snprintf(digits, sizeof digits, "%.*s", (int)(s[len - 1] == '%' ? len - 1 : len), s);
    if (parse_uint(digits, 10, CB_BACKOFF_MULTIPLIER_MAX, out) || *out < 100)
        return -1;
    if (*out == 100)
        *out = CB_CONFIG_OFF; /* 100: multiplies by 1, i.e. off */
    return 0;
}

/* A long option returns OPT_LONG | its short letter (or its own code), so
 * that getopt_long's optopt tells "--json=1" (OPT_LONG | 'j': the option
 * takes no value) from "-x" (an unknown letter) and "--bogus" (0). */
enum {
    OPT_LONG = 0x1000,
    OPT_THRESHOLD = 256,
    OPT_RESET_TIMEOUT,
    OPT_PROBE_TIMEOUT,
    OPT_MODE,
    OPT_FAILURE_RATE,
    OPT_MINIMUM_CALLS,
    OPT_WINDOW,
    OPT_SLOW_CALL,
    OPT_SLOW_CALL_RATE,
    OPT_BACKOFF,
    OPT_MAX_RESET_TIMEOUT
};

static const struct option long_options[] = {
    {"json", no_argument, NULL, OPT_LONG | 'j'},
    {"quiet", no_argument, NULL, OPT_LONG | 'q'},
    {"output", required_argument, NULL, OPT_LONG | 'o'},
    {"noheadings", no_argument, NULL, OPT_LONG | 'n'},
    {"interval", required_argument, NULL, OPT_LONG | 'i'},
    {"threshold", required_argument, NULL, OPT_LONG | OPT_THRESHOLD},
    {"reset-timeout", required_argument, NULL, OPT_LONG | OPT_RESET_TIMEOUT},
    {"probe-timeout", required_argument, NULL, OPT_LONG | OPT_PROBE_TIMEOUT},
    {"mode", required_argument, NULL, OPT_LONG | OPT_MODE},
    {"failure-rate", required_argument, NULL, OPT_LONG | OPT_FAILURE_RATE},
    {"minimum-calls", required_argument, NULL, OPT_LONG | OPT_MINIMUM_CALLS},
    {"window", required_argument, NULL, OPT_LONG | OPT_WINDOW},
    {"slow-call", required_argument, NULL, OPT_LONG | OPT_SLOW_CALL},
    {"slow-call-rate", required_argument, NULL, OPT_LONG | OPT_SLOW_CALL_RATE},
    {"backoff", required_argument, NULL, OPT_LONG | OPT_BACKOFF},
    {"max-reset-timeout", required_argument, NULL, OPT_LONG | OPT_MAX_RESET_TIMEOUT},
    {"help", no_argument, NULL, OPT_LONG | 'h'},
    {"version", no_argument, NULL, OPT_LONG | 'V'},
    {NULL, 0, NULL, 0},
};

static const char *long_name(int val)
{
    const struct option *opt = long_options;
    while (opt->name && opt->val != val)
        opt++;
    return opt->name ? opt->name : "?";
}

/* The first option of each O_* group given, as spelled, for messages
 * (copied: the spelling is built in a buffer local to the option loop). */
static char given_as[4][32];

static void note_group(unsigned *given, unsigned group, const char *spelling)
{
    unsigned bit = 0;
    while ((1u << bit) != group)
        bit++;
    if (!(*given & group))
        snprintf(given_as[bit], sizeof given_as[bit], "%s", spelling);
    *given |= group;
}

/* Parse options into *o; *given collects the O_* groups used. */
static int parse_options(int argc, char **argv, struct options *o, unsigned *given, int *exit_now)
{
    int c, index = -1;
    opterr = 0; /* our own one-line messages */
    while ((c = getopt_long(argc, argv, ":jqo:ni:hV", long_options, &index)) != -1) {
        char spelling[32];
        if (index >= 0)
            snprintf(spelling, sizeof spelling, "--%s", long_options[index].name);
        else
            snprintf(spelling, sizeof spelling, "-%c", c);
        index = -1;
        switch (c & ~OPT_LONG) {
        case 'j':
            o->json = 1;
            note_group(given, O_JSON, spelling);
            break;
        case 'q':
            o->quiet = 1;
            break;
        case 'o':
            if (columns_check(optarg))
                return CBCTL_USAGE;
            o->columns = optarg;
            note_group(given, O_COLUMNS, spelling);
            break;
        case 'n':
            o->noheadings = 1;
            note_group(given, O_COLUMNS, spelling);
            break;
        case 'i':
            if (parse_duration(optarg, &o->interval_ms))
                return usage_error("--interval: '%s' is not a duration (500ms, 30s, 5m)", optarg);
            o->interval_set = 1;
            note_group(given, O_INTERVAL, spelling);
            break;
        case OPT_THRESHOLD:
            if (parse_uint(optarg, 10, UINT32_MAX, &o->cfg.failure_threshold))
                return usage_error("--threshold: '%s' is not a whole number of at least 1", optarg);
            note_group(given, O_CREATE, spelling);
            break;
        case OPT_RESET_TIMEOUT:
            if (parse_duration(optarg, &o->cfg.reset_timeout_ms))
                return usage_error("--reset-timeout: '%s' is not a duration (500ms, 30s, 5m)", optarg);
            note_group(given, O_CREATE, spelling);
            break;
        case OPT_PROBE_TIMEOUT:
            if (parse_duration(optarg, &o->cfg.probe_timeout_ms))
                return usage_error("--probe-timeout: '%s' is not a duration (500ms, 30s, 5m)", optarg);
            note_group(given, O_CREATE, spelling);
            break;
        case OPT_MODE:
            if (parse_uint(optarg, 8, 0777, &o->cfg.mode) || (o->cfg.mode & 0002))
                return usage_error("--mode: '%s' is not an octal mode from 1 to 0775 that others may not write", optarg);
            o->mode_set = 1;
            note_group(given, O_CREATE, spelling);
            break;
        case OPT_FAILURE_RATE:
            if (parse_percent(optarg, 1, &o->cfg.failure_rate))
                return usage_error("--failure-rate: '%s' is not a percentage from 1 to 100, or off", optarg);
            note_group(given, O_CREATE, spelling);
            break;
        case OPT_MINIMUM_CALLS:
            if (parse_uint(optarg, 10, UINT32_MAX, &o->cfg.minimum_calls))
                return usage_error("--minimum-calls: '%s' is not a whole number of at least 1", optarg);
            note_group(given, O_CREATE, spelling);
            break;
        case OPT_WINDOW:
            if (parse_duration_in(optarg, CB_WINDOW_MS_MIN, CB_WINDOW_MS_MAX, 0, &o->cfg.window_ms))
                return usage_error("--window: '%s' is not a duration from 10ms to 1h (500ms, 30s, 5m)", optarg);
            note_group(given, O_CREATE, spelling);
            break;
        case OPT_SLOW_CALL:
            if (parse_duration_in(optarg, 1, CB_SLOW_CALL_MS_MAX, 1, &o->cfg.slow_call_ms))
                return usage_error("--slow-call: '%s' is not a duration up to 24h (500ms, 30s, 5m), or off",
                                   optarg);
            note_group(given, O_CREATE, spelling);
            break;
        case OPT_SLOW_CALL_RATE:
            if (parse_percent(optarg, 0, &o->cfg.slow_call_rate))
                return usage_error("--slow-call-rate: '%s' is not a percentage from 1 to 100", optarg);
            note_group(given, O_CREATE, spelling);
            break;
        case OPT_BACKOFF:
            if (parse_backoff(optarg, &o->cfg.backoff_multiplier_pct))
                return usage_error("--backoff: '%s' is not a percentage from 100 to %u (200 doubles the open "
                                   "period), or off", optarg, (unsigned)CB_BACKOFF_MULTIPLIER_MAX);
            note_group(given, O_CREATE, spelling);
            break;
        case OPT_MAX_RESET_TIMEOUT:
            if (parse_duration(optarg, &o->cfg.max_reset_timeout_ms))
                return usage_error("--max-reset-timeout: '%s' is not a duration (500ms, 30s, 5m)", optarg);
            note_group(given, O_CREATE, spelling);
            break;
        case 'h':
            usage(stdout);
            *exit_now = 1;
            return CBCTL_OK;
        case 'V':
            printf("cbctl %s\n", cb_version());
            *exit_now = 1;
            return CBCTL_OK;
        case ':':
            return usage_error("%s needs an argument", argv[optind - 1]);
        default:
            if (optopt & OPT_LONG)
                return usage_error("option '--%s' takes no value", long_name(optopt));
            if (optopt)
                return usage_error("unknown option '-%c'", optopt);
            return usage_error("unknown option '%.*s'", (int)strcspn(argv[optind - 1], "="), argv[optind - 1]);
        }
    }
    return CBCTL_OK;
}

static const char *option_group_name(unsigned group)
{
    unsigned bit = 0;
    while ((1u << bit) != group)
        bit++;
    return given_as[bit];
}

int main(int argc, char **argv)
{
    struct options o;
    memset(&o, 0, sizeof o);
    unsigned given = 0;
    int exit_now = 0;
    int rc = parse_options(argc, argv, &o, &given, &exit_now);
    if (rc != CBCTL_OK || exit_now)
        return rc;
    if (optind >= argc)
        return usage_error("no command given");
    const char *verb = argv[optind++];
    const struct command *cmd = NULL;
    for (size_t i = 0; i < NCOMMANDS && !cmd; i++)
        if (strcmp(commands[i].name, verb) == 0)
            cmd = &commands[i];
    if (!cmd)
        return usage_error("unknown command '%s'", verb);
    unsigned stray = given & ~cmd->options;
    if (stray)
        return usage_error("%s does not apply to %s", option_group_name(stray & -stray), verb);
    int nargs = argc - optind;
    const char *name = nargs > 0 ? argv[optind] : NULL;
    int wants_name = cmd->run_name != NULL, may_omit = cmd->run != NULL;
    if (nargs > (wants_name ? 1 : 0))
        return usage_error("too many arguments for %s", verb);
    if (wants_name && !may_omit && nargs == 0)
        return usage_error("%s needs a circuit NAME", verb);
    rc = name ? cmd->run_name(&o, name) : cmd->run(&o);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "cbctl: writing the output: %s\n", strerror(errno));
        return rc ? rc : CBCTL_INVALID;
    }
    return rc;
}
