/*
 * thinfs.c - the daemon: arguments, logging, signals, start and orderly
 * shutdown.
 *
 *   thinfs [FUSE options] [-o dm.KEY=VALUE,...] [-o backend=B] STATEDIR MOUNTPOINT
 *
 * The storage options are checked before anything is touched; the engine
 * is opened before the daemon forks, so start errors reach the terminal.
 * Shutdown (SIGTERM, SIGINT, umount, fusermount3 -u) unmounts the FUSE
 * mount, then closes the engine, which unmounts the device filesystems
 * nothing uses (they live under STATEDIR/mnt, outside the FUSE mount, and
 * those in use stay for the next start to adopt) and saves metadata.
 */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "deviceset.h"
#include "fault.h"
#include "fuse-ops.h"
#include "log.h"
#include "metadata.h"
#include "options.h"

#ifndef FUSE_SUPER_MAGIC
#define FUSE_SUPER_MAGIC 0x65735546
#endif

struct cmdline {
	struct ds_options opts;
	char *state_dir;
	char *mountpoint;
	bool bad;
	bool list_faults;
};

/* Options that mount(8)/mount.fuse3 pass along and that mean nothing here. */
static const char *const ignored_opts[] = {
	"rw", "dev", "suid", "exec", "nosuid", "nodev", "noexec", "auto", "noauto",
	"user", "nouser", "users", "_netdev", "nofail", "defaults", "atime", "noatime",
	"relatime", "async", NULL
};

enum { KEY_LIST_FAULTS = 1 };

/* The fewest FUSE worker threads (see the loop's configuration in main). */
#define TF_MIN_WORKERS 64

static const struct fuse_opt thinfs_opts[] = {
	FUSE_OPT_KEY("--list-faults", KEY_LIST_FAULTS),
	FUSE_OPT_END
};

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct cmdline *c = data;
	char err[512];
	(void)outargs;

	switch (key) {
	case KEY_LIST_FAULTS:
		c->list_faults = true;
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		if (!c->state_dir) {
			c->state_dir = strdup(arg);
			return 0;
		}
		if (!c->mountpoint) {
			c->mountpoint = strdup(arg);
			return 0;
		}
		fprintf(stderr, "thinfs: unexpected argument '%s' (usage: thinfs [options] STATEDIR MOUNTPOINT)\n", arg);
		c->bad = true;
		return -1;
	case FUSE_OPT_KEY_OPT:
		if (strncmp(arg, "dm.", 3) == 0 || strncmp(arg, "backend=", 8) == 0 ||
		    strcmp(arg, "backend") == 0) {
			char *key_copy = strdup(arg), *eq;

			if (!key_copy)
				return -1;
			eq = strchr(key_copy, '=');
			if (eq)
				*eq = '\0';
			if (options_set(&c->opts, key_copy, eq ? eq + 1 : NULL, err, sizeof(err)) < 0) {
				fprintf(stderr, "thinfs: %s\n", err);
				c->bad = true;
				free(key_copy);
				return -1;
			}
			free(key_copy);
			return 0;
		}
		if (strcmp(arg, "allow_other") == 0)
			c->opts.allow_other = true; /* and libfuse takes it too */
		if (strcmp(arg, "ro") == 0)
			c->opts.read_only = true; /* and libfuse mounts read-only */
		for (int i = 0; ignored_opts[i]; i++)
			if (strcmp(arg, ignored_opts[i]) == 0)
				return 0;
		if (strncmp(arg, "x-", 2) == 0)
			return 0;
		return 1;
	default:
		return 1;
	}
}

static void usage(const char *prog)
{
	printf("usage: %s [options] STATEDIR MOUNTPOINT\n\n"
	       "thinfs owns a thin pool (device-mapper, or reflinked image files) and shows\n"
	       "it as a filesystem: every thin device is a directory, mkdir snapshots,\n"
	       "rmdir deletes, `echo mount > DEV/ctl` mounts DEV's filesystem, reached by DEV/rootfs.\n\n"
	       "thinfs options:\n"
	       "    -o ro                           change nothing in the pool or STATEDIR: a read-only tree,\n"
	       "                                    devices mounted read-only through rootfs (a rescue)\n"
	       "    --list-faults                   list the crash points tests can inject (THINFS_FAULT)\n",
	       prog);
	options_print_help();
	printf("\nFUSE options:\n");
	fuse_cmdline_help();
	fuse_lowlevel_help();
}

static void fuse_log_adapter(enum fuse_log_level level, const char *fmt, va_list ap)
{
	tf_vlog((int)level, fmt, ap);
}

/* Clean up the mount point left behind by a killed daemon: every dead
 * mount stacked there (a restart racing a kill can leave more than one).
 * statfs, not stat: the kernel answers a stat of a FUSE root from its
 * attribute cache for a second after the daemon died. How many were
 * removed. */
static int clean_stale_mount(const char *mnt, bool say_live)
{
	struct statfs sf;
	int n = 0;

	for (int i = 0; i < 16; i++) {
		if (statfs(mnt, &sf) == 0) {
			if (sf.f_type == FUSE_SUPER_MAGIC && say_live)
				log_warn("%s: a live FUSE filesystem is mounted there; mounting over it", mnt);
			break;
		}
		if (errno != ENOTCONN) {
			log_debug("%s: statfs: %s", mnt, strerror(errno));
			break;
		}
		if (umount2(mnt, MNT_DETACH) < 0) {
			log_warn("%s: stale mount could not be unmounted: %s", mnt, strerror(errno));
			break;
		}
		log_info("%s was the mount of a daemon that died: unmounted it", mnt);
		n++;
	}
	return n;
}

/* mount(8) and mount.fuse3 start helpers with a minimal PATH; thinfs runs
 * mkfs.*, resize2fs, xfs_growfs, thin_dump and modprobe, which live in
 * the sbin directories. */
static void ensure_sbin_path(void)
{
	static const char *const dirs[] = { "/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
					    "/usr/bin", "/sbin", "/bin" };
	const char *path = getenv("PATH");
	char buf[4096];

	snprintf(buf, sizeof(buf), "%s", path ? path : "");
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char with_colons[64];

		snprintf(with_colons, sizeof(with_colons), ":%s:", dirs[i]);
		char padded[sizeof(buf) + 2];

		snprintf(padded, sizeof(padded), ":%s:", buf);
		if (!strstr(padded, with_colons)) {
			size_t len = strlen(buf);

			snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? ":" : "", dirs[i]);
		}
	}
	setenv("PATH", buf, 1);
}

/* Is a inside b (or the same)? Both absolute and canonical. */
static bool path_within(const char *a, const char *b)
{
	size_t lb = strlen(b);

	return strncmp(a, b, lb) == 0 && (a[lb] == '/' || a[lb] == '\0' || strcmp(b, "/") == 0);
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts fo = { 0 };
	struct fuse_loop_config *lc = NULL;
	struct tf_fuse_ctx ctx = { 0 };
	struct fuse_session *se = NULL;
	struct deviceset *ds = NULL;
	struct cmdline c = { 0 };
	char err[512], *state_real = NULL, *mnt_real = NULL;
	bool mounted = false, handlers = false, ctx_ready = false;
	int ret = 1, r;

	/* A listing of a large pool (opendir of the top) is big and short
	 * lived: a fixed mmap threshold hands it back at releasedir, where
	 * glibc's sliding one would move it into the heap after the first
	 * and keep it resident; the FUSE workers share a few arenas rather
	 * than holding one each (the scale benchmark's RSS per device). */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	mallopt(M_ARENA_MAX, 2);
	options_init(&c.opts);
	tf_log_init(true, LOG_INFO);
	ensure_sbin_path();
	fuse_set_log_func(fuse_log_adapter);
	if (fuse_opt_parse(&args, &c, thinfs_opts, opt_proc) < 0 || c.bad)
		goto out;
	if (c.list_faults) {
		for (int i = 0; fault_points[i]; i++)
			printf("%s\n", fault_points[i]);
		ret = 0;
		goto out;
	}
	if (fuse_parse_cmdline(&args, &fo) < 0)
		goto out;
	if (fo.show_help) {
		usage(argv[0]);
		ret = 0;
		goto out;
	}
	if (fo.show_version) {
		printf("thinfs %s\n", PACKAGE_VERSION);
		fuse_lowlevel_version();
		ret = 0;
		goto out;
	}
	if (!c.state_dir || !c.mountpoint) {
		fprintf(stderr, "usage: %s [options] STATEDIR MOUNTPOINT (see --help)\n", argv[0]);
		goto out;
	}
	if (fo.singlethread) {
		fprintf(stderr, "thinfs: -s is not supported: a ctl command (mount, resize) may take seconds, and "
			"the namespace must keep answering meanwhile\n");
		goto out;
	}
	if (options_validate(&c.opts, err, sizeof(err)) < 0) {
		fprintf(stderr, "thinfs: %s\n", err);
		goto out;
	}
	tf_log_init(true, fo.debug ? LOG_DEBUG : LOG_INFO);

	clean_stale_mount(c.mountpoint, true);
	mnt_real = realpath(c.mountpoint, NULL);
	if (!mnt_real) {
		fprintf(stderr, "thinfs: mount point %s: %s\n", c.mountpoint, strerror(errno));
		goto out;
	}
	/* -o ro makes nothing, not even STATEDIR. */
	r = c.opts.read_only ? 0 : meta_mkdir_p(c.state_dir, 0700);
	state_real = r == 0 ? realpath(c.state_dir, NULL) : NULL;
	if (!state_real) {
		fprintf(stderr, "thinfs: state directory %s: %s\n", c.state_dir, strerror(r < 0 ? -r : errno));
		goto out;
	}
	if (path_within(state_real, mnt_real) || path_within(mnt_real, state_real)) {
		fprintf(stderr, "thinfs: the state directory %s and the mount point %s must not contain each other\n",
			state_real, mnt_real);
		goto out;
	}

	r = ds_open(state_real, &c.opts, &ds);
	if (r < 0) {
		fprintf(stderr, "thinfs: cannot start on %s: %s (see the messages above)\n", state_real, strerror(-r));
		goto out;
	}
	tf_fuse_ctx_init(&ctx, ds);
	ctx_ready = true;

	fuse_opt_add_arg(&args, "-ofsname=thinfs,subtype=thinfs");
	se = fuse_session_new(&args, &tf_fuse_ops, sizeof(tf_fuse_ops), &ctx);
	if (!se)
		goto out;
	if (fuse_set_signal_handlers(se) < 0)
		goto out;
	handlers = true;
	/* Once more right before the mount: the chaos test saw a start whose
	 * first look found the mount point alive fail here, the dead mount
	 * found only by libfuse's own stat seconds later. */
	clean_stale_mount(mnt_real, false);
	if (fuse_session_mount(se, mnt_real) < 0 &&
	    (clean_stale_mount(mnt_real, false) == 0 || fuse_session_mount(se, mnt_real) < 0)) {
		fprintf(stderr, "thinfs: cannot mount on %s\n", mnt_real);
		goto out;
	}
	mounted = true;
	log_info("thinfs %s: %s mounted on %s", PACKAGE_VERSION, state_real, mnt_real);
	if (fuse_daemonize(fo.foreground) < 0)
		goto out;
	if (!fo.foreground)
		tf_log_init(false, fo.debug ? LOG_DEBUG : LOG_INFO);
	ds_start_worker(ds);
	ds_start_autofs(ds);
	lc = fuse_loop_cfg_create();
	if (!lc)
		goto out;
	/* Each ctl command holds a worker until its mount, resize or unmount
	 * is done (none of them needs another FUSE request: filesystems are
	 * mounted outside this mount). Enough workers that lookups still find
	 * one while many such commands run; -o max_threads may ask for more. */
	fuse_loop_cfg_set_max_threads(lc, fo.max_threads > TF_MIN_WORKERS ? fo.max_threads : TF_MIN_WORKERS);
	fuse_loop_cfg_set_idle_threads(lc, 16);
	r = fuse_session_loop_mt(se, lc);
	/* A loop ended by SIGTERM/SIGINT/SIGHUP returns the signal: that is an
	 * orderly stop like an unmount. */
	ret = r == 0 || r == SIGTERM || r == SIGINT || r == SIGHUP ? 0 : 1;
	log_info("shutting down");
out:
	if (mounted)
		fuse_session_unmount(se);
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (se)
		fuse_session_destroy(se);
	if (lc)
		fuse_loop_cfg_destroy(lc);
	if (ctx_ready)
		tf_fuse_ctx_fini(&ctx);
	ds_close(ds);
	fuse_opt_free_args(&args);
	free(fo.mountpoint);
	free(c.state_dir);
	free(c.mountpoint);
	free(state_real);
	free(mnt_real);
	options_free(&c.opts);
	return ret;
}
