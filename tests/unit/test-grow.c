/*
 * test-grow.c - grow_array: the first capacity, doubling, room for an
 * index beyond the capacity, contents kept, overflow refused unchanged.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "grow.h"
#include "tap.h"

int main(void)
{
	uint32_t *a = NULL, *before;
	size_t cap = 0, n;
	bool kept = true;

	is_int(GROW(a, cap, 0, 16), 0, "an empty array grows");
	tap_ok(a != NULL && cap == 16, "to the first capacity (%zu)", cap);
	before = a;
	is_int(GROW(a, cap, 15, 16), 0, "room left: nothing to do");
	tap_ok(a == before && cap == 16, "the array is unchanged");
	for (n = 0; n < 1000; n++) {
		if (GROW(a, cap, n, 16) < 0)
			break;
		a[n] = (uint32_t)n * 7;
	}
	tap_ok(n == 1000 && cap == 1024, "1000 elements added, capacity doubled to %zu", cap);
	for (n = 0; n < 1000; n++)
		kept = kept && a[n] == (uint32_t)n * 7;
	tap_ok(kept, "every element kept across the reallocations");
	is_int(GROW(a, cap, 5000, 16), 0, "an index far beyond the capacity");
	tap_ok(cap > 5000 && cap == 8192, "gets room by doubling (%zu)", cap);
	before = a;
	n = cap;
	is_int(grow_array((void **)&a, &cap, SIZE_MAX / 2, 4, 16), -ENOMEM, "a size that overflows: ENOMEM");
	tap_ok(a == before && cap == n, "and the array is left as it was");
	free(a);
	return tap_done();
}
