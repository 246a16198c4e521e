// header-cxx.cpp - the public header compiles as C++ and its C linkage
// holds (the calls below would not link without extern "C").
#include "cbreaker.h"

#include <cstring>

int main()
{
    cb_permit permit = {};
    cb_verdict v = cb_acquire(nullptr, &permit);
    return v == CB_REJECTED && std::strcmp(cb_version(), CB_VERSION_STRING) == 0 ? 0 : 1;
}
