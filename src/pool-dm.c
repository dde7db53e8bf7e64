/* pool-dm.c - placeholder, being written */
#include "log.h"
