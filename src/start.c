/*
 * start.c - ds_open and ds_close: the state directory loaded, recovered in
 * the order of doc/design.md §4 ("What a start does"), the mounts of an
 * earlier run adopted, the base device made, checked or grown; and the
 * orderly stop. Under -o ro (doc/design.md §8) the start decides as
 * always but applies its recovery in memory only.
 */
#include "engine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "dirlock.h"
#include "docker.h"
#include "elapsed.h"
#include "fault.h"
#include "fsutil.h"
#include "grow.h"
#include "idmap.h"
#include "log.h"
#include "metadata.h"
#include "pool.h"

/* In STATEDIR while the base device's filesystem has yet to grow to its
 * recorded size (see grow_base). */
#define BASE_GROW_MARKER "base-grow-pending"

/* ------------------------------------------------------------------ */
/* Start                                                              */

/* Load the device files of dir: STATEDIR/metadata (by name) or, with
 * buried, STATEDIR/deleted (tombstones, by ID). A tombstone is the file
 * its device had, moved (bury_files), so being there is what marks it
 * deleted. It wins over a name's file with its ID: an older engine wrote
 * the tombstone, then removed the name's file, and could be interrupted
 * between the two. */
static int load_devices(struct deviceset *s, const char *dir, bool buried)
{
	char **names = NULL;
	size_t n = 0;
	int r;

	/* -o ro: a missing deleted/ is an older engine's (or Docker's) state */
	if (s->opts->read_only && buried && faccessat(AT_FDCWD, dir, F_OK, 0) < 0 && errno == ENOENT)
		return 0;
	r = meta_device_list(dir, !s->opts->read_only, &names, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct meta_device m;
		struct device *d, *other;

		r = meta_device_load(dir, names[i], &m);
		if (r < 0) {
			log_err("cannot start: metadata file %s/%s is unreadable or corrupt (see above); "
				"thinfs does not drop devices: repair or move the file", dir, names[i]);
			r = -EUCLEAN;
			goto out;
		}
		m.deleted = m.deleted || buried;
		other = buried ? find_id(s, m.device_id) : NULL;
		if (other && !other->buried) {
			log_info("device '%s' (id %" PRIu32 "): %s its interrupted deletion", other->m.name,
				 m.device_id, s->opts->read_only ? "read-only: hiding, not finishing," : "finishing");
			r = s->opts->read_only ? 0 : meta_device_remove(s->meta_dir, other->m.name);
			if (r < 0 && r != -ENOENT)
				goto out;
			remove_device(s, other);
		}
		d = device_new(&m);
		if (!d) {
			r = -ENOMEM;
			goto out;
		}
		d->buried = buried;
		insert_device(s, d);
	}
	r = 0;
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

/* A file marked deleted by the deferred deletion of an older engine (or
 * Docker's) holds its name: bury it, so the name is free and the worker
 * deletes it. At start. */
static void bury_legacy(struct deviceset *s, struct device *d, void *arg)
{
	struct meta_device m;
	int *r = arg;

	if (*r < 0 || !d->m.deleted || d->buried)
		return;
	if (s->opts->read_only) {
		tombstone_of(d, &m); /* what bury_files would write, in memory */
	} else {
		bool moved;

		*r = bury_files(s, d, &m, &moved);
		if (*r < 0)
			return; /* the start stops: the next one finds the file where it is */
	}
	log_info("device '%s' (id %" PRIu32 ") was marked deleted: %s", d->m.name, d->m.device_id,
		 s->opts->read_only ? "hidden (read-only: left as it is)" : "buried, the worker deletes it");
	unlink_name(s, d);
	d->buried = true;
	d->m = m;
}

/* Is this the pool the metadata was written for? The base device must be
 * in it and hold the filesystem whose UUID deviceset-metadata recorded.
 * Checked before anything is rolled back: a swapped or reset pool (a
 * dm.datadev naming another disk, a restored store) must not lose
 * devices to a rollback meant for another pool. */
static int verify_pool_identity(struct deviceset *s)
{
	struct device *d = find_name(s, DS_BASE_NAME);
	char type[sizeof(s->dsm.base_device_fs)], uuid[sizeof(s->dsm.base_device_uuid)];
	int r;

	if (!d || !d->m.initialized || !s->dsm.base_device_uuid[0])
		return 0; /* first start, or older metadata: nothing recorded yet */
	r = activate(s, d);
	if (r < 0) {
		log_err("cannot start: the base device (ID %" PRIu32 ") of %s cannot be activated in pool %s: %s. "
			"Is this the pool the metadata belongs to?", d->m.device_id, s->meta_dir, s->prefix,
			strerror(-r));
		return -EUCLEAN;
	}
	r = fsutil_probe(d->dev_path, type, sizeof(type), uuid, sizeof(uuid));
	if (r < 0) {
		log_err("cannot start: the base device (ID %" PRIu32 ") of pool %s holds no filesystem; %s says %s %s",
			d->m.device_id, s->prefix, s->meta_dir, s->dsm.base_device_fs, s->dsm.base_device_uuid);
		r = -EUCLEAN;
	} else if (strcmp(uuid, s->dsm.base_device_uuid) != 0) {
		log_err("cannot start: the base device of pool %s has UUID %s, %s/deviceset-metadata says %s: "
			"the metadata belongs to another pool", s->prefix, uuid, s->meta_dir, s->dsm.base_device_uuid);
		r = -EUCLEAN;
	} else if (s->dsm.base_device_fs[0] && strcmp(type, s->dsm.base_device_fs) != 0) {
		log_err("cannot start: the base device of pool %s holds %s, %s/deviceset-metadata says %s",
			s->prefix, type, s->meta_dir, s->dsm.base_device_fs);
		r = -EUCLEAN;
	}
	deactivate(s, d, false);
	return r;
}

/* Docker's device files name no parent: take the genealogy from its layer
 * database beside the state directory (docker.h), in memory only, for
 * devices whose file names none. Docker's files are not written. */
static void apply_docker_genealogy(struct deviceset *s)
{
	struct docker_parent *dp;
	size_t n, applied = 0;

	if (docker_genealogy(s->state_dir, &dp, &n) < 0) {
		log_warn("the Docker layer database beside %s could not be read: its devices are shown at the top",
			 s->state_dir);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct device *d = find_name(s, dp[i].name);

		if (!d || is_base(d) || d->m.parent[0] || !find_name(s, dp[i].parent))
			continue;
		snprintf(d->m.parent, sizeof(d->m.parent), "%s", dp[i].parent);
		applied++;
	}
	if (n)
		log_info("Docker layer database: the parents of %zu devices taken from it", applied);
	free(dp);
}

static void mark_id(struct deviceset *s, struct device *d, void *arg)
{
	(void)arg;
	if (!idmap_is_used(&s->ids, d->m.device_id))
		idmap_mark_used(&s->ids, d->m.device_id);
}

/* Does d's parent chain reach the base device? Pool lock held. */
static bool reaches_base(struct deviceset *s, struct device *d)
{
	size_t depth = 0;

	while (d && !is_base(d)) {
		if (depth++ > s->n_devices || !d->m.parent[0])
			return false;
		d = find_name(s, d->m.parent);
		/* A parent marked deleted is hidden, and so would be the
		 * whole subtree under it. */
		if (d && d->m.deleted)
			return false;
	}
	return d != NULL;
}

/* Count children, after recovery has settled the table. A device whose
 * parent chain does not reach the base (its parent's file is gone, a
 * loop, another program's state without parents) is reported and shown
 * at the top, never hidden. */
static void count_children(struct deviceset *s, struct device *d, void *arg)
{
	struct device *parent;

	(void)arg;
	if (d->m.deleted) {
		s->deferred_count++;
		return;
	}
	if (is_base(d))
		return;
	if (!reaches_base(s, d)) {
		if (d->m.parent[0])
			log_warn("device '%s': its parent '%s' does not lead to the base device (%s/%s): shown at the top",
				 d->m.name, d->m.parent, s->meta_dir, d->m.name);
		else
			log_info("device '%s' has no recorded parent: shown at the top", d->m.name);
		snprintf(d->m.parent, sizeof(d->m.parent), "%s", DS_BASE_NAME);
	}
	parent = find_name(s, d->m.parent);
	if (parent)
		parent->n_children++;
}

/* The pool's active devices at start, sorted by ID, when the backend
 * lists them in one go (pool_ops.for_each_active). */
struct active_set {
	size_t n, cap;
	struct active_dev {
		uint32_t id;
		char path[POOL_DEV_PATH_MAX];
	} *e;
};

static int add_active(void *arg, uint32_t dev_id, const char *dev_path)
{
	struct active_set *a = arg;

	if (GROW(a->e, a->cap, a->n, 16) < 0)
		return -ENOMEM;
	a->e[a->n].id = dev_id;
	snprintf(a->e[a->n].path, sizeof(a->e[a->n].path), "%s", dev_path);
	a->n++;
	return 0;
}

static int cmp_active(const void *x, const void *y)
{
	const struct active_dev *a = x, *b = y;

	return a->id < b->id ? -1 : a->id > b->id;
}

/* Is d active? From the start's active set if there is one, else the
 * backend's is_active. */
static bool active_at_start(struct deviceset *s, struct device *d, const struct active_set *a, char *path,
			    size_t len)
{
	char name[POOL_DEV_NAME_MAX];
	struct active_dev key = { .id = d->m.device_id }, *hit;

	if (!a) {
		dm_name_of(s, d->m.device_id, name, sizeof(name));
		return s->ops->is_active(s->pool, name, d->m.device_id, path, len) == 1;
	}
	hit = a->n ? bsearch(&key, a->e, a->n, sizeof(*a->e), cmp_active) : NULL;
	if (hit)
		snprintf(path, len, "%s", hit->path);
	return hit != NULL;
}

/* A device found active from an earlier run: if its filesystem is
 * mounted where this engine mounts it, adopt the mount (mounts outlive
 * the daemon, doc/design.md §1); otherwise deactivate it. */
static void adopt_or_deactivate(struct deviceset *s, struct device *d, void *arg)
{
	char name[POOL_DEV_NAME_MAX], path[POOL_DEV_PATH_MAX], dir[PATH_MAX];
	struct stat dev_st, dir_st, top_st;
	struct statvfs vfs;
	bool held;
	int fd;

	if (!active_at_start(s, d, arg, path, sizeof(path)))
		return;
	dm_name_of(s, d->m.device_id, name, sizeof(name));
	mount_dir_of(s, d->m.device_id, dir, sizeof(dir));
	if (stat(path, &dev_st) == 0 && stat(dir, &dir_st) == 0 && stat(s->mnt_dir, &top_st) == 0 &&
	    dir_st.st_dev != top_st.st_dev) {
		if (dir_st.st_dev != dev_st.st_rdev) {
			log_err("device '%s': %s is a mount of something else; leaving it and the device alone",
				d->m.name, dir);
			return;
		}
		d->active = true;
		snprintf(d->dev_path, sizeof(d->dev_path), "%s", path);
		d->automounted = has_automount_marker(s, d);
		d->mount_count = d->automounted ? 0 : 1;
		d->read_only = statvfs(dir, &vfs) == 0 && (vfs.f_flag & ST_RDONLY);
		d->docker_layout = docker_layer_layout(dir);
		d->layout_known = true;
		log_info("device '%s': adopted its %s on %s (%s) from an earlier run", d->m.name,
			 d->automounted ? "automount" : "mount", dir, path);
		return;
	}
	/* A filesystem an earlier run unmounted lazily, still in use, keeps
	 * its device claimed: info shows it, as after the unmount. */
	held = (fd = fsutil_open_excl(path)) == -EBUSY && stat(path, &dev_st) == 0;
	if (fd >= 0)
		close(fd);
	if (s->ops->deactivate(s->pool, name, d->m.device_id, true) < 0)
		log_warn("device '%s' was left active on %s by an earlier run and could not be deactivated",
			 d->m.name, path);
	else
		log_info("device '%s': deactivated %s left active by an earlier run", d->m.name, path);
	if (held) {
		set_held(s, d, path, &dev_st);
		log_warn("device '%s': its filesystem lives on, detached, on %s: programs still use it", d->m.name,
			 path);
	}
}

/* Adopt the mounts of an earlier run, deactivate what it left active. */
static int adopt_active(struct deviceset *s)
{
	struct active_set a = { 0 };
	int r;

	if (!s->ops->for_each_active) {
		for_each_device(s, adopt_or_deactivate, NULL);
		return 0;
	}
	r = s->ops->for_each_active(s->pool, add_active, &a);
	if (r < 0) {
		log_err("cannot start: listing the pool's active devices failed: %s", strerror(-r));
	} else {
		if (a.n)
			qsort(a.e, a.n, sizeof(*a.e), cmp_active);
		for_each_device(s, adopt_or_deactivate, &a);
	}
	free(a.e);
	return r;
}

/* After adoption: what STATEDIR/mnt holds beyond the adopted mounts
 * (empty mount directories, automount markers from before a reboot) goes;
 * path: mnt_dir, then mark_dir if the markers are elsewhere. */
static void clean_mount_dir(struct deviceset *s, const char *path)
{
	DIR *dir = opendir(path);
	struct dirent *e;

	if (!dir) {
		log_warn("cannot read %s: %s", path, strerror(errno));
		return;
	}
	while ((e = readdir(dir))) {
		char *end;
		unsigned long id = strtoul(e->d_name, &end, 10);
		struct device *d = end != e->d_name ? find_id(s, (uint32_t)id) : NULL;
		bool marker = strcmp(end, ".automount") == 0;

		if (e->d_name[0] == '.' || (*end && !marker))
			continue;
		if (d && (marker ? d->automounted : d->mount_count > 0 || d->automounted))
			continue;
		if (unlinkat(dirfd(dir), e->d_name, marker ? 0 : AT_REMOVEDIR) < 0 && errno != ENOENT)
			log_warn("cannot remove %s/%s: %s", path, e->d_name, strerror(errno));
	}
	closedir(dir);
}

static int create_base(struct deviceset *s)
{
	struct meta_device m = { 0 };
	struct device *d;
	const char *fs = s->opts->fs[0] ? s->opts->fs : fsutil_default_fs();
	char type[sizeof(s->dsm.base_device_fs)], uuid[sizeof(s->dsm.base_device_uuid)];
	uint32_t id;
	int r;

	log_info("creating the base device (%" PRIu64 " bytes, %s)", s->opts->base_size, fs);
	for (;;) {
		r = idmap_alloc(&s->ids, &id);
		if (r < 0)
			return r;
		r = open_transaction(s, DS_BASE_NAME, id);
		if (r < 0)
			return r;
		fault_point("base-after-open-txn");
		r = s->ops->create_thin(s->pool, id, s->opts->base_size);
		if (r != -EEXIST)
			break;
		/* Not ours to roll back: keep the ID marked used, try the next. */
		log_warn("base device: the pool already has device ID %" PRIu32 ", trying another", id);
	}
	if (r < 0) {
		log_err("base device: create_thin %" PRIu32 ": %s", id, strerror(-r));
		idmap_mark_free(&s->ids, id);
		abandon_transaction(s);
		return r;
	}
	fault_point("base-after-pool-create");
	snprintf(m.name, sizeof(m.name), DS_BASE_NAME);
	m.device_id = id;
	m.size = s->opts->base_size;
	m.transaction_id = s->tid + 1;
	m.created = (int64_t)time(NULL);
	r = meta_device_save(s->meta_dir, &m);
	if (r < 0)
		return r;
	fault_point("base-after-register");
	r = close_transaction(s);
	if (r < 0)
		return r;
	if (save_deviceset(s) < 0)
		log_warn("base device: could not save next_device_id; it is recomputed at start");
	d = device_new(&m);
	if (!d)
		return -ENOMEM;
	insert_device(s, d);
	r = activate(s, d);
	if (r < 0)
		return r;
	r = fsutil_mkfs(d->dev_path, fs, s->opts->mkfs_args, s->opts->n_mkfs_args);
	if (r == 0)
		r = fsutil_probe(d->dev_path, type, sizeof(type), uuid, sizeof(uuid));
	deactivate(s, d, false);
	if (r < 0) {
		log_err("base device: making its %s filesystem failed", fs);
		return r;
	}
	fault_point("base-after-mkfs");
	snprintf(s->dsm.base_device_uuid, sizeof(s->dsm.base_device_uuid), "%s", uuid);
	snprintf(s->dsm.base_device_fs, sizeof(s->dsm.base_device_fs), "%s", type);
	r = save_deviceset(s);
	if (r < 0)
		return r;
	d->m.initialized = true;
	r = meta_device_save(s->meta_dir, &d->m);
	if (r < 0)
		return r;
	fault_point("base-after-initialized");
	note_layout(s, d, false); /* a fresh filesystem: no Docker layer */
	log_info("base device ready: id %" PRIu32 ", %s, UUID %s", id, type, uuid);
	return 0;
}

/* Grow the base device to dm.basesize. The new size is recorded before
 * the filesystem grows (a filesystem larger than the recorded size would
 * make every snapshot unmountable), and a marker file says the
 * filesystem still has to follow, so a crash in between is finished at
 * the next start. Base active. */
static int grow_base(struct deviceset *s, struct device *d, const char *type)
{
	char dm[POOL_DEV_NAME_MAX];
	uint64_t old = d->m.size;
	bool pending = faccessat(s->state_fd, BASE_GROW_MARKER, F_OK, 0) == 0;
	int r;

	if (s->opts->base_size_set && s->opts->base_size > d->m.size) {
		r = meta_write_atomic(s->state_dir, BASE_GROW_MARKER, "", 0);
		if (r < 0)
			return r;
		dm_name_of(s, d->m.device_id, dm, sizeof(dm));
		r = s->ops->resize_thin(s->pool, dm, d->m.device_id, s->opts->base_size);
		if (r < 0)
			return r;
		d->m.size = s->opts->base_size;
		r = meta_device_save(s->meta_dir, &d->m);
		if (r < 0) {
			d->m.size = old;
			return r;
		}
		fault_point("base-after-grow-size");
		pending = true;
	}
	if (!pending)
		return 0;
	r = fsutil_grow(d->dev_path, type, NULL);
	if (r < 0) {
		log_err("cannot start: the base device's %s filesystem could not grow to %" PRIu64 " bytes", type,
			d->m.size);
		return r;
	}
	if (unlinkat(s->state_fd, BASE_GROW_MARKER, 0) < 0 || fsync(s->state_fd) < 0) {
		r = -errno;
		log_err("base device: cannot remove %s/%s: %s", s->state_dir, BASE_GROW_MARKER, strerror(-r));
		return r;
	}
	if (old != d->m.size)
		log_info("base device grown from %" PRIu64 " to %" PRIu64 " bytes", old, d->m.size);
	else
		log_info("base device: finished growing its filesystem to %" PRIu64 " bytes", d->m.size);
	return 0;
}

/* The base device as the original engine kept it: made once, checked at
 * every start (verify_pool_identity), grown when dm.basesize asks for
 * more. */
static int setup_base(struct deviceset *s)
{
	struct device *d = find_name(s, DS_BASE_NAME);
	char type[sizeof(s->dsm.base_device_fs)], uuid[sizeof(s->dsm.base_device_uuid)];
	int r;

	/* -o ro (a base device is there, checked at load): nothing is made
	 * or grown; metadata that names no filesystem type (an older
	 * engine's) is probed, and the type kept in memory only. */
	if (s->opts->read_only && s->dsm.base_device_fs[0])
		return 0;
	if (d && !d->m.initialized) {
		log_info("the base device was left half made by an interrupted first start: making it again");
		r = open_transaction(s, d->m.name, d->m.device_id);
		if (r == 0) {
			deactivate(s, d, false);
			r = s->ops->delete_thin(s->pool, d->m.device_id);
			if (r == -ENOENT)
				r = 0;
		}
		if (r == 0)
			r = meta_device_remove(s->meta_dir, d->m.name);
		if (r == 0 || r == -ENOENT)
			r = close_transaction(s);
		if (r < 0)
			return r;
		idmap_mark_free(&s->ids, d->m.device_id);
		remove_device(s, d);
		d = NULL;
	}
	if (!d)
		return create_base(s);

	r = activate(s, d);
	if (r < 0)
		return r;
	r = fsutil_probe(d->dev_path, type, sizeof(type), uuid, sizeof(uuid));
	if (r < 0) {
		log_err("cannot start: the base device of pool %s holds no filesystem", s->prefix);
		goto out;
	}
	if (!s->dsm.base_device_uuid[0] || !s->dsm.base_device_fs[0]) {
		/* Metadata of an older engine: record what is there. */
		snprintf(s->dsm.base_device_uuid, sizeof(s->dsm.base_device_uuid), "%s", uuid);
		snprintf(s->dsm.base_device_fs, sizeof(s->dsm.base_device_fs), "%s", type);
		r = s->opts->read_only ? 0 : save_deviceset(s);
		if (r < 0 || s->opts->read_only)
			goto out;
	}
	if (s->opts->fs[0] && strcmp(s->opts->fs, type) != 0)
		log_warn("the base device already holds %s; dm.fs=%s is ignored", type, s->opts->fs);
	if (s->opts->base_size_set && s->opts->base_size < d->m.size) {
		log_err("cannot start: dm.basesize %" PRIu64 " is smaller than the base device's %" PRIu64
			" bytes: it cannot shrink", s->opts->base_size, d->m.size);
		r = -EINVAL;
		goto out;
	}
	r = grow_base(s, d, type);
out:
	deactivate(s, d, false);
	return r;
}

static const struct pool_ops *choose_backend(const struct ds_options *o)
{
	switch (o->backend) {
	case TF_BACKEND_DM:
		return &pool_dm_ops;
	case TF_BACKEND_REFLINK:
		return &pool_reflink_ops;
	case TF_BACKEND_AUTO:
	default:
		if (pool_dm_available()) {
			log_info("backend auto: device-mapper thin provisioning is available: using dm");
			return &pool_dm_ops;
		}
		log_info("backend auto: no usable device-mapper thin-pool: using reflink");
		return &pool_reflink_ops;
	}
}

static void free_all(struct deviceset *s, struct device *d, void *arg)
{
	(void)s, (void)arg;
	device_free(d);
}

static void destroy(struct deviceset *s)
{
	if (s->by_name)
		for_each_device(s, free_all, NULL);
	if (s->pool)
		s->ops->close(s->pool);
	autofs_close(s);
	/* -o ro's own mount directory goes with it, unless a mount in use
	 * stays there for the next start (in its autofs: EBUSY). */
	if (s->opts && s->opts->read_only && s->mnt_dir && rmdir(s->mnt_dir) < 0 && errno != ENOENT &&
	    errno != ENOTEMPTY && errno != EEXIST && errno != EBUSY)
		log_warn("cannot remove %s: %s", s->mnt_dir, strerror(errno));
	if (s->mark_dir && s->mnt_dir && strcmp(s->mark_dir, s->mnt_dir) != 0 && rmdir(s->mark_dir) < 0 &&
	    errno != ENOENT && errno != ENOTEMPTY)
		log_warn("cannot remove %s: %s", s->mark_dir, strerror(errno));
	if (s->state_fd >= 0)
		close(s->state_fd);
	free(s->mnt_dir);
	free(s->mark_dir);
	free(s->deleted_dir);
	free(s->by_name);
	free(s->by_id);
	free(s->orphans);
	free(s->ro_hidden);
	idmap_free(&s->ids);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->table_lock);
	pthread_mutex_destroy(&s->err_lock);
	pthread_cond_destroy(&s->worker_cond);
	pthread_cond_destroy(&s->usage_cond);
	pthread_mutex_destroy(&s->hook_lock);
	pthread_cond_destroy(&s->adds_cond);
	free(s->state_dir);
	free(s->meta_dir);
	free(s);
}

int ds_open(const char *state_dir, const struct ds_options *opts, struct deviceset **out)
{
	struct timespec t[7];
	struct pool_config cfg;
	struct deviceset *s;
	struct device *base;
	struct stat st;
	mode_t mode;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->state_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->table_lock, NULL);
	pthread_mutex_init(&s->err_lock, NULL);
	pthread_cond_init(&s->worker_cond, NULL);
	pthread_cond_init(&s->usage_cond, NULL);
	pthread_mutex_init(&s->hook_lock, NULL);
	pthread_cond_init(&s->adds_cond, NULL);
	s->opts = opts;
	s->n_buckets = 1024;
	s->by_name = calloc(s->n_buckets, sizeof(*s->by_name));
	s->by_id = calloc(s->n_buckets, sizeof(*s->by_id));
	s->state_dir = realpath(state_dir, NULL);
	if (!s->by_name || !s->by_id || !s->state_dir) {
		r = s->state_dir ? -ENOMEM : -errno;
		log_err("state directory %s: %s", state_dir, strerror(-r));
		goto fail;
	}
	s->state_fd = open(s->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->state_fd < 0 || fstat(s->state_fd, &st) < 0) {
		r = -errno;
		log_err("state directory %s: %s", s->state_dir, strerror(-r));
		goto fail;
	}
	/* One engine per STATEDIR, read-write or read-only: two would each
	 * take the other's pool, loop devices and mounts for left-overs of a
	 * killed run. flock writes nothing (-o ro) and is let go when the
	 * process ends, however it ends (a program it forks holds it until
	 * its exec: src/dirlock.h). */
	r = dirlock_take(s->state_fd, &st, s->state_dir);
	if (r < 0)
		goto fail;
	/* -o ro names its pool, devices and mount directory apart
	 * (doc/design.md §8): a read-write start never takes over what a
	 * read-only run left, nor the other way round. */
	snprintf(s->prefix, sizeof(s->prefix), "thinfs-%s%u:%u-%lu", opts->read_only ? DS_RO_PREFIX_TAG : "",
		 major(st.st_dev), minor(st.st_dev), (unsigned long)st.st_ino);
	/* -o ro writes nothing under STATEDIR: its mounts go to a directory
	 * of its own in /run (doc/design.md §8). */
	if (asprintf(&s->meta_dir, "%s/metadata", s->state_dir) < 0 ||
	    asprintf(&s->deleted_dir, "%s/deleted", s->state_dir) < 0 ||
	    (opts->read_only ? asprintf(&s->mnt_dir, "%s/%s", DS_RO_MOUNT_TOP, s->prefix)
			     : asprintf(&s->mnt_dir, "%s/mnt", s->state_dir)) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	if (opts->read_only && faccessat(AT_FDCWD, s->meta_dir, F_OK, 0) < 0) {
		r = -errno;
		log_err("cannot start read-only: %s: %s; -o ro opens an existing thinfs or Docker devicemapper "
			"state directory and makes nothing", s->meta_dir, strerror(-r));
		goto fail;
	}
	r = opts->read_only ? 0 : meta_mkdir_p(s->meta_dir, 0700);
	if (r == 0 && !opts->read_only)
		r = meta_mkdir_p(s->deleted_dir, 0700);
	if (r == 0)
		r = meta_mkdir_p(s->mnt_dir, 0700);
	/* The autofs goes on the mount directory before anything is mounted
	 * in it (-o ro's image store, adopted mounts are in it already). */
	if (r == 0)
		r = autofs_open(s);
	if (r == 0 && (s->autofs ? asprintf(&s->mark_dir, "%s-automounts", s->mnt_dir) < 0
				 : !(s->mark_dir = strdup(s->mnt_dir)))) {
		s->mark_dir = NULL;
		r = -ENOMEM;
	}
	if (r == 0 && s->autofs)
		r = meta_mkdir_p(s->mark_dir, 0700);
	if (r < 0)
		goto fail;
	/* Only root gets into STATEDIR, unless the FUSE mount lets others
	 * in (allow_other): then they may pass through STATEDIR and mnt/
	 * (not list them) to follow a rootfs link; metadata stays 0700.
	 * Under -o ro STATEDIR keeps its mode: let others in with it. */
	mode = opts->allow_other ? 0711 : 0700;
	if (!opts->read_only && fchmod(s->state_fd, mode) < 0) {
		r = -errno;
		log_err("state directory %s: chmod %o: %s", s->state_dir, (unsigned)mode, strerror(-r));
		goto fail;
	}
	if (chmod(s->mnt_dir, mode) < 0 || (opts->read_only && chmod(DS_RO_MOUNT_TOP, 0711) < 0)) {
		r = -errno;
		log_err("mount directory %s: chmod: %s", s->mnt_dir, strerror(-r));
		goto fail;
	}
	r = meta_deviceset_load(s->meta_dir, &s->dsm);
	if (r < 0 && r != -ENOENT)
		goto fail;
	r = idmap_init(&s->ids, s->dsm.next_device_id);
	if (r < 0)
		goto fail;
	clock_gettime(CLOCK_MONOTONIC, &t[0]);
	r = load_devices(s, s->meta_dir, false);
	if (r == 0)
		r = load_devices(s, s->deleted_dir, true);
	if (r == 0)
		for_each_device(s, bury_legacy, &r);
	if (r < 0)
		goto fail;
	r = finish_renames(s);
	if (r < 0)
		goto fail;
	for (size_t i = 0; i < s->n_buckets; i++)
		for (struct device *d = s->by_id[i]; d; d = d->next_id)
			for (struct device *e = d->next_id; e; e = e->next_id)
				if (e->m.device_id == d->m.device_id) {
					log_err("cannot start: %s/%s and %s/%s both claim device ID %" PRIu32,
						d->buried ? s->deleted_dir : s->meta_dir, d->m.name,
						e->buried ? s->deleted_dir : s->meta_dir, e->m.name, d->m.device_id);
					r = -EUCLEAN;
					goto fail;
				}
	/* The base device is the root of the tree: a base file naming a
	 * parent (another device's file copied over it) would put the root
	 * inside its own subtree, a directory loop. */
	base = find_name(s, DS_BASE_NAME);
	if (base && base->m.parent[0]) {
		log_err("cannot start: %s/%s names a parent ('%s'), but the base device has none: "
			"not the base device's file", s->meta_dir, DS_BASE_NAME, base->m.parent);
		r = -EUCLEAN;
		goto fail;
	}
	apply_docker_genealogy(s);
	for_each_device(s, mark_id, NULL);
	/* -o ro makes no base device: refuse before the pool is touched. */
	if (opts->read_only && (!base || !base->m.initialized)) {
		log_err("cannot start read-only: %s has no %sbase device, and -o ro makes none", s->meta_dir,
			base ? "finished " : "");
		r = -EUCLEAN;
		goto fail;
	}

	clock_gettime(CLOCK_MONOTONIC, &t[1]);
	s->ops = choose_backend(opts);
	cfg.state_dir = s->state_dir;
	cfg.prefix = s->prefix;
	cfg.mnt_dir = s->mnt_dir;
	cfg.opts = opts;
	r = s->ops->open(&cfg, &s->pool);
	if (r < 0) {
		s->pool = NULL;
		log_err("cannot start: the %s pool for %s could not be opened", s->ops->name, s->state_dir);
		goto fail;
	}
	clock_gettime(CLOCK_MONOTONIC, &t[2]);
	r = verify_pool_identity(s);
	if (r == 0)
		r = recover_transaction(s);
	if (r < 0)
		goto fail;
	clock_gettime(CLOCK_MONOTONIC, &t[3]);
	for_each_device(s, count_children, NULL);
	compare_with_pool(s);
	clock_gettime(CLOCK_MONOTONIC, &t[4]);
	r = adopt_active(s);
	if (r < 0)
		goto fail;
	clean_mount_dir(s, s->mnt_dir);
	if (s->autofs) {
		clean_mount_dir(s, s->mark_dir);
		for_each_device(s, load_layout, NULL);
	}
	clock_gettime(CLOCK_MONOTONIC, &t[5]);
	r = setup_base(s);
	if (r < 0)
		goto fail;
	for_each_device(s, restore_mount, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t[6]);
	/* Where a start's time went, for large pools (tests/bench/scale.py). */
	log_info("start: metadata files %ld ms, pool open %ld ms, identity and recovery %ld ms, pool device list "
		 "%ld ms, adoption %ld ms, base device %ld ms", ms_between(&t[0], &t[1]), ms_between(&t[1], &t[2]),
		 ms_between(&t[2], &t[3]), ms_between(&t[3], &t[4]), ms_between(&t[4], &t[5]),
		 ms_between(&t[5], &t[6]));
	log_info("pool %s (%s backend) ready: %zu devices, transaction %" PRIu64 ", %u pending deletion",
		 s->prefix, s->ops->name, s->n_devices - 1, s->tid, s->deferred_count);
	*out = s;
	return 0;
fail:
	destroy(s);
	return r;
}

int ds_daemonized(struct deviceset *s)
{
	return dirlock_retake(s->state_fd, s->state_dir);
}

void ds_log_path(struct deviceset *s, char *buf, size_t len)
{
	if (s->opts->read_only)
		snprintf(buf, len, "%s.log", s->mnt_dir);
	else
		snprintf(buf, len, "%s/%s", s->state_dir, DS_LOG_NAME);
}

void ds_stopping(struct deviceset *s)
{
	dirlock_stopping(s->state_fd, s->state_dir);
}

/* An orderly stop unmounts and deactivates what nothing uses; a device
 * still in use (a process's cwd or open files, a container on it) stays
 * mounted and active, and the next start adopts it (doc/design.md §1).
 * Explicit mounts stay recorded in the device files: the next start
 * mounts them again, as ZFS's import does. */
static void shutdown_one(struct deviceset *s, struct device *d, void *arg)
{
	(void)arg;
	if (d->mount_count > 0 || d->automounted) {
		if (unmount_fs(s, d, 0) < 0) {
			log_info("device '%s' is in use: it stays mounted on %s/%" PRIu32 " and is adopted at the next start",
				 d->m.name, s->mnt_dir, d->m.device_id);
			return;
		}
		if (d->automounted)
			automount_marker(s, d, false);
		TABLE(s, d->mount_count = 0; d->automounted = false);
		log_info("unmounted device '%s' at shutdown", d->m.name);
	}
	if (d->active && deactivate(s, d, false) < 0)
		deactivate(s, d, true);
}

void ds_close(struct deviceset *s)
{
	if (!s)
		return;
	if (s->worker_running) {
		pthread_mutex_lock(&s->lock);
		s->worker_stop = true;
		pthread_cond_signal(&s->worker_cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->worker, NULL);
	}
	autofs_stop(s);
	pthread_mutex_lock(&s->lock);
	for_each_device(s, shutdown_one, NULL);
	if (!s->opts->read_only && save_deviceset(s) < 0)
		log_err("shutdown: could not save %s/deviceset-metadata", s->meta_dir);
	pthread_mutex_unlock(&s->lock);
	log_info("pool %s closed", s->prefix);
	destroy(s);
}
