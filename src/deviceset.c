/*
 * deviceset.c - the engine's operations (deviceset.h): add (a snapshot),
 * delete (inline or buried), rename, mount, automount and unmount, resize
 * of a device and of the pool, and the status the namespace reads. Each
 * takes the locks of engine.h in their order.
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

#include "docker.h"
#include "fault.h"
#include "fsutil.h"
#include "grow.h"
#include "idmap.h"
#include "log.h"
#include "metadata.h"
#include "pool.h"

/* ------------------------------------------------------------------ */
/* Activation (pool lock held)                                        */

int activate(struct deviceset *s, struct device *d)
{
	char name[POOL_DEV_NAME_MAX], path[POOL_DEV_PATH_MAX];
	int r;

	if (d->active)
		return 0;
	dm_name_of(s, d->m.device_id, name, sizeof(name));
	r = s->ops->activate(s->pool, name, d->m.device_id, d->m.size, path, sizeof(path));
	if (r == 0)
		TABLE(s, d->active = true; snprintf(d->dev_path, sizeof(d->dev_path), "%s", path));
	return r;
}

int deactivate(struct deviceset *s, struct device *d, bool deferred)
{
	char name[POOL_DEV_NAME_MAX];
	int r;

	dm_name_of(s, d->m.device_id, name, sizeof(name));
	r = s->ops->deactivate(s->pool, name, d->m.device_id, deferred);
	if (r == 0 || deferred)
		TABLE(s, d->active = false; d->dev_path[0] = '\0');
	return r;
}

static void save_layout(struct deviceset *s, struct device *d);

/* For info (struct device, held). st: the node's stat from before a
 * deactivation that may have removed it (libdm without udev), or NULL
 * to stat it now. */
void set_held(struct deviceset *s, struct device *d, const char *dev_path, const struct stat *st)
{
	char id[PATH_MAX];
	struct held_dev *h = NULL;
	struct stat now;

	if (dev_path && !st && stat(dev_path, &now) == 0)
		st = &now;
	if (dev_path && st && S_ISBLK(st->st_mode) && fsutil_bdev_identity(st->st_rdev, id, sizeof(id)) == 0 &&
	    (h = malloc(sizeof(*h) + strlen(id) + 1))) {
		h->rdev = st->st_rdev;
		snprintf(h->path, sizeof(h->path), "%s", dev_path);
		strcpy(h->id, id);
	}
	/* Held, its filesystem lives on detached and may change: the layout
	 * seen at the unmount is forgotten (the next link read mounts). */
	TABLE(s, free(d->held); d->held = h; if (h) d->layout_known = false);
	if (h)
		save_layout(s, d);
}

/* Before a snapshot, delete or resize of d, which this engine has not
 * mounted: is its block device still in use (doc/design.md §1)? The
 * engine's flags cannot tell: an unmount is lazy (MNT_DETACH), and a
 * filesystem that programs still use lives on, detached, on a block
 * device that stays active (reflink: its loop device stays bound, marked
 * to detach at its last close; dm: a deferred removal). So ask the
 * kernel: the backend whether the device is active, an exclusive open
 * whether a filesystem claims it (as it claims the device it lives on).
 * -EBUSY with the reason stored and d noted held; otherwise 0, and with
 * excl, an exclusive fd (or -1 if the device is not active) that the
 * caller holds while it works, so that nothing mounts it meanwhile.
 * op_lock held. */
static int check_in_use(struct deviceset *s, struct device *d, const char *op, int *excl)
{
	char name[POOL_DEV_NAME_MAX], path[POOL_DEV_PATH_MAX];
	bool ours;
	int r;

	if (excl)
		*excl = -1;
	dm_name_of(s, d->m.device_id, name, sizeof(name));
	pthread_mutex_lock(&s->lock);
	r = s->ops->is_active(s->pool, name, d->m.device_id, path, sizeof(path));
	ours = d->active;
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		return fail(s, d, r, "%s '%s': cannot tell whether the device is in use: %s", op, d->m.name,
			    strerror(-r));
	r = r == 1 ? fsutil_open_excl(path) : -ENODEV;
	if (r == -EBUSY) {
		/* Active as this engine left it (a deactivation that failed)
		 * shows as active already. */
		set_held(s, d, ours ? NULL : path, NULL);
		return fail(s, d, -EBUSY, "%s '%s': its block device %s is still in use: its filesystem was unmounted "
			    "lazily and programs still use it (open files, a working directory; 'fuser -vm %s' lists "
			    "them). Stop them, or mount the device again (then a snapshot freezes it)", op, d->m.name,
			    path, path);
	}
	set_held(s, d, NULL, NULL);
	if (r >= 0 && excl)
		*excl = r;
	else if (r >= 0)
		close(r);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Free space                                                         */

/* Is less than percent of total free? The one rule behind low_space and
 * the space watch. */
bool space_below(unsigned percent, uint64_t used, uint64_t total)
{
	uint64_t free_ = total > used ? total - used : 0;

	return total > 0 && free_ < total / 100 * percent + total % 100 * percent / 100;
}

/* The pool's status, at most a second old (pool lock held). */
static int cached_status(struct deviceset *s, struct pool_status *st)
{
	struct timespec now;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (s->status_at.tv_sec == 0 || now.tv_sec - s->status_at.tv_sec >= 1) {
		r = s->ops->status(s->pool, &s->status_cache);
		if (r < 0)
			return r;
		s->status_at = now;
	}
	*st = s->status_cache;
	return 0;
}

static int check_free_space(struct deviceset *s, struct device *d)
{
	struct pool_status st;
	uint64_t free_data, min_data, free_meta, min_meta;
	int r;

	if (s->opts->min_free_space == 0)
		return 0;
	r = cached_status(s, &st);
	if (r < 0)
		return fail(s, d, r, "device '%s': cannot read the pool's status: %s", d->m.name, strerror(-r));
	free_data = st.data_total - st.data_used;
	min_data = st.data_total / 100 * s->opts->min_free_space;
	if (free_data < min_data)
		return fail(s, d, -ENOSPC,
			    "device '%s': the pool has %" PRIu64 " bytes of free data space, less than the %" PRIu64
			    " required (dm.min_free_space=%u%%): free space in the pool or lower dm.min_free_space",
			    d->m.name, free_data, min_data, s->opts->min_free_space);
	free_meta = st.metadata_total - st.metadata_used;
	min_meta = st.metadata_total / 100 * s->opts->min_free_space;
	if (free_meta < min_meta)
		return fail(s, d, -ENOSPC,
			    "device '%s': the pool has %" PRIu64 " bytes of free metadata space, less than the %" PRIu64
			    " required (dm.min_free_space=%u%%)",
			    d->m.name, free_meta, min_meta, s->opts->min_free_space);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Add                                                                */

/* Remove the file of an add that did not happen (pool lock held). If it
 * stays, it is the record the next start rolls back, and no change is
 * taken until then (need_recovery); the ID is free again only once the
 * file is gone. */
static void undo_add_file(struct deviceset *s, const char *name, uint32_t id)
{
	int r = meta_device_remove(s->meta_dir, name);

	if (r < 0 && r != -ENOENT)
		need_recovery(s, "device '%s' could not be undone (its file stays: %s)", name, strerror(-r));
	else
		idmap_mark_free(&s->ids, id);
}

/* Undo an add whose pool device may exist (pool lock held). The pool
 * device goes first: a file left alone is still the record the next
 * start rolls back; a pool device left alone would leak. */
static void undo_add(struct deviceset *s, const char *name, uint32_t id)
{
	int r = s->ops->delete_thin(s->pool, id);

	if (r < 0 && r != -ENOENT)
		need_recovery(s, "device '%s' (id %" PRIu32 ") could not be deleted from the pool after a failed add",
			      name, id);
	else
		undo_add_file(s, name, id);
}

/* ---- Group commit (doc/design.md §4, "Add") ----
 * Every add in flight writes its file with the transaction ID one past
 * the pool's, and one pool transaction closes all of them: the last add
 * of a group to finish writing commits for the group. While an add of the
 * group waits for that commit no add joins (it would need the next
 * transaction ID), so a group is closed once one of its adds is ready.
 * With a backend whose create_snap runs without the pool lock
 * (pool_ops.concurrent_snap) the adds of a group write side by side; with
 * the others the pool lock is held throughout and a group is one add. */

/* Wait until an add may join the group in flight (and no consistency
 * check waits for the adds to drain). Pool lock held (let go while
 * waiting). */
static void add_wait_to_join(struct deviceset *s)
{
	while (s->adds_ready > 0 || s->check_waiting)
		pthread_cond_wait(&s->adds_cond, &s->lock);
}

/* Wait until no add is in flight (the consistency check: an add's file
 * and pool device exist before it is in the table). Pool lock held. */
void adds_wait_idle(struct deviceset *s)
{
	/* New adds wait meanwhile (add_wait_to_join): a steady stream of
	 * them would keep the list from ever emptying. */
	s->check_waiting++;
	while (s->adds)
		pthread_cond_wait(&s->adds_cond, &s->lock);
	s->check_waiting--;
	pthread_cond_broadcast(&s->adds_cond);
}

/* Is name taken by an add in flight? Pool lock held. */
static bool add_name_pending(struct deviceset *s, const char *name)
{
	for (struct add_in_flight *a = s->adds; a; a = a->next)
		if (strcmp(a->name, name) == 0)
			return true;
	return false;
}

static void add_join(struct deviceset *s, struct add_in_flight *a, const char *name, uint32_t id)
{
	snprintf(a->name, sizeof(a->name), "%s", name);
	a->id = id;
	a->state = ADD_WRITING;
	a->next = s->adds;
	s->adds = a;
	s->adds_writing++;
}

static void add_leave(struct deviceset *s, struct add_in_flight *a)
{
	for (struct add_in_flight **pp = &s->adds; *pp; pp = &(*pp)->next)
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	pthread_cond_broadcast(&s->adds_cond);
}

/* Close the group (pool lock held): one transaction for every ready add.
 * If the pool refuses it, each add of the group is undone here, before
 * any of them leaves or a new group can begin. */
static void commit_group(struct deviceset *s)
{
	unsigned n = s->adds_ready;
	uint64_t pool_tid;
	int r;

	fault_point("add-before-commit");
	r = s->recovery_reason[0] ? -EIO : close_transaction(s);
	if (r < 0)
		log_err("pool %s: the transaction of %u new device(s) could not be closed: %s", s->prefix, n,
			s->recovery_reason[0] ? s->recovery_reason : strerror(-r));
	if (r < 0 && !s->recovery_reason[0] && s->ops->get_transaction_id(s->pool, &pool_tid) == 0 &&
	    pool_tid != s->tid)
		/* The pool moved all the same (reflink: the ID's file renamed,
		 * its directory's fsync failed): whether that lasts is not
		 * known, so neither keeping the group nor undoing it is safe.
		 * The next start decides by the pool's ID as it finds it. */
		need_recovery(s, "the pool's transaction ID moved to %" PRIu64 " though setting it failed", pool_tid);
	for (struct add_in_flight *a = s->adds; a; a = a->next) {
		if (a->state != ADD_READY)
			continue;
		/* After need_recovery() the files are the next start's to roll
		 * back: the undo could not be trusted. */
		if (r < 0 && !s->recovery_reason[0])
			undo_add(s, a->name, a->id);
		a->result = r;
		a->state = ADD_DONE;
	}
	s->adds_ready = 0;
	pthread_cond_broadcast(&s->adds_cond);
}

/* a is done writing with result r (pool lock held). A failed add, undone
 * by its caller, is done; a ready one waits for its group's commit, which
 * the last writer of the group does. Returns the add's outcome. */
static int add_finish_writing(struct deviceset *s, struct add_in_flight *a, int r)
{
	s->adds_writing--;
	if (r < 0) {
		a->state = ADD_DONE;
		a->result = r;
	} else {
		a->state = ADD_READY;
		s->adds_ready++;
	}
	if (s->adds_writing == 0 && s->adds_ready > 0)
		commit_group(s);
	while (a->state != ADD_DONE)
		pthread_cond_wait(&s->adds_cond, &s->lock);
	return a->result;
}

/* The add's record, written by a helper thread while the pool prepares
 * the snapshot (write_add_overlapped). */
struct record_job {
	const char *dir;
	const struct meta_device *m;
	int r;
};

static void *save_record(void *arg)
{
	struct record_job *j = arg;

	j->r = meta_device_save(j->dir, j->m);
	return NULL;
}

/* One try of the add's I/O with a backend that splits create_snap: the
 * record and the prepared snapshot are written side by side (their fsyncs
 * are most of a mkdir, on two filesystems), and the snapshot becomes the
 * pool's device only once both are durable, so the record still comes
 * first. *made: the pool device may exist. */
static int write_add_overlapped(struct deviceset *s, const struct meta_device *m, const struct device *parent,
				uint32_t id, bool *made)
{
	struct record_job j = { .dir = s->meta_dir, .m = m };
	pthread_t t;
	bool threaded;
	int handle, r;

	*made = false;
	threaded = pthread_create(&t, NULL, save_record, &j) == 0;
	if (!threaded)
		save_record(&j);
	r = s->ops->snap_prepare(s->pool, id, parent->m.device_id, parent->m.size, &handle);
	if (threaded)
		pthread_join(t, NULL);
	if (r == 0 && j.r < 0)
		s->ops->snap_drop(s->pool, id, handle);
	if (j.r < 0)
		return j.r;
	if (r == 0) {
		fault_point("add-after-intent");
		r = s->ops->snap_publish(s->pool, id, handle);
	}
	/* A failed prepare counts as made too: it is the pool's failure, and
	 * the undo's delete of what the pool does not have is -ENOENT, fine. */
	*made = r != -EEXIST;
	return r;
}

/* Write the add's record, then make its pool device (the add's I/O):
 * without the pool lock if unlocked (the caller let it go), taking it
 * only to pick another ID. The device's own file, one transaction past
 * the pool, is the record of the add in flight: a start that finds it so
 * rolls the add back. *made: the pool device may exist. */
static int write_add(struct deviceset *s, struct meta_device *m, const struct device *parent,
		     const char *origin_active, struct add_in_flight *a, bool unlocked, bool *made)
{
	int r;

	for (;;) {
		m->device_id = a->id;
		if (unlocked && s->ops->snap_prepare) {
			r = write_add_overlapped(s, m, parent, a->id, made);
		} else {
			r = meta_device_save(s->meta_dir, m);
			if (r < 0)
				return r;
			fault_point("add-after-intent");
			r = s->ops->create_snap(s->pool, a->id, parent->m.device_id, parent->m.size, origin_active);
			*made = r != -EEXIST;
		}
		if (r != -EEXIST)
			return r;
		/* The pool already has this ID (metadata lost?): keep it marked
		 * used and try the next one, as the original engine did. */
		log_warn("device '%s': the pool already has device ID %" PRIu32 ", trying another", m->name, a->id);
		if (unlocked)
			pthread_mutex_lock(&s->lock);
		r = idmap_alloc(&s->ids, &a->id);
		if (unlocked)
			pthread_mutex_unlock(&s->lock);
		if (r < 0)
			return r;
	}
}

/* Create name as a snapshot of parent in the pool and the metadata; pool
 * lock held on entry and return (let go while the add writes, if the
 * backend allows). On failure nothing is left behind: either the undo
 * completes or the device's file stays one transaction past the pool for
 * the next start to roll back, and the set stops taking changes until then
 * (need_recovery). */
static int create_device(struct deviceset *s, const char *name, struct device *parent,
			 struct device *scratch)
{
	char origin_name[POOL_DEV_NAME_MAX], origin_path[POOL_DEV_PATH_MAX];
	const char *origin_active = NULL;
	bool unlocked = s->ops->concurrent_snap, made = false, known, layer;
	struct add_in_flight a = { 0 };
	struct meta_device m = { 0 };
	struct device *d;
	uint32_t id = 0;
	int r;

	/* Ask the pool whether the origin is live, not our own flag: a device
	 * left active by a killed daemon, or waiting for a deferred removal,
	 * may be written to, and a snapshot of a live thin device must be
	 * taken suspended (the kernel's thin-provisioning documentation). */
	dm_name_of(s, parent->m.device_id, origin_name, sizeof(origin_name));
	if (!s->ops->engine_freezes_origin) {
		/* Only a backend that suspends the origin itself (dm) needs
		 * to know; on reflink the engine freezes a mounted origin. */
		r = s->ops->is_active(s->pool, origin_name, parent->m.device_id, origin_path,
				      sizeof(origin_path));
		if (r < 0)
			return fail(s, scratch, r, "device '%s': cannot tell whether '%s' is active: %s", name,
				    parent->m.name, strerror(-r));
		if (r == 1)
			origin_active = origin_name;
	}
	snprintf(m.name, sizeof(m.name), "%s", name);
	snprintf(m.parent, sizeof(m.parent), "%s", parent->m.name);
	m.size = parent->m.size;
	m.initialized = true;
	m.created = (int64_t)time(NULL);
	r = idmap_alloc(&s->ids, &id);
	if (r < 0)
		return fail(s, scratch, r, "device '%s': no free device ID left in the pool", name);
	add_join(s, &a, name, id);
	/* The pool's ID cannot move before this add is done writing: the
	 * group's commit waits for it. */
	m.transaction_id = s->tid + 1;
	if (unlocked)
		pthread_mutex_unlock(&s->lock);
	r = write_add(s, &m, parent, origin_active, &a, unlocked, &made);
	if (unlocked)
		pthread_mutex_lock(&s->lock);
	if (r < 0) {
		/* The file may be there all the same (written before a failed
		 * directory fsync, or an earlier try's): it must not outlive
		 * the add. */
		if (made)
			undo_add(s, name, a.id);
		else
			undo_add_file(s, name, a.id);
		add_finish_writing(s, &a, r);
		add_leave(s, &a);
		if (!made)
			return fail(s, scratch, r, "device '%s': cannot record the new device: %s", name,
				    strerror(-r));
		return fail(s, scratch, r, "device '%s': snapshot of '%s' failed in the pool: %s", name,
			    parent->m.name, strerror(-r));
	}
	fault_point("add-after-pool-create");
	r = add_finish_writing(s, &a, 0);
	if (r < 0) {
		add_leave(s, &a);
		return fail(s, scratch, r, "device '%s': could not commit the new device: %s", name, strerror(-r));
	}
	fault_point("add-after-close-txn");
	/* next_device_id is not saved here (one atomic write less per
	 * mkdir): a start marks every ID the files hold as used, so a stale
	 * value only moves where the search for a free ID begins. */
	m.device_id = a.id;
	d = device_new(&m);
	if (d) {
		usage_of_snapshot(s, parent, d);
		insert_device(s, d);
		TABLE(s, parent->n_children++);
		/* A snapshot has its origin's filesystem: its layout, if that
		 * is known and cannot have changed since (not mounted). */
		TABLE(s, known = parent->layout_known && parent->mount_count == 0 && !parent->automounted &&
			       !parent->held;
		      layer = parent->docker_layout; if (known) {
			      d->docker_layout = layer;
			      d->layout_known = true;
		      });
	}
	/* Leaves once in the table: the name is never free in between. */
	add_leave(s, &a);
	if (!d) {
		/* The device is in the pool and the metadata: the next start
		 * finds it. Report the failure anyway. */
		return fail(s, scratch, -ENOMEM, "device '%s': out of memory", name);
	}
	return 0;
}

/* What ds_check_name's refusal r means, in words. */
static const char *name_problem(int r)
{
	return r == -ENAMETOOLONG ? "name longer than 128 characters"
				  : "invalid name (use [A-Za-z0-9][A-Za-z0-9_.-]*, not ctl, info or rootfs)";
}

/* Why name cannot be made (pool lock held): the device that has it, by
 * its path, or the add that is making it. */
static int name_taken(struct deviceset *s, struct device *scratch, const char *name)
{
	struct device *x = find_name(s, name);
	char path[PATH_MAX];

	if (x && strcmp(name, DS_BASE_NAME) == 0)
		return fail(s, scratch, -EEXIST, "mkdir '%s': '%s' is the base device's name (the top directory)",
			    name, name);
	if (!x)
		return fail(s, scratch, -EEXIST, "mkdir '%s': a device of that name is being made", name);
	device_path(s, x, path, sizeof(path));
	return fail(s, scratch, -EEXIST, "mkdir '%s': the name '%s' is used by the device at '%s' (names are unique "
		    "in the pool)", name, name, path);
}

int ds_add_device(struct deviceset *s, const char *name, const char *parent_name)
{
	struct device *parent, scratch;
	char dir[PATH_MAX];
	int r, fd = -1, excl = -1;

	memset(&scratch, 0, sizeof(scratch));
	parent = get_device(s, parent_name, false);
	if (!parent)
		return fail(s, NULL, -ENOENT, "mkdir '%s': no device '%s' to snapshot", name ? name : "", parent_name);
	/* A refusal is the parent's: its directory is where the user looks
	 * (the base device's errors are the pool's). */
	r = ds_check_name(name);
	if (r < 0) {
		r = fail(s, parent, r, "mkdir '%s': %s", name ? name : "",
			 name_problem(r));
		put_device(s, parent);
		return r;
	}
	snprintf(scratch.m.name, sizeof(scratch.m.name), "%s", name);
	snprintf(scratch.m.parent, sizeof(scratch.m.parent), "%s", parent_name);
	/* The parent's op_lock keeps its mount state still while its
	 * filesystem is frozen and the snapshot taken. */
	if (!lock_op(s, parent)) {
		put_device(s, parent);
		return fail(s, NULL, -ENOENT, "mkdir '%s': '%s' was deleted meanwhile", name, parent_name);
	}
	/* Freeze a mounted origin before taking the pool lock: FIFREEZE syncs
	 * the filesystem, which may take a while. */
	if (parent->mount_count > 0 && s->ops->engine_freezes_origin) {
		mount_dir_of(s, parent->m.device_id, dir, sizeof(dir));
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		r = fd < 0 ? -errno : fsutil_freeze(fd);
		if (r < 0) {
			r = fail(s, parent, r, "snapshot of '%s': cannot freeze its filesystem at %s: %s",
				 parent->m.name, dir, strerror(-r));
			if (fd >= 0)
				close(fd);
			fd = -1;
			goto out_unlock;
		}
	} else if (parent->mount_count == 0 && !parent->automounted && s->ops->engine_freezes_origin) {
		/* Nothing of ours to freeze: refuse while a filesystem we
		 * cannot reach lives on (a backend that suspends the origin
		 * freezes even that); hold the device so that nothing mounts
		 * it, and flush what plain openers wrote. */
		r = check_in_use(s, parent, "snapshot of", &excl);
		if (r < 0)
			goto out_unlock;
		if (excl >= 0 && fsync(excl) < 0) {
			r = fail(s, parent, -errno, "snapshot of '%s': cannot flush its block device: %s",
				 parent->m.name, strerror(errno));
			goto out_unlock;
		}
	}
	pthread_mutex_lock(&s->lock);
	add_wait_to_join(s);
	if (find_name(s, name) || add_name_pending(s, name)) {
		r = name_taken(s, &scratch, name);
	} else if ((r = refuse_if_needs_recovery(s, &scratch, "mkdir")) == 0) {
		r = check_free_space(s, &scratch);
		if (r == 0)
			r = create_device(s, name, parent, &scratch);
	}
	pthread_mutex_unlock(&s->lock);
	if (r == 0) {
		struct device *d = get_device(s, name, false);

		/* The layout create_device took over from the parent, kept
		 * for restarts: a file, so not under the pool lock. */
		if (d) {
			save_layout(s, d);
			put_device(s, d);
		}
		log_info("created device '%s' (snapshot of '%s')", name, parent->m.name);
		/* A snapshot of the parent succeeded: its error is stale. */
		ds_clear_error(s, parent->m.name);
	} else if (scratch.last_error) {
		keep_error(s, parent, scratch.last_error);
	}
out_unlock:
	if (fd >= 0) {
		int t = fsutil_thaw(fd);

		if (t < 0)
			log_err("snapshot of '%s': cannot thaw its filesystem: %s", parent->m.name, strerror(-t));
		close(fd);
	}
	if (excl >= 0)
		close(excl);
	unlock_op(parent);
	put_device(s, parent);
	free(scratch.last_error);
	return r;
}

/* ------------------------------------------------------------------ */
/* Delete                                                             */

/* Remove d's metadata file: STATEDIR/metadata/NAME, or for a buried
 * device its tombstone STATEDIR/deleted/ID. */
int remove_device_file(struct deviceset *s, struct device *d)
{
	return meta_device_remove(d->buried ? s->deleted_dir : s->meta_dir, d->m.name);
}

/* Finish the delete of d, buried (doc/design.md §4): delete it from the
 * pool, then remove its tombstone, the delete's record; pool lock held.
 * The pool's transaction ID does not move. 0 once the pool device is
 * gone (if its tombstone could not be removed, d stays buried and the
 * worker retries that); -EBUSY if the device is in use (open elsewhere,
 * an image still attached); on any failure the pool device and d's
 * tombstone stay. */
int delete_from_pool(struct deviceset *s, struct device *d)
{
	int r;

	/* Deactivate first: a device someone still has open fails here
	 * with -EBUSY, before the pool is asked. */
	r = deactivate(s, d, false);
	if (r == -EBUSY)
		return r;
	r = s->ops->delete_thin(s->pool, d->m.device_id);
	if (r < 0 && r != -ENOENT)
		return r;
	fault_point("delete-after-pool-delete");
	/* Durable before the ID is free: a tombstone that outlived the
	 * reuse of its ID would take the new device with it at the next
	 * start. */
	r = remove_device_file(s, d);
	if (r < 0 && r != -ENOENT) {
		/* The delete is done; only its record stays, buried, and
		 * the worker retries its removal (the pool says -ENOENT). */
		log_err("deleted device %s: gone from the pool, but its tombstone stays in %s (%s): "
			"removed later", d->m.name, s->deleted_dir, strerror(-r));
		return 0;
	}
	fault_point("delete-after-unregister");
	forget_deleted(s, d);
	return 0;
}

/* d, buried, is gone from the pool and its tombstone from the disk: its
 * ID is free again and it leaves the table. Pool lock held (or the
 * start). */
void forget_deleted(struct deviceset *s, struct device *d)
{
	idmap_mark_free(&s->ids, d->m.device_id);
	TABLE(s, s->deferred_count -= s->deferred_count > 0);
	remove_device(s, d);
}

/* The tombstone of d: its file as it is, named by its ID, in
 * STATEDIR/deleted; in memory marked deleted. A start loads every file
 * there as a tombstone (start.c: load_devices). */
void tombstone_of(const struct device *d, struct meta_device *m)
{
	*m = d->m;
	m->deleted = true;
	m->mount_count = 0;
	snprintf(m->name, sizeof(m->name), "%" PRIu32, d->m.device_id);
}

/* Move d's file to its tombstone (pool lock held): one rename, so the
 * name's file and the tombstone never both exist, and the name is free
 * once it is durable. *moved: the rename happened (on a failed fsync it
 * did, but may not last). Also used at start for files a deferred
 * deletion of an older engine (or Docker) left marked deleted. */
int bury_files(struct deviceset *s, struct device *d, struct meta_device *m, bool *moved)
{
	int r;

	tombstone_of(d, m);
	r = meta_device_move(s->meta_dir, d->m.name, s->deleted_dir, m->name, moved);
	if (r == 0)
		fault_point("delete-after-tombstone");
	return r;
}

/* d's table entry follows its file (pool lock held): buried (its name
 * free, its tombstone's metadata m), or back under its name (m as it
 * was). */
static void set_buried(struct deviceset *s, struct device *d, const struct meta_device *m, bool buried)
{
	struct device *parent;

	pthread_mutex_lock(&s->table_lock);
	unlink_device(s, d);
	parent = find_name(s, buried ? d->m.parent : m->parent);
	if (parent && !(buried ? d->m.deleted : m->deleted)) {
		if (!buried)
			parent->n_children++;
		else if (parent->n_children > 0)
			parent->n_children--;
	}
	d->buried = buried;
	d->m = *m;
	link_device(s, d);
	if (buried)
		s->deferred_count++;
	else
		s->deferred_count -= s->deferred_count > 0;
	pthread_mutex_unlock(&s->table_lock);
}

/* Bury d (pool lock held): its tombstone replaces its file, its name is
 * free at once, and the worker (or the caller) deletes it from the pool.
 * old gets d's metadata as it was, for unbury. A rename whose fsync
 * failed is a burial all the same, whose durability is unknown: no more
 * changes until a restart, which finds the file where it is. */
static int bury(struct deviceset *s, struct device *d, struct meta_device *old)
{
	struct meta_device m;
	bool moved;
	int r;

	*old = d->m;
	r = bury_files(s, d, &m, &moved);
	if (moved)
		set_buried(s, d, &m, true);
	if (r < 0 && moved)
		need_recovery(s, "device '%s': its tombstone %s/%s may not be durable (%s)", old->name,
			      s->deleted_dir, m.name, strerror(-r));
	return r;
}

/* Undo bury after the pool refused the delete, having changed nothing
 * (pool lock held): the tombstone goes back to the name's file. If it
 * cannot, d stays buried and the worker goes on trying to delete it. */
static void unbury(struct deviceset *s, struct device *d, const struct meta_device *old)
{
	bool moved;
	int r;

	r = meta_device_move(s->deleted_dir, d->m.name, s->meta_dir, old->name, &moved);
	if (moved)
		set_buried(s, d, old, false);
	if (r < 0 && moved) {
		need_recovery(s, "device '%s': its file is back in %s, but may not be durable (%s)", old->name,
			      s->meta_dir, strerror(-r));
	} else if (r < 0) {
		log_err("device '%s': its tombstone %s/%s stays (%s): the worker deletes it", old->name,
			s->deleted_dir, d->m.name, strerror(-r));
		pthread_cond_signal(&s->worker_cond);
	}
}

static void layout_path(struct deviceset *s, uint32_t id, char *buf, size_t len);

int ds_delete_device(struct deviceset *s, const char *name)
{
	bool discard = options_blk_discard(s->opts) && s->ops->discard;
	char dir[PATH_MAX];
	struct meta_device old;
	struct device *d;
	bool busy;
	int r;

	d = get_device(s, name, false);
	if (!d)
		return fail(s, NULL, -ENOENT, "rmdir '%s': no such device", name);
	/* The name asked for, which found d: d->m is the table's to change. */
	if (strcmp(name, DS_BASE_NAME) == 0) {
		put_device(s, d);
		return fail(s, NULL, -EPERM, "rmdir '%s': the base device cannot be deleted", name);
	}
	if (!lock_op(s, d)) {
		put_device(s, d);
		return fail(s, NULL, -ENOENT, "rmdir '%s': no such device", name);
	}
	if (d->mount_count > 0) {
		r = fail(s, d, -EBUSY, "rmdir '%s': the device is mounted (%d); unmount it first",
			 name, d->mount_count);
		goto out;
	}
	/* An automount never stands in the way, unless something uses it. */
	r = drop_automount(s, d, 0);
	if (r < 0) {
		r = fail(s, d, -EBUSY, "rmdir '%s': its automount is in use (%s)", name, strerror(-r));
		goto out;
	}
	/* dm.use_deferred_deletion deletes it when released, as asked. */
	if (!s->opts->deferred_deletion && (r = check_in_use(s, d, "rmdir", NULL)) < 0)
		goto out;
	pthread_mutex_lock(&s->lock);
	if (d->n_children > 0) {
		r = fail(s, d, -ENOTEMPTY, "rmdir '%s': the device has %d snapshot(s); delete them first",
			 name, d->n_children);
		goto out_unlock;
	}
	r = refuse_if_needs_recovery(s, d, "rmdir");
	if (r < 0)
		goto out_unlock;
	/* Busy (-EBUSY) is what deactivating says of a device open
	 * elsewhere: nothing changes, unless dm.use_deferred_deletion
	 * leaves it buried for the worker to delete when released. */
	busy = deactivate(s, d, false) == -EBUSY;
	if (busy && !s->opts->deferred_deletion) {
		r = fail(s, d, -EBUSY, "rmdir '%s': the device is open or mounted outside thinfs (turn on "
			 "dm.use_deferred_deletion to delete it when released)", name);
		goto out_unlock;
	}
	r = bury(s, d, &old);
	if (r < 0) {
		r = fail(s, d, r, "rmdir '%s': cannot record its deletion: %s", name, strerror(-r));
		goto out_unlock;
	}
	/* Without a discard (or a wait for the release) the delete is quick
	 * and done here; otherwise it is the worker's, and the name is free
	 * now. */
	r = busy || discard ? -EINPROGRESS : delete_from_pool(s, d);
	if (r == -EBUSY && s->opts->deferred_deletion)
		busy = true;
	if (r == 0) {
		log_info("deleted device '%s'", name);
	} else if (busy || discard) {
		log_info("deleted device '%s'; %s in the background", name,
			 busy ? "the pool lets it go when released" : "its space is given back");
		pthread_cond_signal(&s->worker_cond);
		r = 0;
	} else if (r == -EBUSY) {
		/* The pool kept the device and changed nothing: so does the
		 * tree. */
		unbury(s, d, &old);
		r = fail(s, d, r, "rmdir '%s': the pool still holds the device (turn on dm.use_deferred_deletion "
			 "to delete it when released)", name);
	} else {
		/* Another failure may come after the pool's change (a reflink
		 * image unlinked, its directory's fsync failed): the device
		 * stays buried, its deletion recorded, and the worker finishes
		 * it (the pool says -ENOENT if it is gone). */
		log_err("rmdir '%s': the pool's delete failed (%s): the device is gone from the tree and the worker "
			"retries its delete", name, strerror(-r));
		pthread_cond_signal(&s->worker_cond);
		r = 0;
	}
out_unlock:
	pthread_mutex_unlock(&s->lock);
	/* Deleted, its directory in the autofs goes too (kept till now). */
	if (r == 0 && s->autofs) {
		mount_dir_of(s, d->m.device_id, dir, sizeof(dir));
		if (rmdir(dir) < 0 && errno != ENOENT)
			log_warn("device '%s': cannot remove its mount directory %s: %s", name, dir, strerror(errno));
		layout_path(s, d->m.device_id, dir, sizeof(dir));
		if (unlink(dir) < 0 && errno != ENOENT)
			log_warn("device '%s': cannot remove %s: %s", name, dir, strerror(errno));
	}
out:
	unlock_op(d);
	put_device(s, d);
	return r;
}

/* ------------------------------------------------------------------ */
/* Rename                                                             */

/* Is d ancestor or below it? Table lock held; the chain is bounded by
 * the table's size, should metadata ever make a loop. */
static bool within(struct deviceset *s, struct device *d, const char *ancestor)
{
	size_t depth = 0;

	if (strcmp(ancestor, DS_BASE_NAME) == 0)
		return true;
	while (d && depth++ <= s->n_devices) {
		if (strcmp(d->m.name, ancestor) == 0)
			return true;
		if (!d->m.parent[0])
			return false;
		d = find_name(s, d->m.parent);
	}
	return false;
}

bool ds_within(struct deviceset *s, const char *name, const char *ancestor)
{
	struct device *d;
	bool in;

	pthread_mutex_lock(&s->table_lock);
	d = find_name(s, name);
	in = d && !d->m.deleted && within(s, d, ancestor);
	pthread_mutex_unlock(&s->table_lock);
	return in;
}

/* The mounted devices within a subtree, as ds_subtree_busy finds them:
 * the first counted mount, and the IDs of the automounts to try. */
struct subtree_mounts {
	char mounted[DS_NAME_MAX + 1];
	int count;
	uint32_t *auto_ids;
	size_t n_auto, cap_auto;
};

/* The table lock or the pool lock held. */
static int find_mounts(struct deviceset *s, const char *top, struct subtree_mounts *m)
{
	struct device *d;

	for (size_t i = 0; i < s->n_buckets; i++)
		for (d = s->by_name[i]; d; d = d->next_name) {
			if (d->m.deleted || (d->mount_count == 0 && !d->automounted) || !within(s, d, top))
				continue;
			if (d->mount_count > 0) {
				snprintf(m->mounted, sizeof(m->mounted), "%s", d->m.name);
				m->count = d->mount_count;
				return 0;
			}
			if (GROW(m->auto_ids, m->cap_auto, m->n_auto, 8) < 0)
				return -ENOMEM;
			m->auto_ids[m->n_auto++] = d->m.device_id;
		}
	return 0;
}

/* The words for the counted mount find_mounts found (its locks held). */
static void mounted_why(struct deviceset *s, const struct subtree_mounts *m, char *why, size_t len)
{
	char path[PATH_MAX];

	device_path(s, find_name(s, m->mounted), path, sizeof(path));
	snprintf(why, len, "the device at '%s' is mounted (%d)", path, m->count);
}

/* Is d or a descendant of d mounted? Pool and table locks held. */
static bool subtree_mounted(struct deviceset *s, struct device *d)
{
	struct device *x, *next;

	if (d->mount_count > 0)
		return true;
	for (size_t i = 0; i < s->n_buckets; i++)
		for (x = s->by_name[i]; x; x = next) {
			struct device *up = x;
			size_t depth = 0;

			next = x->next_name;
			if (x->mount_count == 0 || x->m.deleted)
				continue;
			while (up && up->m.parent[0] && depth++ <= s->n_devices) {
				if (strcmp(up->m.parent, d->m.name) == 0)
					return true;
				up = find_name(s, up->m.parent);
			}
		}
	return false;
}

void reparent_one(struct deviceset *s, struct device *c, void *argp)
{
	struct reparent_arg *a = argp;
	int r;

	if (c->buried || strcmp(c->m.parent, a->old_name) != 0)
		return;
	TABLE(s, snprintf(c->m.parent, sizeof(c->m.parent), "%s", a->new_name));
	r = s->opts->read_only ? 0 : meta_device_save(s->meta_dir, &c->m);
	if (r < 0 && a->r == 0)
		a->r = r;
}

int ds_rename_device(struct deviceset *s, const char *old_name, const char *new_name)
{
	struct reparent_arg ra = { old_name, new_name, 0 };
	struct meta_device m;
	struct device *d;
	bool busy;
	int r, u;

	d = get_device(s, old_name, false);
	if (!d)
		return fail(s, NULL, -ENOENT, "rename '%s': no such device", old_name);
	r = ds_check_name(new_name);
	if (r < 0) {
		r = fail(s, d, r, "rename '%s' to '%s': %s", old_name, new_name,
			 name_problem(r));
		put_device(s, d);
		return r;
	}
	if (strcmp(old_name, DS_BASE_NAME) == 0) {
		put_device(s, d);
		return fail(s, NULL, -EPERM, "rename '%s': the base device cannot be renamed", old_name);
	}
	if (!lock_op(s, d)) {
		put_device(s, d);
		return fail(s, NULL, -ENOENT, "rename '%s': no such device", old_name);
	}
	pthread_mutex_lock(&s->lock);
	if (strcmp(old_name, new_name) == 0) {
		r = 0;
		goto out;
	}
	if (find_name(s, new_name)) {
		char path[PATH_MAX];

		TABLE(s, device_path(s, find_name(s, new_name), path, sizeof(path)));
		r = fail(s, d, -EEXIST, "rename '%s' to '%s': the name is used by the device at '%s' (names are "
			 "unique in the pool)", old_name, new_name, path);
		goto out;
	}
	if (add_name_pending(s, new_name)) {
		r = fail(s, d, -EEXIST, "rename '%s' to '%s': a device of that name is being made", old_name, new_name);
		goto out;
	}
	TABLE(s, busy = subtree_mounted(s, d));
	if (busy) {
		struct subtree_mounts sm = { 0 };
		char why[PATH_MAX + 64] = "";

		TABLE(s, if (find_mounts(s, old_name, &sm) == 0 && sm.mounted[0])
				 mounted_why(s, &sm, why, sizeof(why)));
		free(sm.auto_ids);
		r = fail(s, d, -EBUSY, "rename '%s': it or one of its snapshots is mounted (%s)", old_name, why);
		goto out;
	}
	r = refuse_if_needs_recovery(s, d, "rename");
	if (r < 0)
		goto out;
	/* The new file names the old one until the move is complete, so a
	 * crash anywhere here is rolled forward at the next start. The
	 * active device's name is its ID, so nothing changes in the pool. */
	m = d->m;
	snprintf(m.name, sizeof(m.name), "%s", new_name);
	snprintf(m.renamed_from, sizeof(m.renamed_from), "%s", old_name);
	r = meta_device_save(s->meta_dir, &m);
	if (r < 0) {
		r = fail(s, d, r, "rename '%s' to '%s': cannot write metadata: %s", old_name, new_name, strerror(-r));
		goto out;
	}
	fault_point("rename-after-new-file");
	for_each_device(s, reparent_one, &ra);
	fault_point("rename-after-children");
	u = meta_device_remove(s->meta_dir, old_name);
	fault_point("rename-after-old-removed");
	if (ra.r == 0 && (u == 0 || u == -ENOENT)) {
		m.renamed_from[0] = '\0';
		u = meta_device_save(s->meta_dir, &m);
	}
	if (ra.r < 0 || u < 0) {
		/* The roll-forward record (renamed_from) stays, in the file and
		 * in memory so later saves keep it: the next start finishes. */
		need_recovery(s, "rename '%s' to '%s': metadata not fully written (%s); the next start completes it",
			      old_name, new_name, strerror(ra.r < 0 ? -ra.r : -u));
	}
	TABLE(s, unlink_device(s, d); d->m = m; link_device(s, d));
	r = 0;
	log_info("renamed device '%s' to '%s'", old_name, new_name);
	/* An operation on d succeeded: its error is stale. */
	pthread_mutex_lock(&s->err_lock);
	if (d->last_error)
		d->last_error[0] = '\0';
	pthread_mutex_unlock(&s->err_lock);
out:
	pthread_mutex_unlock(&s->lock);
	unlock_op(d);
	put_device(s, d);
	return r;
}

/* ------------------------------------------------------------------ */
/* Mount and unmount                                                  */

static void set_xfs_retries(struct deviceset *s, struct device *d, const char *dev_path)
{
	char real[PATH_MAX], path[PATH_MAX + 64], val[32];
	const char *base;
	int fd;

	if (!s->opts->xfs_nospace_max_retries_set || strcmp(s->dsm.base_device_fs, "xfs") != 0)
		return;
	if (!realpath(dev_path, real))
		return;
	base = strrchr(real, '/');
	snprintf(path, sizeof(path), "/sys/fs/xfs/%s/error/metadata/ENOSPC/max_retries",
		 base ? base + 1 : real);
	snprintf(val, sizeof(val), "%" PRIu64, s->opts->xfs_nospace_max_retries);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, val, strlen(val)) < 0)
		log_warn("device '%s': cannot set dm.xfs_nospace_max_retries in %s: %s",
			 d->m.name, path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* STATEDIR/mnt/ID.automount (with an autofs there, which holds only
 * directories: STATEDIR/mnt-automounts/ID.automount) marks the mount on
 * STATEDIR/mnt/ID as an automount, so that a restart adopts it as one.
 * An empty file, created and removed in one call each; no fsync: it means
 * something only while the mount exists, and no mount survives a reboot. */
void automount_marker(struct deviceset *s, struct device *d, bool set)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%" PRIu32 ".automount", s->mark_dir, d->m.device_id);
	if (set) {
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0 || close(fd) < 0)
			log_warn("device '%s': cannot mark its automount (%s: %s); a restart counts it as mounted",
				 d->m.name, path, strerror(errno));
	} else if (unlink(path) < 0 && errno != ENOENT) {
		log_warn("device '%s': cannot remove %s: %s", d->m.name, path, strerror(errno));
	}
}

bool has_automount_marker(struct deviceset *s, struct device *d)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%" PRIu32 ".automount", s->mark_dir, d->m.device_id);
	return access(path, F_OK) == 0;
}

/* With an autofs, "not a Docker layer" is kept across restarts in
 * MARKDIR/ID.plain (a layer is not: a filesystem changed while thinfs did
 * not run must not lead the link into a rootfs/ that may be a symlink by
 * now); without its file, the first read of the link mounts. A cache, no
 * fsync: lost, a link read mounts once. */
static void layout_path(struct deviceset *s, uint32_t id, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%" PRIu32 ".plain", s->mark_dir, id);
}

void note_layout(struct deviceset *s, struct device *d, bool layer)
{
	TABLE(s, d->docker_layout = layer; d->layout_known = true);
	save_layout(s, d);
}

/* MARKDIR/ID.plain after d's layout in memory (no engine lock held: a
 * create or unlink). */
static void save_layout(struct deviceset *s, struct device *d)
{
	char path[PATH_MAX];
	bool known, layer;
	int fd;

	if (!s->autofs)
		return;
	TABLE(s, known = d->layout_known; layer = d->docker_layout);
	layout_path(s, d->m.device_id, path, sizeof(path));
	if (!known || layer) {
		if (unlink(path) < 0 && errno != ENOENT)
			log_warn("device '%s': cannot remove %s: %s", d->m.name, path, strerror(errno));
	} else if ((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) < 0 || close(fd) < 0) {
		log_debug("device '%s': %s: %s", d->m.name, path, strerror(errno));
	}
}

/* for_each_device at start, with an autofs: what note_layout kept. */
void load_layout(struct deviceset *s, struct device *d, void *arg)
{
	char path[PATH_MAX];

	(void)arg;
	if (d->layout_known || d->buried)
		return;
	layout_path(s, d->m.device_id, path, sizeof(path));
	d->layout_known = access(path, F_OK) == 0;
}

/* Make the mount directory STATEDIR/mnt/ID (or its -o ro counterpart;
 * 0755: as open as the filesystem's own root, the directory above decides
 * who gets that far). */
static int make_mount_dir(struct deviceset *s, const char *dir)
{
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	/* An autofs lives in memory (and has no fsync). */
	return s->autofs ? 0 : meta_fsync_path(s->mnt_dir);
}

/* Remove an empty mount directory; a failure only leaves it behind. In an
 * autofs it stays while the device exists (ds_delete_device removes it):
 * gone, a stat of the name would be a walk that mounts (autofs.c). */
static void remove_mount_dir(struct deviceset *s, struct device *d, const char *dir)
{
	if (s->autofs)
		return;
	if (rmdir(dir) < 0 && errno != ENOENT)
		log_warn("device '%s': cannot remove its mount directory %s: %s", d->m.name, dir,
			 strerror(errno));
}

int ds_mount_dir(struct deviceset *s, const char *name, char *buf, size_t len)
{
	struct device *d = get_device(s, name, false);

	if (!d)
		return -ENOENT;
	mount_dir_of(s, d->m.device_id, buf, len);
	put_device(s, d);
	return 0;
}

/* Record count explicit mounts (read-only or not) in d's file, before the
 * mount state changes (doc/design.md §4): a start mounts again what the
 * file records, so a crash anywhere leaves either the old record or the
 * new one, each meaning a state the next start restores. One atomic write
 * when the record changes; none under -o ro, which writes nothing (its
 * mounts last as long as the run). op_lock held, so no other operation
 * changes d's mount state meanwhile; the pool lock keeps the file's other
 * writers (rename, reparent, resize) out. */
static int record_mount(struct deviceset *s, struct device *d, int count, bool ro)
{
	struct meta_device m;
	int r = 0;

	if (s->opts->read_only)
		return 0;
	pthread_mutex_lock(&s->lock);
	m = d->m;
	/* A file thinfs did not write, Docker's (it has no "created"), is
	 * never rewritten (start.c, apply_docker_genealogy): a mount of
	 * such a device is not recorded, and a start does not restore it. */
	if (m.created != 0 && (m.mount_count != count || m.mount_read_only != (count > 0 && ro))) {
		m.mount_count = count;
		m.mount_read_only = count > 0 && ro;
		r = meta_device_save(s->meta_dir, &m);
		if (r == 0)
			TABLE(s, d->m.mount_count = m.mount_count; d->m.mount_read_only = m.mount_read_only);
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* Put the record back after the change it announced failed. */
static void unrecord_mount(struct deviceset *s, struct device *d, int count, bool ro)
{
	int r = record_mount(s, d, count, ro);

	if (r < 0)
		log_warn("device '%s': cannot put back its recorded mount count %d (%s): the next start restores what "
			 "its file says (%d)", d->m.name, count, strerror(-r), d->m.mount_count);
}

/* The mount flags every device filesystem gets: read-only when asked,
 * nosuid,nodev behind allow_other unless dm.mountopt says otherwise, and
 * under -o ro no journal replay (the block device is read-only too). */
static unsigned mount_how(struct deviceset *s, bool ro)
{
	return (ro ? FSUTIL_RDONLY : 0) | (s->opts->allow_other ? FSUTIL_SAFE : 0) |
	       (s->opts->read_only ? FSUTIL_NORECOVERY : 0);
}

/* First mount of d: activate, make its mount directory, mount. op_lock
 * held; the caller records the mount state. */
static int mount_device(struct deviceset *s, struct device *d, bool ro, const char *why)
{
	char dev_path[POOL_DEV_PATH_MAX], dir[PATH_MAX];
	bool layout;
	int r;

	mount_dir_of(s, d->m.device_id, dir, sizeof(dir));
	pthread_mutex_lock(&s->lock);
	r = activate(s, d);
	snprintf(dev_path, sizeof(dev_path), "%s", d->dev_path);
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		return fail(s, d, r, "%s '%s': cannot activate the device: %s", why, d->m.name, strerror(-r));
	r = make_mount_dir(s, dir);
	if (r == 0)
		r = fsutil_mount(dev_path, dir, s->dsm.base_device_fs, mount_how(s, ro), s->opts->mount_opt);
	if (r < 0) {
		remove_mount_dir(s, d, dir);
		pthread_mutex_lock(&s->lock);
		deactivate(s, d, false);
		pthread_mutex_unlock(&s->lock);
		return fail(s, d, r, "%s '%s' on %s: %s", why, d->m.name, dir, strerror(-r));
	}
	set_xfs_retries(s, d, dev_path);
	layout = docker_layer_layout(dir);
	note_layout(s, d, layout);
	log_info("%s device '%s' (%s) on %s%s", strcmp(why, "mount") == 0 ? "mounted" : "automounted",
		 d->m.name, dev_path, dir, ro ? " read-only" : "");
	return 0;
}

int ds_mount(struct deviceset *s, const char *name, bool ro)
{
	struct device *d;
	char dir[PATH_MAX];
	int r;

	d = get_device(s, name, false);
	if (!d)
		return fail(s, NULL, -ENOENT, "mount '%s': no such device", name);
	if (!ro && s->opts->read_only) {
		r = fail(s, d, -EROFS, "mount '%s' read-write: thinfs runs read-only (-o ro); 'mount ro' mounts it",
			 name);
		put_device(s, d);
		return r;
	}
	if (!lock_op(s, d)) {
		put_device(s, d);
		return fail(s, NULL, -ENOENT, "mount '%s': the device was deleted meanwhile", name);
	}
	if (d->mount_count > 0) {
		if (d->read_only != ro) {
			r = fail(s, d, -EBUSY, "mount '%s': already mounted %s", name,
				 d->read_only ? "read-only" : "read-write");
		} else {
			r = record_mount(s, d, d->mount_count + 1, ro);
			if (r < 0) {
				r = fail_logged(s, d, r, "mount '%s': cannot record the mount in %s/%s: %s", name,
						s->meta_dir, name, strerror(-r));
				goto out;
			}
			TABLE(s, d->mount_count++);
			log_info("mounted device '%s' again (count %d)", name, d->mount_count);
		}
		goto out;
	}
	r = record_mount(s, d, 1, ro);
	if (r < 0) {
		r = fail_logged(s, d, r, "mount '%s': cannot record the mount in %s/%s: %s", name, s->meta_dir, name,
				strerror(-r));
		goto out;
	}
	if (d->automounted) {
		/* The explicit mount takes the automount over: counted from
		 * now on, and read-write if asked (a remount keeps whoever is
		 * inside it there). */
		r = 0;
		if (!ro) {
			mount_dir_of(s, d->m.device_id, dir, sizeof(dir));
			r = fsutil_mount(d->dev_path, dir, s->dsm.base_device_fs,
					 mount_how(s, false) | FSUTIL_REMOUNT, s->opts->mount_opt);
			if (r < 0) {
				r = fail(s, d, r, "mount '%s': cannot make its automount read-write: %s", name,
					 strerror(-r));
				unrecord_mount(s, d, 0, false);
				goto out;
			}
		}
		log_info("mounted device '%s'%s (it was automounted)", name, ro ? " read-only" : "");
	} else {
		r = mount_device(s, d, ro, "mount");
		if (r < 0) {
			unrecord_mount(s, d, 0, false);
			goto out;
		}
	}
	if (d->automounted)
		automount_marker(s, d, false);
	set_held(s, d, NULL, NULL);
	TABLE(s, d->automounted = false; d->mount_count = 1; d->read_only = ro);
out:
	unlock_op(d);
	put_device(s, d);
	return r;
}

int ds_automount(struct deviceset *s, const char *name)
{
	struct device *d;
	bool mounted;
	int r = 0;

	if (!s->opts->automount)
		return 0;
	d = get_device(s, name, false);
	if (!d)
		return -ENOENT;
	TABLE(s, mounted = d->mount_count > 0 || d->automounted);
	if (mounted || !lock_op(s, d))
		goto out;
	if (d->mount_count == 0 && !d->automounted) {
		/* The marker first: a kill between the mount and the marker
		 * would make the next start adopt a counted read-only mount. */
		automount_marker(s, d, true);
		r = mount_device(s, d, true, "automount");
		if (r == 0)
			TABLE(s, d->automounted = true; d->read_only = true);
		else
			automount_marker(s, d, false);
	}
	unlock_op(d);
out:
	put_device(s, d);
	return r;
}

/* Unmount d's filesystem. how: MNT_DETACH for the last counted unmount
 * (as the original engine did), 0 to unmount only what nothing uses
 * (-EBUSY otherwise), MNT_EXPIRE to expire an idle automount (-EAGAIN the
 * first time: marked). op_lock held. */
int unmount_fs(struct deviceset *s, struct device *d, int how)
{
	char dir[PATH_MAX];
	bool layout;

	mount_dir_of(s, d->m.device_id, dir, sizeof(dir));
	/* What rootfs leads to until the next mount: with an autofs, the
	 * link is answered before the walk mounts it. Not before an expiry:
	 * a look inside would count as a use. */
	if (how != MNT_EXPIRE) {
		layout = docker_layer_layout(dir);
		note_layout(s, d, layout);
	}
	if (umount2(dir, how) < 0 && errno != EINVAL && errno != ENOENT) {
		int e = errno;

		if (how == MNT_DETACH)
			log_warn("device '%s': unmount %s: %s", d->m.name, dir, strerror(e));
		return -e;
	}
	remove_mount_dir(s, d, dir);
	return 0;
}

/* Take away d's automount if nothing uses it (how 0) or it has been idle
 * since the last call (MNT_EXPIRE), and deactivate d. 0 if d has no
 * automount; -EBUSY / -EAGAIN when it stays. op_lock held. */
int drop_automount(struct deviceset *s, struct device *d, int how)
{
	int r;

	if (!d->automounted)
		return 0;
	r = unmount_fs(s, d, how);
	if (r < 0)
		return r;
	automount_marker(s, d, false);
	TABLE(s, d->automounted = false; d->read_only = false);
	pthread_mutex_lock(&s->lock);
	deactivate(s, d, false);
	pthread_mutex_unlock(&s->lock);
	log_info("device '%s': automount %s", d->m.name, how == MNT_EXPIRE ? "expired" : "taken away");
	return 0;
}

/* d's last counted mount was just unmounted (lazily): forget it and
 * deactivate d. A filesystem that programs still use lives on, detached,
 * and keeps its block device claimed. op_lock held. */
static void after_unmount(struct deviceset *s, struct device *d)
{
	char dev_path[POOL_DEV_PATH_MAX];
	struct stat st;
	bool busy;
	int r;

	TABLE(s, d->mount_count = 0; d->read_only = false);
	snprintf(dev_path, sizeof(dev_path), "%s", d->dev_path);
	busy = (r = fsutil_open_excl(dev_path)) == -EBUSY && stat(dev_path, &st) == 0;
	if (r >= 0)
		close(r);
	pthread_mutex_lock(&s->lock);
	r = deactivate(s, d, s->opts->deferred_removal);
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		log_warn("device '%s': unmounted, but still busy; it is deactivated when released", d->m.name);
	set_held(s, d, busy && r == 0 ? dev_path : NULL, &st);
	if (busy)
		log_warn("unmounted device '%s', but its filesystem lives on, detached, on %s: programs still use it",
			 d->m.name, dev_path);
	else
		log_info("unmounted device '%s'", d->m.name);
}

int ds_unmount(struct deviceset *s, const char *name)
{
	struct device *d;
	int r = 0, recorded;

	d = get_device(s, name, false);
	if (!d)
		return fail(s, NULL, -ENOENT, "unmount '%s': no such device", name);
	if (!lock_op(s, d)) {
		put_device(s, d);
		return fail(s, NULL, -ENOENT, "unmount '%s': the device was deleted meanwhile", name);
	}
	TABLE(s, recorded = d->m.mount_count);
	if (d->mount_count == 0 && recorded > 0) {
		/* Recorded mounted, but the start could not mount it again:
		 * the unmount forgets the record. */
		r = record_mount(s, d, 0, false);
		if (r < 0)
			r = fail_logged(s, d, r, "unmount '%s': cannot record it in %s/%s: %s", name, s->meta_dir, name,
					strerror(-r));
		else
			log_info("device '%s': forgot its recorded mount (it was not mounted)", name);
		goto out;
	}
	if (d->mount_count == 0) {
		r = fail(s, d, -EINVAL, "unmount '%s': the device is not mounted%s", name,
			 d->automounted ? " (only automounted: it goes when unused)" : "");
		goto out;
	}
	r = record_mount(s, d, d->mount_count - 1, d->read_only);
	if (r < 0) {
		r = fail_logged(s, d, r, "unmount '%s': cannot record the unmount in %s/%s: %s", name, s->meta_dir,
				name, strerror(-r));
		goto out;
	}
	if (d->mount_count > 1) {
		TABLE(s, d->mount_count--);
		log_info("unmounted device '%s' once (count %d)", name, d->mount_count);
		goto out;
	}
	r = unmount_fs(s, d, MNT_DETACH);
	if (r < 0) {
		r = fail(s, d, r, "unmount '%s': %s", name, strerror(-r));
		unrecord_mount(s, d, 1, d->read_only);
		goto out;
	}
	after_unmount(s, d);
out:
	unlock_op(d);
	put_device(s, d);
	return r;
}

/* At start, after adoption: d mounted as its file records (read-write or
 * read-only, with its count), its mount adopted if it is still there
 * (after a kill, or what a stop left in use), made anew if not (after a
 * reboot, or an idle one a stop unmounted). A counted mount adopted with
 * no record (an older thinfs's file) gets one; one whose record says 0
 * (a kill between an unmount's record and the unmount, or a -o ro run's
 * mount) is unmounted, as that unmount would have done (doc/design.md
 * §4). -o ro mounts none of them: it writes nothing and mounts what it is
 * asked to, read-only. Nothing else runs yet. */
void restore_mount(struct deviceset *s, struct device *d, void *arg)
{
	int want = d->m.mount_count, r;
	bool ro = d->m.mount_read_only;
	char dir[PATH_MAX];

	(void)arg;
	if (d->m.deleted)
		return;
	if (s->opts->read_only) {
		if (want > 0)
			log_info("device '%s': recorded mounted, left unmounted by a read-only run (-o ro)",
				 d->m.name);
		return;
	}
	if (want == 0 && d->mount_count == 0)
		return;
	if (want == 0 && !d->m.mount_recorded) {
		r = record_mount(s, d, d->mount_count, d->read_only);
		if (r < 0)
			fail_logged(s, d, r, "device '%s': cannot record its adopted mount (%s): once it is "
				    "unmounted (a stop, a reboot), a start does not mount it again", d->m.name,
				    strerror(-r));
		return;
	}
	if (want == 0) {
		r = unmount_fs(s, d, MNT_DETACH);
		if (r < 0)
			fail_logged(s, d, r, "device '%s': recorded unmounted, but its adopted mount stays: %s",
				    d->m.name, strerror(-r));
		else
			after_unmount(s, d);
		return;
	}
	if (d->mount_count > 0 || d->automounted) {
		if (d->read_only != ro) {
			mount_dir_of(s, d->m.device_id, dir, sizeof(dir));
			r = fsutil_mount(d->dev_path, dir, s->dsm.base_device_fs, mount_how(s, ro) | FSUTIL_REMOUNT,
					 s->opts->mount_opt);
			if (r < 0) {
				fail(s, d, r, "device '%s': cannot remount its adopted mount %s as recorded: %s",
				     d->m.name, ro ? "read-only" : "read-write", strerror(-r));
				return;
			}
		}
		if (d->automounted)
			automount_marker(s, d, false);
		TABLE(s, d->automounted = false; d->mount_count = want; d->read_only = ro);
		log_info("device '%s': adopted mount, %s, count %d as recorded", d->m.name,
			 ro ? "read-only" : "read-write", want);
		return;
	}
	r = mount_device(s, d, ro, "mount");
	if (r < 0) {
		/* mount_device logged why; the ctl says what to do. */
		fail_logged(s, d, r, "device '%s': recorded mounted, but the start could not mount it (%s): "
			    "'mount' in its ctl tries again, 'unmount' forgets the record", d->m.name, strerror(-r));
		return;
	}
	TABLE(s, d->mount_count = want; d->read_only = ro);
	log_info("device '%s': mounted again as recorded (%s, count %d)", d->m.name, ro ? "read-only" : "read-write",
		 want);
}

/* ------------------------------------------------------------------ */
/* Resize                                                             */

/* A device larger than the whole pool: allowed (thin provisioning), and
 * said, as LVM warns of an overcommitted thin pool. */
static void warn_beyond_pool(struct deviceset *s, const char *name, uint64_t size)
{
	struct pool_status st;
	int r;

	pthread_mutex_lock(&s->lock);
	r = s->ops->status(s->pool, &st);
	pthread_mutex_unlock(&s->lock);
	if (r == 0 && size > st.data_total)
		log_warn("device '%s' (%" PRIu64 " bytes) is now larger than the pool's data space (%" PRIu64
			 " bytes): writes into it fail once the pool is full; resize-pool grows the pool", name, size,
			 st.data_total);
}

int ds_resize_device(struct deviceset *s, const char *name, uint64_t size)
{
	struct device *d;
	char dm[POOL_DEV_NAME_MAX], dev_path[POOL_DEV_PATH_MAX], dir[PATH_MAX];
	uint64_t old;
	bool mounted;
	int r;

	d = get_device(s, name, false);
	if (!d)
		return fail(s, NULL, -ENOENT, "resize '%s': no such device", name);
	if (!lock_op(s, d)) {
		put_device(s, d);
		return fail(s, NULL, -ENOENT, "resize '%s': the device was deleted meanwhile", name);
	}
	r = drop_automount(s, d, 0);
	if (r < 0) {
		r = fail(s, d, -EBUSY, "resize '%s': its automount is in use (%s)", name, strerror(-r));
		goto out;
	}
	/* An unmounted filesystem is grown offline: never one still live. */
	if (d->mount_count == 0 && (r = check_in_use(s, d, "resize", NULL)) < 0)
		goto out;
	pthread_mutex_lock(&s->lock);
	old = d->m.size;
	if (size <= old) {
		pthread_mutex_unlock(&s->lock);
		r = fail(s, d, -EINVAL, "resize '%s': %" PRIu64 " bytes is not more than its size %" PRIu64
			 " (devices only grow)", name, size, old);
		goto out;
	}
	r = refuse_if_needs_recovery(s, d, "resize");
	if (r < 0) {
		pthread_mutex_unlock(&s->lock);
		goto out;
	}
	dm_name_of(s, d->m.device_id, dm, sizeof(dm));
	r = s->ops->resize_thin(s->pool, dm, d->m.device_id, size);
	if (r == 0) {
		struct meta_device m = d->m;

		m.size = size;
		r = meta_device_save(s->meta_dir, &m);
		if (r == 0)
			TABLE(s, d->m.size = size);
	}
	mounted = d->mount_count > 0;
	if (r == 0 && !mounted)
		r = activate(s, d);
	snprintf(dev_path, sizeof(dev_path), "%s", d->dev_path);
	pthread_mutex_unlock(&s->lock);
	if (r < 0) {
		r = fail(s, d, r, "resize '%s': %s", name, strerror(-r));
		goto out;
	}
	mount_dir_of(s, d->m.device_id, dir, sizeof(dir));
	r = fsutil_grow(dev_path, s->dsm.base_device_fs, mounted ? dir : NULL);
	if (!mounted) {
		pthread_mutex_lock(&s->lock);
		deactivate(s, d, false);
		pthread_mutex_unlock(&s->lock);
	}
	if (r < 0)
		r = fail(s, d, r, "resize '%s': the device grew but its filesystem did not: %s", name, strerror(-r));
	else
		log_info("resized device '%s' from %" PRIu64 " to %" PRIu64 " bytes", name, old, size);
	if (r == 0)
		warn_beyond_pool(s, name, size);
out:
	unlock_op(d);
	put_device(s, d);
	return r;
}

/* Grow the pool's data to data_size bytes, if the metadata space can map
 * it: -E2BIG with *max set otherwise (nothing changed). Pool lock held;
 * shared by resize-pool and dm.autoextend. */
int resize_pool_locked(struct deviceset *s, uint64_t data_size, uint64_t *max)
{
	int r;

	*max = s->ops->max_data_size ? s->ops->max_data_size(s->pool) : UINT64_MAX;
	if (data_size > *max)
		return -E2BIG;
	r = s->ops->resize_pool(s->pool, data_size);
	s->status_at.tv_sec = 0; /* the free-space floor reads the new size */
	return r;
}

int ds_resize_pool(struct deviceset *s, uint64_t data_size)
{
	struct pool_status st;
	uint64_t max;
	int r;

	if (s->opts->read_only)
		return fail(s, NULL, -EROFS, "resize-pool: thinfs runs read-only (-o ro)");
	pthread_mutex_lock(&s->lock);
	r = s->ops->status(s->pool, &st);
	if (r == 0 && data_size < st.data_total) {
		pthread_mutex_unlock(&s->lock);
		return fail(s, NULL, -EINVAL, "resize-pool %" PRIu64 ": smaller than the pool's %" PRIu64
			    " bytes, and a pool never shrinks: give a size of at least %" PRIu64 " bytes; nothing changed",
			    data_size, st.data_total, st.data_total);
	}
	r = resize_pool_locked(s, data_size, &max);
	pthread_mutex_unlock(&s->lock);
	if (r == -E2BIG)
		return fail(s, NULL, -EINVAL, "resize-pool %" PRIu64 ": more than the %" PRIu64
			    " bytes the pool's metadata space can map (a typo?); nothing changed", data_size, max);
	if (r < 0)
		return fail(s, NULL, r, "resize-pool %" PRIu64 ": %s", data_size, strerror(-r));
	log_info("pool data space resized to %" PRIu64 " bytes", data_size);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Status                                                             */

/* Where d's files are when it is mounted (table lock held): its mount
 * directory, or a Docker layer's rootfs/ in it. */
static void rootfs_of(struct deviceset *s, struct device *d, char *buf, size_t len)
{
	char dir[PATH_MAX];

	mount_dir_of(s, d->m.device_id, dir, sizeof(dir));
	snprintf(buf, len, "%s%s", dir, d->docker_layout ? "/rootfs" : "");
}

/* A copy of d's state from memory alone (table lock held): no backend
 * call, so a lookup never waits for the pool. */
static void fill_info(struct deviceset *s, struct device *d, struct ds_device_info *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", d->m.name);
	snprintf(out->parent, sizeof(out->parent), "%s", d->m.parent);
	out->device_id = d->m.device_id;
	out->size = d->m.size;
	out->transaction_id = d->m.transaction_id;
	out->initialized = d->m.initialized;
	out->deleted = d->m.deleted;
	out->mounted = d->mount_count > 0;
	out->mount_count = d->mount_count;
	out->automounted = d->automounted;
	out->read_only = d->read_only;
	out->held = d->held != NULL;
	out->active = d->active || out->held;
	dm_name_of(s, d->m.device_id, out->dm_name, sizeof(out->dm_name));
	snprintf(out->dev_path, sizeof(out->dev_path), "%s", d->active ? d->dev_path : d->held ? d->held->path : "");
	snprintf(out->filesystem, sizeof(out->filesystem), "%s", s->dsm.base_device_fs);
	out->created = d->m.created;
	pthread_mutex_lock(&s->err_lock);
	snprintf(out->last_error, sizeof(out->last_error), "%s", d->last_error ? d->last_error : "");
	out->last_error_at = d->last_error && d->last_error[0] ? d->last_error_at : 0;
	pthread_mutex_unlock(&s->err_lock);
	out->n_children = d->n_children;
	mount_dir_of(s, d->m.device_id, out->mount_dir, sizeof(out->mount_dir));
	rootfs_of(s, d, out->rootfs, sizeof(out->rootfs));
	out->exclusive_bytes = d->exclusive_bytes;
	out->shared_bytes = d->shared_bytes;
	out->usage_at = d->usage_at;
}

int ds_device_info(struct deviceset *s, const char *name, struct ds_device_info *out)
{
	struct device *d;
	int r = -ENOENT;

	pthread_mutex_lock(&s->table_lock);
	d = find_name(s, name);
	if (d && !d->m.deleted) {
		fill_info(s, d, out);
		r = 0;
	}
	pthread_mutex_unlock(&s->table_lock);
	return r;
}

/* Is the block device info's device was found holding still bound to
 * what it was (sysfs, no lock held meanwhile)? If not, it was let go:
 * forget it. */
void ds_device_recheck(struct deviceset *s, struct ds_device_info *info)
{
	char want[PATH_MAX] = "", now[PATH_MAX];
	struct device *d;
	dev_t rdev = 0;

	if (!info->held)
		return;
	pthread_mutex_lock(&s->table_lock);
	d = find_id(s, info->device_id);
	if (d && d->held) {
		snprintf(want, sizeof(want), "%s", d->held->id);
		rdev = d->held->rdev;
	}
	pthread_mutex_unlock(&s->table_lock);
	if (want[0] && fsutil_bdev_identity(rdev, now, sizeof(now)) == 0 && strcmp(now, want) == 0)
		return;
	pthread_mutex_lock(&s->table_lock);
	d = find_id(s, info->device_id);
	if (d && d->held && d->held->rdev == rdev && strcmp(d->held->id, want) == 0) {
		free(d->held);
		d->held = NULL;
	}
	if (d)
		fill_info(s, d, info);
	pthread_mutex_unlock(&s->table_lock);
}

void ds_device_usage(struct deviceset *s, struct ds_device_info *info)
{
	struct pool_dev_status st;

	ds_device_recheck(s, info);
	want_usage(s);
	/* The backend's per-device status is safe to ask concurrently
	 * (pool.h); no engine lock is held, so nobody waits on it. A device
	 * deleted meanwhile just stays unknown. */
	if (s->ops->dev_status(s->pool, info->dm_name, info->device_id, &st) == 0) {
		info->mapped_known = true;
		info->mapped_bytes = st.mapped_bytes;
	}
}

int ds_device_info_by_id(struct deviceset *s, uint32_t device_id, struct ds_device_info *out)
{
	struct device *d;
	int r = -ENOENT;

	pthread_mutex_lock(&s->table_lock);
	d = find_id(s, device_id);
	if (d && !d->m.deleted) {
		fill_info(s, d, out);
		r = 0;
	}
	pthread_mutex_unlock(&s->table_lock);
	return r;
}

void ds_set_device_error(struct deviceset *s, const char *name, const char *fmt, ...)
{
	struct device *d = get_device(s, name, false);
	va_list ap;

	va_start(ap, fmt);
	store_error(s, d, fmt, ap);
	va_end(ap);
	if (d)
		put_device(s, d);
}

void ds_clear_error(struct deviceset *s, const char *name)
{
	struct device *d = name && strcmp(name, DS_BASE_NAME) != 0 ? get_device(s, name, false) : NULL;

	if (name && strcmp(name, DS_BASE_NAME) != 0 && !d)
		return;
	pthread_mutex_lock(&s->err_lock);
	if (!d)
		s->last_error[0] = '\0';
	else if (d->last_error)
		d->last_error[0] = '\0';
	pthread_mutex_unlock(&s->err_lock);
	if (d)
		put_device(s, d);
}

int ds_device_path(struct deviceset *s, const char *name, char *buf, size_t len)
{
	struct device *d;
	int r = -ENOENT;

	pthread_mutex_lock(&s->table_lock);
	d = find_name(s, name);
	if (d && !d->m.deleted) {
		device_path(s, d, buf, len);
		r = 0;
	}
	pthread_mutex_unlock(&s->table_lock);
	return r;
}

int ds_subtree_busy(struct deviceset *s, const char *name, char *why, size_t len)
{
	struct subtree_mounts m;
	char path[PATH_MAX];
	int r;

	memset(&m, 0, sizeof(m));
	why[0] = '\0';
	pthread_mutex_lock(&s->table_lock);
	r = find_mounts(s, name, &m);
	if (r == 0 && m.mounted[0]) {
		mounted_why(s, &m, why, len);
		r = -EBUSY;
	}
	pthread_mutex_unlock(&s->table_lock);
	/* An automount stands in the way of rmdir only while used: take
	 * away those nothing uses, as rmdir would, each under its op_lock
	 * (never with the table lock: it is I/O). */
	for (size_t i = 0; r == 0 && i < m.n_auto; i++) {
		struct ds_device_info info;
		struct device *d;

		if (ds_device_info_by_id(s, m.auto_ids[i], &info) < 0 || !(d = get_device(s, info.name, false)))
			continue;
		if (lock_op(s, d)) {
			if (drop_automount(s, d, 0) < 0) {
				pthread_mutex_lock(&s->table_lock);
				device_path(s, d, path, sizeof(path));
				pthread_mutex_unlock(&s->table_lock);
				snprintf(why, len, "the automount of the device at '%s' is in use", path);
				r = -EBUSY;
			}
			unlock_op(d);
		}
		put_device(s, d);
	}
	free(m.auto_ids);
	return r;
}

/* The DS_TOP_USAGE visible devices with the most exclusive bytes, most
 * first (table lock held). */
static void rank_usage(struct deviceset *s, struct ds_pool_info *out)
{
	struct device *d;

	out->usage_at = atomic_load(&s->usage_at);
	for (size_t b = 0; b < s->n_buckets; b++)
		for (d = s->by_name[b]; d; d = d->next_name) {
			unsigned i = out->n_top_usage;

			if (!d->usage_at || is_base(d))
				continue;
			while (i > 0 && out->top_usage[i - 1].exclusive_bytes < d->exclusive_bytes)
				i--;
			if (i >= DS_TOP_USAGE)
				continue;
			memmove(&out->top_usage[i + 1], &out->top_usage[i],
				(DS_TOP_USAGE - 1 - i) * sizeof(out->top_usage[0]));
			snprintf(out->top_usage[i].name, sizeof(out->top_usage[i].name), "%s", d->m.name);
			out->top_usage[i].exclusive_bytes = d->exclusive_bytes;
			out->top_usage[i].shared_bytes = d->shared_bytes;
			if (out->n_top_usage < DS_TOP_USAGE)
				out->n_top_usage++;
		}
}

void ds_pool_usage(struct deviceset *s, struct ds_pool_info *out)
{
	want_usage(s);
	pthread_mutex_lock(&s->table_lock);
	rank_usage(s, out);
	pthread_mutex_unlock(&s->table_lock);
}

int ds_pool_info(struct deviceset *s, struct ds_pool_info *out)
{
	struct pool_status st;
	struct device *base;
	int r;

	memset(out, 0, sizeof(*out));
	/* Asked of the backend without an engine lock (pool.h): reading the
	 * pool's info never waits behind another operation's I/O. */
	r = s->ops->status(s->pool, &st);
	if (r == 0) {
		snprintf(out->backend, sizeof(out->backend), "%s", s->ops->name);
		snprintf(out->pool_name, sizeof(out->pool_name), "%s", st.pool_name);
		snprintf(out->data_file, sizeof(out->data_file), "%s", st.data_file);
		snprintf(out->data_loopback, sizeof(out->data_loopback), "%s", st.data_loopback);
		snprintf(out->metadata_file, sizeof(out->metadata_file), "%s", st.metadata_file);
		snprintf(out->metadata_loopback, sizeof(out->metadata_loopback), "%s", st.metadata_loopback);
		out->data_used = st.data_used;
		out->data_total = st.data_total;
		out->data_available = st.data_total > st.data_used ? st.data_total - st.data_used : 0;
		out->metadata_used = st.metadata_used;
		out->metadata_total = st.metadata_total;
		out->metadata_available = st.metadata_total > st.metadata_used ?
			st.metadata_total - st.metadata_used : 0;
		out->sector_size = st.sector_size;
		out->block_size = st.block_size;
		out->udev_sync_supported = st.udev_sync_supported;
		out->deferred_remove_enabled = s->opts->deferred_removal && st.deferred_remove_supported;
		out->transaction_id = st.transaction_id;
		out->low_space = space_below(s->opts->low_space_threshold, st.data_used, st.data_total) ||
				 space_below(s->opts->low_space_threshold, st.metadata_used, st.metadata_total);
	}
	out->low_space_threshold = s->opts->low_space_threshold;
	pthread_mutex_lock(&s->table_lock);
	base = find_name(s, DS_BASE_NAME);
	out->base_device_size = base ? base->m.size : 0;
	snprintf(out->base_device_fs, sizeof(out->base_device_fs), "%s", s->dsm.base_device_fs);
	out->deferred_delete_enabled = s->opts->deferred_deletion;
	out->deferred_deleted_device_count = s->deferred_count;
	out->device_count = (unsigned)(s->n_devices - s->deferred_count - (base ? 1 : 0));
	out->min_free_space = s->opts->min_free_space;
	out->orphan_count = (unsigned)s->n_orphans;
	for (size_t i = 0; i < s->n_orphans && i < DS_ORPHANS_SHOWN; i++)
		out->orphan_ids[i] = s->orphans[i];
	pthread_mutex_unlock(&s->table_lock);
	pthread_mutex_lock(&s->err_lock);
	snprintf(out->last_error, sizeof(out->last_error), "%s", s->last_error);
	out->last_error_at = s->last_error[0] ? s->last_error_at : 0;
	pthread_mutex_unlock(&s->err_lock);
	return r;
}

void ds_listing_free(struct ds_listing *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->e[i].path);
		free(l->e[i].rootfs);
	}
	free(l->e);
	l->e = NULL;
	l->n = 0;
}

/* The listing is sorted through pointers: its entries are large. */
static int cmp_list_paths(const void *a, const void *b)
{
	const struct ds_list_entry *x = *(struct ds_list_entry *const *)a, *y = *(struct ds_list_entry *const *)b;

	/* '/' before any name character: a device right before its
	 * descendants. */
	for (size_t i = 0;; i++) {
		unsigned char cx = x->path[i] == '/' ? 1 : (unsigned char)x->path[i];
		unsigned char cy = y->path[i] == '/' ? 1 : (unsigned char)y->path[i];

		if (cx != cy || !cx)
			return cx - cy;
	}
}

int ds_list_all(struct deviceset *s, struct ds_listing *out)
{
	struct ds_listing l = { 0 };
	struct ds_list_entry **v = NULL, *sorted = NULL;
	struct device *d;
	size_t cap;
	int r = 0;

	want_usage(s);
	pthread_mutex_lock(&s->table_lock);
	cap = s->n_devices + 1;
	l.e = malloc(cap * sizeof(*l.e));
	for (size_t b = 0; l.e && r == 0 && b < s->n_buckets; b++)
		for (d = s->by_name[b]; d && r == 0; d = d->next_name) {
			struct ds_list_entry *e;
			char rootfs[PATH_MAX + 8], path[PATH_MAX];

			if (d->m.deleted)
				continue;
			r = GROW(l.e, cap, l.n, 64);
			if (r < 0)
				break;
			e = &l.e[l.n++];
			memset(e, 0, sizeof(*e));
			memcpy(e->name, d->m.name, sizeof(e->name));
			memcpy(e->parent, d->m.parent, sizeof(e->parent));
			e->device_id = d->m.device_id;
			e->size = d->m.size;
			e->mount_count = d->mount_count;
			e->automounted = d->automounted;
			e->read_only = d->read_only;
			e->active = d->active;
			e->held = d->held != NULL;
			e->exclusive_bytes = d->exclusive_bytes;
			e->shared_bytes = d->shared_bytes;
			e->usage_at = d->usage_at;
			e->created = d->m.created;
			rootfs_of(s, d, rootfs, sizeof(rootfs));
			device_path(s, d, path, sizeof(path));
			/* Under the mount: "a/b", "" for the base. */
			if (!(e->rootfs = strdup(rootfs)) || !(e->path = strdup(path + 1)))
				r = -ENOMEM;
		}
	pthread_mutex_unlock(&s->table_lock);
	if (!l.e)
		r = -ENOMEM;
	v = r == 0 ? malloc((l.n + 1) * sizeof(*v)) : NULL;
	sorted = v ? malloc((l.n + 1) * sizeof(*sorted)) : NULL;
	if (r == 0 && !sorted)
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < l.n; i++)
		v[i] = &l.e[i];
	if (r == 0) {
		qsort(v, l.n, sizeof(*v), cmp_list_paths);
		for (size_t i = 0; i < l.n; i++)
			sorted[i] = *v[i];
		free(l.e);
		l.e = sorted;
		sorted = NULL;
	}
	free(v);
	free(sorted);
	if (r < 0) {
		ds_listing_free(&l);
		return fail(s, NULL, r, "listing the devices: %s", strerror(-r));
	}
	*out = l;
	return 0;
}

static int cmp_entries(const void *a, const void *b)
{
	return strcmp(((const struct ds_entry *)a)->name, ((const struct ds_entry *)b)->name);
}

int ds_list(struct deviceset *s, const char *parent, struct ds_entry **out, size_t *n)
{
	struct ds_entry *list = NULL;
	struct device *p, *d;
	size_t count = 0, cap;
	int r = 0;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&s->table_lock);
	p = find_name(s, parent);
	if (!p || p->m.deleted) {
		r = -ENOENT;
		goto out;
	}
	cap = (size_t)p->n_children + 1;
	list = calloc(cap, sizeof(*list));
	if (!list) {
		r = -ENOMEM;
		goto out;
	}
	/* Most devices are leaves: a walk of the whole tree (du, find) opens
	 * every one, and must not cost a scan of the table each. */
	for (size_t i = 0; p->n_children > 0 && i < s->n_buckets; i++)
		for (d = s->by_name[i]; d; d = d->next_name) {
			if (d->m.deleted || strcmp(d->m.parent, parent) != 0)
				continue;
			r = GROW(list, cap, count, 16);
			if (r < 0)
				goto out;
			snprintf(list[count].name, sizeof(list[count].name), "%s", d->m.name);
			list[count].device_id = d->m.device_id;
			list[count].created = d->m.created;
			count++;
		}
	qsort(list, count, sizeof(*list), cmp_entries);
	*out = list;
	*n = count;
	list = NULL;
out:
	pthread_mutex_unlock(&s->table_lock);
	free(list);
	return r;
}
