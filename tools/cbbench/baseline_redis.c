/*
 * baseline_redis.c - the shared circuit most Python and Go services use
 * today: state and failure count in Redis (pybreaker's
 * CircuitRedisStorage, ganesha), one round trip per access.
 *
 * Keys NS:state ("closed", "open", "half-open"), NS:fail_counter and
 * NS:opened_at (microseconds). As pybreaker does it:
 *   acquire  GET state; when "open", GET opened_at and, once the reset
 *            timeout has passed, SET state half-open and let the call
 *            through as the probe. (pybreaker then lets every call through
 *            while half-open; here they are rejected, the kinder reading.)
 *   success  SET fail_counter 0 (pybreaker resets it on every success);
 *            a probe also SETs state closed.
 *   failure  INCR fail_counter; at the threshold SET state open and
 *            SET opened_at; a failed probe re-opens the same way.
 * There is no compare-and-swap: two workers that both GET "open" after the
 * timeout both SET half-open and both probe. The storm shows how often.
 * Every command is a loopback round trip; the timed loops pay for exactly
 * the commands above, synchronously, one connection per process.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "baseline_redis.h"

struct rd_circuit {
    char host[256];
    int port;
    char key_state[128], key_count[128], key_opened[128];
    uint64_t threshold, reset_ms;
    uint64_t (*now_ms)(void *);
    void *clock_ctx;
    redisContext *ctx; /* this process's connection */
};

int rd_available(void) { return 1; }

/* Microseconds: pybreaker compares datetime.now() values, a precise
 * clock; with the bench's injected clock (ms), its reading times 1000. */
static uint64_t now_us(const struct rd_circuit *r)
{
    if (r->now_ms)
        return r->now_ms(r->clock_ctx) * 1000u;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int rd_connect(struct rd_circuit *r)
{
    rd_disconnect(r);
    r->ctx = redisConnect(r->host, r->port);
    if (!r->ctx || r->ctx->err) {
        fprintf(stderr, "cbbench: redis %s:%d: %s\n", r->host, r->port,
                r->ctx ? r->ctx->errstr : "cannot allocate a context");
        rd_disconnect(r);
        return -1;
    }
    return 0;
}

void rd_disconnect(struct rd_circuit *r)
{
    if (r->ctx)
        redisFree(r->ctx);
    r->ctx = NULL;
}

/* One command; the reply's integer, or the first byte of its string. */
static long long command(struct rd_circuit *r, char *first, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static long long command(struct rd_circuit *r, char *first, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *reply = redisvCommand(r->ctx, fmt, ap);
    va_end(ap);
    long long v = 0;
    if (!reply) {
        fprintf(stderr, "cbbench: redis: %s\n", r->ctx->errstr);
        exit(3);
    }
    if (reply->type == REDIS_REPLY_INTEGER)
        v = reply->integer;
    else if (reply->type == REDIS_REPLY_STRING)
        v = strtoll(reply->str, NULL, 10);
    if (first)
        *first = reply->type == REDIS_REPLY_STRING && reply->len > 0 ? reply->str[0] : 0;
    freeReplyObject(reply);
    return v;
}

struct rd_circuit *rd_open(const char *host, int port, const char *ns, const cb_config *cfg,
                           uint64_t (*now_ms)(void *), void *clock_ctx)
{
    struct rd_circuit *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    snprintf(r->host, sizeof r->host, "%s", host);
    r->port = port;
    snprintf(r->key_state, sizeof r->key_state, "%s:state", ns);
    snprintf(r->key_count, sizeof r->key_count, "%s:fail_counter", ns);
    snprintf(r->key_opened, sizeof r->key_opened, "%s:opened_at", ns);
    r->threshold = cfg->failure_threshold ? cfg->failure_threshold : CB_DEFAULT_FAILURE_THRESHOLD;
    r->reset_ms = cfg->reset_timeout_ms ? cfg->reset_timeout_ms : CB_DEFAULT_RESET_TIMEOUT_MS;
    r->now_ms = now_ms;
    r->clock_ctx = clock_ctx;
    if (rd_connect(r) != 0) {
        free(r);
        return NULL;
    }
    rd_reset(r);
    return r;
}

void rd_close(struct rd_circuit *r)
{
    if (!r)
        return;
    if (r->ctx || rd_connect(r) == 0)
        command(r, NULL, "DEL %s %s %s", r->key_state, r->key_count, r->key_opened);
    rd_disconnect(r);
    free(r);
}

cb_verdict rd_acquire(struct rd_circuit *r, uint64_t *permit)
{
    char state;
    command(r, &state, "GET %s", r->key_state);
    if (state == 'c') {
        *permit = 1;
        return CB_ALLOWED;
    }
    if (state == 'o') {
        uint64_t opened = (uint64_t)command(r, NULL, "GET %s", r->key_opened);
        uint64_t now = now_us(r);
        if (now >= opened && now - opened >= r->reset_ms * 1000u) {
            command(r, NULL, "SET %s half-open", r->key_state);
            *permit = 2;
            return CB_PROBE;
        }
    }
    *permit = 0;
    return CB_REJECTED;
}

void rd_success(struct rd_circuit *r, uint64_t permit)
{
    if (permit == 2)
        command(r, NULL, "SET %s closed", r->key_state);
    if (permit)
        command(r, NULL, "SET %s 0", r->key_count);
}

static void open_now(struct rd_circuit *r)
{
    command(r, NULL, "SET %s open", r->key_state);
    command(r, NULL, "SET %s %llu", r->key_opened, (unsigned long long)now_us(r));
}

void rd_failure(struct rd_circuit *r, uint64_t permit)
{
    if (permit == 2)
        open_now(r);
    else if (permit == 1 && (uint64_t)command(r, NULL, "INCR %s", r->key_count) >= r->threshold)
        open_now(r);
}

void rd_reset(struct rd_circuit *r)
{
    command(r, NULL, "SET %s closed", r->key_state);
    command(r, NULL, "SET %s 0", r->key_count);
}

void rd_trip(struct rd_circuit *r) { open_now(r); }
