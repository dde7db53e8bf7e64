/*
 * pool-floor.c - the floor for the snapshot/delete benchmarks: the bare
 * pool operations the engine needs for one mkdir (create_snap +
 * set_transaction_id) and one rmdir (delete_thin + set_transaction_id),
 * timed in-process through pool.h, with no metadata files, no FUSE.
 *
 * usage: pool-floor BACKEND STATEDIR COUNT [dm.KEY=VALUE,...]
 * prints one JSON line: {"backend":..,"snap_us":[...],"delete_us":[...]}
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "log.h"
#include "options.h"
#include "pool.h"

int main(int argc, char **argv)
{
	struct ds_options opts;
	struct pool_config cfg;
	const struct pool_ops *ops;
	struct pool *pool = NULL;
	double *snap = NULL, *del = NULL;
	char err[256];
	uint64_t tid;
	int count, r = 1;

	if (argc < 4) {
		fprintf(stderr, "usage: %s reflink|dm STATEDIR COUNT [dm.KEY=VALUE,...]\n", argv[0]);
		return 2;
	}
	tf_log_init(true, LOG_WARNING);
	options_init(&opts);
	ops = strcmp(argv[1], "dm") == 0 ? &pool_dm_ops : &pool_reflink_ops;
	count = atoi(argv[3]);
	if (argc > 4 && options_parse_list(&opts, argv[4], err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	snap = calloc(count, sizeof(*snap));
	del = calloc(count, sizeof(*del));
	if (!snap || !del)
		goto out;
	cfg.state_dir = argv[2];
	cfg.prefix = "thinfs-bench";
	cfg.opts = &opts;
	if (ops->open(&cfg, &pool) < 0 || ops->get_transaction_id(pool, &tid) < 0)
		goto out;
	/* The origin: device 1, as the base device would be. */
	if (ops->create_thin(pool, 1, opts.base_size) < 0 ||
	    ops->set_transaction_id(pool, tid, tid + 1) < 0)
		goto out;
	tid++;
	for (int i = 0; i < count; i++) {
		double t0 = now_us();

		if (ops->create_snap(pool, 2 + i, 1, opts.base_size, NULL) < 0 ||
		    ops->set_transaction_id(pool, tid, tid + 1) < 0)
			goto out;
		tid++;
		snap[i] = now_us() - t0;
	}
	for (int i = 0; i < count; i++) {
		double t0 = now_us();

		if (ops->delete_thin(pool, 2 + i) < 0 ||
		    ops->set_transaction_id(pool, tid, tid + 1) < 0)
			goto out;
		tid++;
		del[i] = now_us() - t0;
	}
	if (ops->delete_thin(pool, 1) < 0)
		goto out;
	printf("{\"backend\":\"%s\",", ops->name);
	print_list("snap_us", snap, count);
	printf(",");
	print_list("delete_us", del, count);
	printf("}\n");
	r = 0;
out:
	if (pool)
		ops->close(pool);
	free(snap);
	free(del);
	options_free(&opts);
	return r;
}
