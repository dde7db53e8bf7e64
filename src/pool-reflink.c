/*
 * pool-reflink.c - the "reflink" pool backend: a thin pool emulated with
 * one sparse image file per device, for kernels without dm-thin.
 *
 * A snapshot is ioctl(FICLONE) of the origin's image, so it costs
 * metadata only; activation attaches a loop device, and deactivating one
 * still held by a lazily unmounted filesystem makes the kernel detach it
 * at its last close. The images live in
 * STATEDIR/reflink when that filesystem can reflink; otherwise in an XFS
 * (reflink=1) filesystem made in the sparse file STATEDIR/devicemapper/data
 * and mounted on STATEDIR/reflink. The pool's transaction ID is the file
 * transaction_id beside images/.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "fsutil.h"
#include "grow.h"
#include "idmap.h"
#include "log.h"
#include "loopback.h"
#include "metadata.h"
#include "pool.h"

/* A loop device attached to an image, as this process knows it. */
struct attached_loop {
	uint32_t id;
	uint64_t ino;      /* the image's st_ino when it was attached */
	char dev[32];      /* "/dev/loopN" */
};

struct pool {
	char store[PATH_MAX];      /* where images/ and transaction_id live */
	char images[PATH_MAX];
	dev_t images_dev;          /* st_dev of the images */
	char data_file[PATH_MAX];  /* loopback file of the XFS store, or "" */
	char data_loop[64];        /* its loop device, or "" */
	bool we_attached;          /* close() detaches what open() attached */
	bool we_mounted;
	/* -o ro: nothing made, grown or removed; the store mounted and every
	 * image attached read-only. */
	bool read_only;
	/* Serialises changes of the transaction ID file; everything above is
	 * read-only after open. Taken with no other lock. */
	pthread_mutex_t lock;
	/* The images' loop devices: filled by one walk of every loop device
	 * at open, then kept by activate, deactivate and delete, so that
	 * those do not walk a host's hundreds of loop devices each time (three
	 * walks were half of an rmdir's cost). An entry is believed only
	 * after LOOP_GET_STATUS64 of its device still names the image, so a
	 * device the kernel detached at its last close (autoclear) drops out.
	 * thinfs owns the images: only activate, which must never put a
	 * second loop device on an image, walks them all again and so also
	 * sees one attached by hand. attach_lock guards the array; it is
	 * taken with no other lock and never held across a system call. */
	pthread_mutex_t attach_lock;
	struct attached_loop *att;
	size_t n_att, cap_att;
};

static void image_path(const struct pool *p, uint32_t id, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%" PRIu32, p->images, id);
}

/* Can dir's filesystem reflink? Try FICLONE between two temp files. */
static bool can_reflink(const char *dir)
{
	char a[PATH_MAX + 32], b[PATH_MAX + 32];
	int fa, fb;
	bool ok = false;

	snprintf(a, sizeof(a), "%s/.reflink-test-a", dir);
	snprintf(b, sizeof(b), "%s/.reflink-test-b", dir);
	fa = open(a, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
	fb = open(b, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
	if (fa >= 0 && fb >= 0 && write(fa, "thinfs", 6) == 6)
		ok = ioctl(fb, FICLONE, fa) == 0;
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	/* Left behind, they only cost a name; say so all the same. */
	if (fa >= 0 && unlink(a) < 0)
		log_warn("reflink pool: remove the test file %s: %s", a, strerror(errno));
	if (fb >= 0 && unlink(b) < 0)
		log_warn("reflink pool: remove the test file %s: %s", b, strerror(errno));
	return ok;
}

/* Is something mounted on path (per /proc/self/mountinfo)? */
static bool is_mounted(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], mnt[PATH_MAX];
	bool found = false;

	if (!f) {
		log_warn("reflink pool: open /proc/self/mountinfo: %s", strerror(errno));
		return false;
	}
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1 && strcmp(mnt, path) == 0;
	fclose(f);
	return found;
}

/* The data file grew: the loop device and the store follow. */
static int grow_store(struct pool *p)
{
	int r = loop_set_capacity(p->data_loop);

	if (r == 0)
		r = fsutil_grow(p->data_loop, "xfs", p->store);
	if (r < 0)
		log_err("reflink pool: grow the image store %s to the data file's new size: %s",
			p->store, strerror(-r));
	else
		log_info("reflink pool: image store %s grown with its data file", p->store);
	return r;
}

/* Make or find the XFS store in STATEDIR/devicemapper/data. */
static int open_loop_store(struct pool *p, const struct pool_config *cfg)
{
	char dir[PATH_MAX], type[32], uuid[64];
	bool grown, found_ro;
	int r;

	snprintf(dir, sizeof(dir), "%s/devicemapper", cfg->state_dir);
	r = p->read_only ? 0 : meta_mkdir_p(dir, 0700);
	if (r < 0)
		return r;
	if (snprintf(p->data_file, sizeof(p->data_file), "%s/data", dir) >= (int)sizeof(p->data_file))
		return -ENAMETOOLONG;
	r = p->read_only ? 0 : loop_file_size(p->data_file, cfg->opts->loop_data_size,
					      cfg->opts->loop_data_size_set, "reflink pool: data file");
	if (r < 0)
		return r;
	grown = r == 1;
	r = loop_find(p->data_file, p->data_loop, sizeof(p->data_loop));
	if (r < 0) {
		log_err("reflink pool: find loop device of %s: %s", p->data_file, strerror(-r));
		return r;
	}
	found_ro = r == 1 && loop_is_read_only(p->data_loop) == 1;
	/* What a read-only run (-o ro) left: a read-write store cannot be
	 * mounted from it. */
	if (found_ro && !p->read_only) {
		log_err("reflink pool: cannot start: %s is attached read-only to %s, as a read-only thinfs run "
			"(-o ro) leaves it when it is killed: start thinfs -o ro on this directory once and stop "
			"it, which releases it (or unmount what uses %s and detach it)", p->data_file, p->data_loop,
			p->data_loop);
		return -EBUSY;
	}
	/* A loop device or mount found from a killed run is ours all the same:
	 * close() releases it. Read-only, only a read-only one is (what a
	 * killed read-only run left; the flock at start says none runs). */
	p->we_attached = !p->read_only || r == 0 || found_ro;
	if (r == 1) {
		log_info("reflink pool: reusing %s for %s", p->data_loop, p->data_file);
		/* It may predate a growth of the file by a killed run. */
		r = p->read_only ? 0 : loop_set_capacity(p->data_loop);
		if (r < 0)
			return r;
	} else {
		r = loop_attach(p->data_file, p->read_only, false, 512, p->data_loop, sizeof(p->data_loop), NULL);
		if (r < 0)
			return r;
		log_info("reflink pool: attached %s to %s", p->data_file, p->data_loop);
	}
	if (is_mounted(p->store)) {
		/* Read-only, p->store is in the engine's own directory: a
		 * killed read-only run's mount. */
		log_info("reflink pool: image store already mounted on %s", p->store);
		p->we_mounted = true;
		return grown ? grow_store(p) : 0;
	}
	r = fsutil_probe(p->data_loop, type, sizeof(type), uuid, sizeof(uuid));
	if (r == -ENODATA && p->read_only) {
		log_err("reflink pool: %s holds no image store, and -o ro makes none", p->data_file);
		return -EUCLEAN;
	} else if (r == -ENODATA) {
		const char *args[] = { "-m", "reflink=1" };

		log_info("reflink pool: making an XFS (reflink=1) image store in %s", p->data_file);
		r = fsutil_mkfs(p->data_loop, "xfs", (char *const *)args, 2);
		if (r < 0)
			return r;
	} else if (r < 0) {
		return r;
	} else if (strcmp(type, "xfs") != 0) {
		log_err("reflink pool: %s holds a %s filesystem, not the XFS image store: refusing to use it",
			p->data_file, type);
		return -EINVAL;
	}
	/* Read-only: in the engine's own directory under /run, which keeps
	 * nothing across a reboot and may be an autofs (no fsync there). */
	if (p->read_only) {
		r = mkdir(p->store, 0700) < 0 && errno != EEXIST ? -errno : 0;
		if (r < 0)
			log_err("reflink pool: mkdir %s: %s", p->store, strerror(-r));
	} else {
		r = meta_mkdir_p(p->store, 0700);
	}
	if (r < 0)
		return r;
	/* Read-only, the XFS log is not replayed: that would write. */
	r = fsutil_mount(p->data_loop, p->store, "xfs", p->read_only ? FSUTIL_RDONLY | FSUTIL_NORECOVERY : 0, NULL);
	if (r < 0)
		return r;
	p->we_mounted = true;
	if (mount(NULL, p->store, NULL, MS_PRIVATE, NULL) < 0)
		log_warn("reflink pool: make %s a private mount: %s", p->store, strerror(errno));
	log_info("reflink pool: image store %s mounted on %s", p->data_loop, p->store);
	return grown ? grow_store(p) : 0;
}

/* Remove the temp files a crash left in dir: entries starting with
 * prefix (half-made images, or meta_write_atomic's temp files of the
 * transaction ID). Their removal need not be durable: a later start
 * removes them again. */
static void remove_stale(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d) {
		log_warn("reflink pool: look for stale temp files in %s: opendir: %s", dir, strerror(errno));
		return;
	}
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0)
			log_info("reflink pool: removed %s/%s left by an interrupted write",
				 dir, e->d_name);
		else
			log_warn("reflink pool: remove %s/%s left by an interrupted write: %s",
				 dir, e->d_name, strerror(errno));
	}
	closedir(d);
}

/* Remember that image id is attached to dev (attach_lock taken here);
 * id UINT32_MAX (the walk at open, image not yet known) always adds. */
static int attached_note(struct pool *p, uint32_t id, uint64_t ino, const char *dev)
{
	size_t i;
	int r = 0;

	pthread_mutex_lock(&p->attach_lock);
	if (id != UINT32_MAX)
		for (i = 0; i < p->n_att && p->att[i].id != id; i++)
			;
	else
		i = p->n_att;
	if (i == p->n_att) {
		r = GROW(p->att, p->cap_att, p->n_att, 16);
		if (r < 0)
			goto out;
		p->n_att++;
	}
	p->att[i].id = id;
	p->att[i].ino = ino;
	snprintf(p->att[i].dev, sizeof(p->att[i].dev), "%s", dev);
out:
	pthread_mutex_unlock(&p->attach_lock);
	return r;
}

/* Forget image id's entry if it still names dev. */
static void attached_forget(struct pool *p, uint32_t id, const char *dev)
{
	pthread_mutex_lock(&p->attach_lock);
	for (size_t i = 0; i < p->n_att; i++) {
		if (p->att[i].id == id && strcmp(p->att[i].dev, dev) == 0) {
			p->att[i] = p->att[--p->n_att];
			break;
		}
	}
	pthread_mutex_unlock(&p->attach_lock);
}

/* The loop device image id is attached to: 1 (dev filled), 0 none,
 * -errno. Each entry is checked against its device outside the lock and
 * dropped if the device no longer holds the image; the walk at open may
 * have found more than one for an image. */
static int attached_find(struct pool *p, uint32_t id, char *dev, size_t len)
{
	for (;;) {
		struct attached_loop a = { 0 };
		uint64_t bdev, bino;
		bool known = false;
		int r;

		pthread_mutex_lock(&p->attach_lock);
		for (size_t i = 0; i < p->n_att; i++) {
			if (p->att[i].id == id) {
				a = p->att[i];
				known = true;
				break;
			}
		}
		pthread_mutex_unlock(&p->attach_lock);
		if (!known)
			return 0;
		r = loop_backing(a.dev, &bdev, &bino);
		if (r == 0 && bdev == (uint64_t)p->images_dev && bino == a.ino) {
			snprintf(dev, len, "%s", a.dev);
			return 1;
		}
		if (r < 0 && r != -ENXIO) {
			log_err("reflink pool: device %" PRIu32 ": LOOP_GET_STATUS64 of %s: %s", id, a.dev,
				strerror(-r));
			return r;
		}
		attached_forget(p, id, a.dev);
	}
}

/* After activate attached (or found) image path on dev. */
static int note_attached(struct pool *p, uint32_t id, const char *path, const char *dev)
{
	struct stat st;
	int r;

	if (stat(path, &st) < 0) {
		r = -errno;
		log_err("reflink pool: stat %s: %s", path, strerror(-r));
		return r;
	}
	r = attached_note(p, id, (uint64_t)st.st_ino, dev);
	if (r < 0)
		log_err("reflink pool: remember %s on %s: %s", path, dev, strerror(-r));
	return r;
}

static int walk_attached(struct pool *p);

static void reflink_close(struct pool *p)
{
	if (!p)
		return;
	if (p->we_mounted && umount2(p->store, MNT_DETACH) < 0)
		log_warn("reflink pool: unmount %s: %s", p->store, strerror(errno));
	/* Read-only, the mount point was made in the engine's directory. */
	else if (p->we_mounted && p->read_only && rmdir(p->store) < 0)
		log_warn("reflink pool: remove %s: %s", p->store, strerror(errno));
	if (p->we_attached && p->data_loop[0])
		loop_detach(p->data_loop);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->attach_lock);
	free(p->att);
	free(p);
}

/* The engine freezes a mounted origin's filesystem (FIFREEZE) around a
 * snapshot; a daemon killed between the freeze and the thaw leaves it
 * frozen, and every writer in it blocks until someone thaws it. At open,
 * before the engine adopts the mounts on STATEDIR/mnt/ID, thaw each of
 * them: FITHAW of a filesystem that is not frozen is EINVAL, and nothing
 * else of ours can be freezing one yet. */
static void thaw_left_frozen(const char *state_dir)
{
	char dir[PATH_MAX], path[PATH_MAX + 300];
	struct dirent *e;
	struct stat st, top;
	DIR *d;
	int fd, r;

	if (snprintf(dir, sizeof(dir), "%s/mnt", state_dir) >= (int)sizeof(dir) || stat(dir, &top) < 0)
		return;
	d = opendir(dir);
	if (!d) {
		log_warn("reflink pool: look for filesystems a killed run left frozen in %s: opendir: %s", dir,
			 strerror(errno));
		return;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9' || strchr(e->d_name, '.'))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_dev == top.st_dev)
			continue; /* not a mount */
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			continue;
		r = fsutil_thaw(fd);
		close(fd);
		if (r == 0)
			log_warn("reflink pool: thawed the filesystem on %s, left frozen by a run killed during a snapshot",
				 path);
		else if (r != -EINVAL)
			log_warn("reflink pool: thaw %s: %s", path, strerror(-r));
	}
	closedir(d);
}

static int reflink_open(const struct pool_config *cfg, struct pool **out)
{
	const struct ds_options *o = cfg->opts;
	char data[PATH_MAX];
	bool xfs_store_ro;
	struct stat st;
	struct pool *p;
	int r;

	if (o->thinpool_dev || o->data_dev || o->metadata_dev) {
		log_err("reflink pool: %s needs the dm backend",
			o->thinpool_dev ? "dm.thinpooldev" : o->data_dev ? "dm.datadev" : "dm.metadatadev");
		return -EINVAL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->attach_lock, NULL);
	p->read_only = o->read_only;
	snprintf(p->store, sizeof(p->store), "%s/reflink", cfg->state_dir);
	snprintf(data, sizeof(data), "%s/devicemapper/data", cfg->state_dir);
	if (p->read_only && is_mounted(p->store)) {
		log_err("reflink pool: cannot start read-only: the image store is mounted on %s: a read-write thinfs "
			"runs on this directory, or a killed one left it mounted. Stop it, or unmount the store", p->store);
		r = -EBUSY;
		goto out;
	}
	/* Read-only, can_reflink (which writes two files) is not asked: an
	 * XFS store's data file says which kind of store this is. Such a
	 * store is mounted in the engine's own mount directory, outside
	 * STATEDIR: a read-write start never finds it mounted on
	 * STATEDIR/reflink and takes it for its own. */
	xfs_store_ro = p->read_only && access(data, F_OK) == 0;
	if (xfs_store_ro && snprintf(p->store, sizeof(p->store), "%s/store", cfg->mnt_dir) >= (int)sizeof(p->store)) {
		r = -ENAMETOOLONG;
		goto out;
	}
	r = p->read_only ? 0 : meta_mkdir_p(p->store, 0700);
	if (r < 0)
		goto out;
	if (is_mounted(p->store) || (p->read_only ? xfs_store_ro : !can_reflink(p->store))) {
		r = open_loop_store(p, cfg);
		if (r < 0)
			goto out;
	} else {
		log_info("reflink pool: %s %s; images kept there", p->store,
			 p->read_only ? "has no XFS store file" : "can reflink");
	}
	r = snprintf(p->images, sizeof(p->images), "%s/images", p->store) < (int)sizeof(p->images) ?
		p->read_only ? 0 : meta_mkdir_p(p->images, 0700) : -ENAMETOOLONG;
	if (r < 0)
		goto out;
	if (stat(p->images, &st) < 0) {
		r = -errno;
		log_err("reflink pool: stat %s: %s", p->images, strerror(-r));
		goto out;
	}
	p->images_dev = st.st_dev;
	r = walk_attached(p);
	if (r < 0)
		goto out;
	if (!p->read_only) {
		thaw_left_frozen(cfg->state_dir);
		remove_stale(p->images, ".new-");
		remove_stale(p->store, ".transaction_id.tmp-");
	}
	*out = p;
	p = NULL;
out:
	if (p)
		reflink_close(p);
	return r;
}

static int reflink_get_tid(struct pool *p, uint64_t *tid)
{
	char path[PATH_MAX + 32], buf[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/transaction_id", p->store);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int r = -errno; /* before the log call, which may change errno */

		if (r == -ENOENT) {
			*tid = 0;
			return 0;
		}
		log_err("reflink pool: open %s: %s", path, strerror(-r));
		return r;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		int r = -errno;

		close(fd);
		log_err("reflink pool: read %s: %s", path, strerror(-r));
		return r;
	}
	close(fd);
	if (n == 0) {
		log_err("reflink pool: %s is empty", path);
		return -EUCLEAN;
	}
	/* Strictly what set_tid writes (at most 21 bytes): sscanf took "-1"
	 * as 2^64-1, and " 7 junk" as 7. */
	if (n == (ssize_t)sizeof(buf) - 1 || meta_parse_tid(buf, (size_t)n, tid) < 0) {
		log_err("reflink pool: %s does not hold a transaction ID", path);
		return -EUCLEAN;
	}
	return 0;
}

static int reflink_set_tid(struct pool *p, uint64_t old_tid, uint64_t new_tid)
{
	char buf[32];
	uint64_t cur;
	int r;

	pthread_mutex_lock(&p->lock);
	r = reflink_get_tid(p, &cur);
	if (r < 0)
		goto out;
	if (cur != old_tid) {
		log_err("reflink pool: set_transaction_id %" PRIu64 " -> %" PRIu64 ": the pool is at %" PRIu64,
			old_tid, new_tid, cur);
		r = -EINVAL;
		goto out;
	}
	snprintf(buf, sizeof(buf), "%" PRIu64 "\n", new_tid);
	r = meta_write_atomic(p->store, "transaction_id", buf, strlen(buf));
out:
	pthread_mutex_unlock(&p->lock);
	return r;
}

/* Rename the durable temp image tmp to dst, never over an existing image
 * (-EEXIST, not logged: the engine retries with another ID), and fsync
 * the directory. */
static int rename_image(struct pool *p, uint32_t dev_id, const char *tmp, const char *dst, bool *renamed)
{
	int r;

	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE) < 0) {
		r = -errno;
		if (r != -EEXIST)
			log_err("reflink pool: image %" PRIu32 ": rename %s to %s: %s", dev_id, tmp, dst,
				strerror(-r));
		return r;
	}
	*renamed = true;
	return meta_fsync_path(p->images);
}

/* fsync the new image tmp (open as fd), logging a failure. */
static int sync_image(uint32_t dev_id, int fd, const char *tmp)
{
	int r;

	if (fsync(fd) == 0)
		return 0;
	r = -errno;
	log_err("reflink pool: image %" PRIu32 ": fsync %s: %s", dev_id, tmp, strerror(-r));
	return r;
}

/* Make the image dev_id from tmp, a new file in images/ open as fd: fsync
 * it, rename it into place (never over an existing image: -EEXIST, not
 * logged, the engine retries with another ID) and fsync the directory, so
 * that an image exists under its name only whole and durable. A crash
 * before the rename leaves only tmp, which the next open removes. */
static int publish_image(struct pool *p, uint32_t dev_id, int fd, const char *tmp,
			 const char *dst, bool *renamed)
{
	int r = sync_image(dev_id, fd, tmp);

	return r < 0 ? r : rename_image(p, dev_id, tmp, dst, renamed);
}

/* Close fd on the temp image tmp and remove tmp unless it became the image. */
static void drop_temp_image(int fd, const char *tmp, bool renamed)
{
	if (fd < 0)
		return;
	close(fd);
	if (!renamed && unlink(tmp) < 0)
		log_warn("reflink pool: remove the unfinished image %s: %s", tmp, strerror(errno));
}

static void temp_image_path(const struct pool *p, uint32_t id, char *buf, size_t len)
{
	snprintf(buf, len, "%s/.new-%" PRIu32, p->images, id);
}

static int reflink_create_thin(struct pool *p, uint32_t dev_id, uint64_t size)
{
	char tmp[PATH_MAX + 32], dst[PATH_MAX + 16];
	bool renamed = false;
	int fd = -1, r;

	image_path(p, dev_id, dst, sizeof(dst));
	temp_image_path(p, dev_id, tmp, sizeof(tmp));
	if (access(dst, F_OK) == 0)
		return -EEXIST;
	fd = open(tmp, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		log_err("reflink pool: create image %" PRIu32 ": %s: %s", dev_id, tmp, strerror(-r));
		return r;
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		r = -errno;
		log_err("reflink pool: create image %" PRIu32 ": size %s to %" PRIu64 " bytes: %s",
			dev_id, tmp, size, strerror(-r));
		goto out;
	}
	r = publish_image(p, dev_id, fd, tmp, dst, &renamed);
out:
	drop_temp_image(fd, tmp, renamed);
	return r;
}

/* The clone of origin_id, made durable as images/.new-DEV_ID: *fd is the
 * open temp image for reflink_snap_publish or reflink_snap_drop. The
 * pool does not count it; a crash leaves a temp the next open removes. */
static int reflink_snap_prepare(struct pool *p, uint32_t dev_id, uint32_t origin_id, uint64_t size, int *fd)
{
	char src[PATH_MAX + 16], tmp[PATH_MAX + 32], dst[PATH_MAX + 16];
	struct stat st;
	int sfd = -1, dfd = -1, r = 0;

	*fd = -1;
	image_path(p, origin_id, src, sizeof(src));
	image_path(p, dev_id, dst, sizeof(dst));
	temp_image_path(p, dev_id, tmp, sizeof(tmp));
	if (access(dst, F_OK) == 0)
		return -EEXIST;
	sfd = open(src, O_RDONLY | O_CLOEXEC);
	if (sfd < 0) {
		r = -errno;
		log_err("reflink pool: snapshot %" PRIu32 " of %" PRIu32 ": open %s: %s",
			dev_id, origin_id, src, strerror(-r));
		goto out;
	}
	dfd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
	if (dfd < 0) {
		r = -errno;
		log_err("reflink pool: snapshot %" PRIu32 ": create %s: %s", dev_id, tmp, strerror(-r));
		goto out;
	}
	if (ioctl(dfd, FICLONE, sfd) < 0) {
		r = -errno;
		log_err("reflink pool: snapshot %" PRIu32 " of %" PRIu32 ": FICLONE: %s",
			dev_id, origin_id, strerror(-r));
		goto out;
	}
	if (fstat(dfd, &st) < 0) {
		r = -errno;
		log_err("reflink pool: snapshot %" PRIu32 ": stat %s: %s", dev_id, tmp, strerror(-r));
		goto out;
	}
	if ((uint64_t)st.st_size < size && ftruncate(dfd, (off_t)size) < 0) {
		r = -errno;
		log_err("reflink pool: snapshot %" PRIu32 ": size %s: %s", dev_id, tmp, strerror(-r));
		goto out;
	}
	r = sync_image(dev_id, dfd, tmp);
	if (r < 0)
		goto out;
	*fd = dfd;
	dfd = -1;
out:
	if (sfd >= 0)
		close(sfd);
	drop_temp_image(dfd, tmp, false);
	return r;
}

/* Make the prepared clone dev_id (as publish_image, its fsync done). */
static int reflink_snap_publish(struct pool *p, uint32_t dev_id, int fd)
{
	char tmp[PATH_MAX + 32], dst[PATH_MAX + 16];
	bool renamed = false;
	int r;

	image_path(p, dev_id, dst, sizeof(dst));
	temp_image_path(p, dev_id, tmp, sizeof(tmp));
	r = rename_image(p, dev_id, tmp, dst, &renamed);
	drop_temp_image(fd, tmp, renamed);
	return r;
}

static void reflink_snap_drop(struct pool *p, uint32_t dev_id, int fd)
{
	char tmp[PATH_MAX + 32];

	temp_image_path(p, dev_id, tmp, sizeof(tmp));
	drop_temp_image(fd, tmp, false);
}

static int reflink_create_snap(struct pool *p, uint32_t dev_id, uint32_t origin_id,
			       uint64_t size, const char *origin_active_name)
{
	int fd, r;

	(void)origin_active_name; /* the engine freezes the origin itself */
	r = reflink_snap_prepare(p, dev_id, origin_id, size, &fd);
	return r < 0 ? r : reflink_snap_publish(p, dev_id, fd);
}

static int reflink_delete(struct pool *p, uint32_t dev_id)
{
	char path[PATH_MAX + 16], loop[64];
	int r;

	image_path(p, dev_id, path, sizeof(path));
	r = attached_find(p, dev_id, loop, sizeof(loop));
	if (r < 0)
		return r;
	if (r == 1) {
		log_err("reflink pool: delete %" PRIu32 ": still attached to %s", dev_id, loop);
		return -EBUSY;
	}
	if (unlink(path) < 0) {
		r = -errno;
		if (r != -ENOENT)
			log_err("reflink pool: delete %s: %s", path, strerror(-r));
		return r;
	}
	return meta_fsync_path(p->images);
}

/* The device ID an entry of images/ is the image of; false for anything
 * else (temporary files, lost+found). */
static bool image_id(const char *entry, uint32_t *id)
{
	char *end;
	unsigned long v;

	if (entry[0] < '0' || entry[0] > '9')
		return false;
	v = strtoul(entry, &end, 10);
	if (*end || v > POOL_MAX_DEVICE_ID)
		return false;
	*id = (uint32_t)v;
	return true;
}

static int reflink_list_ids(struct pool *p, uint32_t **ids, size_t *n)
{
	DIR *d = opendir(p->images);
	struct dirent *e;
	uint32_t *list = NULL;
	size_t count = 0, cap = 0;
	int r = 0;

	if (!d) {
		r = -errno;
		log_err("reflink pool: opendir %s: %s", p->images, strerror(-r));
		return r;
	}
	while ((e = readdir(d))) {
		uint32_t v;

		if (!image_id(e->d_name, &v))
			continue;
		r = GROW(list, cap, count, 256);
		if (r < 0)
			goto out;
		list[count++] = v;
	}
	if (count)
		qsort(list, count, sizeof(*list), idmap_cmp_id);
	*ids = list;
	*n = count;
	list = NULL;
out:
	free(list);
	closedir(d);
	return r;
}

static int reflink_activate(struct pool *p, const char *name, uint32_t dev_id,
			    uint64_t size, char *dev_path, size_t len)
{
	char path[PATH_MAX + 16];
	unsigned min_io = 0, block_size = 4096;
	int r;

	(void)size;
	image_path(p, dev_id, path, sizeof(path));
	r = loop_find(path, dev_path, len);
	if (r < 0) {
		log_err("reflink pool: activate %s (%" PRIu32 "): %s: %s", name, dev_id, path, strerror(-r));
		return r;
	}
	/* A loop device a run of the other kind left (-o ro attaches
	 * read-only) would mount wrongly, or not at all. */
	if (r == 1 && loop_is_read_only(dev_path) != (int)p->read_only) {
		log_err("reflink pool: activate %s (%" PRIu32 "): %s is attached %s to %s, by a killed %s thinfs "
			"run: a start and stop of that kind releases it (or unmount what uses %s and detach it)", name,
			dev_id, path, p->read_only ? "read-write" : "read-only", dev_path,
			p->read_only ? "read-write" : "read-only", dev_path);
		return -EBUSY;
	}
	if (r == 1) {
		log_debug("reflink pool: %s (%" PRIu32 ") already active on %s", name, dev_id, dev_path);
		r = loop_cancel_autoclear(dev_path);
		return r < 0 ? r : note_attached(p, dev_id, path, dev_path);
	}
	/* 4K sectors where the filesystem allows them: direct I/O on a
	 * reflinked file must be 4K aligned on XFS (statx DIOALIGN), so with
	 * 512-byte sectors the kernel quietly falls back to buffered I/O and
	 * every page is cached twice. A filesystem that does smaller I/O
	 * (made by an older thinfs, or dm.mkfsarg) keeps 512. */
	if (fsutil_min_io_size(path, &min_io) < 0 || min_io < 4096)
		block_size = 512;
	/* Not autoclear: that would detach it at our own close. Deactivation's
	 * LOOP_CLR_FD turns into autoclear when the device is still open. */
	r = loop_attach(path, p->read_only, false, block_size, dev_path, len, NULL);
	if (r < 0)
		return r;
	r = note_attached(p, dev_id, path, dev_path);
	if (r < 0)
		loop_detach(dev_path); /* unknown to delete, it must not stay */
	return r;
}

static int reflink_deactivate(struct pool *p, const char *name, uint32_t dev_id, bool deferred)
{
	char dev[64];
	int r;

	(void)deferred; /* autoclear makes every detach deferred */
	r = attached_find(p, dev_id, dev, sizeof(dev));
	if (r <= 0)
		return r;
	/* The entry stays: a device still open is only marked autoclear and
	 * stays attached (delete says EBUSY) until its last close. */
	r = loop_detach(dev);
	if (r < 0)
		log_err("reflink pool: deactivate %s (%" PRIu32 ") on %s: %s", name, dev_id, dev, strerror(-r));
	return r;
}

static int reflink_is_active(struct pool *p, const char *name, uint32_t dev_id,
			     char *dev_path, size_t len)
{
	(void)name;
	return attached_find(p, dev_id, dev_path, len);
}

/* loop_for_each: each loop device backed by a file on the images'
 * filesystem, its image not yet known (id UINT32_MAX). */
static int collect_attached(void *arg, const char *dev, uint64_t backing_dev, uint64_t backing_ino)
{
	struct pool *p = arg;

	if (backing_dev != (uint64_t)p->images_dev)
		return 0;
	return attached_note(p, UINT32_MAX, backing_ino, dev) < 0 ? -ENOMEM : 0;
}

/* Fill the loop device table at open: one walk of the loop devices and
 * one of images/ (matching inodes), where a loop_find per device walks
 * every loop device: a start with 10,000 devices and a few hundred loop
 * devices on the host took seconds. Before any other thread runs. */
static int walk_attached(struct pool *p)
{
	struct dirent *e;
	DIR *d = NULL;
	size_t i;
	int r;

	r = loop_for_each(collect_attached, p);
	if (r < 0) {
		log_err("reflink pool: listing the loop devices: %s", strerror(-r));
		return r;
	}
	r = 0;
	if (p->n_att == 0)
		return 0;
	d = opendir(p->images);
	if (!d) {
		r = -errno;
		log_err("reflink pool: opendir %s: %s", p->images, strerror(-r));
		return r;
	}
	/* d_ino is the image's st_ino on the store's own filesystem (XFS, or
	 * a reflinking STATEDIR); a stacking filesystem such as overlayfs
	 * cannot hold the images (it cannot reflink). */
	while ((e = readdir(d))) {
		uint32_t id;

		if (!image_id(e->d_name, &id))
			continue;
		for (i = 0; i < p->n_att; i++)
			if (p->att[i].ino == (uint64_t)e->d_ino)
				p->att[i].id = id;
	}
	closedir(d);
	/* Loop devices on other files of that filesystem are not ours. */
	for (i = 0; i < p->n_att;) {
		if (p->att[i].id == UINT32_MAX)
			p->att[i] = p->att[--p->n_att];
		else
			i++;
	}
	return 0;
}

static int reflink_for_each_active(struct pool *p, int (*fn)(void *arg, uint32_t dev_id, const char *dev_path),
				   void *arg)
{
	char dev[64];
	uint32_t *ids;
	size_t n;
	int r = 0;

	/* Only at start, before any other thread. The start has activated
	 * and deactivated the base device since the walk at open filled the
	 * table (verify_pool_identity): each entry is checked against its
	 * device (attached_find), or that device, detached at its close,
	 * would be reported as left active by an earlier run. */
	n = p->n_att;
	ids = malloc((n ? n : 1) * sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		ids[i] = p->att[i].id;
	for (size_t i = 0; i < n && r >= 0; i++) {
		r = attached_find(p, ids[i], dev, sizeof(dev));
		if (r == 1)
			r = fn(arg, ids[i], dev);
	}
	free(ids);
	return r < 0 ? r : 0;
}

/* Exclusive and shared bytes of one image, from its extents' shared flag. */
static int image_usage(const char *path, uint64_t *exclusive, uint64_t *shared)
{
	enum { EXTENTS = 256 };
	struct fiemap *fm;
	uint64_t start = 0;
	int fd, r = 0;
	bool last = false;

	*exclusive = *shared = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	fm = calloc(1, sizeof(*fm) + EXTENTS * sizeof(struct fiemap_extent));
	if (!fm) {
		close(fd);
		return -ENOMEM;
	}
	while (!last) {
		memset(fm, 0, sizeof(*fm));
		fm->fm_start = start;
		fm->fm_length = FIEMAP_MAX_OFFSET - start;
		fm->fm_extent_count = EXTENTS;
		if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0) {
			r = -errno;
			break;
		}
		if (fm->fm_mapped_extents == 0)
			break;
		for (unsigned i = 0; i < fm->fm_mapped_extents; i++) {
			const struct fiemap_extent *e = &fm->fm_extents[i];

			if (e->fe_flags & FIEMAP_EXTENT_SHARED)
				*shared += e->fe_length;
			else
				*exclusive += e->fe_length;
			if (e->fe_logical + e->fe_length <= start && i + 1 == fm->fm_mapped_extents)
				last = true; /* no progress: do not ask again */
			else if (e->fe_logical + e->fe_length > start)
				start = e->fe_logical + e->fe_length;
			if (e->fe_flags & FIEMAP_EXTENT_LAST)
				last = true;
		}
	}
	free(fm);
	close(fd);
	return r;
}

static int reflink_usage(struct pool *p, int (*fn)(void *arg, uint32_t dev_id, uint64_t exclusive, uint64_t shared),
			 void *arg)
{
	char path[PATH_MAX + 16];
	struct dirent *e;
	DIR *d = opendir(p->images);
	int r = 0;

	if (!d) {
		r = -errno;
		log_err("reflink pool: opendir %s: %s", p->images, strerror(-r));
		return r;
	}
	while (r == 0 && (e = readdir(d))) {
		uint64_t exclusive, shared;
		uint32_t id;
		int u;

		if (!image_id(e->d_name, &id))
			continue;
		image_path(p, id, path, sizeof(path));
		u = image_usage(path, &exclusive, &shared);
		if (u == 0)
			r = fn(arg, id, exclusive, shared);
		else if (u != -ENOENT) /* ENOENT: deleted meanwhile */
			log_warn("reflink pool: usage of image %" PRIu32 ": FIEMAP: %s", id, strerror(-u));
	}
	closedir(d);
	return r;
}

static int reflink_dev_status(struct pool *p, const char *name, uint32_t dev_id,
			      struct pool_dev_status *st)
{
	char path[PATH_MAX + 16];
	struct stat sb;
	off_t pos = 0, end = 0;
	int fd, r = 0;

	(void)name;
	image_path(p, dev_id, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		/* ENOENT: deleted while its info was being read. */
		tf_log(r == -ENOENT ? LOG_DEBUG : LOG_ERR, "reflink pool: status of %" PRIu32 ": open %s: %s",
		       dev_id, path, strerror(-r));
		return r;
	}
	if (fstat(fd, &sb) < 0) {
		r = -errno;
		log_err("reflink pool: status of %" PRIu32 ": stat %s: %s", dev_id, path, strerror(-r));
		goto out;
	}
	st->mapped_bytes = (uint64_t)sb.st_blocks * 512;
	/* The end of the last data extent. */
	for (;;) {
		off_t data = lseek(fd, pos, SEEK_DATA), hole;

		if (data < 0)
			break;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			break;
		end = hole;
		pos = hole;
	}
	st->highest_mapped = (uint64_t)end;
out:
	close(fd);
	return r;
}

static int reflink_resize_thin(struct pool *p, const char *name, uint32_t dev_id,
			       uint64_t new_size)
{
	char path[PATH_MAX + 16], dev[64];
	struct stat st;
	int fd, r;

	image_path(p, dev_id, path, sizeof(path));
	if (stat(path, &st) < 0) {
		r = -errno;
		log_err("reflink pool: resize %s: %s: %s", name, path, strerror(-r));
		return r;
	}
	if ((uint64_t)st.st_size > new_size) {
		log_err("reflink pool: resize %s: %" PRIu64 " bytes is smaller than %jd: devices only grow",
			name, new_size, (intmax_t)st.st_size);
		return -EINVAL;
	}
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		log_err("reflink pool: resize %s: open %s: %s", name, path, strerror(-r));
		return r;
	}
	/* The engine records the new size next: the image's must be durable
	 * first. */
	if (ftruncate(fd, (off_t)new_size) < 0) {
		r = -errno;
		log_err("reflink pool: resize %s: truncate %s: %s", name, path, strerror(-r));
		goto out;
	}
	if (fsync(fd) < 0) {
		r = -errno;
		log_err("reflink pool: resize %s: fsync %s: %s", name, path, strerror(-r));
		goto out;
	}
	r = attached_find(p, dev_id, dev, sizeof(dev));
	if (r < 0)
		goto out;
	r = r == 1 ? loop_set_capacity(dev) : 0;
out:
	close(fd);
	return r;
}

static int reflink_status(struct pool *p, struct pool_status *st)
{
	struct statfs sf;
	int r;

	memset(st, 0, sizeof(*st));
	r = reflink_get_tid(p, &st->transaction_id);
	if (r < 0)
		return r;
	if (statfs(p->store, &sf) < 0) {
		r = -errno;
		log_err("reflink pool: statfs %s: %s", p->store, strerror(-r));
		return r;
	}
	st->data_total = (uint64_t)sf.f_blocks * (uint64_t)sf.f_frsize;
	st->data_used = (uint64_t)(sf.f_blocks - sf.f_bfree) * (uint64_t)sf.f_frsize;
	/* The store's inode table stands for the pool's metadata space. */
	st->metadata_total = (uint64_t)sf.f_files * 512;
	st->metadata_used = (uint64_t)(sf.f_files - sf.f_ffree) * 512;
	st->sector_size = 512;
	st->block_size = (uint32_t)sf.f_bsize;
	snprintf(st->pool_name, sizeof(st->pool_name), "%s", p->store);
	snprintf(st->data_file, sizeof(st->data_file), "%s", p->data_file);
	snprintf(st->data_loopback, sizeof(st->data_loopback), "%s", p->data_loop);
	st->udev_sync_supported = false;
	st->deferred_remove_supported = true;
	return 0;
}

static int reflink_resize_pool(struct pool *p, uint64_t new_size)
{
	struct stat st;
	int r;

	if (!p->data_file[0]) {
		log_err("reflink pool: resize-pool: the images live in %s itself, which thinfs cannot grow",
			p->store);
		return -EOPNOTSUPP;
	}
	if (stat(p->data_file, &st) < 0) {
		r = -errno;
		log_err("reflink pool: resize-pool: stat %s: %s", p->data_file, strerror(-r));
		return r;
	}
	if ((uint64_t)st.st_size > new_size) {
		log_err("reflink pool: resize-pool: %" PRIu64 " bytes is smaller than the data file's %jd: the pool only grows",
			new_size, (intmax_t)st.st_size);
		return -EINVAL;
	}
	r = loop_file_size(p->data_file, new_size, true, "reflink pool: data file");
	if (r >= 0)
		r = grow_store(p);
	if (r == 0)
		log_info("reflink pool: data space grown to %" PRIu64 " bytes", new_size);
	return r;
}

const struct pool_ops pool_reflink_ops = {
	.name = "reflink",
	.engine_freezes_origin = true,
	.concurrent_snap = true,
	.open = reflink_open,
	.close = reflink_close,
	.get_transaction_id = reflink_get_tid,
	.set_transaction_id = reflink_set_tid,
	.create_thin = reflink_create_thin,
	.create_snap = reflink_create_snap,
	.snap_prepare = reflink_snap_prepare,
	.snap_publish = reflink_snap_publish,
	.snap_drop = reflink_snap_drop,
	.delete_thin = reflink_delete,
	.list_ids = reflink_list_ids,
	.activate = reflink_activate,
	.deactivate = reflink_deactivate,
	.is_active = reflink_is_active,
	.for_each_active = reflink_for_each_active,
	.usage = reflink_usage,
	.dev_status = reflink_dev_status,
	.resize_thin = reflink_resize_thin,
	.status = reflink_status,
	.resize_pool = reflink_resize_pool,
};
