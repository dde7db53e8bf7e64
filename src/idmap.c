/*
 * idmap.c - the device ID bitmap and next-free search (see idmap.h).
 */
#include "idmap.h"

#include <errno.h>
#include <stdlib.h>

int idmap_init(struct idmap *m, uint32_t next_id)
{
	m->bits = calloc((IDMAP_MAX_ID + 1) / 8, 1);
	if (!m->bits)
		return -ENOMEM;
	m->next_id = next_id & IDMAP_MAX_ID;
	return 0;
}

void idmap_free(struct idmap *m)
{
	free(m->bits);
	m->bits = NULL;
}

void idmap_mark_used(struct idmap *m, uint32_t id)
{
	id &= IDMAP_MAX_ID;
	m->bits[id / 8] |= (uint8_t)(1u << (id % 8));
}

void idmap_mark_free(struct idmap *m, uint32_t id)
{
	id &= IDMAP_MAX_ID;
	m->bits[id / 8] &= (uint8_t)~(1u << (id % 8));
}

bool idmap_is_used(const struct idmap *m, uint32_t id)
{
	id &= IDMAP_MAX_ID;
	return m->bits[id / 8] & (1u << (id % 8));
}

int idmap_alloc(struct idmap *m, uint32_t *id)
{
	uint32_t candidate = m->next_id;

	for (uint64_t tries = 0; tries <= IDMAP_MAX_ID; tries++) {
		candidate = (candidate + 1) & IDMAP_MAX_ID;
		if (!idmap_is_used(m, candidate)) {
			idmap_mark_used(m, candidate);
			m->next_id = candidate;
			*id = candidate;
			return 0;
		}
	}
	return -ENOSPC;
}

int idmap_cmp_id(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}
