/*
 * engine-cli.c - drives the engine directly, one operation per run, for
 * the crash tests: a run killed at a fault point is followed by one that
 * opens the same STATEDIR (recovery) and checks it.
 *
 *   engine-cli STATEDIR OPTS CMD [ARGS]    (OPTS: a dm.* list, or -)
 *   CMD: init | add NAME PARENT | add-many N PREFIX PARENT... (N threads
 *        at once, thread i adding PREFIX<i> as a snapshot of the parents in
 *        turn; i from 1) | delete NAME | rename OLD NEW |
 *        mount NAME (mount, write NAME.txt in its filesystem, print the
 *        filesystem's size in bytes, unmount) | mount-ro NAME (mount
 *        read-only, unmount) | resize-pool SIZE |
 *        deferred (retry deferred deletions now) | list | check | list-faults
 * ENGINE_CLI_RO=1 opens the engine as the daemon's -o ro does, without
 * the read-only FUSE mount in front of it: what the engine refuses itself.
 * Exit status: 0, or the errno of the failure.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "deviceset.h"
#include "fault.h"
#include "log.h"
#include "options.h"

static void list_tree(struct deviceset *ds, const char *parent)
{
	struct ds_entry *e = NULL;
	size_t n = 0;

	if (ds_list(ds, parent, &e, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		printf("%s %s %u\n", e[i].name, parent, e[i].device_id);
		list_tree(ds, e[i].name);
	}
	free(e);
}

static int write_file(const char *dir, const char *name)
{
	char path[4096];
	FILE *f;

	if (snprintf(path, sizeof(path), "%s/%s.txt", dir, name) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	f = fopen(path, "w");
	if (!f)
		return -errno;
	fprintf(f, "%s\n", name);
	return fclose(f) == 0 ? 0 : -errno;
}

struct adder {
	struct deviceset *ds;
	char name[64];
	const char *parent;
	pthread_t thread;
	bool started;
	int r;
};

static void *run_add(void *arg)
{
	struct adder *a = arg;

	a->r = ds_add_device(a->ds, a->name, a->parent);
	return NULL;
}

/* n adds at once, as n clients would: the group commit's path. */
static int add_many(struct deviceset *ds, const char *count, const char *prefix, char **parents, int n_parents)
{
	int n = atoi(count), r = 0;
	struct adder *a;

	if (n < 1 || n > 64)
		return -EINVAL;
	a = calloc((size_t)n, sizeof(*a));
	if (!a)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		a[i].ds = ds;
		a[i].parent = parents[i % n_parents];
		snprintf(a[i].name, sizeof(a[i].name), "%s%d", prefix, i + 1);
		a[i].started = pthread_create(&a[i].thread, NULL, run_add, &a[i]) == 0;
		if (!a[i].started)
			a[i].r = -EAGAIN;
	}
	for (int i = 0; i < n; i++) {
		if (a[i].started)
			pthread_join(a[i].thread, NULL);
		r = r ? r : a[i].r;
	}
	free(a);
	return r;
}

int main(int argc, char **argv)
{
	struct ds_options opts;
	struct deviceset *ds = NULL;
	char err[512], report[512];
	const char *cmd;
	int r = 0;

	if (argc >= 2 && strcmp(argv[1], "list-faults") == 0) {
		for (int i = 0; fault_points[i]; i++)
			printf("%s\n", fault_points[i]);
		return 0;
	}
	if (argc < 4) {
		fprintf(stderr, "usage: engine-cli STATEDIR OPTS CMD [ARGS]\n");
		return EINVAL;
	}
	tf_log_init(true, getenv("ENGINE_CLI_DEBUG") ? LOG_DEBUG : LOG_WARNING);
	options_init(&opts);
	if (strcmp(argv[2], "-") != 0 && options_parse_list(&opts, argv[2], err, sizeof(err)) < 0) {
		fprintf(stderr, "engine-cli: %s\n", err);
		r = -EINVAL;
		goto out;
	}
	opts.read_only = getenv("ENGINE_CLI_RO") && strcmp(getenv("ENGINE_CLI_RO"), "1") == 0;
	r = options_validate(&opts, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "engine-cli: %s\n", err);
		goto out;
	}
	r = ds_open(argv[1], &opts, &ds);
	if (r < 0)
		goto out;
	cmd = argv[3];
	if (strcmp(cmd, "init") == 0) {
		r = 0;
	} else if (strcmp(cmd, "add") == 0 && argc == 6) {
		r = ds_add_device(ds, argv[4], argv[5]);
	} else if (strcmp(cmd, "add-many") == 0 && argc >= 7) {
		r = add_many(ds, argv[4], argv[5], argv + 6, argc - 6);
	} else if (strcmp(cmd, "delete") == 0 && argc == 5) {
		r = ds_delete_device(ds, argv[4]);
	} else if (strcmp(cmd, "rename") == 0 && argc == 6) {
		r = ds_rename_device(ds, argv[4], argv[5]);
	} else if (strcmp(cmd, "mount") == 0 && argc == 5) {
		char dir[PATH_MAX];
		struct statvfs vfs;

		r = ds_mount(ds, argv[4], false);
		if (r == 0) {
			r = ds_mount_dir(ds, argv[4], dir, sizeof(dir));
			r = r ? r : write_file(dir, argv[4]);
			if (r == 0 && statvfs(dir, &vfs) == 0)
				printf("%llu\n", (unsigned long long)vfs.f_blocks * vfs.f_frsize);
			int u = ds_unmount(ds, argv[4]);

			r = r ? r : u;
		}
	} else if (strcmp(cmd, "mount-ro") == 0 && argc == 5) {
		r = ds_mount(ds, argv[4], true);
		if (r == 0)
			r = ds_unmount(ds, argv[4]);
	} else if (strcmp(cmd, "resize-pool") == 0 && argc == 5) {
		uint64_t size;

		r = parse_size(argv[4], &size);
		r = r ? r : ds_resize_pool(ds, size);
	} else if (strcmp(cmd, "deferred") == 0) {
		ds_kick_deferred(ds);
	} else if (strcmp(cmd, "list") == 0) {
		list_tree(ds, DS_BASE_NAME);
	} else if (strcmp(cmd, "check") == 0) {
		r = ds_check_consistency(ds, report, sizeof(report));
		printf("%s\n", r == 0 ? "OK" : report);
	} else {
		fprintf(stderr, "engine-cli: unknown command or wrong arguments: %s\n", cmd);
		r = -EINVAL;
	}
out:
	ds_close(ds);
	options_free(&opts);
	if (r < 0)
		fprintf(stderr, "engine-cli: %s: %s\n", argc > 3 ? argv[3] : "", strerror(-r));
	return r < 0 ? -r : 0;
}
