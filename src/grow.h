/*
 * grow.h - the one way thinfs grows an array of n elements as it fills:
 * doubling from a first capacity, with the size checked for overflow.
 */
#ifndef THINFS_GROW_H
#define THINFS_GROW_H

#include <stddef.h>

/* Make room for element n of the array *arr (elements of elem bytes,
 * *cap of them allocated): nothing if n < *cap, else realloc to twice
 * *cap (first when empty). 0, or -ENOMEM with *arr and *cap unchanged. */
int grow_array(void **arr, size_t *cap, size_t n, size_t elem, size_t first);

/* GROW(array, cap, n, first) for a typed pointer array. */
#define GROW(arr, cap, n, first) grow_array((void **)&(arr), &(cap), (n), sizeof(*(arr)), (first))

#endif
