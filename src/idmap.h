/*
 * idmap.h - the bitmap of 24-bit thin device IDs and the engine's
 * next-free search (start after the last one given, wrap around, give up
 * after one full turn with -ENOSPC), as the original engine did.
 */
#ifndef THINFS_IDMAP_H
#define THINFS_IDMAP_H

#include <stdbool.h>
#include <stdint.h>

#define IDMAP_MAX_ID 0xffffffu

struct idmap {
	uint8_t *bits;     /* (IDMAP_MAX_ID + 1) / 8 bytes */
	uint32_t next_id;  /* the last ID handed out (next search starts after it) */
};

int idmap_init(struct idmap *m, uint32_t next_id);
void idmap_free(struct idmap *m);
void idmap_mark_used(struct idmap *m, uint32_t id);
void idmap_mark_free(struct idmap *m, uint32_t id);
bool idmap_is_used(const struct idmap *m, uint32_t id);
/* The next free ID after next_id (wrapping), marked used, next_id moved
 * to it. -ENOSPC when every ID is used. */
int idmap_alloc(struct idmap *m, uint32_t *id);
/* qsort/bsearch order of device IDs. */
int idmap_cmp_id(const void *a, const void *b);

#endif
