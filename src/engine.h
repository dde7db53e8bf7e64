/*
 * engine.h - what the engine's modules share, and nothing outside them
 * includes: the device and deviceset structures with their lock notes, the
 * TABLE macro, and the functions one module offers the others. The
 * engine, behind deviceset.h, is a C DeviceSet (Docker's devicemapper
 * graphdriver) over a pool backend: the device table (devtable.c), the
 * transactions and their recovery (journal.c), the consistency check
 * (check.c), the background worker (worker.c), start and stop (start.c)
 * and the operations (deviceset.c). It owns the device table, the ID
 * bitmap, the transactions that keep the JSON metadata and the pool in
 * step, the base device, counted mounts, deferred deletion and status.
 *
 * Records before the pool changes (doc/design.md §4): an add writes its
 * device's file one transaction past the pool's, and setting the pool's
 * transaction ID closes it (for every add in flight at once: group
 * commit); a delete renames the device's file to its tombstone, and
 * removing the tombstone after the pool's delete closes it. A start rolls
 * back the adds still one past the pool and completes the deletes whose
 * tombstones are there. The original engine's transaction-metadata record
 * is written by the base device's creation only, and still rolled back
 * when an older engine left it open.
 */
#ifndef THINFS_ENGINE_H
#define THINFS_ENGINE_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "deviceset.h"
#include "idmap.h"
#include "metadata.h"
#include "pool.h"

/*
 * Locks (doc/design.md §3), in the order they are taken:
 *   a device's op_lock  one long operation on that device at a time;
 *   the pool lock       (struct deviceset.lock) transactions and every
 *                       backend call that changes the pool: held across
 *                       their I/O (pool messages, fsyncs), except an
 *                       add's own file and create_snap on a backend with
 *                       concurrent_snap (group commit, deviceset.c);
 *   the table lock      the in-memory tables and every field readers
 *                       see: held for memory operations only, never
 *                       across I/O, so lookups, getattr, readdir and info
 *                       never wait behind another operation's I/O;
 *   err_lock            the last_error strings; a leaf.
 *   hook_lock           the usage hook, held across its call (a FUSE
 *                       notify that waits for no request); a leaf, taken
 *                       with no other lock, and the hook takes none.
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
	/* Its filesystem, when last mounted, was laid out as a Docker layer
	 * (docker_layer_layout): rootfs leads into its rootfs/. Same locks.
	 * layout_known: docker_layout is true of the filesystem as it is
	 * now (seen at a mount, an unmount, inherited at a snapshot, or "not
	 * a layer" kept across restarts: note_layout; forgotten when held,
	 * set_held: a detached filesystem may change); with an autofs, the
	 * link of an unmounted device whose layout is not known is answered
	 * after a mount, as without one. */
	bool docker_layout;
	bool layout_known;
	/* Activation as this engine did it: written under the pool lock and
	 * the table lock. */
	bool active;
	char dev_path[POOL_DEV_PATH_MAX];
	/* Its block device stays in use with no mount of this engine on it
	 * (a filesystem unmounted lazily that programs still use), as an
	 * operation last found it; NULL when not. Table. An info read asks
	 * sysfs whether it still is (deviceset.c, ds_device_recheck). */
	struct held_dev *held;
	/* Space (the worker's last look, at usage_at; 0: not looked yet):
	 * what only this device maps, what it shares with others; table. */
	uint64_t exclusive_bytes, shared_bytes;
	int64_t usage_at;
	/* DS_ERROR_MAX bytes once a first error is kept, NULL before (most
	 * devices never have one: 10,000s of devices stay small), and when
	 * it was kept (unix seconds); err_lock. */
	char *last_error;
	int64_t last_error_at;
};


/* A block device found in use with no mount of ours on it: its node,
 * and what sysfs said it is bound to (fsutil_bdev_identity). */
struct held_dev {
	dev_t rdev;
	char path[POOL_DEV_PATH_MAX];
	char id[];
};

/* An add in flight (deviceset.c, create_device), on its thread's stack and
 * in the set's list from its ID's allocation until its device is in the
 * table or undone: its name is taken meanwhile. Pool lock. */
enum add_state { ADD_WRITING, ADD_READY, ADD_DONE };
struct add_in_flight {
	char name[DS_NAME_MAX + 1];
	uint32_t id;
	enum add_state state;
	int result;               /* the group's commit's, once ADD_DONE */
	struct add_in_flight *next;
};

struct deviceset {
	char *state_dir;
	int state_fd;             /* STATEDIR, O_DIRECTORY */
	char *meta_dir;
	char *mnt_dir;            /* STATEDIR/mnt (-o ro: DS_RO_MOUNT_TOP/PREFIX):
				   * device filesystems, by ID */
	char *deleted_dir;        /* STATEDIR/deleted: buried devices' files, by ID */
	/* The autofs on mnt_dir (autofs.c), NULL without one; and where the
	 * automount markers go: mnt_dir, or beside it (mnt_dir-automounts)
	 * when an autofs, which holds only directories, is there. Set at
	 * start only (a failed ds_start_autofs may unmount it and clear
	 * autofs, before the worker and the FUSE loop start). */
	struct ds_autofs *autofs;
	char *mark_dir;
	char prefix[64];
	const struct ds_options *opts;
	const struct pool_ops *ops;
	struct pool *pool;
	/* The pool lock (see the lock notes above struct device): the ID
	 * bitmap, the transaction ID, the transaction and deviceset files,
	 * the status cache and every backend call that changes the pool. */
	pthread_mutex_t lock;
	/* Adds in flight, for the group commit (deviceset.c): the list, how
	 * many are writing their file and pool device, how many wait for
	 * their group's commit (while any do, no add joins). adds_cond, with
	 * the pool lock, is broadcast at each commit and each add that
	 * leaves. Pool lock. */
	struct add_in_flight *adds;
	unsigned adds_writing, adds_ready;
	unsigned check_waiting;   /* consistency checks waiting for no add */
	pthread_cond_t adds_cond;
	/* The table lock: by_name, by_id, n_buckets, n_devices,
	 * deferred_count and the devices' table fields. */
	pthread_mutex_t table_lock;
	struct device **by_name, **by_id;
	size_t n_buckets, n_devices;
	struct idmap ids;
	uint64_t tid;
	struct meta_deviceset dsm; /* written at start only (and base growth) */
	unsigned deferred_count;
	/* Pool devices that no file names, sorted (compare_with_pool): set at
	 * start, read-only after, so read without a lock. */
	uint32_t *orphans;
	size_t n_orphans;
	/* -o ro: the devices the start's recovery hid instead of rolling
	 * back (the open record's, the interrupted adds'); not orphans. Set
	 * at start only. */
	uint32_t *ro_hidden;
	size_t n_ro_hidden, cap_ro_hidden;
	/* The pool's status for the free-space floor, refreshed at most once
	 * a second (a mkdir does not wait for a status query); pool lock. */
	struct pool_status status_cache;
	struct timespec status_at;
	/* Why changes are refused until a restart ("" normally); pool lock. */
	char recovery_reason[DS_ERROR_MAX / 2];
	/* A leaf lock for the last_error strings; nothing is taken under it. */
	pthread_mutex_t err_lock;
	char last_error[DS_ERROR_MAX]; /* the pool's, which is also the base device's */
	int64_t last_error_at;
	/* The space watch's state (worker.c): below dm.low_space_threshold
	 * at the last look, and dm.autoextend's refusal said once; worker
	 * only. */
	bool space_low;
	bool autoextend_said;
	/* A reader of an info file wants fresh usage figures: set with no
	 * lock (reading info never waits for the pool lock), taken by the
	 * worker. usage_tried_at: when the worker last tried (a failing
	 * backend is asked again at most every USAGE_MAX_AGE_SECONDS);
	 * usage_at: when it last succeeded (unix seconds). */
	atomic_bool usage_wanted;
	_Atomic int64_t usage_tried_at, usage_at;
	/* The worker's usage passes begun and ended, and the last one's
	 * result, for refresh-usage to wait on (usage_cond, with the pool
	 * lock). Pool lock. */
	uint64_t usage_passes_started, usage_passes_done;
	int usage_result;
	pthread_cond_t usage_cond;
	/* Told of each device whose exclusive bytes a pass changed (see
	 * ds_set_usage_hook). Set and called under hook_lock, a leaf taken
	 * with no other engine lock held; the hook takes none either (the
	 * worker tells it whether the device is the base). */
	pthread_mutex_t hook_lock;
	void (*usage_hook)(void *arg, uint32_t device_id, bool base);
	void *usage_hook_arg;
	/* The deferred-deletion worker; pool lock for stop, cond with it. */
	pthread_t worker;
	bool worker_running, worker_stop;
	pthread_cond_t worker_cond;
};

/* The statements, with the table lock held: the small writes readers see. */
#define TABLE(s, ...) do { \
		pthread_mutex_lock(&(s)->table_lock); \
		__VA_ARGS__; \
		pthread_mutex_unlock(&(s)->table_lock); \
	} while (0)

/* devtable.c: the table (each function's comment names the locks it
 * needs), names, errors */
void store_error(struct deviceset *s, struct device *d, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
void keep_error(struct deviceset *s, struct device *d, const char *text);
int device_path(struct deviceset *s, struct device *d, char *buf, size_t len);
int fail(struct deviceset *s, struct device *d, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* As fail, for a failure logged where it happened (metadata.c names the
 * file and the failing call): the words are kept, not logged again. */
int fail_logged(struct deviceset *s, struct device *d, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
struct device *find_name(struct deviceset *s, const char *name);
struct device *find_id(struct deviceset *s, uint32_t id);
void link_device(struct deviceset *s, struct device *d);
void unlink_name(struct deviceset *s, struct device *d);
void unlink_device(struct deviceset *s, struct device *d);
struct device *device_new(const struct meta_device *m);
void device_free(struct device *d);
void insert_device(struct deviceset *s, struct device *d);
void remove_device(struct deviceset *s, struct device *d);
struct device *get_device(struct deviceset *s, const char *name, bool include_deleted);
void put_device(struct deviceset *s, struct device *d);
void for_each_device(struct deviceset *s, void (*fn)(struct deviceset *, struct device *, void *),
			    void *arg);
bool lock_op(struct deviceset *s, struct device *d);
void unlock_op(struct device *d);
void dm_name_of(struct deviceset *s, uint32_t id, char *buf, size_t len);
void mount_dir_of(struct deviceset *s, uint32_t id, char *buf, size_t len);
bool is_base(const struct device *d);

/* journal.c: transactions (pool lock held), recovery at start */
int open_transaction(struct deviceset *s, const char *name, uint32_t id);
int close_transaction(struct deviceset *s);
void need_recovery(struct deviceset *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int refuse_if_needs_recovery(struct deviceset *s, struct device *d, const char *op);
int abandon_transaction(struct deviceset *s);
int save_deviceset(struct deviceset *s);
int finish_renames(struct deviceset *s);
int recover_transaction(struct deviceset *s);

/* worker.c: an info file is being read; see ds_device_usage */
void want_usage(struct deviceset *s);
/* worker.c: the figures of a snapshot just made, from its origin's */
void usage_of_snapshot(struct deviceset *s, struct device *origin, struct device *snap);

/* check.c */
void compare_with_pool(struct deviceset *s);

/* deviceset.c: the steps of operations that the start, recovery and the
 * worker share */
bool space_below(unsigned percent, uint64_t used, uint64_t total);
int resize_pool_locked(struct deviceset *s, uint64_t data_size, uint64_t *max);
int activate(struct deviceset *s, struct device *d);
int deactivate(struct deviceset *s, struct device *d, bool deferred);
int remove_device_file(struct deviceset *s, struct device *d);
int delete_from_pool(struct deviceset *s, struct device *d);
void forget_deleted(struct deviceset *s, struct device *d);
void adds_wait_idle(struct deviceset *s);
/* A buried device's file contents: d's, marked deleted, named by its ID. */
void tombstone_of(const struct device *d, struct meta_device *m);
int bury_files(struct deviceset *s, struct device *d, struct meta_device *m, bool *moved);
/* for_each_device: point the children of old_name at new_name and save
 * their files (the first error in r). Pool lock held. */
struct reparent_arg {
	const char *old_name, *new_name;
	int r;
};
void reparent_one(struct deviceset *s, struct device *c, void *argp);
void automount_marker(struct deviceset *s, struct device *d, bool set);
bool has_automount_marker(struct deviceset *s, struct device *d);
int unmount_fs(struct deviceset *s, struct device *d, int how);
void note_layout(struct deviceset *s, struct device *d, bool layer);
void load_layout(struct deviceset *s, struct device *d, void *arg);
int drop_automount(struct deviceset *s, struct device *d, int how);
/* for_each_device at start: mount d again as its file records. */
void restore_mount(struct deviceset *s, struct device *d, void *arg);
/* Note d's block device dev_path as held (in use with no mount of ours
 * on it; NULL: not), st its stat or NULL. Table lock not held. */
void set_held(struct deviceset *s, struct device *d, const char *dev_path, const struct stat *st);
/* autofs.c: at start, mount (or take over) the autofs on mnt_dir, before
 * anything is mounted there; 0 also when the kernel has none (s->autofs
 * stays NULL). autofs_stop: no more requests (ds_close, before the
 * devices are unmounted); autofs_close: unmount it unless a device stays
 * mounted in it. */
int autofs_open(struct deviceset *s);
void autofs_stop(struct deviceset *s);
void autofs_close(struct deviceset *s);
#endif
