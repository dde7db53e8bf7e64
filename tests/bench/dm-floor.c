/*
 * dm-floor.c - the floor of the dm mkdir/rmdir benchmark (dm-bench.sh):
 * the bare libdevmapper calls the engine makes for one snapshot of an
 * inactive device (create_snap + set_transaction_id messages to the pool)
 * and one delete (delete + set_transaction_id), timed in-process, with no
 * metadata files, no FUSE, no process start.
 *
 * usage: dm-floor POOL ORIGIN_ID FIRST_ID COUNT
 * Makes COUNT snapshots of ORIGIN_ID as FIRST_ID.., then deletes them.
 * Prints one JSON line: {"snap_us":[...],"delete_us":[...]}.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libdevmapper.h>

#include "bench.h"

/* Send one message to the pool; 0 or -EIO (logged with the message). */
static int pool_message(const char *pool, const char *msg)
{
	struct dm_task *dmt;
	int r = -EIO;

	dmt = dm_task_create(DM_DEVICE_TARGET_MSG);
	if (!dmt) {
		fprintf(stderr, "dm-floor: dm_task_create for '%s' on %s failed\n", msg, pool);
		return -ENOMEM;
	}
	if (!dm_task_set_name(dmt, pool) || !dm_task_set_sector(dmt, 0) ||
	    !dm_task_set_message(dmt, msg) || !dm_task_run(dmt)) {
		fprintf(stderr, "dm-floor: message '%s' to %s failed\n", msg, pool);
		goto out;
	}
	r = 0;
out:
	dm_task_destroy(dmt);
	return r;
}

/* The pool's transaction ID: first field of its thin-pool status. */
static int pool_tid(const char *pool, uint64_t *tid)
{
	struct dm_task *dmt;
	uint64_t start, length;
	char *type = NULL, *params = NULL;
	int r = -EIO;

	dmt = dm_task_create(DM_DEVICE_STATUS);
	if (!dmt)
		return -ENOMEM;
	if (!dm_task_set_name(dmt, pool) || !dm_task_run(dmt)) {
		fprintf(stderr, "dm-floor: status of %s failed\n", pool);
		goto out;
	}
	dm_get_next_target(dmt, NULL, &start, &length, &type, &params);
	if (!type || strcmp(type, "thin-pool") != 0 || !params ||
	    sscanf(params, "%" SCNu64, tid) != 1) {
		fprintf(stderr, "dm-floor: %s is not a thin-pool (status '%s')\n",
			pool, params ? params : "");
		goto out;
	}
	r = 0;
out:
	dm_task_destroy(dmt);
	return r;
}

static int bump_tid(const char *pool, uint64_t *tid)
{
	char msg[96];

	snprintf(msg, sizeof(msg), "set_transaction_id %" PRIu64 " %" PRIu64,
		 *tid, *tid + 1);
	if (pool_message(pool, msg) < 0)
		return -EIO;
	(*tid)++;
	return 0;
}

int main(int argc, char **argv)
{
	double *snap = NULL, *del = NULL, t;
	unsigned long origin, first;
	const char *pool;
	char msg[96];
	uint64_t tid;
	int count, made = 0, i, rc = 1;

	if (argc != 5) {
		fprintf(stderr, "usage: %s POOL ORIGIN_ID FIRST_ID COUNT\n", argv[0]);
		return 2;
	}
	pool = argv[1];
	origin = strtoul(argv[2], NULL, 10);
	first = strtoul(argv[3], NULL, 10);
	count = atoi(argv[4]);
	if (count <= 0 || first + count > 0xffffffUL) {
		fprintf(stderr, "dm-floor: bad COUNT or FIRST_ID\n");
		return 2;
	}
	snap = calloc(count, sizeof(*snap));
	del = calloc(count, sizeof(*del));
	if (!snap || !del || pool_tid(pool, &tid) < 0)
		goto out;
	for (i = 0; i < count; i++) {
		t = now_us();
		snprintf(msg, sizeof(msg), "create_snap %lu %lu", first + i, origin);
		if (pool_message(pool, msg) < 0 || bump_tid(pool, &tid) < 0)
			goto out;
		snap[i] = now_us() - t;
		made++;
	}
	for (i = 0; i < count; i++) {
		t = now_us();
		snprintf(msg, sizeof(msg), "delete %lu", first + i);
		if (pool_message(pool, msg) < 0 || bump_tid(pool, &tid) < 0)
			goto out;
		del[i] = now_us() - t;
		made--;
	}
	printf("{");
	print_list("snap_us", snap, count);
	printf(",");
	print_list("delete_us", del, count);
	printf("}\n");
	rc = 0;
out:
	if (made > 0)
		fprintf(stderr, "dm-floor: %d snapshots left in %s\n", made, pool);
	free(snap);
	free(del);
	return rc;
}
