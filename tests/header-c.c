/*
 * header-c.c - the public header compiles as strict C99 (-pedantic
 * -Werror, set in meson.build) and its names link.
 */
#include "cbreaker.h"

int main(void)
{
    cb_permit permit = {{0, 0}};
    cb_release((cb_breaker *)0, &permit);
    return cb_version()[0] == CB_VERSION_STRING[0] ? 0 : 1;
}
