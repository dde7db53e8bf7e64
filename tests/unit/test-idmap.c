/*
 * test-idmap.c - the device ID bitmap: next-free search after the last ID
 * given, wrap-around past 0xffffff, reuse after free, ENOSPC when full.
 */
#include <errno.h>

#include "idmap.h"
#include "tap.h"

int main(void)
{
	struct idmap m;
	uint32_t id = 0;
	int r;

	if (!ok(idmap_init(&m, 0) == 0, "init"))
		return tap_done();
	ok(idmap_alloc(&m, &id) == 0 && id == 1, "the first ID after next_id 0 is 1 (got %u)", id);
	ok(idmap_alloc(&m, &id) == 0 && id == 2, "then 2");
	idmap_mark_used(&m, 3);
	idmap_mark_used(&m, 4);
	ok(idmap_alloc(&m, &id) == 0 && id == 5, "used IDs are skipped (got %u)", id);
	is_int(m.next_id, 5, "next_id follows the last one given");
	idmap_mark_free(&m, 2);
	ok(!idmap_is_used(&m, 2), "a freed ID is free");
	ok(idmap_alloc(&m, &id) == 0 && id == 6, "the search goes on after the last ID, not back to a freed one");
	idmap_free(&m);

	idmap_init(&m, IDMAP_MAX_ID - 1);
	ok(idmap_alloc(&m, &id) == 0 && id == IDMAP_MAX_ID, "0xffffff is a valid ID");
	ok(idmap_alloc(&m, &id) == 0 && id == 0, "the search wraps to 0");
	ok(idmap_alloc(&m, &id) == 0 && id == 1, "then 1");
	idmap_free(&m);

	idmap_init(&m, 0);
	for (uint32_t i = 0; i <= IDMAP_MAX_ID; i++)
		idmap_mark_used(&m, i);
	r = idmap_alloc(&m, &id);
	is_int(r, -ENOSPC, "a full bitmap gives ENOSPC");
	idmap_mark_free(&m, 777);
	ok(idmap_alloc(&m, &id) == 0 && id == 777, "the one free ID is found after a full turn (got %u)", id);
	is_int(idmap_alloc(&m, &id), -ENOSPC, "and then it is full again");
	idmap_free(&m);
	return tap_done();
}
