#ifndef SOFTPROMPTKIT_CZSTD_SHIM_H
#define SOFTPROMPTKIT_CZSTD_SHIM_H
#include <zstd.h>
#endif
