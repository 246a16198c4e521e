/*
 * main.c - cbdemo's command line: options, defaults, and which mode runs.
 *
 *   cbdemo [options]         the demo: master, workers, upstream, load, timeline
 *   cbdemo load [options]    only the load generator, against a running cbdemo
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cbdemo.h"
#include "upstream.h"

static const char usage_text[] =
    "usage: cbdemo [options]         a pre-fork server sharing one circuit, with load and a timeline\n"
    "       cbdemo load --port PORT  [--rate N] [--clients N] [--duration S]\n"
    "\n"
    "With no options: an embedded upstream that goes down at 5 s and comes back at 9.5 s,\n"
    "4 workers, 4 load clients at 200 requests/s, 15 s, then a summary.\n"
    "\n"
    "  -w, --workers N        worker processes (default 4, at most 64)\n"
    "  -p, --port PORT        loopback TCP port to serve on (default 0: any free port)\n"
    "  -r, --redis HOST:PORT  look routes up in Redis (GET route:NAME) instead of the\n"
    "                         embedded upstream; runs until Ctrl-C unless --duration\n"
    "      --per-process      a private breaker in each worker (cb_open_private, same\n"
    "                         settings) instead of the shared one, to compare\n"
    "  -t, --threshold N      consecutive failures that trip the circuit (default 3)\n"
    "      --reset-ms MS      reset timeout: OPEN for MS, then one probe (default 1000)\n"
    "      --timeout-ms MS    connect and reply timeout of one upstream call (default 1000)\n"
    "  -d, --duration S       stop after S seconds; 0: run until Ctrl-C or SIGTERM\n"
    "      --down-at S        embedded upstream goes down at S seconds (default 5; none)\n"
    "      --up-at S          ... and comes back at S seconds (default 9.5; none)\n"
    "                         SIGUSR1 to the master toggles the embedded upstream\n"
    "      --rate N           load: requests per second, all clients together (default 200)\n"
    "      --clients N        load: client processes (default 4)\n"
    "      --no-load          serve only (e.g. for curl or `cbdemo load`); runs until Ctrl-C\n"
    "      --name NAME        circuit name (default cbdemo-PID; /dev/shm/cbreaker.NAME)\n"
    "  -h, --help             this text\n"
    "      --version          cbdemo and library version\n"
    "\n"
    "Requests: `ROUTE name` or `STATS` as a line, or HTTP `GET /route/name`, `GET /stats`.\n"
    "Exit status: 0 done, 1 could not run, 2 usage error.\n";

enum {
    OPT_PER_PROCESS = 256,
    OPT_RESET_MS,
    OPT_TIMEOUT_MS,
    OPT_DOWN_AT,
    OPT_UP_AT,
    OPT_RATE,
    OPT_CLIENTS,
    OPT_NO_LOAD,
    OPT_NAME,
    OPT_VERSION,
};

static const struct option long_options[] = {
    {"workers", required_argument, NULL, 'w'},
    {"port", required_argument, NULL, 'p'},
    {"redis", required_argument, NULL, 'r'},
    {"per-process", no_argument, NULL, OPT_PER_PROCESS},
    {"threshold", required_argument, NULL, 't'},
    {"reset-ms", required_argument, NULL, OPT_RESET_MS},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT_MS},
    {"duration", required_argument, NULL, 'd'},
    {"down-at", required_argument, NULL, OPT_DOWN_AT},
    {"up-at", required_argument, NULL, OPT_UP_AT},
    {"rate", required_argument, NULL, OPT_RATE},
    {"clients", required_argument, NULL, OPT_CLIENTS},
    {"no-load", no_argument, NULL, OPT_NO_LOAD},
    {"name", required_argument, NULL, OPT_NAME},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static int bad(const char *opt, const char *arg, const char *why)
{
    fprintf(stderr, "cbdemo: %s%s%s: %s (cbdemo --help)\n", opt, *arg ? " " : "", arg, why);
    return 2;
}

static const char *option_name(int c)
{
    static char name[64];
    for (const struct option *o = long_options; o->name; o++)
        if (o->val == c) {
            snprintf(name, sizeof name, "--%s", o->name);
            return name;
        }
    return "option";
}

static int parse_uint(const char *arg, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    unsigned long v = strtoul(arg, &end, 10);
    if (!*arg || *end || *arg == '-' || v < min || v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int parse_seconds(const char *arg, double *out)
{
    if (strcmp(arg, "none") == 0) {
        *out = -1;
        return 0;
    }
    char *end;
    double v = strtod(arg, &end);
    if (!*arg || *end || !(v >= 0 && v < 86400 * 365))
        return -1;
    *out = v;
    return 0;
}

static int parse_redis(const char *arg, struct demo_options *o)
{
    const char *colon = strrchr(arg, ':');
    if (!colon || colon == arg || (size_t)(colon - arg) >= sizeof o->redis_host ||
        parse_uint(colon + 1, 1, 65535, &o->redis_port) < 0)
        return -1;
    memcpy(o->redis_host, arg, (size_t)(colon - arg));
    o->redis_host[colon - arg] = '\0';
    o->redis = arg;
    return 0;
}

/* Returns -1 to go on, or the exit status (0 after --help). */
int demo_parse_options(int argc, char **argv, struct demo_options *o, int load_only)
{
    *o = (struct demo_options){.workers = 4, .threshold = 3, .reset_ms = 1000, .upstream_timeout_ms = 1000,
                               .duration_s = -1, .down_at_s = 5, .up_at_s = 9.5, .rate = 200, .clients = 4,
                               .load = 1};
    snprintf(o->name, sizeof o->name, "cbdemo-%d", (int)getpid());
    int schedule_set = 0, c;
    while ((c = getopt_long(argc, argv, "w:p:r:t:d:h", long_options, NULL)) != -1) {
        int ok = 0;
        switch (c) {
        case 'w': ok = parse_uint(optarg, 1, DEMO_MAX_WORKERS, &o->workers); break;
        case 'p': ok = parse_uint(optarg, 0, 65535, &o->port); break;
        case 'r': ok = parse_redis(optarg, o); break;
        case OPT_PER_PROCESS: o->per_process = 1; break;
        case 't': ok = parse_uint(optarg, 1, 1000000, &o->threshold); break;
        case OPT_RESET_MS: ok = parse_uint(optarg, 1, 3600000, &o->reset_ms); break;
        case OPT_TIMEOUT_MS: ok = parse_uint(optarg, 1, 600000, &o->upstream_timeout_ms); break;
        case 'd': ok = parse_seconds(optarg, &o->duration_s); break;
        case OPT_DOWN_AT: ok = parse_seconds(optarg, &o->down_at_s); schedule_set = 1; break;
        case OPT_UP_AT: ok = parse_seconds(optarg, &o->up_at_s); schedule_set = 1; break;
        case OPT_RATE: ok = parse_uint(optarg, 1, 100000, &o->rate); break;
        case OPT_CLIENTS: ok = parse_uint(optarg, 1, DEMO_MAX_CLIENTS, &o->clients); break;
        case OPT_NO_LOAD: o->load = 0; break;
        case OPT_NAME:
            if (strlen(optarg) > CB_NAME_MAX - 8) /* room for ".wNN" of --per-process labels */
                ok = -1;
            else
                snprintf(o->name, sizeof o->name, "%s", optarg);
            break;
        case 'h': fputs(usage_text, stdout); return 0;
        case OPT_VERSION: printf("cbdemo %s (libcbreaker %s)%s\n", CB_VERSION_STRING, cb_version(),
                                 redis_supported() ? "" : ", without Redis support"); return 0;
        default: return 2;
        }
        if (ok < 0)
            return bad(option_name(c), optarg ? optarg : "", "invalid value");
    }
    if (optind < argc)
        return bad("argument", argv[optind], "unexpected");
    if (load_only) {
        if (o->port == 0)
            return bad("--port", "", "the port of a running cbdemo is required");
        if (o->duration_s < 0)
            o->duration_s = 10;
        return -1;
    }
    if (o->redis && schedule_set)
        return bad("--down-at/--up-at", "", "the schedule is for the embedded upstream; stop Redis yourself");
    if (o->redis && !redis_supported()) {
        fprintf(stderr, "cbdemo: --redis %s: this cbdemo was built without Redis support, because hiredis\n"
                        "was not found when it was configured. Install it and rebuild:\n"
                        "  apt-get install libhiredis-dev && meson setup --reconfigure build && ninja -C build\n"
                        "(tools/quickstart installs it.) The embedded upstream needs nothing: run cbdemo alone.\n",
                o->redis);
        return 1;
    }
    if (o->duration_s < 0)
        o->duration_s = o->redis || !o->load ? 0 : 15;
    if (o->redis)
        o->down_at_s = o->up_at_s = -1;
    return -1;
}

int main(int argc, char **argv)
{
    struct demo_options o;
    int load_only = argc > 1 && strcmp(argv[1], "load") == 0;
    int rc = load_only ? demo_parse_options(argc - 1, argv + 1, &o, 1) : demo_parse_options(argc, argv, &o, 0);
    if (rc >= 0)
        return rc;
    return load_only ? load_run(&o) : master_run(&o);
}
