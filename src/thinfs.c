/*
 * thinfs.c - the daemon: arguments, logging, signals, start and orderly
 * shutdown.
 *
 *   thinfs [FUSE options] [-o dm.KEY=VALUE,...] [-o backend=B] STATEDIR MOUNTPOINT
 *
 * Every option (the FUSE ones too), the caller's privilege and the mount
 * point are checked before anything is touched (doc/design.md §4, "What a
 * start does"); the engine is opened before the daemon forks, so start
 * errors reach the terminal. SIGPIPE is ignored: the log's reader may go.
 * Shutdown (SIGTERM, SIGINT, umount, fusermount3 -u) unmounts the FUSE
 * mount, then closes the engine, which unmounts the device filesystems
 * nothing uses (they live under STATEDIR/mnt, outside the FUSE mount, and
 * those in use stay for the next start to adopt) and saves metadata.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <libmount.h>
#include <linux/capability.h>
#include <systemd/sd-daemon.h>

#include "deviceset.h"
#include "dirlock.h"
#include "fault.h"
#include "fuse-ops.h"
#include "list.h"
#include "log.h"
#include "metadata.h"
#include "options.h"

#ifndef FUSE_SUPER_MAGIC
#define FUSE_SUPER_MAGIC 0x65735546
#endif
/* Where syslog(3) sends its lines: without it the log goes to a file. */
#define SYSLOG_SOCKET "/dev/log"
#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif
#ifndef RAMFS_MAGIC
#define RAMFS_MAGIC 0x858458f6
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
	printf("usage: %s [options] STATEDIR MOUNTPOINT\n"
	       "       %s list [--json] [--bytes] [--refresh] MOUNTPOINT   (the devices and their space)\n\n"
	       "thinfs owns a thin pool (device-mapper, or reflinked image files) and shows\n"
	       "it as a filesystem: every thin device is a directory, mkdir snapshots,\n"
	       "rmdir deletes, `echo mount > DEV/ctl` mounts DEV's filesystem, reached by DEV/rootfs.\n\n"
	       "thinfs options:\n"
	       "    -o ro                           change nothing in the pool or STATEDIR: a read-only tree,\n"
	       "                                    devices mounted read-only through rootfs (a rescue)\n"
	       "    --list-faults                   list the crash points tests can inject (THINFS_FAULT)\n",
	       prog, prog);
	options_print_help();
	printf("\nFUSE options:\n");
	fuse_cmdline_help();
	fuse_lowlevel_help();
}

/* While fuse_session_new parses the FUSE options, libfuse's complaint
 * (an unknown option, written in pieces) is gathered here and said once,
 * on one line. */
static char fuse_complaint[1024];
static bool fuse_gather;

static void fuse_log_adapter(enum fuse_log_level level, const char *fmt, va_list ap)
{
	size_t len;

	if (!fuse_gather) {
		tf_vlog((int)level, fmt, ap);
		return;
	}
	len = strlen(fuse_complaint);
	vsnprintf(fuse_complaint + len, sizeof(fuse_complaint) - len, fmt, ap);
	for (char *c = fuse_complaint + len; *c; c++)
		if (*c == '\n')
			*c = ' ';
}

/* Would libfuse take the FUSE options left in args? Asked of a copy
 * before anything is made; libfuse's complaint is said on one line. */
static bool fuse_opts_ok(const struct fuse_args *args)
{
	struct fuse_args copy = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se = NULL;
	struct fuse_lowlevel_ops none = { 0 };
	bool ok = true;

	for (int i = 0; ok && i < args->argc; i++)
		ok = fuse_opt_add_arg(&copy, args->argv[i]) == 0;
	if (ok) {
		fuse_complaint[0] = '\0';
		fuse_gather = true;
		se = fuse_session_new(&copy, &none, sizeof(none), NULL);
		fuse_gather = false;
		ok = se != NULL;
	}
	if (!ok)
		fprintf(stderr, "thinfs: %s(thinfs --help lists the options)\n",
			fuse_complaint[0] ? fuse_complaint : "the FUSE options were refused ");
	if (se)
		fuse_session_destroy(se);
	fuse_opt_free_args(&copy);
	return ok;
}

/* Does this process have what a start needs: CAP_SYS_ADMIN (loop
 * devices, device-mapper, mount)? Root has it, unless a container took
 * it away. */
static bool may_start(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3] = { 0 };

	if (syscall(SYS_capget, &h, d) < 0)
		return geteuid() == 0;
	return d[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective & CAP_TO_MASK(CAP_SYS_ADMIN);
}

/* A live FUSE filesystem on the mount point: mounting over it would hide
 * it. A thinfs on this STATEDIR (state: its real path, NULL if it does
 * not exist yet) is left to the state directory's lock, which names it
 * or waits for it to stop. True if refused (said). */
static bool refuse_live_mount(const char *mnt, const char *state)
{
	struct libmnt_table *tb = NULL;
	struct libmnt_fs *fs = NULL;
	const char *type = "?", *src = "?";
	char who[64] = "another thinfs";
	struct statfs sf;
	bool refused = true;
	pid_t pid;

	if (statfs(mnt, &sf) < 0 || sf.f_type != FUSE_SUPER_MAGIC)
		return false;
	tb = mnt_new_table_from_file("/proc/self/mountinfo");
	fs = tb ? mnt_table_find_target(tb, mnt, MNT_ITER_BACKWARD) : NULL;
	if (fs) {
		type = mnt_fs_get_fstype(fs) ? mnt_fs_get_fstype(fs) : "?";
		src = mnt_fs_get_source(fs) ? mnt_fs_get_source(fs) : "?";
	}
	if (strcmp(type, DIRLOCK_FUSE_TYPE) != 0)
		fprintf(stderr, "thinfs: cannot mount on %s: a live FUSE filesystem (%s, type %s) is mounted there; "
			"unmount it or choose another mount point\n", mnt, src, type);
	else if (state && strcmp(src, state) == 0)
		refused = false;
	else {
		pid = dirlock_holder(src);
		if (pid > 0)
			snprintf(who, sizeof(who), "another thinfs (pid %d)", (int)pid);
		fprintf(stderr, "thinfs: cannot mount on %s: %s serves %s there; stop it first (umount %s)\n", mnt,
			who, src, mnt);
	}
	mnt_unref_table(tb);
	return refused;
}

/* "-ofsname=STATEDIR,subtype=thinfs": the FUSE mount's source is the
 * state directory it serves (what `mount` and df show, and how a start
 * finds the mount of the thinfs that holds a STATEDIR: src/dirlock.h).
 * A comma or backslash in the path is escaped for libfuse's -o parser. */
static int add_fsname_arg(struct fuse_args *args, const char *state)
{
	char arg[2 * PATH_MAX + 32];
	size_t n = (size_t)snprintf(arg, sizeof(arg), "-ofsname=");

	for (const char *c = state; *c && n + 2 < sizeof(arg) - 24; c++) {
		if (*c == ',' || *c == '\\')
			arg[n++] = '\\';
		arg[n++] = *c;
	}
	snprintf(arg + n, sizeof(arg) - n, ",subtype=thinfs");
	return fuse_opt_add_arg(args, arg);
}

/* How often the unit's status line is brought up to date. */
#define TF_STATUS_EVERY_S 10

/* The service manager's view of the daemon (Type=notify; every sd_notify
 * is a no-op without NOTIFY_SOCKET): READY=1 once the namespace answers,
 * then a STATUS= line with the pool's state every TF_STATUS_EVERY_S from
 * a thread of its own, until the stop. */
struct notifier {
	struct deviceset *ds;
	const char *state, *mnt;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* signalled at the stop */
	bool stop, running;
	pthread_t thread;
};

static void notify_status(struct notifier *n, const char *ready)
{
	struct ds_pool_info *pi = calloc(1, sizeof(*pi));

	if (pi && ds_pool_info(n->ds, pi) == 0)
		sd_notifyf(0, "%sSTATUS=%s on %s: %u devices, data %" PRIu64 " of %" PRIu64 " MiB used (%s)", ready,
			   n->state, n->mnt, pi->device_count, pi->data_used >> 20, pi->data_total >> 20, pi->backend);
	else
		sd_notifyf(0, "%sSTATUS=%s on %s", ready, n->state, n->mnt);
	free(pi);
}

static void *notify_loop(void *arg)
{
	struct notifier *n = arg;
	struct timespec until;

	pthread_mutex_lock(&n->lock);
	while (!n->stop) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += TF_STATUS_EVERY_S;
		while (!n->stop && pthread_cond_timedwait(&n->cond, &n->lock, &until) == 0)
			;
		if (n->stop)
			break;
		pthread_mutex_unlock(&n->lock);
		notify_status(n, "");
		pthread_mutex_lock(&n->lock);
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

static void notify_start(struct notifier *n)
{
	pthread_condattr_t ca;

	notify_status(n, "READY=1\n");
	if (!getenv("NOTIFY_SOCKET"))
		return;
	pthread_mutex_init(&n->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&n->cond, &ca);
	pthread_condattr_destroy(&ca);
	n->running = pthread_create(&n->thread, NULL, notify_loop, n) == 0;
	if (!n->running) {
		log_warn("systemd status updates: pthread_create failed: only the first STATUS= line is sent");
		pthread_cond_destroy(&n->cond);
		pthread_mutex_destroy(&n->lock);
	}
}

static void notify_stop(struct notifier *n)
{
	sd_notify(0, "STOPPING=1\nSTATUS=stopping: unmounting and deactivating the devices nothing uses");
	if (!n->running)
		return;
	pthread_mutex_lock(&n->lock);
	n->stop = true;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
	pthread_join(n->thread, NULL);
	n->running = false;
	pthread_cond_destroy(&n->cond);
	pthread_mutex_destroy(&n->lock);
}

/* On a tmpfs (or ramfs), the pool, its data file and every device are
 * gone at the next boot. */
static void warn_volatile(const char *state)
{
	struct statfs sf;

	if (statfs(state, &sf) == 0 && (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC))
		log_warn("state directory %s is on a %s: the pool and every device in it vanish at reboot", state,
			 sf.f_type == TMPFS_MAGIC ? "tmpfs" : "ramfs");
}

/* Clean up the mount point left behind by a killed daemon: every dead
 * mount stacked there (a restart racing a kill can leave more than one).
 * statfs, not stat: the kernel answers a stat of a FUSE root from its
 * attribute cache for a second after the daemon died. How many were
 * removed. */
static int clean_stale_mount(const char *mnt)
{
	struct statfs sf;
	int n = 0;

	for (int i = 0; i < 16; i++) {
		if (statfs(mnt, &sf) == 0)
			break;
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

/* Subcommands: `thinfs NAME ...` runs NAME's main with argv from NAME on,
 * before any of the daemon's option handling. A state directory of one
 * of these names is given as ./NAME. */
static const struct subcommand {
	const char *name;
	int (*main)(int argc, char **argv);
} subcommands[] = {
	{ "list", list_main },
};

static const struct subcommand *find_subcommand(const char *arg)
{
	for (size_t i = 0; arg && i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		if (strcmp(arg, subcommands[i].name) == 0)
			return &subcommands[i];
	return NULL;
}

/* Is a inside b (or the same)? Both absolute and canonical. */
static bool path_within(const char *a, const char *b)
{
	size_t lb = strlen(b);

	return strncmp(a, b, lb) == 0 && (a[lb] == '/' || a[lb] == '\0' || strcmp(b, "/") == 0);
}

/* The real path that path has, or will have once made (mkdir -p): its
 * nearest existing ancestor's, then the rest as given. NULL if nothing
 * resolves (or out of memory). */
static char *real_or_planned(const char *path)
{
	char *real = realpath(path, NULL), *cut, *whole = NULL, *prefix = NULL, *out = NULL;

	if (real)
		return real;
	/* "name" is "./name": there is always a '/' to cut at. */
	if (asprintf(&whole, "%s%s", path[0] == '/' ? "" : "./", path) < 0)
		return NULL;
	prefix = strdup(whole);
	while (prefix && !real && (cut = strrchr(prefix, '/'))) {
		*cut = '\0';
		real = realpath(cut == prefix ? "/" : prefix, NULL);
		if (real && asprintf(&out, "%s%s", strcmp(real, "/") ? real : "", whole + (cut - prefix)) < 0)
			out = NULL;
	}
	free(real);
	free(prefix);
	free(whole);
	return out;
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
	struct notifier notifier = { 0 };
	char err[512], *state_real = NULL, *mnt_real = NULL, *state_before = NULL, *state_planned = NULL;
	bool mounted = false, handlers = false, ctx_ready = false;
	const struct subcommand *sub = argc > 1 ? find_subcommand(argv[1]) : NULL;
	int ret = 1, r;

	if (sub)
		return sub->main(argc - 1, argv + 1);

	/* A listing of a large pool (opendir of the top) is big and short
	 * lived: a fixed mmap threshold hands it back at releasedir, where
	 * glibc's sliding one would move it into the heap after the first
	 * and keep it resident; the FUSE workers share a few arenas rather
	 * than holding one each (the scale benchmark's RSS per device). */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	mallopt(M_ARENA_MAX, 2);
	/* A daemon never dies of its log's reader going away (thinfs -f |
	 * head): a write to a closed pipe fails with EPIPE, and the log
	 * moves to syslog (log.c). */
	signal(SIGPIPE, SIG_IGN);
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
	/* Everything that cannot work is refused before anything is made. */
	if (!fuse_opts_ok(&args))
		goto out;
	if (!may_start()) {
		fprintf(stderr, "thinfs: cannot start: it needs root (CAP_SYS_ADMIN) to attach loop devices, "
			"drive device-mapper and mount filesystems; run it as root\n");
		goto out;
	}

	clean_stale_mount(c.mountpoint);
	mnt_real = realpath(c.mountpoint, NULL);
	if (!mnt_real) {
		fprintf(stderr, "thinfs: mount point %s: %s\n", c.mountpoint, strerror(errno));
		goto out;
	}
	state_before = realpath(c.state_dir, NULL);
	if (refuse_live_mount(mnt_real, state_before))
		goto out;
	state_planned = real_or_planned(c.state_dir);
	if (state_planned && (path_within(state_planned, mnt_real) || path_within(mnt_real, state_planned))) {
		fprintf(stderr, "thinfs: the state directory %s and the mount point %s must not contain each other\n",
			state_planned, mnt_real);
		goto out;
	}
	if (options_check_base_size(&c.opts, state_before, err, sizeof(err)) < 0) {
		fprintf(stderr, "thinfs: %s\n", err);
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

	warn_volatile(state_real);

	r = ds_open(state_real, &c.opts, &ds);
	if (r < 0) {
		fprintf(stderr, "thinfs: cannot start on %s: %s (see the messages above)\n", state_real, strerror(-r));
		goto out;
	}
	tf_fuse_ctx_init(&ctx, ds);
	ctx_ready = true;

	if (add_fsname_arg(&args, state_real) < 0)
		goto out;
	se = fuse_session_new(&args, &tf_fuse_ops, sizeof(tf_fuse_ops), &ctx);
	if (!se)
		goto out;
	tf_fuse_ctx_attach(&ctx, se);
	if (fuse_set_signal_handlers(se) < 0)
		goto out;
	handlers = true;
	/* Once more right before the mount: the chaos test saw a start whose
	 * first look found the mount point alive fail here, the dead mount
	 * found only by libfuse's own stat seconds later. */
	clean_stale_mount(mnt_real);
	if (fuse_session_mount(se, mnt_real) < 0 &&
	    (clean_stale_mount(mnt_real) == 0 || fuse_session_mount(se, mnt_real) < 0)) {
		fprintf(stderr, "thinfs: cannot mount on %s\n", mnt_real);
		goto out;
	}
	mounted = true;
	log_info("thinfs %s: %s mounted on %s", PACKAGE_VERSION, state_real, mnt_real);
	if (!fo.foreground && access(SYSLOG_SOCKET, F_OK) < 0) {
		char path[PATH_MAX + 16];

		ds_log_path(ds, path, sizeof(path));
		log_info("no syslog here (%s is missing): the log goes to %s", SYSLOG_SOCKET, path);
		r = tf_log_to_file(path);
		if (r < 0)
			log_warn("cannot open %s: %s; in the background the log is lost", path, strerror(-r));
	}
	if (fuse_daemonize(fo.foreground) < 0)
		goto out;
	if (!fo.foreground) {
		tf_log_init(false, fo.debug ? LOG_DEBUG : LOG_INFO);
		if (ds_daemonized(ds) < 0)
			goto out;
	}
	/* Failing (logged), the engine goes on as without an autofs: reading
	 * a rootfs link mounts the device. Before the worker, which reads
	 * ds->autofs (a failure may take it away). */
	(void)ds_start_autofs(ds);
	ds_start_worker(ds);
	lc = fuse_loop_cfg_create();
	if (!lc)
		goto out;
	/* Each ctl command holds a worker until its mount, resize or unmount
	 * is done (none of them needs another FUSE request: filesystems are
	 * mounted outside this mount). Enough workers that lookups still find
	 * one while many such commands run; -o max_threads may ask for more. */
	fuse_loop_cfg_set_max_threads(lc, fo.max_threads > TF_MIN_WORKERS ? fo.max_threads : TF_MIN_WORKERS);
	fuse_loop_cfg_set_idle_threads(lc, 16);
	/* The kernel holds the requests that come before the loop reads
	 * them: the namespace answers from here on. */
	notifier.ds = ds;
	notifier.state = state_real;
	notifier.mnt = mnt_real;
	notify_start(&notifier);
	r = fuse_session_loop_mt(se, lc);
	/* A loop ended by SIGTERM/SIGINT/SIGHUP returns the signal: that is an
	 * orderly stop like an unmount. */
	ret = r == 0 || r == SIGTERM || r == SIGINT || r == SIGHUP ? 0 : 1;
	log_info("shutting down");
	/* Before the unmount, which closes the session's fd: a usage pass
	 * after it would notify the kernel on a closed (or reused) fd. */
	ds_set_usage_hook(ds, NULL, NULL);
	notify_stop(&notifier);
	/* The namespace goes first; then the lock says that this thinfs
	 * stops, so a start waits for the teardown instead of failing. */
	fuse_session_unmount(se);
	mounted = false;
	ds_stopping(ds);
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
	free(state_before);
	free(state_planned);
	free(mnt_real);
	options_free(&c.opts);
	return ret;
}
