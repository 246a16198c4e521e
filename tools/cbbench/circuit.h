/*
 * circuit.h - struct circuit, shared by circuits.c and the timed loops in
 * scenarios.c (which call each implementation directly, not through
 * circuits.c, so that no indirection is timed).
 */
#ifndef CBBENCH_CIRCUIT_H
#define CBBENCH_CIRCUIT_H

#include "bench.h"

struct circuit {
    enum impl impl;
    cb_breaker *cb;         /* ours, private */
    struct mx_circuit *mx;  /* mutex */
    struct rd_circuit *rd;  /* redis */
    char name[CB_NAME_MAX + 1];
};

#endif
