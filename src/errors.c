/*
 * errors.c - cb_strerror() and the version.
 */
#include <string.h>

#include "cbreaker.h"

const char *cb_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case CB_ENAME:
        return "invalid circuit name (1 to 200 of letters, digits, '.', '_', '-')";
    case CB_ENOTCB:
        return "not a cbreaker segment (not a regular file, bad magic or unknown ready word)";
    case CB_EVERSION:
        return "segment has another layout version (made by another cbreaker release): "
               "remove it with `cbctl rm NAME`, then reopen";
    case CB_ESIZE:
        return "segment size is wrong (truncated or grown)";
    case CB_ELAYOUT:
        return "segment is shaped by other constants (line, stripes, ring or word size)";
    case CB_EBUSY:
        return "segment is not initialized (an older library is creating it, or left it half-made: cb_unlink it)";
    case CB_ECORRUPT:
        return "segment state word holds an impossible state (reset repairs it)";
    case CB_EOWNER:
        return "segment owned by another user or writable by others: not trusted";
    case CB_EMODE:
        return "refused while an operator mode is set (set the mode to normal first)";
    }
    if (err < 0 && err > CB_ERROR_BASE)
        return strerrordesc_np(-err) ? strerrordesc_np(-err) : "unknown error";
    return "unknown error";
}

const char *cb_version(void)
{
    return CB_VERSION_STRING;
}
