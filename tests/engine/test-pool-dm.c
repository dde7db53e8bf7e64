/*
 * test-pool-dm.c - tests/engine/test-engine.c over the dm backend (the
 * kernel's dm-thin through libdevmapper, on loopback pool files). Skips
 * (exit 77) where the kernel has no device-mapper or no thin-pool target;
 * tests/vm/dm.t runs it in a QEMU guest whose kernel has both, where a
 * skip counts as a failure.
 */
#define TEST_BACKEND "dm"
#include "test-engine.c"
