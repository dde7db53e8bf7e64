/* pool-reflink.c - placeholder, being written */
#include "log.h"
