#ifndef SOFTPROMPTKIT_CJSONC_SHIM_H
#define SOFTPROMPTKIT_CJSONC_SHIM_H
#include <json.h>
#endif
