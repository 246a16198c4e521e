/*
 * upstream_redis.c - --redis HOST:PORT: each route lookup is a real Redis
 * command, GET route:<name>, through hiredis. Built only when meson found
 * hiredis (CBDEMO_HAVE_HIREDIS); otherwise redis_supported() says no and
 * cbdemo explains how to get it.
 *
 * Each worker keeps one connection, with a connect and a reply timeout. A
 * connection that broke (an error, or the server closed it while idle) is
 * dropped and made again on the next call, so a restarted Redis is reached
 * by the first call after it is back.
 */
#include <stdio.h>
#include <stdlib.h>

#include "upstream.h"

#ifdef CBDEMO_HAVE_HIREDIS
#include <hiredis/hiredis.h>
#include <string.h>
#include <sys/time.h>

struct redis_client {
    upstream base;
    char host[256];
    unsigned port;
    struct timeval timeout;
    redisContext *ctx;
};

static void drop(struct redis_client *c)
{
    if (c->ctx)
        redisFree(c->ctx);
    c->ctx = NULL;
}

static int redis_lookup(upstream *u, const char *key, char *backend, size_t len, char *err, size_t errlen)
{
    struct redis_client *c = (struct redis_client *)u;
    if (c->ctx && peer_closed(c->ctx->fd))
        drop(c);
    if (!c->ctx) {
        c->ctx = redisConnectWithTimeout(c->host, (int)c->port, c->timeout);
        if (!c->ctx) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        if (c->ctx->err || redisSetTimeout(c->ctx, c->timeout) != REDIS_OK) {
            snprintf(err, errlen, "%s", c->ctx->err ? c->ctx->errstr : "cannot set timeout");
            drop(c);
            return -1;
        }
    }
    redisReply *reply = redisCommand(c->ctx, "GET route:%s", key);
    if (!reply) {
        snprintf(err, errlen, "%s", c->ctx->errstr[0] ? c->ctx->errstr : "no reply");
        drop(c);
        return -1;
    }
    int rc = 0;
    if (reply->type == REDIS_REPLY_STRING) {
        snprintf(backend, len, "%.*s", (int)reply->len, reply->str);
    } else if (reply->type == REDIS_REPLY_NIL) {
        backend[0] = '\0';
    } else {
        /* An error reply (LOADING, a replica that lost its master, ...)
         * is a failed call too. */
        snprintf(err, errlen, "%s", reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        rc = -1;
    }
    freeReplyObject(reply);
    return rc;
}

static void redis_free(upstream *u)
{
    struct redis_client *c = (struct redis_client *)u;
    drop(c);
    free(c);
}

int redis_supported(void)
{
    return 1;
}

upstream *redis_client_new(const char *host, unsigned port, unsigned timeout_ms)
{
    struct redis_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->base = (upstream){.label = "redis", .lookup = redis_lookup, .free = redis_free};
    snprintf(c->host, sizeof c->host, "%s", host);
    c->port = port;
    c->timeout = (struct timeval){(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000};
    return &c->base;
}

#else /* built without hiredis */

int redis_supported(void)
{
    return 0;
}

upstream *redis_client_new(const char *host, unsigned port, unsigned timeout_ms)
{
    (void)host;
    (void)port;
    (void)timeout_ms;
    return NULL;
}

#endif
