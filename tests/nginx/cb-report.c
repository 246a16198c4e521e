/*
 * cb-report.c - the C side of the nginx sharing test: opens circuit NAME
 * (attaching with its stored config) and, N times, acquires and then
 * reports a failure or a success, or only acquires and releases. Prints
 * each verdict (allowed, probe, rejected) on a line of its own.
 * Usage: cb-report NAME acquire|failure|success N
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbreaker.h"

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: cb-report NAME acquire|failure|success N\n");
        return 2;
    }
    cb_breaker *b;
    int rc = cb_open(argv[1], NULL, &b);
    if (rc < 0) {
        fprintf(stderr, "cb-report: %s: %s\n", argv[1], cb_strerror(rc));
        return 1;
    }
    cb_set_listener(b, cb_log_listener, NULL);
    static const char *const names[] = {"rejected", "allowed", "probe"};
    for (long i = 0, n = strtol(argv[3], NULL, 10); i < n; i++) {
        cb_permit p;
        cb_verdict v = cb_acquire(b, &p);
        puts(names[v]);
        if (!strcmp(argv[2], "failure"))
            cb_failure(b, &p);
        else if (!strcmp(argv[2], "success"))
            cb_success(b, &p);
        else
            cb_release(b, &p);
    }
    cb_close(b);
    return 0;
}
