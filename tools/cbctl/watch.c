/*
 * watch.c - `cbctl watch [NAME]`, until SIGINT or SIGTERM (exit 0).
 *
 * On a terminal: clear the screen and redraw the list every interval
 * (default 1 s), like watch(1) around `cbctl list`.
 *
 * Otherwise: one line per transition as it happens, in the library's
 * key=value log format (cb_format_event, as cb_log_listener writes it:
 * the reason, the operator mode), for `cbctl watch redis | logger`.
 * Would-open announcements of METRICS_ONLY are events, not transitions:
 * the history does not keep them, so watch cannot show them.
 * Each circuit's history is polled (default every 100 ms) and the entries
 * whose generation was not in the history at the previous poll are
 * printed, oldest first. Each generation is entered by one transition at
 * most, so two transitions identical in every field are still two lines,
 * and an entry that was half-written at one poll (absent from it) is
 * simply found at the next.
 *
 * Generations are only comparable within one circuit instance: one
 * removed and created again under its name starts over, and its first
 * generations may be ones the old one had. cb_info carries no instance
 * id; the object's inode is one (tmpfs does not hand an inode number out
 * again soon; counters and generations of a new instance may be anything).
 * It is taken after each poll: a snapshot belongs to an instance when the
 * name pointed to that inode at the end of the previous poll and of this
 * one. A name that points elsewhere than at the previous poll is looked at
 * again at the next; an instance without a previous snapshot (new, or
 * present when watch started) has the transitions printed that are newer
 * than the start of watch.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cbctl.h"

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

static void catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop; /* no SA_RESTART: the sleep ends at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static void sleep_ms(uint32_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a stop signal cuts it short */
}

/* Every circuit, or only NAME (absent if it does not exist right now). */
static int poll_circuits(const char *name, struct entries *e)
{
    if (!name)
        return read_all(e);
    memset(e, 0, sizeof *e);
    e->v = calloc(1, sizeof *e->v);
    if (!e->v)
        return -1;
    e->cap = 1;
    int rc = cb_inspect(name, &e->v[0].info);
    if (rc == -ENOENT)
        return 0;
    snprintf(e->v[0].name, sizeof e->v[0].name, "%s", name);
    e->v[0].err = rc;
    e->n = 1;
    return 0;
}

static void redraw(const char *name, const struct options *o, uint32_t every)
{
    char interval[32], now_text[64];
    format_duration(every, interval, sizeof interval);
    while (!stopping) {
        struct entries e;
        uint64_t now = wall_now_ms();
        int rc = poll_circuits(name, &e);
        format_local_time(now, now_text, sizeof now_text);
        fputs("\033[H\033[J", stdout); /* home, clear to the end */
        printf("cbctl watch, every %s, %s (Ctrl-C to quit)\n\n", interval, now_text);
        if (rc < 0)
            printf("cannot read /dev/shm: %s\n", error_text(rc));
        else
            print_table(stdout, &e, o, now);
        if (name && rc == 0 && e.n == 0)
            printf("%s: no such circuit (yet)\n", name);
        fflush(stdout);
        entries_free(&e);
        sleep_ms(every);
    }
}

/* cb_info.generation is 22 bits wide and wraps. */
#define GENERATION_MASK 0x3fffffu

/* What the previous poll saw of one circuit: which instance (its inode),
 * and, once a snapshot is known to be that instance's, the generations in
 * its history, and its own. */
struct seen {
    char name[CB_NAME_MAX + 64];
    dev_t dev;
    ino_t ino;
    int known; /* gens and generation are this instance's */
    uint32_t generation;
    unsigned len;
    uint32_t gens[CB_HISTORY_MAX];
};

static int had(const struct seen *s, uint32_t generation)
{
    for (unsigned k = 0; k < s->len; k++)
        if (s->gens[k] == generation)
            return 1;
    return 0;
}

/* The history entry as the library's log listener writes the transition
 * (cb_format_event: reason, mode, ...), so the two never differ. */
static void print_transition(const char *name, const cb_transition *t)
{
    char line[512];
    cb_event ev = {.circuit = name, .transition = *t, .mono_ms = 0};
    if (cb_format_event(&ev, line, sizeof line) >= 0)
        printf("%s\n", line);
}

/* Print the entries of `now` whose generation `before` had not (NULL: a
 * circuit new since start_ms), oldest first. */
static void report_new(const struct seen *before, const cb_info *now, const char *name, uint64_t start_ms)
{
    for (unsigned i = now->history_len; i-- > 0;) {
        const cb_transition *t = &now->history[i];
        if (before ? had(before, t->generation) : t->wall_ms < start_ms)
            continue;
        print_transition(name, t);
    }
    /* The ring holds the last CB_HISTORY_MAX generations: any between the
     * previous look and those were never seen (not all are transitions). */
    if (before && ((now->generation - before->generation) & GENERATION_MASK) > CB_HISTORY_MAX)
        fprintf(stderr, "cbctl: %s: the history ring wrapped between two looks: transitions may be missing\n",
                name);
}

static void remember(struct seen *s, const cb_info *in)
{
    s->known = 1;
    s->generation = in->generation;
    s->len = in->history_len;
    for (unsigned k = 0; k < in->history_len; k++)
        s->gens[k] = in->history[k].generation;
}

/* The entry for `name`, added (as an instance not yet known) if new; NULL
 * if out of memory. */
static struct seen *seen_for(struct seen **seen, size_t *nseen, const char *name)
{
    for (size_t k = 0; k < *nseen; k++)
        if (strcmp((*seen)[k].name, name) == 0)
            return &(*seen)[k];
    struct seen *grown = realloc(*seen, (*nseen + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    *seen = grown;
    struct seen *s = &grown[(*nseen)++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

/* One circuit's snapshot from this poll: print what is new, or only note
 * the instance the name points to now if the snapshot may not be its. */
static void look_at(struct seen *s, const struct entry *x, uint64_t start)
{
    char path[sizeof x->name + 32];
    struct stat st;
    snprintf(path, sizeof path, "/dev/shm/cbreaker.%s", x->name);
    if (stat(path, &st) != 0) {
        s->ino = 0; /* removed since the snapshot: no instance to compare */
        s->known = 0;
        return;
    }
    if (st.st_dev != s->dev || st.st_ino != s->ino) {
        s->dev = st.st_dev; /* a new instance since the previous poll */
        s->ino = st.st_ino;
        s->known = 0;
        return;
    }
    report_new(s->known ? s : NULL, &x->info, x->name, start);
    remember(s, &x->info);
}

static void follow(const char *name, uint32_t every)
{
    struct seen *seen = NULL;
    size_t nseen = 0;
    uint64_t start = wall_now_ms();
    while (!stopping) {
        struct entries e;
        if (poll_circuits(name, &e) == 0) {
            for (size_t i = 0; i < e.n; i++) {
                struct seen *s = e.v[i].err ? NULL : seen_for(&seen, &nseen, e.v[i].name);
                if (s)
                    look_at(s, &e.v[i], start);
            }
            entries_free(&e);
        }
        fflush(stdout);
        sleep_ms(every);
    }
    free(seen);
}

int cmd_watch(const struct options *o, const char *name)
{
    static cb_info info;
    if (name) {
        int rc = cb_inspect(name, &info);
        if (rc != 0)
            return report_error(name, rc);
    }
    catch_stop_signals();
    if (isatty(STDOUT_FILENO))
        redraw(name, o, o->interval_set ? o->interval_ms : 1000);
    else
        follow(name, o->interval_set ? o->interval_ms : 100);
    return CBCTL_OK;
}

int cmd_watch_all(const struct options *o) { return cmd_watch(o, NULL); }
