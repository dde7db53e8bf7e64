/*
 * test-idmap.c - the device ID bitmap: next-free search after the last ID
 * given, wrap-around past 0xffffff, reuse after free, ENOSPC when full.
 */
#include <errno.h>
#include <stdlib.h>

#include "idmap.h"
#include "tap.h"

/* One allocation; the ID, or -errno. */
static long alloc(struct idmap *m)
{
	uint32_t id = 0;
	int r = idmap_alloc(m, &id);

	return r < 0 ? r : (long)id;
}

int main(void)
{
	struct idmap m;
	uint32_t ids[] = { 9, 3, 0xffffff, 0, 3 };

	if (!ok(idmap_init(&m, 0) == 0, "init"))
		return tap_done();
	ok(!idmap_is_used(&m, 0) && !idmap_is_used(&m, 1) && !idmap_is_used(&m, IDMAP_MAX_ID),
	   "a new bitmap is empty");
	is_int(alloc(&m), 1, "the first ID after next_id 0 is 1");
	ok(idmap_is_used(&m, 1), "an allocated ID is marked used");
	is_int(alloc(&m), 2, "then 2");
	idmap_mark_used(&m, 3);
	idmap_mark_used(&m, 4);
	is_int(alloc(&m), 5, "used IDs are skipped");
	is_int(m.next_id, 5, "next_id follows the last one given");
	idmap_mark_free(&m, 2);
	ok(!idmap_is_used(&m, 2) && idmap_is_used(&m, 1) && idmap_is_used(&m, 3),
	   "freeing one ID leaves its neighbours used");
	is_int(alloc(&m), 6, "the search goes on after the last ID, not back to a freed one");
	idmap_free(&m);
	idmap_free(&m);
	ok(m.bits == NULL, "idmap_free twice is safe");

	ok(idmap_init(&m, 41) == 0, "init with next_id 41 (as loaded from deviceset-metadata)");
	is_int(alloc(&m), 42, "the first ID is the one after next_id");
	idmap_free(&m);

	idmap_init(&m, IDMAP_MAX_ID - 1);
	is_int(alloc(&m), IDMAP_MAX_ID, "0xffffff is a valid ID");
	is_int(alloc(&m), 0, "the search wraps to 0");
	is_int(alloc(&m), 1, "then 1");
	idmap_mark_used(&m, 2);
	idmap_mark_free(&m, IDMAP_MAX_ID);
	is_int(alloc(&m), 3, "after the wrap the search still skips used IDs");
	idmap_free(&m);

	/* A freed ID is found again once the search comes round to it. */
	idmap_init(&m, IDMAP_MAX_ID - 2);
	idmap_mark_used(&m, IDMAP_MAX_ID);
	is_int(alloc(&m), IDMAP_MAX_ID - 1, "the last free ID before the top");
	is_int(alloc(&m), 0, "the used top ID is skipped while wrapping");
	idmap_free(&m);

	idmap_init(&m, 0);
	for (uint32_t i = 0; i <= IDMAP_MAX_ID; i++)
		idmap_mark_used(&m, i);
	is_int(alloc(&m), -ENOSPC, "a full bitmap gives ENOSPC");
	is_int(m.next_id, 0, "a failed search leaves next_id where it was");
	idmap_mark_free(&m, 777);
	ok(!idmap_is_used(&m, 777), "mark_free on a full bitmap frees that ID");
	is_int(alloc(&m), 777, "the one free ID is found after a full turn");
	is_int(m.next_id, 777, "next_id moved to it");
	is_int(alloc(&m), -ENOSPC, "and then it is full again");
	idmap_mark_free(&m, 0);
	is_int(alloc(&m), 0, "ID 0 is found after wrapping from 777");
	idmap_free(&m);

	qsort(ids, sizeof(ids) / sizeof(ids[0]), sizeof(ids[0]), idmap_cmp_id);
	ok(ids[0] == 0 && ids[1] == 3 && ids[2] == 3 && ids[3] == 9 && ids[4] == 0xffffff,
	   "idmap_cmp_id sorts IDs numerically");
	return tap_done();
}
