/*
 * json.c - a small JSON writer for cbctl's documents.
 *
 * Values are written as they come, one per line, indented two spaces per
 * level; the writer keeps only how many values each open level holds so
 * far, to place the commas. Strings are escaped per RFC 8259 (quote,
 * backslash, control characters); circuit names are plain ASCII anyway,
 * but the names of invalid objects in /dev/shm may hold anything.
 */
#include "cbctl.h"

#define JSON_MAX_DEPTH ((int)(sizeof ((struct json *)0)->items / sizeof(unsigned)))

static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        switch (*c) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (*c < 0x20 || *c == 0x7f)
                fprintf(f, "\\u%04x", *c);
            else if (*c >= 0x80)
                fputs("\\ufffd", f); /* not UTF-8 we can vouch for */
            else
                fputc(*c, f);
        }
    }
    fputc('"', f);
}

/* Comma, newline and indentation before a value, then its key. */
static void begin_value(struct json *j, const char *key)
{
    if (j->depth > 0) {
        if (j->items[j->depth]++)
            fputc(',', j->f);
        fputc('\n', j->f);
        for (int i = 0; i < j->depth; i++)
            fputs("  ", j->f);
    }
    if (key) {
        put_string(j->f, key);
        fputs(": ", j->f);
    }
}

void json_start(struct json *j, FILE *f)
{
    j->f = f;
    j->depth = 0;
    j->items[0] = 0;
}

void json_finish(struct json *j)
{
    fputc('\n', j->f);
}

static void open_level(struct json *j, const char *key, char bracket)
{
    begin_value(j, key);
    fputc(bracket, j->f);
    if (j->depth + 1 < JSON_MAX_DEPTH)
        j->items[++j->depth] = 0;
}

static void close_level(struct json *j, char bracket)
{
    unsigned had = j->items[j->depth];
    if (j->depth > 0)
        j->depth--;
    if (had) {
        fputc('\n', j->f);
        for (int i = 0; i < j->depth; i++)
            fputs("  ", j->f);
    }
    fputc(bracket, j->f);
}

void json_object_begin(struct json *j, const char *key) { open_level(j, key, '{'); }
void json_object_end(struct json *j) { close_level(j, '}'); }
void json_array_begin(struct json *j, const char *key) { open_level(j, key, '['); }
void json_array_end(struct json *j) { close_level(j, ']'); }

void json_string(struct json *j, const char *key, const char *value)
{
    begin_value(j, key);
    if (value)
        put_string(j->f, value);
    else
        fputs("null", j->f);
}

void json_uint(struct json *j, const char *key, uint64_t value)
{
    begin_value(j, key);
    fprintf(j->f, "%llu", (unsigned long long)value);
}

void json_bool(struct json *j, const char *key, int value)
{
    begin_value(j, key);
    fputs(value ? "true" : "false", j->f);
}

void json_null(struct json *j, const char *key)
{
    begin_value(j, key);
    fputs("null", j->f);
}

void json_number_text(struct json *j, const char *key, const char *text)
{
    begin_value(j, key);
    fputs(text, j->f);
}

void json_header(struct json *j, uint64_t now_ms)
{
    char iso[64];
    format_iso_time(now_ms, iso, sizeof iso);
    json_uint(j, "version", CBCTL_JSON_VERSION);
    json_string(j, "cbreaker", cb_version());
    json_string(j, "timestamp", iso);
    json_uint(j, "timestamp_ms", now_ms);
}
