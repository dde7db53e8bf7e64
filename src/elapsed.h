/*
 * elapsed.h - milliseconds between CLOCK_MONOTONIC readings: the timings
 * the log reports (a start's steps, the worker's passes) and the bounded
 * waits (the state directory's lock).
 */
#ifndef THINFS_ELAPSED_H
#define THINFS_ELAPSED_H

#include <time.h>

static inline long ms_between(const struct timespec *a, const struct timespec *b)
{
	return (long)((b->tv_sec - a->tv_sec) * 1000 + (b->tv_nsec - a->tv_nsec) / 1000000);
}

/* Since t0, read from CLOCK_MONOTONIC. */
static inline long ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return ms_between(t0, &now);
}

#endif
