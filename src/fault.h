/*
 * fault.h - crash points for tests.
 *
 * fault_point("add-after-intent") kills the process with SIGKILL when the
 * environment variable THINFS_FAULT names that point, so tests can check
 * that a restart rolls the operation back or forward. With THINFS_FAULT
 * unset it costs one getenv at the first call. fault_points[] lists every
 * point compiled in, so tests can walk them all (`thinfs --list-faults`).
 */
#ifndef THINFS_FAULT_H
#define THINFS_FAULT_H

extern const char *const fault_points[];

void fault_point(const char *name);

#endif
