/*
 * pool-dm.c - the "dm" pool backend: the kernel's thin-pool and thin
 * targets through libdevmapper, in-process (no dmsetup children). The
 * only file that includes libdevmapper.h; it turns libdm's 1/0 returns
 * into 0/-errno here, with the kernel's errno from dm_task_get_errno.
 *
 * Pool storage, in this order: an existing, empty pool (dm.thinpooldev);
 * block devices (dm.datadev + dm.metadatadev); else sparse loopback files
 * STATEDIR/devicemapper/{data,metadata}, the original engine's default.
 * Without udev (containers, VMs without it) libdm makes the /dev/mapper
 * nodes itself.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libdevmapper.h>
#include <linux/dm-ioctl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "docker.h"
#include "fsutil.h"
#include "grow.h"
#include "idmap.h"
#include "log.h"
#include "loopback.h"
#include "metadata.h"
#include "pool.h"

#define METADATA_BLOCK 4096 /* dm-thin metadata blocks are 4 KiB */
_Static_assert(POOL_DEV_NAME_MAX == DM_NAME_LEN, "pool.h's name limit is libdevmapper's");
#define LOW_WATER_BLOCKS 32768

struct pool {
	char name[256];               /* the pool's dm name */
	char data_path[PATH_MAX];     /* the data file or device */
	char meta_path[PATH_MAX];
	char data_loop[64], meta_loop[64];
	char data_dev[PATH_MAX];      /* what the table uses for data */
	char meta_dev[PATH_MAX];
	uint32_t block_sectors;
	bool loopback;                /* files under STATEDIR */
	bool external;                /* dm.thinpooldev: never removed by us */
	bool udev_sync;
	bool deferred_remove;         /* driver and library support it */
	/* -o ro: the pool has dm-thin's read_only feature over a read-only
	 * metadata loop device, the thin devices' tables are read-only, and
	 * no message is sent, so neither the metadata nor the data changes. */
	bool read_only;
	unsigned pool_major, pool_minor;
	/* /dev/mapper/control for the status reads that bypass libdm
	 * (status_params); -1 if it could not be opened (libdm is used). */
	int ctl_fd;
	/* Serialises the transaction messages. Taken alone. */
	pthread_mutex_t lock;
};

static int libdm_level = 3;

/* libdm's log into ours, at dm.libdm_log_level. */
static void dm_log_cb(int level, const char *file, int line, int dm_errno_or_class,
		      const char *fmt, ...)
{
	static const int to_syslog[] = { LOG_CRIT, LOG_CRIT, LOG_CRIT, LOG_ERR, LOG_WARNING,
					 LOG_NOTICE, LOG_INFO, LOG_DEBUG };
	char buf[1024];
	va_list ap;

	(void)file, (void)line, (void)dm_errno_or_class;
	level &= 7;
	if (level > libdm_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	tf_log(to_syslog[level], "libdevmapper: %s", buf);
}

static bool udev_running(void)
{
	return access("/run/udev/control", F_OK) == 0;
}

static bool no_udev;

static void init_libdm(void)
{
	if (no_udev) {
		/* libdm then makes and removes the nodes itself. */
		setenv("DM_DISABLE_UDEV", "1", 0);
		dm_udev_set_sync_support(0);
	}
	dm_log_with_errno_init(dm_log_cb);
}

static void setup_libdm(int level)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	libdm_level = level;
	no_udev = !udev_running();
	pthread_once(&once, init_libdm);
}

/* libdevmapper is not thread-safe: its udev cookies and, without udev,
 * the list of /dev/mapper node operations it keeps are process-wide.
 * Every task runs under this lock (a leaf: nothing is taken under it),
 * so the engine may call the backend from several threads (pool.h).
 * Status reads are not libdm tasks (status_params): they never take it. */
static pthread_mutex_t libdm_lock = PTHREAD_MUTEX_INITIALIZER;

/* One metadata snapshot at a time (the kernel refuses a second reserve):
 * held from reserve_metadata_snap to release_metadata_snap by the device
 * list (the check, the start's orphan search) and the usage read (the
 * worker, without the engine's pool lock). Taken before libdm_lock. */
static pthread_mutex_t snap_lock = PTHREAD_MUTEX_INITIALIZER;

/* Run a task; -errno from the kernel on failure. */
static int run_task(struct dm_task *dmt, bool with_cookie)
{
	uint32_t cookie = 0;
	int r = 0;

	pthread_mutex_lock(&libdm_lock);
	if (with_cookie && !dm_task_set_cookie(dmt, &cookie, 0)) {
		r = -EIO;
		goto out;
	}
	if (!dm_task_run(dmt)) {
		r = dm_task_get_errno(dmt);
		r = r > 0 ? -r : -EIO;
	}
	if (with_cookie)
		dm_udev_wait(cookie);
out:
	pthread_mutex_unlock(&libdm_lock);
	return r;
}

static int simple_task(int type, const char *name, bool with_cookie)
{
	struct dm_task *dmt = dm_task_create(type);
	int r;

	if (!dmt)
		return -ENOMEM;
	r = dm_task_set_name(dmt, name) ? run_task(dmt, with_cookie) : -EINVAL;
	dm_task_destroy(dmt);
	return r;
}

static int send_message(const char *name, const char *msg)
{
	struct dm_task *dmt = dm_task_create(DM_DEVICE_TARGET_MSG);
	int r;

	if (!dmt)
		return -ENOMEM;
	if (!dm_task_set_name(dmt, name) || !dm_task_set_sector(dmt, 0) || !dm_task_set_message(dmt, msg))
		r = -EINVAL;
	else
		r = run_task(dmt, false);
	dm_task_destroy(dmt);
	return r;
}

/* 1 exists (info filled), 0 not, -errno. */
static int device_info(const char *name, struct dm_info *info)
{
	struct dm_task *dmt = dm_task_create(DM_DEVICE_INFO);
	int r;

	if (!dmt)
		return -ENOMEM;
	if (!dm_task_set_name(dmt, name)) {
		r = -EINVAL;
		goto out;
	}
	r = run_task(dmt, false);
	if (r < 0)
		goto out;
	r = dm_task_get_info(dmt, info) && info->exists ? 1 : 0;
out:
	dm_task_destroy(dmt);
	return r;
}

/* The params of the first target of name's status (or table). */
static int get_params(const char *name, int type, char *buf, size_t len, char *target, size_t tlen)
{
	struct dm_task *dmt = dm_task_create(type);
	uint64_t start, length;
	char *ttype = NULL, *params = NULL;
	int r;

	if (!dmt)
		return -ENOMEM;
	if (!dm_task_set_name(dmt, name)) {
		r = -EINVAL;
		goto out;
	}
	r = run_task(dmt, false);
	if (r < 0)
		goto out;
	dm_get_next_target(dmt, NULL, &start, &length, &ttype, &params);
	if (!params) {
		r = -ENODATA;
		goto out;
	}
	snprintf(buf, len, "%s", params);
	if (target)
		snprintf(target, tlen, "%s", ttype ? ttype : "");
out:
	dm_task_destroy(dmt);
	return r;
}

/* The params of the first target of name's status, read by the
 * DM_TABLE_STATUS ioctl itself instead of a libdm task, and with
 * DM_NOFLUSH_FLAG. A status read needs none of libdm's process-wide
 * state, so it runs without libdm_lock and does not wait behind a
 * writer's pool message (reading a device's info queued behind every
 * mkdir's create_snap); and without the flag a thin-pool's status first
 * commits its metadata, I/O a read has no need of (the figures come from
 * the pool's in-core space maps either way). 0; -ENXIO no such device;
 * -ENODATA no target; -errno. Falls back to libdm without a control fd. */
static int status_params(const struct pool *p, const char *name, char *buf, size_t len)
{
	union {
		struct dm_ioctl io;
		char raw[sizeof(struct dm_ioctl) + 4096];
	} q;
	struct dm_target_spec *spec;

	if (p->ctl_fd < 0)
		return get_params(name, DM_DEVICE_STATUS, buf, len, NULL, 0);
	memset(&q, 0, sizeof(q));
	q.io.version[0] = DM_VERSION_MAJOR;
	q.io.data_size = sizeof(q);
	q.io.data_start = sizeof(struct dm_ioctl);
	q.io.flags = DM_NOFLUSH_FLAG;
	if (snprintf(q.io.name, sizeof(q.io.name), "%s", name) >= (int)sizeof(q.io.name))
		return -ENAMETOOLONG;
	if (ioctl(p->ctl_fd, DM_TABLE_STATUS, &q) < 0)
		return -errno;
	if (q.io.flags & DM_BUFFER_FULL_FLAG)
		return -ENOBUFS;
	if (q.io.target_count < 1 || q.io.data_start + sizeof(*spec) >= sizeof(q))
		return -ENODATA;
	spec = (struct dm_target_spec *)(q.raw + q.io.data_start);
	q.raw[sizeof(q) - 1] = '\0';
	snprintf(buf, len, "%s", (char *)(spec + 1));
	return 0;
}

/* ro: a read-only table (a thin device of a read-only pool). */
static int load_table(int type, const char *name, uint64_t sectors, const char *target,
		      const char *params, bool ro)
{
	struct dm_task *dmt = dm_task_create(type);
	int r;

	if (!dmt)
		return -ENOMEM;
	if (!dm_task_set_name(dmt, name) || !dm_task_add_target(dmt, 0, sectors, target, params) ||
	    (ro && !dm_task_set_ro(dmt)))
		r = -EINVAL;
	else
		r = run_task(dmt, type == DM_DEVICE_CREATE);
	dm_task_destroy(dmt);
	return r;
}

/* ------------------------------------------------------------------ */

static int attach_file(const char *path, bool ro, char *loop, size_t len)
{
	int r = loop_find(path, loop, len);

	/* A read-only loop device is what a read-only run (-o ro) left:
	 * a read-write pool over it would fail, or fail to write. */
	if (r == 1 && !ro && loop_is_read_only(loop) == 1) {
		log_err("dm pool: cannot start: %s is attached read-only to %s, as a killed read-only thinfs run "
			"(-o ro) leaves it: detach it (losetup -d %s)", path, loop, loop);
		return -EBUSY;
	}
	if (r == 1) {
		log_info("dm pool: reusing %s for %s", loop, path);
		if (!ro)
			loop_set_capacity(loop);
		return 0;
	}
	if (r < 0)
		return r;
	r = loop_attach(path, ro, false, 512, loop, len, NULL);
	if (r == 0)
		log_info("dm pool: attached %s to %s", path, loop);
	return r;
}

static int dev_sectors(const char *dev, uint64_t *sectors)
{
	uint64_t bytes;
	int r = fsutil_blockdev_size(dev, &bytes);

	if (r < 0) {
		log_err("dm pool: size of %s: %s", dev, strerror(-r));
		return r;
	}
	*sectors = bytes / 512;
	return 0;
}

/* The pool's table. error_if_no_space: a full pool fails the writes that
 * need a new block at once (ENOSPC to the filesystem on the thin device)
 * instead of queueing them, which the kernel does by default for
 * no_space_timeout (60 s, 0 = forever) and which hangs every writer and
 * a suspend (a reload) of the pool behind them. */
static int pool_table_params(struct pool *p, char *buf, size_t len)
{
	if (snprintf(buf, len, "%s %s %" PRIu32 " %d %d skip_block_zeroing error_if_no_space%s", p->meta_dev,
		     p->data_dev, p->block_sectors, LOW_WATER_BLOCKS, p->read_only ? 3 : 2,
		     p->read_only ? " read_only" : "") >= (int)len) {
		log_err("dm pool %s: table parameters longer than %zu bytes", p->name, len);
		return -ENAMETOOLONG;
	}
	return 0;
}

static int read_pool_status(struct pool *p, uint64_t *tid, uint64_t *mu, uint64_t *mt,
			    uint64_t *du, uint64_t *dt)
{
	char params[512];
	int r = status_params(p, p->name, params, sizeof(params));

	if (r < 0) {
		log_err("dm pool %s: status: %s", p->name, strerror(-r));
		return r;
	}
	if (sscanf(params, "%" SCNu64 " %" SCNu64 "/%" SCNu64 " %" SCNu64 "/%" SCNu64,
		   tid, mu, mt, du, dt) != 5) {
		log_err("dm pool %s: cannot read its status '%s' (pool failed?)", p->name, params);
		return -EIO;
	}
	return 0;
}

/* The pool's mode from its status line (after the five numbers and the
 * held metadata root): "rw", "ro" (read-only, or out of metadata space),
 * "out_of_data_space", or "Fail"; needs_check if the kernel set that flag
 * after a failed metadata operation (it then stays read-only until an
 * offline thin_check clears it). */
struct pool_mode {
	char mode[32];
	bool needs_check;
	bool snap_held;     /* a metadata snapshot is reserved (held root not "-") */
	uint64_t mu, mt, du, dt;
};

static int read_pool_mode(struct pool *p, struct pool_mode *m)
{
	char params[512], held[32], mode[32], w[4][32];
	uint64_t tid;
	int n, r = get_params(p->name, DM_DEVICE_STATUS, params, sizeof(params), NULL, 0);

	memset(m, 0, sizeof(*m));
	if (r < 0) {
		log_err("dm pool %s: status: %s", p->name, strerror(-r));
		return r;
	}
	n = sscanf(params, "%" SCNu64 " %" SCNu64 "/%" SCNu64 " %" SCNu64 "/%" SCNu64 " %31s %31s %31s %31s %31s %31s",
		   &tid, &m->mu, &m->mt, &m->du, &m->dt, held, mode, w[0], w[1], w[2], w[3]);
	if (n < 7) {
		/* "Fail", or a status this code does not know */
		snprintf(m->mode, sizeof(m->mode), "%s", n < 5 ? "Fail" : "unknown");
		return 0;
	}
	snprintf(m->mode, sizeof(m->mode), "%s", mode);
	m->snap_held = strcmp(held, "-") != 0;
	for (int i = 0; i < n - 7; i++)
		if (strcmp(w[i], "needs_check") == 0)
			m->needs_check = true;
	return 0;
}

static void dm_close(struct pool *p)
{
	if (!p)
		return;
	if (!p->external && p->pool_major) {
		int r = -EBUSY;

		for (int i = 0; i < 20 && r == -EBUSY; i++) {
			r = simple_task(DM_DEVICE_REMOVE, p->name, true);
			if (r == -EBUSY)
				usleep(100 * 1000);
		}
		if (r < 0 && r != -ENXIO)
			log_warn("dm pool %s: remove: %s", p->name, strerror(-r));
		else
			log_info("dm pool %s deactivated", p->name);
	}
	if (p->loopback) {
		if (p->data_loop[0])
			loop_detach(p->data_loop);
		if (p->meta_loop[0])
			loop_detach(p->meta_loop);
	}
	if (p->ctl_fd >= 0)
		close(p->ctl_fd);
	pthread_mutex_destroy(&p->lock);
	free(p);
	dm_lib_release();
}

/* Replace an active device's table by one of `sectors`: reload, suspend, resume. */
static int reload(const char *name, uint64_t sectors, const char *target, const char *params)
{
	int r = load_table(DM_DEVICE_RELOAD, name, sectors, target, params, false);

	if (r == 0)
		r = simple_task(DM_DEVICE_SUSPEND, name, false);
	if (r == 0)
		r = simple_task(DM_DEVICE_RESUME, name, true);
	return r;
}

/* The pool's table again over its data device's current size: after the
 * loopback data file grew (resize-pool, or a larger dm.loopdatasize at a
 * start that found the pool active). */
/* The thin-pool table over the data device's current size. */
static int pool_table(struct pool *p, uint64_t *sectors, char *params, size_t len)
{
	int r = dev_sectors(p->data_dev, sectors);

	return r < 0 ? r : pool_table_params(p, params, len);
}

static int reload_pool(struct pool *p)
{
	char params[1024];
	uint64_t sectors;
	int r = pool_table(p, &sectors, params, sizeof(params));

	if (r < 0)
		return r;
	pthread_mutex_lock(&p->lock);
	r = reload(p->name, sectors, "thin-pool", params);
	pthread_mutex_unlock(&p->lock);
	if (r < 0)
		log_err("dm pool %s: reload with %" PRIu64 " sectors: %s", p->name, sectors, strerror(-r));
	return r;
}

static int create_table(struct pool *p)
{
	char params[1024];
	uint64_t sectors;
	int r = pool_table(p, &sectors, params, sizeof(params));

	if (r < 0)
		return r;
	r = load_table(DM_DEVICE_CREATE, p->name, sectors, "thin-pool", params, false);
	if (r < 0)
		log_err("dm pool: create %s (thin-pool %s): %s", p->name, params, strerror(-r));
	return r;
}

/* Create the pool. A pool whose metadata carries the kernel's needs_check
 * flag (a metadata operation failed, e.g. the metadata space ran out
 * before the kernel could stop it) comes up read-only, and only an
 * offline check clears the flag: remove it, run thin_check
 * --clear-needs-check-flag (which clears it only when the metadata is
 * clean), create it again. Metadata thin_check finds damaged stops the
 * start: thin_repair is the owner's call, not ours. */
static int create_pool(struct pool *p)
{
	const char *argv[] = { "thin_check", "--clear-needs-check-flag", p->meta_dev, NULL };
	struct pool_mode m;
	int r = create_table(p);

	if (r < 0 || read_pool_mode(p, &m) < 0 || !m.needs_check)
		return r;
	if (p->read_only) {
		log_warn("dm pool %s: the metadata %s has the needs_check flag set; -o ro does not check or clear "
			 "it (thin_check would write): reading it as it is", p->name, p->meta_path);
		return 0;
	}
	log_warn("dm pool %s: the metadata %s has the needs_check flag set (mode %s): checking it with "
		 "thin_check --clear-needs-check-flag", p->name, p->meta_path, m.mode);
	r = simple_task(DM_DEVICE_REMOVE, p->name, true);
	if (r < 0) {
		log_err("dm pool %s: remove, to check its metadata: %s", p->name, strerror(-r));
		return r;
	}
	r = fsutil_run((char *const *)argv);
	if (r < 0) {
		log_err("dm pool %s: thin_check --clear-needs-check-flag %s failed (%s): the pool metadata needs "
			"thin_repair; not starting", p->name, p->meta_dev, strerror(-r));
		return -EUCLEAN;
	}
	r = create_table(p);
	if (r == 0 && read_pool_mode(p, &m) == 0)
		log_info("dm pool %s: metadata checked clean and the flag cleared; pool mode %s%s", p->name, m.mode,
			 m.needs_check ? ", still needs_check" : "");
	return r;
}

/* ------------------------------------------------------------------ */
/* Another program's pool over the same storage. Docker names its pool
 * after the same directory (docker-MAJ:MIN-INO-pool, docker.h) over the
 * same files: two pools over one metadata device would each overwrite
 * the other's metadata. */

/* A one-line sysfs attribute into buf, newline dropped; "" if absent. */
static void read_sysfs(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");

	buf[0] = '\0';
	if (!f)
		return;
	if (!fgets(buf, (int)len, f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
}

/* dev (a block device: the loop device of a pool file, or dm.datadev /
 * dm.metadatadev) held by anything but our pool: -EBUSY, logged naming
 * the holder. *held_out: held by our pool (a previous run's). */
static int check_holders(struct pool *p, const char *what, const char *dev, bool *held_out)
{
	char dir[128], path[PATH_MAX], name[256];
	struct dirent *e;
	struct stat st;
	DIR *d;
	int r = 0;

	*held_out = false;
	if (stat(dev, &st) < 0 || !S_ISBLK(st.st_mode))
		return 0; /* the open itself will say what is wrong with it */
	snprintf(dir, sizeof(dir), "/sys/dev/block/%u:%u/holders", major(st.st_rdev), minor(st.st_rdev));
	d = opendir(dir);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/dm/name", dir, e->d_name);
		read_sysfs(path, name, sizeof(name));
		if (name[0] && strcmp(name, p->name) == 0) {
			*held_out = true;
			continue;
		}
		log_err("dm pool: cannot start: the %s (%s) is in use by %s%s%s: %s has this pool open, and "
			"two pools over one metadata device destroy it. Stop it first%s", what, dev,
			name[0] ? "dm device " : "", name[0] ? name : e->d_name, name[0] ? "" : " (not a dm device)",
			strncmp(name, "thinfs-", 7) == 0 ? "a killed thinfs run of the other kind (read-write and "
			"read-only runs name their pools apart; a start and stop of that kind releases it)" :
			"another program (dockerd?)",
			name[0] ? "; if nothing runs any more, remove its devices with dmsetup remove" : "");
		r = -EBUSY;
		break;
	}
	closedir(d);
	return r;
}

/* A loop device attached to a pool file by someone else: held by another
 * dm device (check_holders), or attached with autoclear (thinfs attaches
 * without; Docker with) and still open. Leftover loop devices of our own
 * pool pass. -EBUSY; 0. */
static int check_pool_file(struct pool *p, const char *what, const char *file)
{
	char loop[64], attr[128], v[16];
	bool ours;
	int r;

	for (int tries = 0; ; tries++) {
		r = loop_find(file, loop, sizeof(loop));
		if (r <= 0)
			return 0; /* not attached; an error here shows again at the attach */
		r = check_holders(p, what, loop, &ours);
		if (r < 0 || ours)
			return r;
		snprintf(attr, sizeof(attr), "/sys/block/%s/loop/autoclear",
			 strncmp(loop, "/dev/", 5) == 0 ? loop + 5 : loop);
		read_sysfs(attr, v, sizeof(v));
		if (strcmp(v, "1") != 0)
			return 0;
		/* An autoclear loop device goes at its last close: give one
		 * that is just being let go a moment. */
		if (tries == 20) {
			log_err("dm pool: cannot start: the %s %s is attached to %s by another program, "
				"which still has it open (autoclear loop device): is dockerd starting or "
				"running on this directory? Stop it first", what, file, loop);
			return -EBUSY;
		}
		usleep(100 * 1000);
	}
}

static int check_other_owner(struct pool *p, const struct pool_config *cfg)
{
	const struct ds_options *o = cfg->opts;
	char docker[POOL_DEV_NAME_MAX], path[PATH_MAX];
	struct dm_info info;
	bool ours;
	int r;

	if (docker_pool_name(cfg->prefix, docker, sizeof(docker)) == 0 && device_info(docker, &info) == 1) {
		log_err("dm pool: cannot start: Docker's pool %s for %s is active: dockerd is running on "
			"this directory, or left its pool behind. Stop dockerd (systemctl stop docker.socket "
			"docker); if the pool stays, remove its thin devices and the pool with dmsetup remove",
			docker, cfg->state_dir);
		return -EBUSY;
	}
	if (o->data_dev) {
		r = check_holders(p, "data device", o->data_dev, &ours);
		return r < 0 ? r : check_holders(p, "metadata device", o->metadata_dev, &ours);
	}
	snprintf(path, sizeof(path), "%s/devicemapper/data", cfg->state_dir);
	r = check_pool_file(p, "data file", path);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/devicemapper/metadata", cfg->state_dir);
	return check_pool_file(p, "metadata file", path);
}

/* dm_create_snap suspends an active origin around the snapshot; a daemon
 * killed in between leaves it suspended, and all I/O to it (a mounted
 * filesystem's writers) blocks. At open, before the engine adopts the
 * devices, resume every suspended device of this state directory
 * (PREFIX-ID; never the pool). */
static void resume_left_suspended(const char *prefix)
{
	struct dm_task *dmt = dm_task_create(DM_DEVICE_LIST);
	struct dm_names *n;
	struct dm_info info;
	size_t plen = strlen(prefix);
	unsigned next = 0;

	if (!dmt)
		return;
	if (run_task(dmt, false) < 0 || !(n = dm_task_get_names(dmt)) || !n->dev)
		goto out;
	do {
		n = (struct dm_names *)((char *)n + next);
		next = n->next;
		if (strncmp(n->name, prefix, plen) != 0 || n->name[plen] != '-' ||
		    strspn(n->name + plen + 1, "0123456789") != strlen(n->name + plen + 1))
			continue;
		if (device_info(n->name, &info) == 1 && info.suspended) {
			int r = simple_task(DM_DEVICE_RESUME, n->name, true);

			if (r < 0)
				log_err("dm pool: resume %s, left suspended by a killed run: %s", n->name, strerror(-r));
			else
				log_warn("dm pool: resumed %s, left suspended by a run killed during a snapshot", n->name);
		}
	} while (next);
out:
	dm_task_destroy(dmt);
}

static void release_stale_snapshot(struct pool *p);

static int dm_open(const struct pool_config *cfg, struct pool **out)
{
	const struct ds_options *o = cfg->opts;
	struct dm_info info;
	struct pool *p;
	char params[1024], dir[PATH_MAX];
	uint64_t tid, mu, mt, du, dt;
	unsigned major_v, minor_v, patch_v;
	bool grown = false;
	int r;

	setup_libdm(o->libdm_log_level);
	if (udev_running() && !dm_udev_get_sync_support() && !o->override_udev_sync_check) {
		log_err("dm pool: udev is running but libdevmapper cannot synchronise with it: devices could "
			"appear or vanish behind thinfs's back. Use a libdevmapper built with udev sync, or "
			"set dm.override_udev_sync_check=true to go on at your own risk");
		return -EINVAL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	p->ctl_fd = -1;
	p->udev_sync = udev_running() && dm_udev_get_sync_support();
	if (!udev_running())
		log_info("dm pool: udev is not running: udev sync is off, thinfs makes the /dev/mapper nodes itself");
	p->block_sectors = o->block_size / 512;
	p->read_only = o->read_only;
	if (dm_driver_version(params, sizeof(params)) &&
	    sscanf(params, "%u.%u.%u", &major_v, &minor_v, &patch_v) == 3)
		p->deferred_remove = major_v > 4 || (major_v == 4 && minor_v >= 27);
	/* libdm made the control node if it was missing (dm_driver_version). */
	snprintf(dir, sizeof(dir), "%s/control", dm_dir());
	p->ctl_fd = open(dir, O_RDWR | O_CLOEXEC);
	if (p->ctl_fd < 0)
		log_warn("dm pool: open %s: %s; status reads go through libdevmapper", dir, strerror(errno));

	if (o->thinpool_dev) {
		snprintf(p->name, sizeof(p->name), "%s", o->thinpool_dev);
		p->external = true;
		r = device_info(p->name, &info);
		if (r <= 0) {
			log_err("dm pool: dm.thinpooldev %s does not exist", p->name);
			r = r < 0 ? r : -ENOENT;
			goto fail;
		}
		r = read_pool_status(p, &tid, &mu, &mt, &du, &dt);
		if (r < 0)
			goto fail;
		if (tid != 0 || du != 0) {
			log_err("dm pool: will not take over thin pool %s: it already has transaction ID %" PRIu64
				" and %" PRIu64 " used data blocks; thinfs only takes over an empty pool",
				p->name, tid, du);
			r = -EINVAL;
			goto fail;
		}
		p->pool_major = info.major;
		p->pool_minor = info.minor;
		log_info("dm pool: taking over the empty thin pool %s", p->name);
		*out = p;
		return 0;
	}

	snprintf(p->name, sizeof(p->name), "%s-pool", cfg->prefix);
	r = check_other_owner(p, cfg);
	if (r < 0)
		goto fail;
	if (o->data_dev) {
		snprintf(p->data_path, sizeof(p->data_path), "%s", o->data_dev);
		snprintf(p->meta_path, sizeof(p->meta_path), "%s", o->metadata_dev);
		snprintf(p->data_dev, sizeof(p->data_dev), "%s", o->data_dev);
		snprintf(p->meta_dev, sizeof(p->meta_dev), "%s", o->metadata_dev);
	} else {
		p->loopback = true;
		snprintf(dir, sizeof(dir), "%s/devicemapper", cfg->state_dir);
		r = p->read_only ? 0 : meta_mkdir_p(dir, 0700);
		if (r < 0)
			goto fail;
		if (snprintf(p->data_path, sizeof(p->data_path), "%s/data", dir) >= (int)sizeof(p->data_path) ||
		    snprintf(p->meta_path, sizeof(p->meta_path), "%s/metadata", dir) >= (int)sizeof(p->meta_path)) {
			r = -ENAMETOOLONG;
			log_err("dm pool: %s: path too long", dir);
			goto fail;
		}
		if (p->read_only) {
			/* Nothing is made or grown: both files must be there. */
			const char *missing = access(p->data_path, F_OK) < 0 ? p->data_path :
					      access(p->meta_path, F_OK) < 0 ? p->meta_path : NULL;

			r = missing ? -errno : 0;
			if (missing)
				log_err("dm pool: cannot start read-only: %s: %s; -o ro makes no pool file", missing,
					strerror(-r));
		} else {
			r = loop_file_size(p->data_path, o->loop_data_size, o->loop_data_size_set,
					   "dm pool: data file");
			if (r >= 0) {
				grown = r == 1;
				r = loop_file_size(p->meta_path, o->loop_metadata_size,
						   o->loop_metadata_size_set, "dm pool: metadata file");
				grown = grown || r == 1;
			}
		}
		/* dm-thin opens the data device for writing even in a
		 * read_only pool (which writes nothing to it); only the
		 * metadata device may be read-only. */
		if (r >= 0)
			r = attach_file(p->data_path, false, p->data_loop, sizeof(p->data_loop));
		if (r == 0)
			r = attach_file(p->meta_path, p->read_only, p->meta_loop, sizeof(p->meta_loop));
		if (r < 0)
			goto fail;
		snprintf(p->data_dev, sizeof(p->data_dev), "%s", p->data_loop);
		snprintf(p->meta_dev, sizeof(p->meta_dev), "%s", p->meta_loop);
	}
	r = device_info(p->name, &info);
	if (r < 0)
		goto fail;
	if (r == 1) {
		char table[1024], target[32];

		log_info("dm pool: %s is already active (a previous run): reusing it", p->name);
		if (info.suspended) {
			/* a run killed inside reload_pool */
			r = simple_task(DM_DEVICE_RESUME, p->name, true);
			log_warn("dm pool %s: was left suspended by a killed run; resume: %s", p->name,
				 r < 0 ? strerror(-r) : "done");
		}
		/* The loop devices already have the new capacity
		 * (attach_file); the pool takes it at a reload, and so does
		 * a table made by an older thinfs (no error_if_no_space). */
		pool_table_params(p, params, sizeof(params));
		r = get_params(p->name, DM_DEVICE_TABLE, table, sizeof(table), target, sizeof(target));
		if (r == 0 && strcmp(table, params) != 0 && p->read_only) {
			/* An earlier read-write run's pool: reading from it
			 * writes nothing, and no reload here changes it. */
			log_info("dm pool %s: read-only: reading through the active pool as it is ('%s')", p->name,
				 table);
		} else if (r == 0 && strcmp(table, params) != 0) {
			log_info("dm pool %s: table '%s' becomes '%s'", p->name, table, params);
			grown = true;
		}
		r = grown ? reload_pool(p) : 0;
		if (r < 0)
			goto fail;
	} else {
		r = create_pool(p);
		if (r < 0)
			goto fail;
		r = device_info(p->name, &info);
		if (r <= 0) {
			r = r < 0 ? r : -ENODEV;
			goto fail;
		}
		log_info("dm pool: created %s on data %s, metadata %s, %" PRIu32 "-sector blocks",
			 p->name, p->data_path, p->meta_path, p->block_sectors);
	}
	p->pool_major = info.major;
	p->pool_minor = info.minor;
	resume_left_suspended(cfg->prefix);
	if (!p->read_only)
		release_stale_snapshot(p);
	*out = p;
	return 0;
fail:
	dm_close(p);
	return r;
}

static int dm_get_tid(struct pool *p, uint64_t *tid)
{
	uint64_t mu, mt, du, dt;

	return read_pool_status(p, tid, &mu, &mt, &du, &dt);
}

static int message_fmt(struct pool *p, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int message_fmt(struct pool *p, const char *what, const char *fmt, ...)
{
	char msg[128];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&p->lock);
	r = send_message(p->name, msg);
	pthread_mutex_unlock(&p->lock);
	if (r < 0 && r != -EEXIST && r != -ENODATA) {
		struct pool_mode m;

		/* A pool out of metadata space (or read-only after a failed
		 * metadata operation) refuses every message with
		 * EOPNOTSUPP: say why, as ENOSPC (resize-pool grows the
		 * metadata and brings it back) or EROFS (needs_check). */
		if (read_pool_mode(p, &m) == 0 && strcmp(m.mode, "rw") != 0 &&
		    strcmp(m.mode, "out_of_data_space") != 0) {
			bool full = strcmp(m.mode, "ro") == 0 && !m.needs_check;

			log_err("dm pool %s: %s (message '%s'): %s: the pool is '%s'%s (metadata %" PRIu64 "/%" PRIu64
				" blocks used)%s", p->name, what, msg, strerror(-r), m.mode,
				m.needs_check ? ", needs_check" : "", m.mu, m.mt,
				full ? ": out of metadata space; resize-pool grows it" : "");
			return full ? -ENOSPC : -EROFS;
		}
		log_err("dm pool %s: %s (message '%s'): %s", p->name, what, msg, strerror(-r));
	}
	return r;
}

/* A metadata snapshot still reserved at start was left by a run killed
 * between reserve_metadata_snap and release_metadata_snap (the check's
 * device list, the usage read): the kernel keeps it across restarts and
 * refuses the next reserve, so it is released here, before anything else
 * may reserve one. */
static void release_stale_snapshot(struct pool *p)
{
	struct pool_mode m;

	if (p->external || read_pool_mode(p, &m) < 0 || !m.snap_held)
		return;
	if (message_fmt(p, "release_metadata_snap", "release_metadata_snap") == 0)
		log_warn("dm pool %s: released a metadata snapshot an earlier run left reserved", p->name);
}

static int dm_set_tid(struct pool *p, uint64_t old_tid, uint64_t new_tid)
{
	return message_fmt(p, "set_transaction_id", "set_transaction_id %" PRIu64 " %" PRIu64, old_tid, new_tid);
}

static int dm_create_thin(struct pool *p, uint32_t dev_id, uint64_t size)
{
	(void)size; /* a thin device's size is its table's, not the pool's */
	return message_fmt(p, "create_thin", "create_thin %" PRIu32, dev_id);
}

static int dm_create_snap(struct pool *p, uint32_t dev_id, uint32_t origin_id, uint64_t size,
			  const char *origin_active_name)
{
	int r, s = 0;

	(void)size;
	/* An active origin is suspended (its filesystem frozen by dm) around
	 * the snapshot so the copy is consistent, and resumed on every path. */
	if (origin_active_name) {
		s = simple_task(DM_DEVICE_SUSPEND, origin_active_name, false);
		if (s < 0) {
			log_err("dm pool %s: snapshot %" PRIu32 ": suspend %s: %s", p->name, dev_id,
				origin_active_name, strerror(-s));
			return s;
		}
	}
	r = message_fmt(p, "create_snap", "create_snap %" PRIu32 " %" PRIu32, dev_id, origin_id);
	if (origin_active_name) {
		s = simple_task(DM_DEVICE_RESUME, origin_active_name, true);
		if (s < 0)
			log_err("dm pool %s: resume %s after the snapshot: %s", p->name, origin_active_name,
				strerror(-s));
	}
	return r < 0 ? r : s;
}

static int dm_delete(struct pool *p, uint32_t dev_id)
{
	int r = message_fmt(p, "delete", "delete %" PRIu32, dev_id);

	return r == -ENODATA ? -ENOENT : r;
}

/* Run tool (thin_dump, thin_ls) with args on the pool's metadata; its
 * output in *out (the caller frees it, whatever is returned). Normally
 * it reads a metadata snapshot (snap_flag), reserved around it. Under -o
 * ro no message may change the metadata, and a read-only pool changes
 * none: the tool reads the live metadata, through a read-only loop
 * device of its own over the metadata file or device (the pool holds its
 * own device exclusively, as the tool wants it; and the tool reads with
 * O_DIRECT, which a file on tmpfs refuses). That loop device is
 * autoclear and held open only here, so it goes when the tool is done,
 * or when a kill closes the descriptor. -EOPNOTSUPP for a dm.thinpooldev
 * pool, whose metadata device is not known: the caller says what it goes
 * without. */
static int read_metadata(struct pool *p, const char *tool, const char *snap_flag, const char *const *args,
			 char **out)
{
	const char *argv[12];
	char loop[64];
	size_t n = 0;
	int r, fd = -1;

	if (p->external)
		return -EOPNOTSUPP;
	if (p->read_only) {
		r = loop_attach(p->meta_path, true, true, 512, loop, sizeof(loop), &fd);
		if (r < 0)
			return r;
	}
	argv[n++] = tool;
	if (!p->read_only)
		argv[n++] = snap_flag;
	for (; *args; args++)
		argv[n++] = *args;
	argv[n++] = p->read_only ? loop : p->meta_dev;
	argv[n] = NULL;
	if (p->read_only) {
		r = fsutil_run_output((char *const *)argv, out);
		close(fd);
		return r;
	}
	pthread_mutex_lock(&snap_lock);
	r = message_fmt(p, "reserve_metadata_snap", "reserve_metadata_snap");
	if (r == 0) {
		r = fsutil_run_output((char *const *)argv, out);
		if (message_fmt(p, "release_metadata_snap", "release_metadata_snap") < 0 && r == 0)
			r = -EIO; /* logged; a held metadata snapshot blocks the next one */
	}
	pthread_mutex_unlock(&snap_lock);
	return r;
}

/* The kernel has no "list devices" message: read them from a metadata
 * snapshot with thin_dump. The consistency check's and the start's. */
static int dm_list_ids(struct pool *p, uint32_t **ids, size_t *n)
{
	/* Only the device list is parsed: leave out the block mappings,
	 * which on a large pool run to hundreds of megabytes. */
	const char *args[] = { "--skip-mappings", NULL };
	uint32_t *list = NULL;
	size_t count = 0, cap = 0;
	char *out = NULL, *s;
	int r;

	r = read_metadata(p, "thin_dump", "-m", args, &out);
	if (r < 0) {
		free(out);
		return r;
	}
	for (s = strstr(out, "dev_id=\""); s; s = strstr(s + 1, "dev_id=\"")) {
		r = GROW(list, cap, count, 256);
		if (r < 0)
			goto out;
		list[count++] = (uint32_t)strtoul(s + 8, NULL, 10);
	}
	if (count)
		qsort(list, count, sizeof(*list), idmap_cmp_id);
	*ids = list;
	*n = count;
	list = NULL;
out:
	free(list);
	free(out);
	return r;
}

/* Every device's exclusive and shared bytes: thin_ls of a metadata
 * snapshot (its own walk of the mappings, done outside the kernel). */
static int dm_usage(struct pool *p, int (*fn)(void *arg, uint32_t dev_id, uint64_t exclusive, uint64_t shared),
		    void *arg)
{
	const char *args[] = { "--no-headers", "-o", "DEV,EXCLUSIVE_BYTES,SHARED_BYTES", NULL };
	char *out = NULL, *line, *save = NULL;
	int r;

	r = read_metadata(p, "thin_ls", "--metadata-snap", args, &out);
	for (line = r == 0 ? strtok_r(out, "\n", &save) : NULL; line && r == 0; line = strtok_r(NULL, "\n", &save)) {
		unsigned long long dev, exclusive, shared;

		if (sscanf(line, "%llu %llu %llu", &dev, &exclusive, &shared) != 3 || dev > POOL_MAX_DEVICE_ID) {
			log_err("dm pool %s: thin_ls: unexpected line '%s'", p->name, line);
			r = -EPROTO;
			break;
		}
		r = fn(arg, (uint32_t)dev, exclusive, shared);
	}
	free(out);
	return r;
}

static int dm_is_active(struct pool *p, const char *name, uint32_t dev_id, char *dev_path, size_t len)
{
	struct dm_info info;
	int r = device_info(name, &info);

	(void)p, (void)dev_id;
	if (r == 1 && dev_path)
		snprintf(dev_path, len, "%s/%s", dm_dir(), name);
	return r;
}

static int ensure_node(const char *name, const char *path)
{
	if (access(path, F_OK) == 0)
		return 0;
	/* No udev and the node missing: ask libdm to make it. */
	pthread_mutex_lock(&libdm_lock);
	dm_mknodes(name);
	pthread_mutex_unlock(&libdm_lock);
	return access(path, F_OK) == 0 ? 0 : -ENOENT;
}

static int dm_activate(struct pool *p, const char *name, uint32_t dev_id, uint64_t size,
		       char *dev_path, size_t len)
{
	char params[128], table[256], target[32];
	int r = dm_is_active(p, name, dev_id, dev_path, len);

	if (r < 0)
		return r;
	snprintf(params, sizeof(params), "%u:%u %" PRIu32, p->pool_major, p->pool_minor, dev_id);
	if (r == 1) {
		/* A device of this name exists: reuse it only if it is this
		 * thin device of this pool (a crash, or a deferred removal that
		 * has not happened yet); anything else is not ours to touch. */
		r = get_params(name, DM_DEVICE_TABLE, table, sizeof(table), target, sizeof(target));
		if (r < 0 || strcmp(target, "thin") != 0 || strcmp(table, params) != 0) {
			log_err("dm pool %s: a dm device %s exists with table '%s %s', not 'thin %s': not using it",
				p->name, name, r < 0 ? "?" : target, r < 0 ? strerror(-r) : table, params);
			return -EEXIST;
		}
		if (p->deferred_remove)
			send_message(name, "@cancel_deferred_remove");
		return ensure_node(name, dev_path);
	}
	r = load_table(DM_DEVICE_CREATE, name, size / 512, "thin", params, p->read_only);
	if (r < 0) {
		log_err("dm pool %s: activate %s (thin %s): %s", p->name, name, params, strerror(-r));
		return r;
	}
	snprintf(dev_path, len, "%s/%s", dm_dir(), name);
	r = ensure_node(name, dev_path);
	if (r < 0)
		log_err("dm pool %s: %s is active but %s did not appear", p->name, name, dev_path);
	return r;
}

static int dm_deactivate(struct pool *p, const char *name, uint32_t dev_id, bool deferred)
{
	struct dm_task *dmt;
	struct dm_info info;
	int r = device_info(name, &info);

	(void)dev_id;
	if (r <= 0)
		return r;
	/* Busy for a moment after an unmount: retry, as the original did. */
	for (int i = 0; i < 20; i++) {
		r = simple_task(DM_DEVICE_REMOVE, name, true);
		if (r != -EBUSY)
			break;
		usleep(100 * 1000);
	}
	if (r == -EBUSY && deferred && p->deferred_remove) {
		dmt = dm_task_create(DM_DEVICE_REMOVE);
		if (!dmt)
			return -ENOMEM;
		if (dm_task_set_name(dmt, name) && dm_task_deferred_remove(dmt))
			r = run_task(dmt, true);
		dm_task_destroy(dmt);
		if (r == 0)
			log_info("dm pool %s: %s is still open: the kernel removes it at its last close",
				 p->name, name);
	}
	if (r < 0 && r != -EBUSY)
		log_err("dm pool %s: deactivate %s: %s", p->name, name, strerror(-r));
	return r == -ENXIO ? 0 : r;
}

/* Discard every block of an inactive or idle thin device: activate it
 * if need be, open it O_EXCL (fails while mounted or claimed) and check
 * the kernel's open count is ours alone, so no user's data is zeroed. */
static int dm_discard(struct pool *p, const char *name, uint32_t dev_id, uint64_t size)
{
	char dev_path[PATH_MAX];
	struct dm_info info;
	int r, fd = -1, was_active = dm_is_active(p, name, dev_id, NULL, 0);

	if (was_active < 0)
		return was_active;
	r = dm_activate(p, name, dev_id, size, dev_path, sizeof(dev_path));
	if (r < 0)
		return r;
	fd = open(dev_path, O_WRONLY | O_EXCL | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		log_info("dm pool %s: not discarding %s: open: %s", p->name, name, strerror(-r));
		goto out;
	}
	r = device_info(name, &info);
	if (r == 1 && info.open_count > 1) {
		log_info("dm pool %s: not discarding %s: %d other opener(s)", p->name, name, info.open_count - 1);
		r = -EBUSY;
	} else if (r == 1) {
		r = fsutil_discard(fd, dev_path);
	} else {
		r = r < 0 ? r : -ENXIO;
	}
out:
	if (fd >= 0)
		close(fd);
	if (!was_active && dm_deactivate(p, name, dev_id, false) < 0 && r == 0)
		r = -EBUSY;
	return r;
}

/* dm-thin's largest metadata device (THIN_METADATA_MAX_SECTORS): the
 * kernel uses no more of a larger one. */
#define METADATA_MAX_BYTES (255ULL * (1 << 14) * 8 * 512)
#define METADATA_BYTES_PER_BLOCK 64

/* What the metadata device can map: lvm2 reckons 64 bytes of metadata
 * per data block (mapping btrees and space maps included); a pool grown
 * past it runs out of metadata space and turns read-only. */
static uint64_t dm_max_data_size(struct pool *p)
{
	uint64_t mu, mt, du, dt, tid;

	/* A loopback pool's resize_pool grows the metadata file with the
	 * data, up to the kernel's maximum. */
	if (p->loopback)
		return METADATA_MAX_BYTES / METADATA_BYTES_PER_BLOCK * p->block_sectors * 512;
	if (read_pool_status(p, &tid, &mu, &mt, &du, &dt) < 0)
		return UINT64_MAX; /* resize_pool reports the pool's own error */
	return mt * METADATA_BLOCK / METADATA_BYTES_PER_BLOCK * p->block_sectors * 512;
}

static int dm_dev_status(struct pool *p, const char *name, uint32_t dev_id, struct pool_dev_status *st)
{
	char params[256];
	uint64_t mapped, highest;

	(void)dev_id;
	/* One status ioctl: ENXIO says the device is not active. */
	if (status_params(p, name, params, sizeof(params)) < 0)
		return -ENODEV;
	if (sscanf(params, "%" SCNu64 " %" SCNu64, &mapped, &highest) != 2)
		return -ENODEV; /* "-" for a failed device, or highest "-" when empty */
	st->mapped_bytes = mapped * 512;
	st->highest_mapped = (highest + 1) * 512;
	return 0;
}

static int dm_resize_thin(struct pool *p, const char *name, uint32_t dev_id, uint64_t new_size)
{
	struct dm_info info;
	char params[128];
	int r;

	if (device_info(name, &info) != 1)
		return 0; /* the size lives in the table of the next activation */
	snprintf(params, sizeof(params), "%u:%u %" PRIu32, p->pool_major, p->pool_minor, dev_id);
	r = reload(name, new_size / 512, "thin", params);
	if (r < 0)
		log_err("dm pool %s: resize %s to %" PRIu64 " bytes: %s", p->name, name, new_size, strerror(-r));
	return r;
}

static int dm_status(struct pool *p, struct pool_status *st)
{
	uint64_t mu, mt, du, dt;
	int r;

	memset(st, 0, sizeof(*st));
	r = read_pool_status(p, &st->transaction_id, &mu, &mt, &du, &dt);
	if (r < 0)
		return r;
	st->data_used = du * p->block_sectors * 512;
	st->data_total = dt * p->block_sectors * 512;
	st->metadata_used = mu * METADATA_BLOCK;
	st->metadata_total = mt * METADATA_BLOCK;
	st->sector_size = 512;
	st->block_size = p->block_sectors * 512;
	snprintf(st->pool_name, sizeof(st->pool_name), "%s", p->name);
	snprintf(st->data_file, sizeof(st->data_file), "%s", p->data_path);
	snprintf(st->data_loopback, sizeof(st->data_loopback), "%s", p->data_loop);
	snprintf(st->metadata_file, sizeof(st->metadata_file), "%s", p->meta_path);
	snprintf(st->metadata_loopback, sizeof(st->metadata_loopback), "%s", p->meta_loop);
	st->udev_sync_supported = p->udev_sync;
	st->deferred_remove_supported = p->deferred_remove;
	return 0;
}

/* The metadata file's new size at a resize-pool to data_size bytes: at
 * least what lvm2 reckons data_size needs (64 bytes a block), doubled
 * when less than half of it is free or the pool has gone read-only (out
 * of metadata space); never past the kernel's maximum, never smaller. */
static uint64_t metadata_target(struct pool *p, const struct pool_mode *m, uint64_t cur, uint64_t data_size)
{
	uint64_t block = (uint64_t)p->block_sectors * 512;
	uint64_t need = (data_size / block + 1) * METADATA_BYTES_PER_BLOCK;
	uint64_t t = cur;
	bool low = m->mt && (m->mt - m->mu) * 2 < m->mt;

	need = (need + (1 << 20) - 1) & ~(uint64_t)((1 << 20) - 1);
	if (low || strcmp(m->mode, "ro") == 0)
		t = cur * 2;
	if (t < need)
		t = need;
	if (t > METADATA_MAX_BYTES)
		t = METADATA_MAX_BYTES;
	return t > cur ? t : cur;
}

/* Grow the loopback data file to new_size (and the metadata file when
 * its space runs low), then reload the pool over them. The kernel grows
 * the pool at the resume and leaves out_of_data_space (data) or
 * read-only-for-want-of-metadata-space mode by itself once the new space
 * is there; what it cannot leave online is needs_check, reported here. */
static int dm_resize_pool(struct pool *p, uint64_t new_size)
{
	struct pool_mode m;
	struct stat st, mst;
	uint64_t meta_new;
	int r;

	if (!p->loopback) {
		log_err("dm pool %s: resize-pool grows the loopback data file; grow %s yourself",
			p->name, p->external ? "the pool" : p->data_path);
		return -EOPNOTSUPP;
	}
	if (stat(p->data_path, &st) < 0) {
		r = -errno;
		log_err("dm pool %s: resize-pool: stat %s: %s", p->name, p->data_path, strerror(-r));
		return r;
	}
	if ((uint64_t)st.st_size > new_size) {
		log_err("dm pool %s: resize-pool %" PRIu64 ": smaller than the data file's %jd bytes",
			p->name, new_size, (intmax_t)st.st_size);
		return -EINVAL;
	}
	if (stat(p->meta_path, &mst) < 0) {
		r = -errno;
		log_err("dm pool %s: resize-pool: stat %s: %s", p->name, p->meta_path, strerror(-r));
		return r;
	}
	r = read_pool_mode(p, &m);
	if (r < 0)
		return r;
	if (strcmp(m.mode, "Fail") == 0) {
		log_err("dm pool %s: resize-pool: the kernel failed the pool (a metadata commit failed, e.g. the "
			"metadata space ran out); only a new pool over the same metadata brings it back: unmount every "
			"device and stop thinfs, and start it again (with a larger dm.loopmetadatasize if the metadata "
			"was full); the start runs thin_check --clear-needs-check-flag when the kernel asks for a check",
			p->name);
		return -EROFS;
	}
	if (m.needs_check) {
		log_err("dm pool %s: resize-pool: the pool is read-only with the kernel's needs_check flag set (a "
			"metadata operation failed); only an offline check clears it: unmount every device and stop "
			"thinfs (the pool is deactivated), and the next start runs thin_check --clear-needs-check-flag",
			p->name);
		return -EROFS;
	}
	r = loop_file_size(p->data_path, new_size, true, "dm pool: data file");
	if (r >= 0)
		r = loop_set_capacity(p->data_loop);
	if (r < 0)
		return r;
	meta_new = metadata_target(p, &m, (uint64_t)mst.st_size, new_size);
	if (meta_new > (uint64_t)mst.st_size) {
		log_info("dm pool %s: metadata %" PRIu64 "/%" PRIu64 " blocks used (mode %s): growing %s from %jd to %"
			 PRIu64 " bytes", p->name, m.mu, m.mt, m.mode, p->meta_path, (intmax_t)mst.st_size, meta_new);
		r = loop_file_size(p->meta_path, meta_new, true, "dm pool: metadata file");
		if (r >= 0)
			r = loop_set_capacity(p->meta_loop);
		if (r < 0)
			return r;
	}
	r = reload_pool(p);
	if (r < 0)
		return r;
	if (read_pool_mode(p, &m) == 0 && strcmp(m.mode, "rw") != 0) {
		log_err("dm pool %s: resize-pool: the pool is still '%s' after growing (data %" PRIu64 "/%" PRIu64
			", metadata %" PRIu64 "/%" PRIu64 " blocks used)%s", p->name, m.mode, m.du, m.dt, m.mu, m.mt,
			m.needs_check ? ", needs_check" : "");
		return strcmp(m.mode, "out_of_data_space") == 0 ? -ENOSPC : -EROFS;
	}
	log_info("dm pool %s: resized; mode %s, data %" PRIu64 "/%" PRIu64 ", metadata %" PRIu64 "/%" PRIu64
		 " blocks used", p->name, m.mode, m.du, m.dt, m.mu, m.mt);
	return 0;
}

int pool_dm_available(void)
{
	struct dm_versions *v, *next;
	struct dm_task *dmt;
	char version[64];
	bool found = false;
	const char *modprobe[] = { "modprobe", "-q", "dm-thin-pool", NULL };

	if (access("/dev/mapper/control", F_OK) < 0) {
		log_info("dm: /dev/mapper/control is absent: no device-mapper in this kernel");
		return 0;
	}
	setup_libdm(3);
	if (!dm_driver_version(version, sizeof(version))) {
		log_info("dm: the device-mapper driver does not answer");
		return 0;
	}
	fsutil_run((char *const *)modprobe);
	dmt = dm_task_create(DM_DEVICE_LIST_VERSIONS);
	if (dmt && run_task(dmt, false) == 0) {
		v = dm_task_get_versions(dmt);
		for (;;) {
			if (strcmp(v->name, "thin-pool") == 0) {
				found = true;
				break;
			}
			if (!v->next)
				break;
			next = (struct dm_versions *)((char *)v + v->next);
			v = next;
		}
	}
	if (dmt)
		dm_task_destroy(dmt);
	if (!found)
		log_info("dm: driver %s has no thin-pool target", version);
	return found;
}

const struct pool_ops pool_dm_ops = {
	.name = "dm",
	.engine_freezes_origin = false,
	.concurrent_snap = false, /* libdevmapper is not thread-safe */
	.open = dm_open,
	.close = dm_close,
	.get_transaction_id = dm_get_tid,
	.set_transaction_id = dm_set_tid,
	.create_thin = dm_create_thin,
	.create_snap = dm_create_snap,
	.delete_thin = dm_delete,
	.list_ids = dm_list_ids,
	.usage = dm_usage,
	.activate = dm_activate,
	.deactivate = dm_deactivate,
	.is_active = dm_is_active,
	.discard = dm_discard,
	.max_data_size = dm_max_data_size,
	.dev_status = dm_dev_status,
	.resize_thin = dm_resize_thin,
	.status = dm_status,
	.resize_pool = dm_resize_pool,
};
