/*
 * cbctl-race-shim.c - preloaded into cbctl (LD_PRELOAD) by test-cbctl's
 * create race: plays a server that creates circuit $CB_RACE_NAME with
 * threshold 7 at the worst moment for cbctl create, once: right after
 * cbctl's first look at the circuit (cb_inspect), or right before cbctl
 * opens it, whichever comes first. Whatever cbctl decides before opening
 * is then out of date.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbreaker.h"

typedef int (*open_fn)(const char *, const cb_config *, cb_breaker **);
typedef int (*inspect_fn)(const char *, cb_info *);

static int served;

/* The library's own function, as dlsym finds it after the shim (stored
 * through a void * as POSIX's dlsym example does: ISO C has no cast from
 * an object pointer to a function pointer). */
static void next(const char *symbol, void *fn)
{
    void *f = dlsym(RTLD_NEXT, symbol);
    if (!f) {
        fprintf(stderr, "cbctl-race-shim: no %s after the shim\n", symbol);
        abort();
    }
    memcpy(fn, &f, sizeof f);
}

static void serve(const char *name)
{
    const char *race = getenv("CB_RACE_NAME");
    if (served || !race || !name || strcmp(race, name) != 0)
        return;
    served = 1;
    cb_config server = {.failure_threshold = 7};
    cb_breaker *b = NULL;
    open_fn real_open;
    next("cb_open", &real_open);
    int rc = real_open(name, &server, &b);
    if (rc != CB_CREATED) {
        fprintf(stderr, "cbctl-race-shim: the server's cb_open gave %d, want CB_CREATED\n", rc);
        abort();
    }
    cb_close(b);
}

int cb_inspect(const char *name, cb_info *out)
{
    inspect_fn real_inspect;
    next("cb_inspect", &real_inspect);
    int rc = real_inspect(name, out);
    serve(name);
    return rc;
}

int cb_open(const char *name, const cb_config *cfg, cb_breaker **out)
{
    open_fn real_open;
    next("cb_open", &real_open);
    serve(name);
    return real_open(name, cfg, out);
}
