/* deviceset.c - placeholder, being written */
#include "log.h"
