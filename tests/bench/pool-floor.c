/*
 * pool-floor.c - the floor for the snapshot/delete benchmarks: the bare
 * pool operations the engine needs for one mkdir (create_snap +
 * set_transaction_id) and one rmdir (delete_thin + set_transaction_id),
 * timed in-process through pool.h, with no metadata files, no FUSE.
 *
 * usage: pool-floor BACKEND STATEDIR COUNT [dm.KEY=VALUE,...]
 * prints one JSON line: {"backend":..,"snap_us":[...],"delete_us":[...]}
 *
 * Two more floors, for the mount and start benchmarks:
 *
 * pool-floor --mount BACKEND STATEDIR COUNT [dm.KEY=VALUE,...]
 *   the floor of `echo mount > ctl` and of an automount: activate a device
 *   (with a filesystem, dm.fs), make its mount directory and mount(2) it
 *   (read-write, then read-only), as mount_device() does minus the
 *   engine's bookkeeping; and the way back (umount2 MNT_DETACH, rmdir,
 *   deactivate). Read-write mounts are of one device over and over, as
 *   the benchmark's ctl mounts are; each read-only mount is of a new
 *   snapshot of it (made and deleted outside the timing), as each
 *   automount the benchmark times is of a device never mounted before.
 *   Prints {"backend":..,"mount_us":[...],"mount_ro_us":[...],
 *   "unmount_us":[...]}.
 *
 * pool-floor --open BACKEND STATEDIR PREFIX COUNT [dm.KEY=VALUE,...]
 *   the pool's own activation at a start: open + close of an existing
 *   pool (a stopped daemon's STATEDIR; PREFIX as the daemon names it,
 *   thinfs-MAJ:MIN-INO of STATEDIR, so that a dm pool is the same one).
 *   Prints {"backend":..,"open_us":[...],"close_us":[...]}.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "fsutil.h"
#include "log.h"
#include "options.h"
#include "pool.h"

static const struct pool_ops *ops_of(const char *backend)
{
	return strcmp(backend, "dm") == 0 ? &pool_dm_ops : &pool_reflink_ops;
}

/* --open BACKEND STATEDIR PREFIX COUNT [opts] */
static int open_floor(int argc, char **argv)
{
	struct ds_options opts;
	struct pool_config cfg;
	const struct pool_ops *ops;
	double *op = NULL, *cl = NULL;
	char err[256];
	int count, r = 1;

	if (argc < 4) {
		fprintf(stderr, "usage: pool-floor --open reflink|dm STATEDIR PREFIX COUNT [dm.KEY=VALUE,...]\n");
		return 2;
	}
	options_init(&opts);
	ops = ops_of(argv[0]);
	count = atoi(argv[3]);
	if (argc > 4 && options_parse_list(&opts, argv[4], err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	op = calloc(count, sizeof(*op));
	cl = calloc(count, sizeof(*cl));
	if (!op || !cl)
		goto out;
	cfg.state_dir = argv[1];
	cfg.prefix = argv[2];
	cfg.opts = &opts;
	for (int i = 0; i < count; i++) {
		struct pool *pool = NULL;
		double t0 = now_us();

		if (ops->open(&cfg, &pool) < 0)
			goto out;
		op[i] = now_us() - t0;
		t0 = now_us();
		ops->close(pool);
		cl[i] = now_us() - t0;
	}
	printf("{\"backend\":\"%s\",", ops->name);
	print_list("open_us", op, count);
	printf(",");
	print_list("close_us", cl, count);
	printf("}\n");
	r = 0;
out:
	free(op);
	free(cl);
	options_free(&opts);
	return r;
}

/* --mount BACKEND STATEDIR COUNT [opts] */
static int mount_floor(int argc, char **argv)
{
	struct ds_options opts;
	struct pool_config cfg;
	const struct pool_ops *ops;
	struct pool *pool = NULL;
	double *mnt = NULL, *mnt_ro = NULL, *umnt = NULL;
	char err[256], dev[PATH_MAX], dir[PATH_MAX];
	char name[64] = "thinfs-bench-1";
	bool made = false, active = false, mounted = false;
	uint32_t id = 1;
	uint64_t tid;
	int count, r = 1;

	if (argc < 3) {
		fprintf(stderr, "usage: pool-floor --mount reflink|dm STATEDIR COUNT [dm.KEY=VALUE,...]\n");
		return 2;
	}
	options_init(&opts);
	ops = ops_of(argv[0]);
	count = atoi(argv[2]);
	if (argc > 3 && options_parse_list(&opts, argv[3], err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	if (!opts.fs[0])
		snprintf(opts.fs, sizeof(opts.fs), "ext4");
	mnt = calloc(count, sizeof(*mnt));
	mnt_ro = calloc(count, sizeof(*mnt_ro));
	umnt = calloc(2 * count, sizeof(*umnt));
	if (!mnt || !mnt_ro || !umnt)
		goto out;
	snprintf(dir, sizeof(dir), "%s/mnt-floor", argv[1]);
	cfg.state_dir = argv[1];
	cfg.prefix = "thinfs-bench";
	cfg.opts = &opts;
	if (ops->open(&cfg, &pool) < 0 || ops->get_transaction_id(pool, &tid) < 0)
		goto out;
	if (ops->create_thin(pool, 1, opts.base_size) < 0 ||
	    ops->set_transaction_id(pool, tid, tid + 1) < 0)
		goto out;
	made = true;
	if (ops->activate(pool, name, 1, opts.base_size, dev, sizeof(dev)) < 0)
		goto out;
	active = true;
	if (fsutil_mkfs(dev, opts.fs, opts.mkfs_args, opts.n_mkfs_args) < 0)
		goto out;
	if (ops->deactivate(pool, name, 1, false) < 0)
		goto out;
	active = false;
	for (int i = 0; i < 2 * count; i++) {
		bool ro = i % 2;
		double t0;

		id = ro ? 2 + (uint32_t)i / 2 : 1;
		snprintf(name, sizeof(name), "thinfs-bench-%" PRIu32, id);
		if (ro && ops->create_snap(pool, id, 1, opts.base_size, NULL) < 0)
			goto out;
		t0 = now_us();
		if (ops->activate(pool, name, id, opts.base_size, dev, sizeof(dev)) < 0)
			goto out;
		active = true;
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			perror(dir);
			goto out;
		}
		if (fsutil_mount(dev, dir, opts.fs, ro ? FSUTIL_RDONLY : 0, opts.mount_opt) < 0)
			goto out;
		mounted = true;
		(ro ? mnt_ro : mnt)[i / 2] = now_us() - t0;
		t0 = now_us();
		if (umount2(dir, MNT_DETACH) < 0) {
			perror(dir);
			goto out;
		}
		mounted = false;
		rmdir(dir);
		if (ops->deactivate(pool, name, id, false) < 0)
			goto out;
		active = false;
		umnt[i] = now_us() - t0;
		if (ro && ops->delete_thin(pool, id) < 0)
			goto out;
		id = 1;
	}
	printf("{\"backend\":\"%s\",", ops->name);
	print_list("mount_us", mnt, count);
	printf(",");
	print_list("mount_ro_us", mnt_ro, count);
	printf(",");
	print_list("unmount_us", umnt, 2 * count);
	printf("}\n");
	r = 0;
out:
	if (mounted)
		umount2(dir, MNT_DETACH);
	rmdir(dir);
	if (active)
		ops->deactivate(pool, name, id, false);
	if (id != 1)
		ops->delete_thin(pool, id);
	if (made)
		ops->delete_thin(pool, 1);
	if (pool)
		ops->close(pool);
	free(mnt);
	free(mnt_ro);
	free(umnt);
	options_free(&opts);
	return r;
}

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

	tf_log_init(true, LOG_WARNING);
	if (argc > 1 && strcmp(argv[1], "--open") == 0)
		return open_floor(argc - 2, argv + 2);
	if (argc > 1 && strcmp(argv[1], "--mount") == 0)
		return mount_floor(argc - 2, argv + 2);
	if (argc < 4) {
		fprintf(stderr, "usage: %s reflink|dm STATEDIR COUNT [dm.KEY=VALUE,...]\n"
			"       %s --mount reflink|dm STATEDIR COUNT [dm.KEY=VALUE,...]\n"
			"       %s --open reflink|dm STATEDIR PREFIX COUNT [dm.KEY=VALUE,...]\n",
			argv[0], argv[0], argv[0]);
		return 2;
	}
	options_init(&opts);
	ops = ops_of(argv[1]);
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
