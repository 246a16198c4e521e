/*
 * fuzz-segment.c - libFuzzer target: arbitrary bytes as a circuit's
 * shared-memory object.
 *
 * Every input becomes the object /dev/shm/cbreaker.fuzz-PID. The first
 * byte picks how: 0 = the rest of the input is the object, byte for byte;
 * otherwise the rest is a list of patches (offset: 2 bytes, length: 1
 * byte, data) applied to a valid segment image, then a new length (2
 * bytes), so that the fuzzer also reaches the body: state word, config,
 * stripes and history ring. Then:
 *  - cb_inspect and cb_list (for one input in 16: it reads all of
 *    /dev/shm) must give 0 or an error cb_strerror knows, the same one;
 *  - where the object is a usable segment, cb_attach succeeds and the
 *    state machine runs on it (acquire, every report, reset, trip,
 *    snapshot) on a fake clock; after cb_set_mode(NORMAL), cb_trip and
 *    cb_reset the circuit must be CLOSED
 *    and its snapshot clean, and after cb_set_config its snapshot must
 *    show exactly the config set, whatever the image held.
 * Run by tools/fuzz; any crash or sanitizer report is a failure.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "handle.h"
#include "segment.h"

static char name[64];
static uint8_t valid_image[CB_SEGMENT_SIZE];
static uint64_t fake_now = 1000000;

static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

static void fail(const char *what, int rc)
{
    fprintf(stderr, "fuzz-segment: %s returned %d (%s)\n", what, rc, cb_strerror(rc));
    abort();
}

static void expect_known(const char *what, int rc)
{
    if (rc < 0 && strcmp(cb_strerror(rc), "unknown error") == 0)
        fail(what, rc);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(name, sizeof name, "fuzz-%d", (int)getpid());
    cb_breaker *b;
    cb_config cfg = {.failure_threshold = 3, .reset_timeout_ms = 50, .probe_timeout_ms = 100};
    if (cb_open_private(name, &cfg, &b) != CB_CREATED)
        abort();
    memcpy(valid_image, b->seg, sizeof valid_image);
    cb_close(b);
    return 0;
}

/* The object's bytes for this input; *len is its length. */
static uint8_t *build_image(const uint8_t *data, size_t size, size_t *len)
{
    if (size == 0 || data[0] == 0) {
        *len = size ? size - 1 : 0;
        uint8_t *img = malloc(*len + 1);
        memcpy(img, data + (size ? 1 : 0), *len);
        return img;
    }
    uint8_t *img = malloc(2 * CB_SEGMENT_SIZE);
    memset(img, 0, 2 * CB_SEGMENT_SIZE);
    memcpy(img, valid_image, CB_SEGMENT_SIZE);
    size_t i = 1;
    *len = CB_SEGMENT_SIZE;
    while (i + 3 <= size) {
        size_t off = ((size_t)data[i] << 8 | data[i + 1]) % (2 * CB_SEGMENT_SIZE);
        size_t n = data[i + 2];
        i += 3;
        if (n == 0) { /* a zero-length patch sets the object's length */
            *len = off;
            continue;
        }
        for (size_t k = 0; k < n && i < size && off + k < 2 * CB_SEGMENT_SIZE; k++, i++)
            img[off + k] = data[i];
    }
    return img;
}

static void write_object(const uint8_t *img, size_t len)
{
    char path[80];
    snprintf(path, sizeof path, "/cbreaker.%s", name);
    int fd = shm_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || (len && write(fd, img, len) != (ssize_t)len))
        abort();
    close(fd);
}

static int list_one(const char *n, const cb_info *info, int err, void *ctx)
{
    (void)info;
    if (strcmp(n, name) == 0)
        *(int *)ctx = err;
    expect_known("cb_list", err);
    return 0;
}

/* The state machine on whatever the image held; reset must repair all. */
static void exercise(cb_breaker *b)
{
    cb_set_clock(b, fake_clock, NULL);
    cb_info info;
    cb_permit p;
    for (int round = 0; round < 4; round++) {
        cb_verdict v = cb_acquire(b, &p);
        if (v != CB_REJECTED && v != CB_ALLOWED && v != CB_PROBE)
            fail("cb_acquire", (int)v);
        switch (round) {
        case 0: cb_failure(b, &p); break;
        case 1: cb_success(b, &p); break;
        case 2: cb_release(b, &p); break;
        default: cb_failure(b, &p); break;
        }
        fake_now += 60;
    }
    expect_known("cb_get_info", cb_get_info(b, &info));
    /* An image may hold an operator mode (cb_trip and cb_reset refuse
     * it with CB_EMODE) or a corrupt mode word: NORMAL leaves both. */
    int mode = cb_set_mode(b, CB_MODE_NORMAL);
    if (mode < CB_MODE_NORMAL || mode > CB_MODE_METRICS_ONLY)
        fail("cb_set_mode", mode);
    int before = cb_trip(b);
    if (before < 0 || before > 3)
        fail("cb_trip", before);
    before = cb_reset(b);
    if (before != CB_OPEN)
        fail("cb_reset after cb_trip", before);
    int rc = cb_get_info(b, &info);
    if (rc != 0 || info.state != CB_CLOSED || info.failures != 0)
        fail("cb_get_info after cb_reset", rc);
    /* Whatever the config slots held, an update lands whole. */
    cb_config next = {.failure_threshold = 4, .reset_timeout_ms = 70, .probe_timeout_ms = 30};
    rc = cb_set_config(b, &next);
    if (rc != 0 && rc != 1)
        fail("cb_set_config", rc);
    rc = cb_get_info(b, &info);
    if (rc != 0 || info.config.failure_threshold != 4 || info.config.reset_timeout_ms != 70 ||
        info.config.probe_timeout_ms != 30)
        fail("cb_get_info after cb_set_config", rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len;
    uint8_t *img = build_image(data, size, &len);
    write_object(img, len);
    free(img);

    cb_info info;
    int inspected = cb_inspect(name, &info);
    expect_known("cb_inspect", inspected);
    if (size && data[size - 1] % 16 == 0) { /* listing reads all of /dev/shm: now and then */
        int listed = 1;
        expect_known("cb_list", cb_list(list_one, &listed));
        if (listed != inspected)
            fail("cb_list disagrees with cb_inspect", listed);
    }

    /* Unready objects too: cb_attach says CB_EBUSY at once, no wait. */
    cb_breaker *b;
    int rc = cb_attach(name, &b);
    expect_known("cb_attach", rc);
    if ((rc >= 0) != (inspected == 0 || inspected == CB_ECORRUPT))
        fail("cb_attach disagrees with cb_inspect", rc);
    if (rc >= 0) {
        exercise(b);
        cb_close(b);
    }
    cb_unlink(name);
    return 0;
}
