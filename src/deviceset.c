/*
 * deviceset.c - the engine: a C DeviceSet (Docker's devicemapper
 * graphdriver) over a pool backend. It owns the device table, the ID
 * bitmap, the transactions that keep the JSON metadata and the pool in
 * step, the base device, counted mounts, deferred deletion and status.
 *
 * Transactions, as the original engine: before the pool changes, the
 * transaction-metadata file records (pool's transaction ID + 1, device
 * name, device ID); the change is closed by setting the pool's transaction
 * ID. A start that finds the open ID ahead of the pool's rolls back: the
 * device it names is deleted from the pool and from the metadata. An add
 * interrupted before it returned vanishes; a delete is completed.
 */
#include "deviceset.h"

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
#include "idmap.h"
#include "log.h"
#include "metadata.h"
#include "pool.h"

/*
 * Locks (doc/design.md §3), in the order they are taken:
 *   a device's op_lock  one long operation on that device at a time;
 *   the pool lock       (struct deviceset.lock) transactions and every
 *                       backend call that changes the pool: held across
 *                       their I/O (pool messages, fsyncs);
 *   the table lock      the in-memory tables and every field readers
 *                       see: held for memory operations only, never
 *                       across I/O, so lookups, getattr, readdir and info
 *                       never wait behind another operation's I/O;
 *   err_lock            the last_error strings; a leaf.
 * A field marked "table" is written under the table lock (and, for the
 * structure of the tables and the metadata fields, the pool lock too, so
 * a pool-lock holder may read those without the table lock).
 */
struct device {
	struct meta_device m;     /* the file's contents; table (+ pool to write) */
	struct device *next_name; /* hash chains; table (+ pool to write) */
	struct device *next_id;
	int refs;                 /* table; freed at 0 once removed */
	bool removed;             /* no longer in the tables; table */
	/* Deleted, its name free, waiting for the worker to give its space
	 * back and delete it from the pool; its file is STATEDIR/deleted/ID
	 * and m.name is "ID" (doc/design.md §4). Table. */
	bool buried;
	bool discarded;           /* the worker discarded it; worker only */
	int n_children;           /* visible children; table (+ pool to write) */
	/* Serialises the long operations on this device (mount, unmount,
	 * resize, delete, rename, a snapshot of it), which do I/O; readers of
	 * the namespace never take it. Taken before the pool lock, and never
	 * two of them at once. Device filesystems are mounted outside the FUSE
	 * tree (doc/design.md §3), so nothing done under it waits for a FUSE
	 * request. */
	pthread_mutex_t op_lock;
	/* Mount state: written under op_lock and the table lock, so either
	 * one is enough to read it. An automount is not counted. */
	int mount_count;
	bool automounted;
	bool read_only;
	/* Activation as this engine did it: written under the pool lock and
	 * the table lock. */
	bool active;
	char dev_path[POOL_DEV_PATH_MAX];
	/* DS_ERROR_MAX bytes once a first error is kept, NULL before (most
	 * devices never have one: 10,000s of devices stay small); err_lock. */
	char *last_error;
};

/* In STATEDIR while the base device's filesystem has yet to grow to its
 * recorded size (see grow_base). */
#define BASE_GROW_MARKER "base-grow-pending"

struct deviceset {
	char *state_dir;
	int state_fd;             /* STATEDIR, O_DIRECTORY */
	char *meta_dir;
	char *mnt_dir;            /* STATEDIR/mnt: device filesystems, by ID */
	char *deleted_dir;        /* STATEDIR/deleted: buried devices' files, by ID */
	char prefix[64];
	const struct ds_options *opts;
	const struct pool_ops *ops;
	struct pool *pool;
	/* The pool lock (see the lock notes above struct device): the ID
	 * bitmap, the transaction ID, the transaction and deviceset files,
	 * the status cache and every backend call that changes the pool. */
	pthread_mutex_t lock;
	/* The table lock: by_name, by_id, n_buckets, n_devices,
	 * deferred_count and the devices' table fields. */
	pthread_mutex_t table_lock;
	struct device **by_name, **by_id;
	size_t n_buckets, n_devices;
	struct idmap ids;
	uint64_t tid;
	struct meta_deviceset dsm; /* written at start only (and base growth) */
	unsigned deferred_count;
	/* Pool devices that no file names, sorted (find_orphans): set at
	 * start, read-only after, so read without a lock. */
	uint32_t *orphans;
	size_t n_orphans;
	/* The pool's status for the free-space floor, refreshed at most once
	 * a second (a mkdir does not wait for a status query); pool lock. */
	struct pool_status status_cache;
	struct timespec status_at;
	/* Why changes are refused until a restart ("" normally); pool lock. */
	char recovery_reason[DS_ERROR_MAX / 2];
	/* A leaf lock for the last_error strings; nothing is taken under it. */
	pthread_mutex_t err_lock;
	char last_error[DS_ERROR_MAX];
	/* The deferred-deletion worker; pool lock for stop, cond with it. */
	pthread_t worker;
	bool worker_running, worker_stop;
	pthread_cond_t worker_cond;
};

/* ------------------------------------------------------------------ */
/* Names, errors                                                      */

static const char *const reserved_names[] = {
	"ctl", "info", "rootfs", "deviceset-metadata", "transaction-metadata", NULL
};

int ds_check_name(const char *name)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0)
		return -EINVAL;
	if (len > DS_NAME_MAX)
		return -ENAMETOOLONG;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
			return -EINVAL;
	}
	for (int i = 0; reserved_names[i]; i++)
		if (strcmp(name, reserved_names[i]) == 0)
			return -EINVAL;
	return 0;
}

enum ds_txn_action ds_txn_decide(uint64_t pool_tid, uint64_t open_tid)
{
	if (open_tid == pool_tid)
		return DS_TXN_CLEAN;
	return pool_tid != UINT64_MAX && open_tid == pool_tid + 1 ? DS_TXN_ROLLBACK : DS_TXN_MISMATCH;
}

static void store_error(struct deviceset *s, struct device *d, const char *fmt, va_list ap)
{
	char buf[DS_ERROR_MAX];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	log_err("%s", buf);
	pthread_mutex_lock(&s->err_lock);
	if (d && !d->last_error)
		d->last_error = malloc(DS_ERROR_MAX);
	if (!d || d->last_error)
		snprintf(d ? d->last_error : s->last_error, DS_ERROR_MAX, "%s", buf);
	pthread_mutex_unlock(&s->err_lock);
}

/* Log the reason for r, keep it as last_error of d (or the pool), return r. */
static int fail(struct deviceset *s, struct device *d, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(struct deviceset *s, struct device *d, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	store_error(s, d, fmt, ap);
	va_end(ap);
	return r;
}

void ds_set_pool_error(struct deviceset *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	store_error(s, NULL, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* The device table                                                   */

static size_t hash_name(const char *name)
{
	size_t h = 5381;

	while (*name)
		h = h * 33 + (unsigned char)*name++;
	return h;
}

static struct device *find_name(struct deviceset *s, const char *name)
{
	struct device *d = s->by_name[hash_name(name) % s->n_buckets];

	while (d && strcmp(d->m.name, name) != 0)
		d = d->next_name;
	return d;
}

static struct device *find_id(struct deviceset *s, uint32_t id)
{
	struct device *d = s->by_id[id % s->n_buckets];

	while (d && d->m.device_id != id)
		d = d->next_id;
	return d;
}

/* A buried device (deleted, waiting for the worker) is in the ID table
 * only: its name is free. */
static void link_device(struct deviceset *s, struct device *d)
{
	size_t hn = hash_name(d->m.name) % s->n_buckets, hi = d->m.device_id % s->n_buckets;

	if (!d->buried) {
		d->next_name = s->by_name[hn];
		s->by_name[hn] = d;
	}
	d->next_id = s->by_id[hi];
	s->by_id[hi] = d;
}

static void unlink_name(struct deviceset *s, struct device *d)
{
	struct device **pp;

	for (pp = &s->by_name[hash_name(d->m.name) % s->n_buckets]; *pp; pp = &(*pp)->next_name)
		if (*pp == d) {
			*pp = d->next_name;
			break;
		}
}

static void unlink_device(struct deviceset *s, struct device *d)
{
	struct device **pp;

	if (!d->buried)
		unlink_name(s, d);
	for (pp = &s->by_id[d->m.device_id % s->n_buckets]; *pp; pp = &(*pp)->next_id)
		if (*pp == d) {
			*pp = d->next_id;
			break;
		}
}

/* Grow the tables so chains stay short with 10,000s of devices. */
static int maybe_rehash(struct deviceset *s)
{
	struct device **nn, **ni, *d, *next;
	size_t old = s->n_buckets, nb = old * 4;

	if (s->n_devices < old * 2)
		return 0;
	nn = calloc(nb, sizeof(*nn));
	ni = calloc(nb, sizeof(*ni));
	if (!nn || !ni) {
		free(nn);
		free(ni);
		return 0; /* keep the smaller table: slower, still correct */
	}
	for (size_t i = 0; i < old; i++)
		for (d = s->by_name[i]; d; d = next) {
			next = d->next_name;
			d->next_name = nn[hash_name(d->m.name) % nb];
			nn[hash_name(d->m.name) % nb] = d;
		}
	for (size_t i = 0; i < old; i++)
		for (d = s->by_id[i]; d; d = next) {
			next = d->next_id;
			d->next_id = ni[d->m.device_id % nb];
			ni[d->m.device_id % nb] = d;
		}
	free(s->by_name);
	free(s->by_id);
	s->by_name = nn;
	s->by_id = ni;
	s->n_buckets = nb;
	return 0;
}

static struct device *device_new(const struct meta_device *m)
{
	struct device *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->m = *m;
	pthread_mutex_init(&d->op_lock, NULL);
	return d;
}

static void device_free(struct device *d)
{
	free(d->last_error);
	pthread_mutex_destroy(&d->op_lock);
	free(d);
}

/* Pool lock held (or the start, single-threaded) for these two. */
static void insert_device(struct deviceset *s, struct device *d)
{
	pthread_mutex_lock(&s->table_lock);
	link_device(s, d);
	s->n_devices++;
	maybe_rehash(s);
	pthread_mutex_unlock(&s->table_lock);
}

/* Take d out of the tables; freed at its last put. */
static void remove_device(struct deviceset *s, struct device *d)
{
	pthread_mutex_lock(&s->table_lock);
	unlink_device(s, d);
	s->n_devices--;
	d->removed = true;
	if (d->refs == 0)
		device_free(d);
	pthread_mutex_unlock(&s->table_lock);
}

/* A referenced visible device by name (base included), or NULL. */
static struct device *get_device(struct deviceset *s, const char *name, bool include_deleted)
{
	struct device *d;

	pthread_mutex_lock(&s->table_lock);
	d = name ? find_name(s, name) : NULL;
	if (d && d->m.deleted && !include_deleted)
		d = NULL;
	if (d)
		d->refs++;
	pthread_mutex_unlock(&s->table_lock);
	return d;
}

static void put_device(struct deviceset *s, struct device *d)
{
	pthread_mutex_lock(&s->table_lock);
	if (--d->refs == 0 && d->removed)
		device_free(d);
	pthread_mutex_unlock(&s->table_lock);
}

/* The statements, with the table lock held: the small writes readers see. */
#define TABLE(s, ...) do { \
		pthread_mutex_lock(&(s)->table_lock); \
		__VA_ARGS__; \
		pthread_mutex_unlock(&(s)->table_lock); \
	} while (0)

static void for_each_device(struct deviceset *s, void (*fn)(struct deviceset *, struct device *, void *),
			    void *arg)
{
	struct device *d, *next;

	/* By ID: buried devices are in that table only. */
	for (size_t i = 0; i < s->n_buckets; i++)
		for (d = s->by_id[i]; d; d = next) {
			next = d->next_id;
			fn(s, d, arg);
		}
}

/* Take d's op_lock for a long operation. false if d was deleted while
 * the caller waited for it (the caller then answers -ENOENT). */
static bool lock_op(struct deviceset *s, struct device *d)
{
	bool alive;

	pthread_mutex_lock(&d->op_lock);
	pthread_mutex_lock(&s->table_lock);
	alive = !d->removed && !d->m.deleted;
	pthread_mutex_unlock(&s->table_lock);
	if (!alive)
		pthread_mutex_unlock(&d->op_lock);
	return alive;
}

static void unlock_op(struct device *d)
{
	pthread_mutex_unlock(&d->op_lock);
}

static int drop_automount(struct deviceset *s, struct device *d, int how);

/* The active device's name: PREFIX-ID. By ID, so no device name can equal
 * the pool's own dm name (PREFIX-pool) or outgrow DM_NAME_LEN, and a
 * rename touches only the metadata (doc/design.md §5). */
static void dm_name_of(struct deviceset *s, uint32_t id, char *buf, size_t len)
{
	snprintf(buf, len, "%s-%" PRIu32, s->prefix, id);
}

/* Where a device's filesystem is mounted: STATEDIR/mnt/ID, outside the
 * FUSE tree, named by ID so a rename does not move it. */
static void mount_dir_of(struct deviceset *s, uint32_t id, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%" PRIu32, s->mnt_dir, id);
}

static bool is_base(const struct device *d)
{
	return strcmp(d->m.name, DS_BASE_NAME) == 0;
}

/* ------------------------------------------------------------------ */
/* Transactions (pool lock held)                                      */

static int open_transaction(struct deviceset *s, const char *name, uint32_t id)
{
	struct meta_transaction t = { .open_transaction_id = s->tid + 1, .device_id = id };

	snprintf(t.device_hash, sizeof(t.device_hash), "%s", name);
	return meta_transaction_save(s->meta_dir, &t);
}

static int close_transaction(struct deviceset *s)
{
	int r = s->ops->set_transaction_id(s->pool, s->tid, s->tid + 1);

	if (r == 0)
		s->tid++;
	return r;
}

/* Stop taking changes: an undo could not complete, and what is on disk
 * (an open transaction, a roll-forward record) is only safe if the next
 * start is the next thing to touch it. Pool lock held. */
static void need_recovery(struct deviceset *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void need_recovery(struct deviceset *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->recovery_reason, sizeof(s->recovery_reason), fmt, ap);
	va_end(ap);
	log_err("pool %s: %s; no more changes are taken until thinfs is restarted, which repairs it",
		s->prefix, s->recovery_reason);
}

/* -EIO (with the reason) once need_recovery() was called. Pool lock held. */
static int refuse_if_needs_recovery(struct deviceset *s, struct device *d, const char *op)
{
	if (!s->recovery_reason[0])
		return 0;
	return fail(s, d, -EIO, "%s '%s': refused until thinfs is restarted: %s", op, d->m.name,
		    s->recovery_reason);
}

/* Give up an open transaction whose pool change did not happen (or was
 * undone), so a restart does not roll back a device it should keep. */
static int abandon_transaction(struct deviceset *s)
{
	struct meta_transaction t = { .open_transaction_id = s->tid };
	int r = meta_transaction_save(s->meta_dir, &t);

	if (r < 0)
		log_err("pool %s: could not reset the open transaction: %s", s->prefix, strerror(-r));
	return r;
}

/* Abandon after a pool change that did not happen; if even that fails,
 * the next start must decide (pool lock held). */
static void abandon_or_stop(struct deviceset *s, const char *name)
{
	if (abandon_transaction(s) < 0)
		need_recovery(s, "the open transaction for '%s' could not be reset", name);
}

static int save_deviceset(struct deviceset *s)
{
	s->dsm.next_device_id = s->ids.next_id;
	return meta_deviceset_save(s->meta_dir, &s->dsm);
}

/* ------------------------------------------------------------------ */
/* Activation (pool lock held)                                        */

static int activate(struct deviceset *s, struct device *d)
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

static int deactivate(struct deviceset *s, struct device *d, bool deferred)
{
	char name[POOL_DEV_NAME_MAX];
	int r;

	dm_name_of(s, d->m.device_id, name, sizeof(name));
	r = s->ops->deactivate(s->pool, name, d->m.device_id, deferred);
	if (r == 0 || deferred)
		TABLE(s, d->active = false; d->dev_path[0] = '\0');
	return r;
}

/* ------------------------------------------------------------------ */
/* Free space                                                         */

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

/* Create name as a snapshot of parent in the pool and the metadata; set
 * lock held. On failure nothing is left behind: either the undo completes
 * or the transaction stays open for the next start to roll back, and the
 * set stops taking changes until then (needs_recovery). */
static int create_device(struct deviceset *s, const char *name, struct device *parent,
			 struct device *scratch)
{
	char origin_name[POOL_DEV_NAME_MAX], origin_path[POOL_DEV_PATH_MAX];
	const char *origin_active = NULL;
	struct meta_device m = { 0 };
	struct device *d;
	uint32_t id = 0;
	int r, u;

	/* Ask the pool whether the origin is live, not our own flag: a device
	 * left active by a killed daemon, or waiting for a deferred removal,
	 * may be written to, and a snapshot of a live thin device must be
	 * taken suspended (the kernel's thin-provisioning documentation). */
	dm_name_of(s, parent->m.device_id, origin_name, sizeof(origin_name));
	if (!s->ops->engine_freezes_origin) {
		/* Only a backend that suspends the origin itself (dm) needs
		 * to know; on reflink the engine freezes a mounted origin, and
		 * asking would scan every loop device. */
		r = s->ops->is_active(s->pool, origin_name, parent->m.device_id, origin_path,
				      sizeof(origin_path));
		if (r < 0)
			return fail(s, scratch, r, "device '%s': cannot tell whether '%s' is active: %s", name,
				    parent->m.name, strerror(-r));
		if (r == 1)
			origin_active = origin_name;
	}
	for (;;) {
		r = idmap_alloc(&s->ids, &id);
		if (r < 0)
			return fail(s, scratch, r, "device '%s': no free device ID left in the pool", name);
		r = open_transaction(s, name, id);
		if (r < 0) {
			idmap_mark_free(&s->ids, id);
			return fail(s, scratch, r, "device '%s': cannot open a transaction: %s", name, strerror(-r));
		}
		fault_point("add-after-open-txn");
		r = s->ops->create_snap(s->pool, id, parent->m.device_id, parent->m.size, origin_active);
		if (r != -EEXIST)
			break;
		/* The pool already has this ID (metadata lost?): keep it marked
		 * used and try the next one, as the original engine did. */
		log_warn("device '%s': the pool already has device ID %" PRIu32 ", trying another", name, id);
	}
	if (r < 0) {
		idmap_mark_free(&s->ids, id);
		abandon_or_stop(s, name);
		return fail(s, scratch, r, "device '%s': snapshot of '%s' failed in the pool: %s", name,
			    parent->m.name, strerror(-r));
	}
	fault_point("add-after-pool-create");
	snprintf(m.name, sizeof(m.name), "%s", name);
	snprintf(m.parent, sizeof(m.parent), "%s", parent->m.name);
	m.device_id = id;
	m.size = parent->m.size;
	m.transaction_id = s->tid + 1;
	m.initialized = true;
	m.created = (int64_t)time(NULL);
	r = meta_device_save(s->meta_dir, &m);
	if (r < 0)
		goto undo;
	fault_point("add-after-register");
	r = close_transaction(s);
	if (r < 0)
		goto undo_file;
	fault_point("add-after-close-txn");
	/* next_device_id is not saved here (one atomic write less per
	 * mkdir): a start marks every ID the files hold as used, so a stale
	 * value only moves where the search for a free ID begins. */
	d = device_new(&m);
	if (!d) {
		/* The device is in the pool and the metadata: the next start
		 * finds it. Report the failure anyway. */
		return fail(s, scratch, -ENOMEM, "device '%s': out of memory", name);
	}
	insert_device(s, d);
	TABLE(s, parent->n_children++);
	return 0;

undo_file:
	u = meta_device_remove(s->meta_dir, name);
	if (u < 0 && u != -ENOENT) {
		/* Deleting the pool device now would leave its file behind. */
		need_recovery(s, "device '%s' could not be undone (its file stays: %s)", name, strerror(-u));
		return fail(s, scratch, r, "device '%s': could not record the new device: %s", name, strerror(-r));
	}
undo:
	u = s->ops->delete_thin(s->pool, id);
	if (u == 0 || u == -ENOENT) {
		idmap_mark_free(&s->ids, id);
		abandon_or_stop(s, name);
	} else {
		need_recovery(s, "device '%s' (id %" PRIu32 ") could not be deleted from the pool after a failed add",
			      name, id);
	}
	return fail(s, scratch, r, "device '%s': could not record the new device: %s", name, strerror(-r));
}

int ds_add_device(struct deviceset *s, const char *name, const char *parent_name)
{
	struct device *parent, scratch;
	char dir[PATH_MAX];
	int r, fd = -1;

	memset(&scratch, 0, sizeof(scratch));
	r = ds_check_name(name);
	if (r < 0)
		return fail(s, NULL, r, "mkdir '%s': %s", name ? name : "",
			    r == -ENAMETOOLONG ? "name longer than 128 characters"
					       : "invalid name (use [A-Za-z0-9][A-Za-z0-9_.-]*, not ctl, info or rootfs)");
	parent = get_device(s, parent_name, false);
	if (!parent)
		return fail(s, NULL, -ENOENT, "mkdir '%s': no device '%s' to snapshot", name, parent_name);
	snprintf(scratch.m.name, sizeof(scratch.m.name), "%s", name);
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
	}
	pthread_mutex_lock(&s->lock);
	if (find_name(s, name)) {
		r = -EEXIST;
		log_info("mkdir '%s': a device of that name exists (parent '%s')", name,
			 find_name(s, name)->m.parent);
	} else if ((r = refuse_if_needs_recovery(s, &scratch, "mkdir")) == 0) {
		r = check_free_space(s, &scratch);
		if (r == 0)
			r = create_device(s, name, parent, &scratch);
	}
	pthread_mutex_unlock(&s->lock);
	if (r == 0)
		log_info("created device '%s' (snapshot of '%s')", name, parent->m.name);
	else if (scratch.last_error)
		ds_set_pool_error(s, "%s", scratch.last_error);
out_unlock:
	if (fd >= 0) {
		int t = fsutil_thaw(fd);

		if (t < 0)
			log_err("snapshot of '%s': cannot thaw its filesystem: %s", parent->m.name, strerror(-t));
		close(fd);
	}
	unlock_op(parent);
	put_device(s, parent);
	free(scratch.last_error);
	return r;
}

/* ------------------------------------------------------------------ */
/* Delete                                                             */

/* The name the transaction record gives d: its own, or "#ID" for a
 * buried device, which no device name can equal (its file is named by ID,
 * and a live device may be called "5"). */
static void txn_name_of(const struct device *d, char *buf, size_t len)
{
	if (d->buried)
		snprintf(buf, len, "#%" PRIu32, d->m.device_id);
	else
		snprintf(buf, len, "%s", d->m.name);
}

/* Remove d's metadata file: STATEDIR/metadata/NAME, or for a buried
 * device STATEDIR/deleted/ID. */
static int remove_device_file(struct deviceset *s, struct device *d)
{
	return meta_device_remove(d->buried ? s->deleted_dir : s->meta_dir, d->m.name);
}

/* Delete d from the pool and the metadata (pool lock held). -EBUSY if the
 * device is in use (open, mounted elsewhere); nothing changed then. */
static int delete_from_pool(struct deviceset *s, struct device *d)
{
	char txn_name[DS_NAME_MAX + 1];
	struct device *parent;
	int r;

	/* Deactivate first: a device someone still has open fails here
	 * with -EBUSY, before anything is deleted. */
	r = deactivate(s, d, false);
	if (r == -EBUSY)
		return r;
	txn_name_of(d, txn_name, sizeof(txn_name));
	r = open_transaction(s, txn_name, d->m.device_id);
	if (r < 0)
		return r;
	fault_point("delete-after-open-txn");
	r = s->ops->delete_thin(s->pool, d->m.device_id);
	if (r < 0 && r != -ENOENT) {
		if (abandon_transaction(s) < 0)
			need_recovery(s, "delete of '%s' failed and its open transaction could not be reset: "
				      "the next start completes the delete", d->m.name);
		return r;
	}
	fault_point("delete-after-pool-delete");
	r = remove_device_file(s, d);
	if (r < 0 && r != -ENOENT) {
		/* Closing the transaction now would leave a file without a pool
		 * device; left open, the next start completes the delete. */
		need_recovery(s, "device '%s' was deleted from the pool but its metadata file stays: %s",
			      d->m.name, strerror(-r));
		return r;
	}
	fault_point("delete-after-unregister");
	r = close_transaction(s);
	if (r < 0)
		need_recovery(s, "device '%s' was deleted, but the pool's transaction ID could not be set: %s",
			      d->m.name, strerror(-r));
	fault_point("delete-after-close-txn");
	idmap_mark_free(&s->ids, d->m.device_id);
	pthread_mutex_lock(&s->table_lock);
	if (!d->m.deleted) {
		parent = find_name(s, d->m.parent);
		if (parent && parent->n_children > 0)
			parent->n_children--;
	} else if (s->deferred_count > 0) {
		s->deferred_count--;
	}
	pthread_mutex_unlock(&s->table_lock);
	remove_device(s, d);
	return 0;
}

/* Bury d (pool lock held): its file becomes STATEDIR/deleted/ID, marked
 * deleted, and its name is free at once; the worker gives its space back
 * (discard) and deletes it from the pool. The tombstone is written
 * before the name's file goes, so a crash in between is finished at the
 * next start (the tombstone wins). Also used at start for files a
 * deferred deletion of an older engine (or Docker) left marked deleted. */
static int bury_files(struct deviceset *s, struct device *d, struct meta_device *m)
{
	int r;

	*m = d->m;
	m->deleted = true;
	snprintf(m->name, sizeof(m->name), "%" PRIu32, d->m.device_id);
	r = meta_device_save(s->deleted_dir, m);
	if (r < 0)
		return r;
	fault_point("deferred-after-mark");
	r = meta_device_remove(s->meta_dir, d->m.name);
	if (r < 0 && r != -ENOENT)
		/* Harmless: a new device of that name replaces the file, and a
		 * start prefers the tombstone for this ID. */
		log_warn("device '%s': its file stays beside its tombstone %s/%s: %s", d->m.name,
			 s->deleted_dir, m->name, strerror(-r));
	return 0;
}

static int bury(struct deviceset *s, struct device *d)
{
	struct meta_device m;
	struct device *parent;
	int r;

	r = bury_files(s, d, &m);
	if (r < 0)
		return r;
	pthread_mutex_lock(&s->table_lock);
	if (!d->m.deleted) {
		parent = find_name(s, d->m.parent);
		if (parent && parent->n_children > 0)
			parent->n_children--;
	}
	unlink_name(s, d);
	d->buried = true;
	d->m = m;
	s->deferred_count++;
	pthread_mutex_unlock(&s->table_lock);
	pthread_cond_signal(&s->worker_cond);
	return 0;
}

int ds_delete_device(struct deviceset *s, const char *name)
{
	bool discard = options_blk_discard(s->opts) && s->ops->discard;
	struct device *d;
	int r;

	d = get_device(s, name, false);
	if (!d)
		return fail(s, NULL, -ENOENT, "rmdir '%s': no such device", name);
	if (is_base(d)) {
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
	pthread_mutex_lock(&s->lock);
	if (d->n_children > 0) {
		r = fail(s, d, -ENOTEMPTY, "rmdir '%s': the device has %d snapshot(s); delete them first",
			 name, d->n_children);
	} else if ((r = refuse_if_needs_recovery(s, d, "rmdir")) < 0) {
		;
	} else {
		/* Busy (-EBUSY) is what deactivating says of a device open
		 * elsewhere, or what deleting it says (a reflink image still
		 * attached). Without a discard the delete is quick and done
		 * here; the discard, or the wait for a release with
		 * dm.use_deferred_deletion, is the worker's, and the name is
		 * free now. */
		r = deactivate(s, d, false);
		if (r != -EBUSY)
			r = discard ? 0 : delete_from_pool(s, d);
		if (r == -EBUSY && !s->opts->deferred_deletion) {
			r = fail(s, d, r, "rmdir '%s': the device is open or mounted outside thinfs (turn on "
				 "dm.use_deferred_deletion to delete it when released)", name);
		} else if (r == -EBUSY || (r == 0 && discard)) {
			r = bury(s, d);
			if (r == 0)
				log_info("deleted device '%s'; %s in the background", name,
					 discard ? "its space is given back" : "the pool lets it go when released");
			else
				r = fail(s, d, r, "rmdir '%s': cannot record its deletion: %s", name, strerror(-r));
		} else if (r == 0) {
			log_info("deleted device '%s'", name);
		} else {
			r = fail(s, d, r, "rmdir '%s': %s", name, strerror(-r));
		}
	}
	pthread_mutex_unlock(&s->lock);
out:
	unlock_op(d);
	put_device(s, d);
	return r;
}

/* ------------------------------------------------------------------ */
/* Rename                                                             */

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

struct reparent_arg {
	const char *old_name, *new_name;
	int r;
};

static void reparent_one(struct deviceset *s, struct device *c, void *argp)
{
	struct reparent_arg *a = argp;
	int r;

	if (c->buried || strcmp(c->m.parent, a->old_name) != 0)
		return;
	TABLE(s, snprintf(c->m.parent, sizeof(c->m.parent), "%s", a->new_name));
	r = meta_device_save(s->meta_dir, &c->m);
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

	r = ds_check_name(new_name);
	if (r < 0)
		return fail(s, NULL, r, "rename '%s' to '%s': invalid new name", old_name, new_name);
	d = get_device(s, old_name, false);
	if (!d)
		return fail(s, NULL, -ENOENT, "rename '%s': no such device", old_name);
	if (is_base(d)) {
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
		r = fail(s, d, -EEXIST, "rename '%s' to '%s': that name is in use", old_name, new_name);
		goto out;
	}
	TABLE(s, busy = subtree_mounted(s, d));
	if (busy) {
		r = fail(s, d, -EBUSY, "rename '%s': it or one of its snapshots is mounted", old_name);
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

/* STATEDIR/mnt/ID.automount marks the mount on STATEDIR/mnt/ID as an
 * automount, so that a restart adopts it as one. An empty file, created
 * and removed in one call each; no fsync: it means something only while
 * the mount exists, and no mount survives a reboot. */
static void automount_marker(struct deviceset *s, struct device *d, bool set)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%" PRIu32 ".automount", s->mnt_dir, d->m.device_id);
	if (set) {
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0 || close(fd) < 0)
			log_warn("device '%s': cannot mark its automount (%s: %s); a restart counts it as mounted",
				 d->m.name, path, strerror(errno));
	} else if (unlink(path) < 0 && errno != ENOENT) {
		log_warn("device '%s': cannot remove %s: %s", d->m.name, path, strerror(errno));
	}
}

static bool has_automount_marker(struct deviceset *s, struct device *d)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%" PRIu32 ".automount", s->mnt_dir, d->m.device_id);
	return access(path, F_OK) == 0;
}

/* Make the mount directory STATEDIR/mnt/ID (0755: as open as the
 * filesystem's own root, STATEDIR/mnt decides who gets that far). */
static int make_mount_dir(struct deviceset *s, const char *dir)
{
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return meta_fsync_path(s->mnt_dir);
}

/* Remove an empty mount directory; a failure only leaves it behind. */
static void remove_mount_dir(struct device *d, const char *dir)
{
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

/* The mount flags every device filesystem gets: read-only when asked,
 * nosuid,nodev behind allow_other unless dm.mountopt says otherwise. */
static unsigned mount_how(struct deviceset *s, bool ro)
{
	return (ro ? FSUTIL_RDONLY : 0) | (s->opts->allow_other ? FSUTIL_SAFE : 0);
}

/* First mount of d: activate, make its mount directory, mount. op_lock
 * held; the caller records the mount state. */
static int mount_device(struct deviceset *s, struct device *d, bool ro, const char *why)
{
	char dev_path[POOL_DEV_PATH_MAX], dir[PATH_MAX];
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
		remove_mount_dir(d, dir);
		pthread_mutex_lock(&s->lock);
		deactivate(s, d, false);
		pthread_mutex_unlock(&s->lock);
		return fail(s, d, r, "%s '%s' on %s: %s", why, d->m.name, dir, strerror(-r));
	}
	set_xfs_retries(s, d, dev_path);
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
	if (!lock_op(s, d)) {
		put_device(s, d);
		return fail(s, NULL, -ENOENT, "mount '%s': the device was deleted meanwhile", name);
	}
	if (d->mount_count > 0) {
		if (d->read_only != ro) {
			r = fail(s, d, -EBUSY, "mount '%s': already mounted %s", name,
				 d->read_only ? "read-only" : "read-write");
		} else {
			TABLE(s, d->mount_count++);
			r = 0;
			log_info("mounted device '%s' again (count %d)", name, d->mount_count);
		}
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
				goto out;
			}
		}
		log_info("mounted device '%s'%s (it was automounted)", name, ro ? " read-only" : "");
	} else {
		r = mount_device(s, d, ro, "mount");
		if (r < 0)
			goto out;
	}
	if (d->automounted)
		automount_marker(s, d, false);
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
static int unmount_fs(struct deviceset *s, struct device *d, int how)
{
	char dir[PATH_MAX];

	mount_dir_of(s, d->m.device_id, dir, sizeof(dir));
	if (umount2(dir, how) < 0 && errno != EINVAL && errno != ENOENT) {
		int e = errno;

		if (how == MNT_DETACH)
			log_warn("device '%s': unmount %s: %s", d->m.name, dir, strerror(e));
		return -e;
	}
	remove_mount_dir(d, dir);
	return 0;
}

/* Take away d's automount if nothing uses it (how 0) or it has been idle
 * since the last call (MNT_EXPIRE), and deactivate d. 0 if d has no
 * automount; -EBUSY / -EAGAIN when it stays. op_lock held. */
static int drop_automount(struct deviceset *s, struct device *d, int how)
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

int ds_unmount(struct deviceset *s, const char *name)
{
	struct device *d;
	int r = 0;

	d = get_device(s, name, false);
	if (!d)
		return fail(s, NULL, -ENOENT, "unmount '%s': no such device", name);
	if (!lock_op(s, d)) {
		put_device(s, d);
		return fail(s, NULL, -ENOENT, "unmount '%s': the device was deleted meanwhile", name);
	}
	if (d->mount_count == 0) {
		r = fail(s, d, -EINVAL, "unmount '%s': the device is not mounted%s", name,
			 d->automounted ? " (only automounted: it goes when unused)" : "");
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
		goto out;
	}
	TABLE(s, d->mount_count = 0; d->read_only = false);
	pthread_mutex_lock(&s->lock);
	r = deactivate(s, d, s->opts->deferred_removal);
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		log_warn("device '%s': unmounted, but still busy; it is deactivated when released", name);
	r = 0;
	log_info("unmounted device '%s'", name);
out:
	unlock_op(d);
	put_device(s, d);
	return r;
}

/* ------------------------------------------------------------------ */
/* Resize                                                             */

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
out:
	unlock_op(d);
	put_device(s, d);
	return r;
}

int ds_resize_pool(struct deviceset *s, uint64_t data_size)
{
	uint64_t max;
	bool too_big;
	int r = 0;

	pthread_mutex_lock(&s->lock);
	max = s->ops->max_data_size ? s->ops->max_data_size(s->pool) : UINT64_MAX;
	too_big = data_size > max;
	if (!too_big)
		r = s->ops->resize_pool(s->pool, data_size);
	s->status_at.tv_sec = 0; /* the free-space floor reads the new size */
	pthread_mutex_unlock(&s->lock);
	if (too_big)
		return fail(s, NULL, -EINVAL, "resize-pool %" PRIu64 ": more than the %" PRIu64
			    " bytes the pool's metadata space can map (a typo?); nothing changed", data_size, max);
	if (r < 0)
		return fail(s, NULL, r, "resize-pool %" PRIu64 ": %s", data_size, strerror(-r));
	log_info("pool data space resized to %" PRIu64 " bytes", data_size);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Status                                                             */

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
	out->active = d->active;
	dm_name_of(s, d->m.device_id, out->dm_name, sizeof(out->dm_name));
	snprintf(out->dev_path, sizeof(out->dev_path), "%s", d->active ? d->dev_path : "");
	snprintf(out->filesystem, sizeof(out->filesystem), "%s", s->dsm.base_device_fs);
	out->created = d->m.created;
	pthread_mutex_lock(&s->err_lock);
	snprintf(out->last_error, sizeof(out->last_error), "%s", d->last_error ? d->last_error : "");
	pthread_mutex_unlock(&s->err_lock);
	out->n_children = d->n_children;
	mount_dir_of(s, d->m.device_id, out->mount_dir, sizeof(out->mount_dir));
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

void ds_device_usage(struct deviceset *s, struct ds_device_info *info)
{
	struct pool_dev_status st;

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
	struct device *d = name ? get_device(s, name, false) : NULL;

	if (name && !d)
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
	}
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
	pthread_mutex_unlock(&s->err_lock);
	return r;
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
	for (size_t i = 0; i < s->n_buckets; i++)
		for (d = s->by_name[i]; d; d = d->next_name) {
			if (d->m.deleted || strcmp(d->m.parent, parent) != 0)
				continue;
			if (count == cap) {
				struct ds_entry *nl = realloc(list, cap * 2 * sizeof(*nl));

				if (!nl) {
					r = -ENOMEM;
					goto out;
				}
				list = nl;
				cap *= 2;
			}
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

/* ------------------------------------------------------------------ */
/* Consistency                                                        */

/* Is id one of the orphans the start found? */
static bool is_orphan(const struct deviceset *s, uint32_t id)
{
	return s->n_orphans && bsearch(&id, s->orphans, s->n_orphans, sizeof(*s->orphans), idmap_cmp_id);
}

int ds_check_consistency(struct deviceset *s, char *report, size_t len)
{
	struct meta_transaction t;
	uint32_t *ids = NULL;
	size_t n = 0, problems = 0;
	uint64_t pool_tid = 0;
	struct device *d;
	int r;

	if (len)
		report[0] = '\0';
#define PROBLEM(...) do { \
		char msg_[512]; \
		snprintf(msg_, sizeof(msg_), __VA_ARGS__); \
		log_err("check: %s", msg_); \
		if (problems++ == 0 && len) \
			snprintf(report, len, "%s", msg_); \
	} while (0)
	pthread_mutex_lock(&s->lock);
	r = s->ops->list_ids(s->pool, &ids, &n);
	if (r < 0) {
		PROBLEM("cannot list the pool's devices: %s", strerror(-r));
		goto out;
	}
	/* Orphans the start found are reported again: the check says
	 * whether files and pool agree, and a crash test must see a leak. */
	for (size_t i = 0; i < n; i++)
		if (!find_id(s, ids[i]))
			PROBLEM("pool device %" PRIu32 " has no metadata file%s", ids[i],
				is_orphan(s, ids[i]) ? " (an orphan, named at start)" : "");
	for (size_t i = 0; i < s->n_buckets; i++)
		for (d = s->by_id[i]; d; d = d->next_id) {
			bool found = n && bsearch(&d->m.device_id, ids, n, sizeof(*ids), idmap_cmp_id) != NULL;

			if (!found)
				PROBLEM("device '%s' (id %" PRIu32 ") has no pool device", d->m.name, d->m.device_id);
			if (!idmap_is_used(&s->ids, d->m.device_id))
				PROBLEM("device '%s' (id %" PRIu32 ") is free in the ID bitmap", d->m.name, d->m.device_id);
			if (find_id(s, d->m.device_id) != d)
				PROBLEM("device '%s' shares id %" PRIu32 " with another", d->m.name, d->m.device_id);
		}
	for (uint32_t id = 0; id <= IDMAP_MAX_ID; id++)
		if (idmap_is_used(&s->ids, id) && !find_id(s, id) && !is_orphan(s, id)) /* said above */
			PROBLEM("device ID %" PRIu32 " is used in the bitmap but by no device (leaked)", id);
	if (s->ops->get_transaction_id(s->pool, &pool_tid) == 0 && pool_tid != s->tid)
		PROBLEM("pool transaction ID %" PRIu64 " differs from the engine's %" PRIu64, pool_tid, s->tid);
	if (meta_transaction_load(s->meta_dir, &t) == 0 && t.open_transaction_id != pool_tid)
		PROBLEM("transaction %" PRIu64 " is open (pool at %" PRIu64 ")", t.open_transaction_id, pool_tid);
out:
	pthread_mutex_unlock(&s->lock);
#undef PROBLEM
	free(ids);
	return problems ? -EUCLEAN : 0;
}

/* ------------------------------------------------------------------ */
/* Deferred deletion                                                  */

/* References to the devices one worker round deals with, collected
 * under the table lock and worked on without it. */
struct devrefs {
	struct device **d;
	size_t n, cap;
	bool (*want)(const struct device *d);
};

static bool is_automounted(const struct device *d)
{
	return d->automounted;
}

static bool is_buried(const struct device *d)
{
	return d->buried;
}

static void collect(struct deviceset *s, struct device *d, void *arg)
{
	struct devrefs *a = arg;
	struct device **nd;

	(void)s;
	if (!a->want(d))
		return;
	if (a->n == a->cap) {
		nd = realloc(a->d, (a->cap ? a->cap * 2 : 16) * sizeof(*nd));
		if (!nd)
			return; /* this round skips it; the next one tries again */
		a->d = nd;
		a->cap = a->cap ? a->cap * 2 : 16;
	}
	d->refs++;
	a->d[a->n++] = d;
}

/* One expiry round, as autofs does it: umount2(MNT_EXPIRE) marks an
 * automount the first time and unmounts it the next time if nothing used
 * it in between. Pool lock held on entry and exit, dropped meanwhile (the
 * op locks come first in the lock order). */
static void expire_automounts(struct deviceset *s)
{
	struct devrefs a = { .want = is_automounted };

	TABLE(s, for_each_device(s, collect, &a));
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < a.n; i++) {
		if (lock_op(s, a.d[i])) {
			drop_automount(s, a.d[i], MNT_EXPIRE);
			unlock_op(a.d[i]);
		}
		put_device(s, a.d[i]);
	}
	free(a.d);
	pthread_mutex_lock(&s->lock);
}

/* Give the buried devices' space back and delete them from the pool.
 * The discard (activate, BLKDISCARD, deactivate: most of a delete's time
 * on a loopback dm pool) runs without the pool lock: nobody else can
 * reach a buried device, and other changes need not wait for it. A device
 * still in use stays for a later round. Pool lock held on entry and exit. */
static void process_buried(struct deviceset *s)
{
	bool discard = options_blk_discard(s->opts) && s->ops->discard;
	struct devrefs a = { .want = is_buried };
	char name[POOL_DEV_NAME_MAX];
	int r;

	/* After need_recovery() the open transaction on disk belongs to the
	 * next start: a new one must not overwrite it. */
	if (s->recovery_reason[0])
		return;
	TABLE(s, for_each_device(s, collect, &a));
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < a.n; i++) {
		struct device *d = a.d[i];
		char id[DS_NAME_MAX + 1];

		snprintf(id, sizeof(id), "%s", d->m.name);
		r = 0;
		if (discard && !d->discarded) {
			dm_name_of(s, d->m.device_id, name, sizeof(name));
			r = s->ops->discard(s->pool, name, d->m.device_id, d->m.size);
			if (r < 0 && r != -EBUSY && r != -EOPNOTSUPP)
				log_warn("deleted device %s: discard failed (%s); deleting it anyway, its blocks' "
					 "space stays in the data file", d->m.name, strerror(-r));
			d->discarded = r != -EBUSY;
		}
		pthread_mutex_lock(&s->lock);
		if (r != -EBUSY && !d->removed && !s->recovery_reason[0]) {
			r = delete_from_pool(s, d);
			if (r == 0)
				log_info("deleted device %s: gone from the pool", id);
			else if (r != -EBUSY)
				log_err("deleted device %s: %s", id, strerror(-r));
		}
		pthread_mutex_unlock(&s->lock);
		put_device(s, d);
	}
	free(a.d);
	pthread_mutex_lock(&s->lock);
}

static void *worker_main(void *arg)
{
	struct deviceset *s = arg;
	/* An automount goes after dm.automount_timeout to twice that unused. */
	time_t tick = s->opts->automount_timeout < 10 ? (time_t)s->opts->automount_timeout : 10;
	time_t last_expiry = time(NULL);
	struct timespec until;

	pthread_mutex_lock(&s->lock);
	while (!s->worker_stop) {
		if (s->deferred_count > 0)
			process_buried(s);
		if (s->opts->automount && time(NULL) - last_expiry >= (time_t)s->opts->automount_timeout) {
			last_expiry = time(NULL);
			expire_automounts(s);
			continue;
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += tick;
		pthread_cond_timedwait(&s->worker_cond, &s->lock, &until);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int ds_start_worker(struct deviceset *s)
{
	int r;

	if (s->worker_running)
		return 0;
	r = -pthread_create(&s->worker, NULL, worker_main, s);
	if (r < 0)
		return fail(s, NULL, r, "cannot start the deferred-deletion worker: %s", strerror(-r));
	s->worker_running = true;
	return 0;
}

void ds_kick_deferred(struct deviceset *s)
{
	pthread_mutex_lock(&s->lock);
	if (s->worker_running)
		pthread_cond_signal(&s->worker_cond);
	else if (s->deferred_count > 0)
		process_buried(s);
	pthread_mutex_unlock(&s->lock);
}

/* ------------------------------------------------------------------ */
/* Start                                                              */

/* Load the device files of dir: STATEDIR/metadata (by name) or, with
 * buried, STATEDIR/deleted (tombstones, by ID). A tombstone wins over a
 * name's file with its ID: the burial was interrupted between the two. */
static int load_devices(struct deviceset *s, const char *dir, bool buried)
{
	char **names = NULL;
	size_t n = 0;
	int r;

	r = meta_device_list(dir, &names, &n);
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
		other = buried ? find_id(s, m.device_id) : NULL;
		if (other && !other->buried) {
			log_info("device '%s' (id %" PRIu32 "): finishing its interrupted deletion", other->m.name,
				 m.device_id);
			r = meta_device_remove(s->meta_dir, other->m.name);
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
	*r = bury_files(s, d, &m);
	if (*r < 0)
		return;
	log_info("device '%s' (id %" PRIu32 ") was marked deleted: buried, the worker deletes it", d->m.name,
		 d->m.device_id);
	unlink_name(s, d);
	d->buried = true;
	d->m = m;
}

/* Roll forward a rename a crash interrupted (see ds_rename_device). */
static int finish_renames(struct deviceset *s)
{
	struct device *d, *next;
	int r;

	for (size_t i = 0; i < s->n_buckets; i++)
		for (d = s->by_name[i]; d; d = next) {
			struct reparent_arg ra;
			struct device *old;

			next = d->next_name;
			if (!d->m.renamed_from[0])
				continue;
			ra.old_name = d->m.renamed_from;
			ra.new_name = d->m.name;
			ra.r = 0;
			old = find_name(s, d->m.renamed_from);
			/* (A file marked as renamed from itself only loses the
			 * mark: removing "the old file" would remove its own.) */
			if (old && old != d && old->m.device_id == d->m.device_id) {
				r = meta_device_remove(s->meta_dir, old->m.name);
				if (r < 0 && r != -ENOENT)
					return r;
				if (next == old)
					next = old->next_name;
				remove_device(s, old);
			}
			for_each_device(s, reparent_one, &ra);
			log_info("completed the interrupted rename of '%s' to '%s'", ra.old_name, d->m.name);
			d->m.renamed_from[0] = '\0';
			r = meta_device_save(s->meta_dir, &d->m);
			if (r < 0 || ra.r < 0)
				return r < 0 ? r : ra.r;
			/* The table changed under the iteration: start over. */
			return finish_renames(s);
		}
	return 0;
}

/* Roll back the open transaction (ds_txn_decide said so: open = pool + 1).
 * Only a record this engine's protocol leaves is acted on: the device it
 * names, if it has a file, has the record's ID, and no other device holds
 * that ID. Anything else stops the start, naming what does not match. */
static int rollback(struct deviceset *s, const struct meta_transaction *t, uint64_t pool_tid)
{
	struct device *holder = find_id(s, t->device_id), *d;
	char name[POOL_DEV_NAME_MAX];
	int r;

	/* A buried device's record names it "#ID" (txn_name_of). */
	d = holder && holder->buried ? holder : t->device_hash[0] == '#' ? NULL : find_name(s, t->device_hash);

	if (d && d->m.device_id != t->device_id) {
		log_err("cannot start: the open transaction %" PRIu64 " in %s/transaction-metadata names device '%s' "
			"with ID %" PRIu32 ", but %s/%s has ID %" PRIu32 ": not rolling back", t->open_transaction_id,
			s->meta_dir, t->device_hash, t->device_id, s->meta_dir, d->m.name, d->m.device_id);
		return -EUCLEAN;
	}
	if (holder && holder != d) {
		log_err("cannot start: the open transaction %" PRIu64 " in %s/transaction-metadata names device '%s' "
			"with ID %" PRIu32 ", which %s/%s holds: not rolling back", t->open_transaction_id,
			s->meta_dir, t->device_hash, t->device_id, s->meta_dir, holder->m.name);
		return -EUCLEAN;
	}
	log_info("rolling back transaction %" PRIu64 " (device '%s', id %" PRIu32 "): the pool is at %" PRIu64,
		 t->open_transaction_id, t->device_hash, t->device_id, pool_tid);
	dm_name_of(s, t->device_id, name, sizeof(name));
	s->ops->deactivate(s->pool, name, t->device_id, false);
	r = s->ops->delete_thin(s->pool, t->device_id);
	if (r < 0 && r != -ENOENT) {
		log_err("rollback: cannot delete pool device %" PRIu32 ": %s", t->device_id, strerror(-r));
		return r;
	}
	if (d) {
		r = remove_device_file(s, d);
		if (r < 0 && r != -ENOENT)
			return r;
		remove_device(s, d);
	}
	idmap_mark_free(&s->ids, t->device_id);
	s->tid = pool_tid;
	return abandon_transaction(s);
}

static int recover_transaction(struct deviceset *s)
{
	struct meta_transaction t;
	uint64_t pool_tid;
	int r;

	r = s->ops->get_transaction_id(s->pool, &pool_tid);
	if (r < 0)
		return r;
	s->tid = pool_tid;
	r = meta_transaction_load(s->meta_dir, &t);
	if (r == -ENOENT)
		return abandon_transaction(s);
	if (r < 0)
		return r;
	switch (ds_txn_decide(pool_tid, t.open_transaction_id)) {
	case DS_TXN_CLEAN:
		return 0;
	case DS_TXN_ROLLBACK:
		return rollback(s, &t, pool_tid);
	case DS_TXN_MISMATCH:
	default:
		log_err("cannot start: the pool's transaction ID is %" PRIu64 " but %s/transaction-metadata records "
			"%" PRIu64 " (device '%s'); an interrupted change leaves exactly one more than the pool: "
			"this metadata does not belong to this pool, or the pool was reset or restored. "
			"Nothing was changed", pool_tid, s->meta_dir, t.open_transaction_id, t.device_hash);
		return -EUCLEAN;
	}
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

/* A device found active from an earlier run: if its filesystem is
 * mounted where this engine mounts it, adopt the mount (mounts outlive
 * the daemon, doc/design.md §1); otherwise deactivate it. */
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

	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		struct active_dev *ne = realloc(a->e, cap * sizeof(*ne));

		if (!ne)
			return -ENOMEM;
		a->e = ne;
		a->cap = cap;
	}
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

static void adopt_or_deactivate(struct deviceset *s, struct device *d, void *arg)
{
	char name[POOL_DEV_NAME_MAX], path[POOL_DEV_PATH_MAX], dir[PATH_MAX];
	struct stat dev_st, dir_st, top_st;
	struct statvfs vfs;

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
		log_info("device '%s': adopted its %s on %s (%s) from an earlier run", d->m.name,
			 d->automounted ? "automount" : "mount", dir, path);
		return;
	}
	if (s->ops->deactivate(s->pool, name, d->m.device_id, true) < 0)
		log_warn("device '%s' was left active on %s by an earlier run and could not be deactivated",
			 d->m.name, path);
	else
		log_info("device '%s': deactivated %s left active by an earlier run", d->m.name, path);
}

/* Pool devices that no file names (a file lost or removed by hand; every
 * crash of an operation is rolled back before this): their data may be
 * all that is left of a device, so they are left as they are, their IDs
 * never handed out again, each named in the log and all counted in the
 * pool's info (doc/design.md §4). A pool that cannot list its devices
 * (dm.thinpooldev, a metadata snapshot already held) starts without the
 * comparison, saying so. */
static void find_orphans(struct deviceset *s)
{
	uint32_t *ids = NULL;
	size_t n = 0;
	int r;

	r = s->ops->list_ids(s->pool, &ids, &n);
	if (r < 0) {
		log_warn("pool %s: the pool's devices could not be compared with %s (%s): pool devices without "
			 "a file go unnoticed", s->prefix, s->meta_dir, strerror(-r));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (find_id(s, ids[i]))
			continue;
		log_err("pool %s: pool device %" PRIu32 " has no file in %s (lost or removed by hand): left "
			"as it is, its ID not used again", s->prefix, ids[i], s->meta_dir);
		idmap_mark_used(&s->ids, ids[i]);
		ids[s->n_orphans++] = ids[i];
	}
	if (s->n_orphans) {
		/* ids is sorted, and the orphans keep its order. */
		s->orphans = ids;
		ids = NULL;
	}
	free(ids);
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
 * (empty mount directories, automount markers from before a reboot) goes. */
static void clean_mount_dir(struct deviceset *s)
{
	DIR *dir = opendir(s->mnt_dir);
	struct dirent *e;

	if (!dir) {
		log_warn("cannot read %s: %s", s->mnt_dir, strerror(errno));
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
			log_warn("cannot remove %s/%s: %s", s->mnt_dir, e->d_name, strerror(errno));
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
		r = save_deviceset(s);
		if (r < 0)
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
	if (s->state_fd >= 0)
		close(s->state_fd);
	free(s->mnt_dir);
	free(s->deleted_dir);
	free(s->by_name);
	free(s->by_id);
	free(s->orphans);
	idmap_free(&s->ids);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->table_lock);
	pthread_mutex_destroy(&s->err_lock);
	pthread_cond_destroy(&s->worker_cond);
	free(s->state_dir);
	free(s->meta_dir);
	free(s);
}

int ds_open(const char *state_dir, const struct ds_options *opts, struct deviceset **out)
{
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
	if (asprintf(&s->meta_dir, "%s/metadata", s->state_dir) < 0 ||
	    asprintf(&s->deleted_dir, "%s/deleted", s->state_dir) < 0 ||
	    asprintf(&s->mnt_dir, "%s/mnt", s->state_dir) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	s->state_fd = open(s->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->state_fd < 0) {
		r = -errno;
		log_err("state directory %s: %s", s->state_dir, strerror(-r));
		goto fail;
	}
	r = meta_mkdir_p(s->meta_dir, 0700);
	if (r == 0)
		r = meta_mkdir_p(s->deleted_dir, 0700);
	if (r == 0)
		r = meta_mkdir_p(s->mnt_dir, 0700);
	if (r < 0)
		goto fail;
	/* Only root gets into STATEDIR, unless the FUSE mount lets others
	 * in (allow_other): then they may pass through STATEDIR and mnt/
	 * (not list them) to follow a rootfs link; metadata stays 0700. */
	mode = opts->allow_other ? 0711 : 0700;
	if (fchmod(s->state_fd, mode) < 0 || chmod(s->mnt_dir, mode) < 0) {
		r = -errno;
		log_err("state directory %s: chmod %o: %s", s->state_dir, (unsigned)mode, strerror(-r));
		goto fail;
	}
	if (stat(s->state_dir, &st) < 0) {
		r = -errno;
		goto fail;
	}
	snprintf(s->prefix, sizeof(s->prefix), "thinfs-%u:%u-%lu", major(st.st_dev), minor(st.st_dev),
		 (unsigned long)st.st_ino);
	r = meta_deviceset_load(s->meta_dir, &s->dsm);
	if (r < 0 && r != -ENOENT)
		goto fail;
	r = idmap_init(&s->ids, s->dsm.next_device_id);
	if (r < 0)
		goto fail;
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

	s->ops = choose_backend(opts);
	cfg.state_dir = s->state_dir;
	cfg.prefix = s->prefix;
	cfg.opts = opts;
	r = s->ops->open(&cfg, &s->pool);
	if (r < 0) {
		s->pool = NULL;
		log_err("cannot start: the %s pool for %s could not be opened", s->ops->name, s->state_dir);
		goto fail;
	}
	r = verify_pool_identity(s);
	if (r == 0)
		r = recover_transaction(s);
	if (r < 0)
		goto fail;
	for_each_device(s, count_children, NULL);
	find_orphans(s);
	r = adopt_active(s);
	if (r < 0)
		goto fail;
	clean_mount_dir(s);
	r = setup_base(s);
	if (r < 0)
		goto fail;
	log_info("pool %s (%s backend) ready: %zu devices, transaction %" PRIu64 ", %u pending deletion",
		 s->prefix, s->ops->name, s->n_devices - 1, s->tid, s->deferred_count);
	*out = s;
	return 0;
fail:
	destroy(s);
	return r;
}

/* An orderly stop unmounts and deactivates what nothing uses; a device
 * still in use (a process's cwd or open files, a container on it) stays
 * mounted and active, and the next start adopts it (doc/design.md §1). */
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
	pthread_mutex_lock(&s->lock);
	for_each_device(s, shutdown_one, NULL);
	if (save_deviceset(s) < 0)
		log_err("shutdown: could not save %s/deviceset-metadata", s->meta_dir);
	pthread_mutex_unlock(&s->lock);
	log_info("pool %s closed", s->prefix);
	destroy(s);
}
