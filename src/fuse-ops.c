/* fuse-ops.c - placeholder, being written */
#include "log.h"
