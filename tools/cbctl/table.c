/*
 * table.c - the column table behind `cbctl list` (the lsipc model).
 *
 * One array, `columns`, says everything about a column: its name (for -o
 * and the header), its JSON key, whether it is shown by default, its
 * alignment, its description (cbctl --help lists them), and the function
 * that renders it for one circuit, both as text and as a JSON value. The
 * table, the JSON document and the help text are all generated from it,
 * so they cannot disagree.
 *
 * An object that is not a valid circuit gets its name and, in place of
 * the other columns, the reason ("invalid: ...").
 *
 * An operator mode other than normal shows in the STATE column of the
 * table, in capitals, in place of the state it implies (FORCED_OPEN,
 * DISABLED, METRICS_ONLY): an operator sees at once that a circuit is
 * held, not tripped. The JSON "state" keeps CLOSED, OPEN or HALF_OPEN;
 * "operator_mode" has the mode.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cbctl.h"

struct row {
    const cb_info *info;
    uint64_t now_ms;
};

/* One rendered value: text for the table, and the JSON value. */
struct cell {
    char text[CB_NAME_MAX + 1]; /* a name is the longest */
    enum { CELL_NUMBER, CELL_STRING, CELL_NULL } kind;
    uint64_t number;
    const char *json; /* CELL_STRING: the JSON value when not the text */
};

static void set_number(struct cell *c, uint64_t v)
{
    c->kind = CELL_NUMBER;
    c->number = v;
    snprintf(c->text, sizeof c->text, "%llu", (unsigned long long)v);
}

static void set_string(struct cell *c, const char *s)
{
    c->kind = CELL_STRING;
    c->json = NULL;
    snprintf(c->text, sizeof c->text, "%s", s);
}

static void set_null(struct cell *c)
{
    c->kind = CELL_NULL;
    snprintf(c->text, sizeof c->text, "-");
}

static const cb_transition *last(const struct row *r)
{
    return r->info->history_len ? &r->info->history[0] : NULL;
}

static void col_name(const struct row *r, struct cell *c) { set_string(c, r->info->name); }
static void col_state(const struct row *r, struct cell *c)
{
    set_string(c, cb_state_name(r->info->state));
    if (r->info->mode == CB_MODE_NORMAL)
        return;
    set_string(c, cb_mode_name(r->info->mode));
    c->json = cb_state_name(r->info->state);
    for (char *p = c->text; *p; p++)
        *p = (char)toupper((unsigned char)*p);
}
static void col_operator_mode(const struct row *r, struct cell *c) { set_string(c, cb_mode_name(r->info->mode)); }
static void col_open_period(const struct row *r, struct cell *c)
{
    set_number(c, r->info->open_timeout_ms);
    format_duration(r->info->open_timeout_ms, c->text, sizeof c->text);
}
static void col_backoff_step(const struct row *r, struct cell *c) { set_number(c, r->info->backoff_step); }
static void col_window_calls(const struct row *r, struct cell *c) { set_number(c, r->info->window_calls); }
static void col_window_failures(const struct row *r, struct cell *c) { set_number(c, r->info->window_failures); }
static void col_window_slow(const struct row *r, struct cell *c) { set_number(c, r->info->window_slow_calls); }
static void col_failures(const struct row *r, struct cell *c)
{
    set_number(c, r->info->failures);
    snprintf(c->text, sizeof c->text, "%u/%u", (unsigned)r->info->failures,
             (unsigned)r->info->config.failure_threshold);
}
static void col_threshold(const struct row *r, struct cell *c) { set_number(c, r->info->config.failure_threshold); }
static void col_probe_in(const struct row *r, struct cell *c)
{
    if (r->info->state != CB_OPEN || r->info->mode == CB_MODE_FORCED_OPEN) {
        set_null(c);
        return;
    }
    set_number(c, r->info->ms_until_probe);
    if (r->info->ms_until_probe == 0)
        snprintf(c->text, sizeof c->text, "due");
    else
        format_duration(r->info->ms_until_probe, c->text, sizeof c->text);
}
static void col_probe_pid(const struct row *r, struct cell *c)
{
    if (r->info->probe_pid)
        set_number(c, (uint64_t)r->info->probe_pid);
    else
        set_null(c);
}
static void col_allowed(const struct row *r, struct cell *c) { set_number(c, r->info->counters.allowed); }
static void col_rejected(const struct row *r, struct cell *c) { set_number(c, r->info->counters.rejected); }
static void col_successes(const struct row *r, struct cell *c) { set_number(c, r->info->counters.successes); }
static void col_failed(const struct row *r, struct cell *c) { set_number(c, r->info->counters.failures); }
static void col_released(const struct row *r, struct cell *c) { set_number(c, r->info->counters.released); }
static void col_late(const struct row *r, struct cell *c) { set_number(c, r->info->counters.late); }
static void col_trips(const struct row *r, struct cell *c) { set_number(c, r->info->counters.trips); }
static void col_probes(const struct row *r, struct cell *c) { set_number(c, r->info->counters.probes); }
static void col_last(const struct row *r, struct cell *c)
{
    const cb_transition *t = last(r);
    if (!t) {
        set_null(c);
        return;
    }
    set_number(c, t->wall_ms);
    format_ago(t->wall_ms, r->now_ms, c->text, sizeof c->text);
}
static void col_last_reason(const struct row *r, struct cell *c)
{
    const cb_transition *t = last(r);
    if (t)
        set_string(c, cb_reason_name(t->reason));
    else
        set_null(c);
}
static void col_generation(const struct row *r, struct cell *c) { set_number(c, r->info->generation); }
static void col_reset_timeout(const struct row *r, struct cell *c)
{
    set_number(c, r->info->config.reset_timeout_ms);
    format_duration(r->info->config.reset_timeout_ms, c->text, sizeof c->text);
}
static void col_probe_timeout(const struct row *r, struct cell *c)
{
    set_number(c, r->info->config.probe_timeout_ms);
    format_duration(r->info->config.probe_timeout_ms, c->text, sizeof c->text);
}
static void col_mode(const struct row *r, struct cell *c)
{
    char m[8];
    snprintf(m, sizeof m, "%04o", (unsigned)r->info->config.mode);
    set_string(c, m);
}

static const struct column {
    const char *name;
    const char *json;
    int shown;  /* in the default set */
    int right;  /* right-aligned */
    const char *help;
    void (*render)(const struct row *, struct cell *);
} columns[] = {
    {"NAME", "name", 1, 0, "circuit name", col_name},
    {"STATE", "state", 1, 0, "CLOSED, OPEN or HALF_OPEN; an operator mode in its place", col_state},
    {"FAILS", "failures", 1, 1, "consecutive failures / threshold (CLOSED)", col_failures},
    {"PROBE_IN", "ms_until_probe", 1, 1, "time until a probe is let through (OPEN)", col_probe_in},
    {"PROBE_PID", "probe_pid", 1, 1, "pid of the probe holder (HALF_OPEN)", col_probe_pid},
    {"REJECTED", "rejected", 1, 1, "calls rejected", col_rejected},
    {"ALLOWED", "allowed", 1, 1, "calls allowed (probes included)", col_allowed},
    {"LAST", "last_transition_ms", 1, 1, "time since the last transition", col_last},
    {"REASON", "last_reason", 1, 0, "why the last transition happened", col_last_reason},
    {"THRESHOLD", "threshold", 0, 1, "failures that trip the circuit", col_threshold},
    {"RESET", "reset_timeout_ms", 0, 1, "reset timeout (OPEN before a probe)", col_reset_timeout},
    {"PROBE_TIMEOUT", "probe_timeout_ms", 0, 1, "probe lease", col_probe_timeout},
    {"MODE", "mode", 0, 0, "permission bits of the segment", col_mode},
    {"GEN", "generation", 0, 1, "generation of the state word", col_generation},
    {"OPMODE", "operator_mode", 0, 0, "normal, disabled, forced_open or metrics_only", col_operator_mode},
    {"OPEN_PERIOD", "open_timeout_ms", 0, 1, "the open period now (backoff included)", col_open_period},
    {"STEP", "backoff_step", 0, 1, "failed probes in a row (backoff step)", col_backoff_step},
    {"W_CALLS", "window_calls", 0, 1, "calls in the rate window", col_window_calls},
    {"W_FAILS", "window_failures", 0, 1, "failures in the rate window", col_window_failures},
    {"W_SLOW", "window_slow_calls", 0, 1, "slow calls in the rate window", col_window_slow},
    {"SUCCESSES", "successes", 0, 1, "successes reported", col_successes},
    {"FAILURES", "failures_total", 0, 1, "failures reported", col_failed},
    {"RELEASED", "released", 0, 1, "permits released without a verdict", col_released},
    {"LATE", "late", 0, 1, "reports from an earlier state, ignored", col_late},
    {"TRIPS", "trips", 0, 1, "transitions into OPEN", col_trips},
    {"PROBES", "probes", 0, 1, "probes granted", col_probes},
};
#define NCOLUMNS (sizeof columns / sizeof columns[0])

static const struct column *find_column(const char *name, size_t len)
{
    for (size_t i = 0; i < NCOLUMNS; i++)
        if (strlen(columns[i].name) == len && strncasecmp(columns[i].name, name, len) == 0)
            return &columns[i];
    return NULL;
}

/* The columns to show: -o LIST, or the defaults (all of them in JSON). */
static size_t selected(const struct options *o, const struct column **out)
{
    size_t n = 0;
    if (!o->columns) {
        for (size_t i = 0; i < NCOLUMNS; i++)
            if (columns[i].shown || o->json)
                out[n++] = &columns[i];
        return n;
    }
    for (const char *p = o->columns; *p && n < NCOLUMNS;) {
        size_t len = strcspn(p, ",");
        const struct column *c = find_column(p, len);
        if (c)
            out[n++] = c;
        p += len + (p[len] == ',');
    }
    return n;
}

int columns_check(const char *list)
{
    if (!*list)
        return usage_error("-o: no columns given");
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (!find_column(p, len))
            return usage_error("-o: unknown column '%.*s'", (int)len, p);
        p += len + (p[len] == ',');
    }
    return 0;
}

void columns_usage(FILE *f)
{
    for (size_t i = 0; i < NCOLUMNS; i++)
        fprintf(f, "  %-14s %s%s\n", columns[i].name, columns[i].help, columns[i].shown ? "" : " (-o)");
}

static void put_cell(FILE *f, const struct column *col, size_t width, const char *text, int first,
                     int last_col)
{
    if (!first)
        fputs("  ", f);
    if (col->right)
        fprintf(f, "%*s", (int)width, text);
    else if (last_col)
        fputs(text, f);
    else
        fprintf(f, "%-*s", (int)width, text);
}

void print_table(FILE *f, const struct entries *e, const struct options *o, uint64_t now_ms)
{
    const struct column *cols[NCOLUMNS];
    size_t ncols = selected(o, cols);
    size_t width[NCOLUMNS];
    int name_first = ncols > 0 && cols[0]->render == col_name;
    struct cell *cells = calloc(e->n * ncols + 1, sizeof *cells);
    if (!cells) {
        fprintf(stderr, "cbctl: out of memory\n");
        return;
    }
    for (size_t c = 0; c < ncols; c++)
        width[c] = o->noheadings ? 0 : strlen(cols[c]->name);
    for (size_t i = 0; i < e->n; i++) {
        const struct entry *x = &e->v[i];
        if (x->err) {
            if (name_first && strlen(x->name) > width[0])
                width[0] = strlen(x->name);
            continue;
        }
        struct row r = {&x->info, now_ms};
        for (size_t c = 0; c < ncols; c++) {
            struct cell *cell = &cells[i * ncols + c];
            cols[c]->render(&r, cell);
            if (strlen(cell->text) > width[c])
                width[c] = strlen(cell->text);
        }
    }
    if (!o->noheadings) {
        for (size_t c = 0; c < ncols; c++)
            put_cell(f, cols[c], width[c], cols[c]->name, c == 0, c + 1 == ncols);
        fputc('\n', f);
    }
    for (size_t i = 0; i < e->n; i++) {
        const struct entry *x = &e->v[i];
        if (x->err) {
            /* The name, then the reason across the other columns. */
            if (name_first)
                fprintf(f, "%-*s  ", (int)width[0], x->name);
            else
                fprintf(f, "%s: ", x->name);
            fprintf(f, "invalid: %s (%s)\n", error_text_for(x->name, x->err), error_name(x->err));
            continue;
        }
        for (size_t c = 0; c < ncols; c++)
            put_cell(f, cols[c], width[c], cells[i * ncols + c].text, c == 0, c + 1 == ncols);
        fputc('\n', f);
    }
    free(cells);
}

void print_list_json(FILE *f, const struct entries *e, const struct options *o, uint64_t now_ms)
{
    const struct column *cols[NCOLUMNS];
    size_t ncols = selected(o, cols);
    struct json j;
    json_start(&j, f);
    json_object_begin(&j, NULL);
    json_header(&j, now_ms);
    json_array_begin(&j, "circuits");
    for (size_t i = 0; i < e->n; i++) {
        const struct entry *x = &e->v[i];
        json_object_begin(&j, NULL);
        json_string(&j, "name", x->name);
        json_bool(&j, "valid", !x->err);
        if (x->err) {
            json_string(&j, "error", error_name(x->err));
            json_string(&j, "reason", error_text_for(x->name, x->err));
        }
        struct row r = {&x->info, now_ms};
        for (size_t c = 0; c < ncols && !x->err; c++) {
            if (cols[c]->render == col_name)
                continue;
            struct cell cell;
            cols[c]->render(&r, &cell);
            if (cell.kind == CELL_NUMBER)
                json_uint(&j, cols[c]->json, cell.number);
            else if (cell.kind == CELL_STRING)
                json_string(&j, cols[c]->json, cell.json ? cell.json : cell.text);
            else
                json_null(&j, cols[c]->json);
        }
        json_object_end(&j);
    }
    json_array_end(&j);
    json_object_end(&j);
    json_finish(&j);
}

int cmd_list(const struct options *o)
{
    struct entries e;
    int rc = read_all(&e);
    if (rc < 0)
        return report_error("/dev/shm", rc);
    if (!o->quiet) {
        uint64_t now = wall_now_ms();
        if (o->json)
            print_list_json(stdout, &e, o, now);
        else
            print_table(stdout, &e, o, now);
    }
    entries_free(&e);
    return CBCTL_OK;
}
