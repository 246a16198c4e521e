/*
 * cbctl.h - what the files of cbctl share.
 *
 * cbctl parses arguments and formats; the library enumerates and reads
 * (cb_list, cb_inspect) and changes circuits (cb_reset, cb_trip,
 * cb_set_mode, cb_open, cb_set_config, cb_unlink). One job per file:
 *
 *   main.c     options, usage text, command dispatch
 *   read.c     snapshots of all circuits (cb_list); one is cb_inspect's
 *   table.c    the column table: list as a table or as JSON
 *   show.c     one circuit in full, as text or JSON
 *   control.c  reset, trip, create, rm, state, is-closed
 *   mode.c     disable, force-open, metrics-only, enable (operator modes)
 *   watch.c    redraw the list, or print transitions as they happen
 *   metrics.c  the Prometheus text exposition format
 *   format.c   durations, times, error messages and exit codes
 *   json.c     a small JSON writer
 */
#ifndef CBCTL_H
#define CBCTL_H

#include <stdint.h>
#include <stdio.h>

#include "cbreaker.h"

/* Exit codes (documented in cbctl.1 and in cbctl --help). */
enum {
    CBCTL_OK = 0,
    CBCTL_NOENT = 1,   /* no such circuit (is-closed: also "not closed") */
    CBCTL_USAGE = 2,   /* bad command, option, argument or circuit name */
    CBCTL_PERM = 3,    /* permission denied */
    CBCTL_INVALID = 4, /* not a valid circuit segment, or another error */
    CBCTL_MODE = 5     /* reset, trip: refused, an operator mode is set */
};

/* Version of the JSON documents (list, show); bumped on incompatible change. */
#define CBCTL_JSON_VERSION 1

struct options {
    int json;
    int quiet;
    int noheadings;
    const char *columns; /* -o LIST, NULL: the defaults */
    uint32_t interval_ms;
    int interval_set;
    cb_config cfg;       /* create: zero fields not given, CB_CONFIG_OFF
                            for a policy turned off */
    int mode_set;
};

/* ---- format.c ---- */
/* "500ms", "30s", "5m", "2h" to ms (1 .. UINT32_MAX); 0 ok, -1 bad. */
int parse_duration(const char *s, uint32_t *ms);
/* ms as "850ms", "4.2s", "30s", "5m00s", "2h05m", "3d04h". */
void format_duration(uint64_t ms, char *buf, size_t len);
/* How long before now a wall time was: "12s ago" ("-" for 0). */
void format_ago(uint64_t wall_ms, uint64_t now_ms, char *buf, size_t len);
/* Local time "2026-11-27 17:35:10.123". */
void format_local_time(uint64_t wall_ms, char *buf, size_t len);
/* part x 100 / whole, floored to hundredths: "40.00" ("-" when whole is
 * 0). Floored, so a rate shown is >= an integer percent exactly when the
 * rate is (the trip rule's comparison). decimals: 1 or 2. */
void format_percent(uint64_t part, uint64_t whole, int decimals, char *buf, size_t len);
/* UTC "2026-11-27T17:35:10.123Z". */
void format_iso_time(uint64_t wall_ms, char *buf, size_t len);
uint64_t wall_now_ms(void);
/* "ENOENT", "ENOTCB", ...: a stable name for scripts. */
const char *error_name(int err);
/* What an error says about a circuit, for messages and list rows. */
const char *error_text(int err);
/* The same for the object /dev/shm/cbreaker.NAME (NULL: none): a
 * CB_ENOTCB for one that is not a regular file says so. */
const char *error_text_for(const char *name, int err);
/* The exit code for a library error. */
int exit_code_for(int err);
/* "cbctl: NAME: reason" on stderr; returns the exit code for err. */
int report_error(const char *name, int err);
/* "cbctl: message" on stderr; returns CBCTL_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- json.c ---- */
/* Writes indented JSON; key is NULL for array items and the top value. */
struct json {
    FILE *f;
    int depth;
    unsigned items[16]; /* values written so far at each depth */
};
void json_start(struct json *j, FILE *f);
void json_finish(struct json *j); /* the final newline */
void json_object_begin(struct json *j, const char *key);
void json_object_end(struct json *j);
void json_array_begin(struct json *j, const char *key);
void json_array_end(struct json *j);
void json_string(struct json *j, const char *key, const char *value); /* NULL: null */
void json_uint(struct json *j, const char *key, uint64_t value);
void json_bool(struct json *j, const char *key, int value);
void json_null(struct json *j, const char *key);
/* A number already written as JSON text (e.g. "40.25"). */
void json_number_text(struct json *j, const char *key, const char *text);
/* "version", "cbreaker" and "timestamp" fields every document starts with. */
void json_header(struct json *j, uint64_t now_ms);

/* ---- read.c ---- */
/* One /dev/shm/cbreaker.* object: its snapshot, or why it is not one. */
struct entry {
    char name[CB_NAME_MAX + 64]; /* an invalid name may be longer */
    int err;                     /* 0, or why it is not a valid circuit */
    cb_info info;                /* valid when err == 0 */
};
struct entries {
    struct entry *v;
    size_t n, cap;
};
/* Every object, in name order; 0 or a negative error (nothing kept). */
int read_all(struct entries *out);
void entries_free(struct entries *e);

/* ---- table.c ---- */
/* Check -o LIST; 0 or CBCTL_USAGE (message printed). */
int columns_check(const char *list);
/* Column names and descriptions, for --help. */
void columns_usage(FILE *f);
/* The list: a table, or the JSON document. */
void print_table(FILE *f, const struct entries *e, const struct options *o, uint64_t now_ms);
void print_list_json(FILE *f, const struct entries *e, const struct options *o, uint64_t now_ms);

/* ---- commands ---- */
int cmd_list(const struct options *o);
int cmd_show(const struct options *o, const char *name);
int cmd_reset(const struct options *o, const char *name);
int cmd_trip(const struct options *o, const char *name);
int cmd_disable(const struct options *o, const char *name);
int cmd_force_open(const struct options *o, const char *name);
int cmd_metrics_only(const struct options *o, const char *name);
int cmd_enable(const struct options *o, const char *name);
/* "disable", "force-open", "metrics-only"; "enable" for NORMAL. */
const char *mode_verb(cb_mode mode);
int cmd_create(const struct options *o, const char *name);
int cmd_rm(const struct options *o, const char *name);
int cmd_state(const struct options *o, const char *name);
int cmd_is_closed(const struct options *o, const char *name);
int cmd_watch(const struct options *o, const char *name);
int cmd_watch_all(const struct options *o);
int cmd_metrics(const struct options *o);

#endif
