/*
 * bench.h - the two floor benchmarks' (pool-floor, dm-floor) clock and
 * JSON output. Header-only so each benchmark is one file.
 */
#ifndef THINFS_BENCH_H
#define THINFS_BENCH_H

#include <stdio.h>
#include <time.h>

static inline double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* "key":[v0,v1,...] with one decimal. */
static inline void print_list(const char *key, const double *v, int n)
{
	printf("\"%s\":[", key);
	for (int i = 0; i < n; i++)
		printf("%s%.1f", i ? "," : "", v[i]);
	printf("]");
}

#endif
