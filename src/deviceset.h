/*
 * deviceset.h - the engine: a C DeviceSet (Docker's devicemapper
 * graphdriver) over a pool backend (pool.h).
 *
 * It owns the device table (name -> device ID, size, parent), the 24-bit
 * ID bitmap, the transactions that keep the JSON metadata (metadata.h) and
 * the pool in step, the base device, counted mounts, deferred deletion and
 * status. It knows nothing of FUSE: the FUSE layer passes it names and the
 * mount path of a device's rootfs.
 *
 * Names: [A-Za-z0-9][A-Za-z0-9_.-]{0,127}, unique in the pool. "base" is
 * the base device (the parent of top-level snapshots). "ctl", "info",
 * "rootfs", "deviceset-metadata", "transaction-metadata" are refused.
 *
 * All calls are thread-safe. The long operations on one device (mount,
 * unmount, resize, delete, rename, a snapshot of it) are serialised by
 * that device's op lock and may wait for each other; the lookups
 * (ds_device_info, ds_list, ds_pool_info) never take an op lock. Device
 * filesystems are mounted under STATEDIR/mnt, outside the FUSE mount, so
 * no call resolves a path through the FUSE layer (doc/design.md §3).
 *
 * Every call returns 0 or a negative errno; failures are logged naming the
 * device, and the words go to the device's last_error (or the pool's).
 */
#ifndef THINFS_DEVICESET_H
#define THINFS_DEVICESET_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "options.h"
#include "pool.h"

#define DS_NAME_MAX 128
#define DS_BASE_NAME "base"
#define DS_ERROR_MAX 512
#define DS_DM_NAME_MAX POOL_DEV_NAME_MAX
/* Where -o ro mounts the device filesystems (DS_RO_MOUNT_TOP/PREFIX/ID),
 * since it writes nothing under STATEDIR (doc/design.md §8). */
#define DS_RO_MOUNT_TOP "/run/thinfs"
/* ... and puts this after "thinfs-" in its prefix (dm names PREFIX-pool,
 * PREFIX-ID; docker_pool_name knows it). */
#define DS_RO_PREFIX_TAG "ro-"

struct deviceset;

/* A copy of one device's state, for the FUSE layer. Reading it never
 * activates the device. */
struct ds_device_info {
	char name[DS_NAME_MAX + 1];
	char parent[DS_NAME_MAX + 1]; /* "base" for top-level, "" for the base */
	uint32_t device_id;
	uint64_t size;                /* bytes */
	uint64_t transaction_id;
	bool initialized;
	bool deleted;
	bool mounted;
	int mount_count;
	bool automounted;             /* mounted read-only by a walk through rootfs, not counted */
	bool read_only;               /* mounted read-only */
	bool active;                  /* has a block device now (held too) */
	bool held;                    /* in use with no mount of thinfs on it (a lazy
				       * unmount still used): "detached-busy" */
	char dm_name[DS_DM_NAME_MAX]; /* active name (PREFIX-ID) */
	char dev_path[POOL_DEV_PATH_MAX]; /* block device node, "" when inactive */
	char mount_dir[PATH_MAX];     /* where it is (or would be) mounted: STATEDIR/mnt/ID */
	char rootfs[PATH_MAX + 8];    /* the rootfs link: mount_dir, or mount_dir/rootfs for a Docker layer */
	char filesystem[16];          /* "xfs" / "ext4" */
	int64_t created;              /* unix seconds */
	bool mapped_known;            /* false: mapped_bytes is null */
	uint64_t mapped_bytes;
	/* What only it maps (freed if deleted), what it shares, and when the
	 * worker looked (unix seconds); usage_at 0: not yet (all null). */
	uint64_t exclusive_bytes, shared_bytes;
	int64_t usage_at;
	char last_error[DS_ERROR_MAX];/* "" if none */
	int64_t last_error_at;        /* when it was kept (unix seconds) */
	int n_children;               /* visible (not deleted) child devices */
};

/* How many devices the pool's info ranks by exclusive bytes. */
#define DS_TOP_USAGE 20

/* How many orphan device IDs the pool's info lists (it counts them all). */
#define DS_ORPHANS_SHOWN 32

struct ds_pool_info {
	char backend[16];             /* "dm" | "reflink" */
	char pool_name[PATH_MAX];
	char data_file[PATH_MAX];
	char data_loopback[64];
	char metadata_file[PATH_MAX];
	char metadata_loopback[64];
	uint64_t data_used, data_total, data_available;
	uint64_t metadata_used, metadata_total, metadata_available;
	uint64_t base_device_size;
	char base_device_fs[16];
	uint32_t sector_size;
	uint32_t block_size;
	bool udev_sync_supported;
	bool deferred_remove_enabled;
	bool deferred_delete_enabled;
	unsigned deferred_deleted_device_count;
	unsigned device_count;        /* visible devices, base excluded */
	/* Pool devices no metadata file names, found at start and left
	 * alone (doc/design.md §4): how many, and the first of their IDs. */
	unsigned orphan_count;
	uint32_t orphan_ids[DS_ORPHANS_SHOWN];
	uint64_t transaction_id;
	unsigned min_free_space;      /* percent */
	/* The visible devices with the most exclusive bytes, most first, as
	 * the worker last looked (usage_at; 0: not yet). */
	struct ds_usage_entry {
		char name[DS_NAME_MAX + 1];
		uint64_t exclusive_bytes, shared_bytes;
	} top_usage[DS_TOP_USAGE];
	unsigned n_top_usage;
	int64_t usage_at;
	/* Free data or metadata space under dm.low_space_threshold. */
	bool low_space;
	unsigned low_space_threshold; /* percent */
	char last_error[DS_ERROR_MAX];
	int64_t last_error_at;        /* when it was kept (unix seconds) */
};

struct ds_entry {
	char name[DS_NAME_MAX + 1];
	uint32_t device_id;
	int64_t created;
};

/* Start: open the pool (backend chosen by opts->backend), load and check
 * the metadata under STATEDIR/metadata (a corrupt file stops the start,
 * reported by path), roll back an open transaction, make the base device
 * at first start or verify (and grow) it later, deactivate devices left
 * active by a killed daemon. state_dir must exist. */
int ds_open(const char *state_dir, const struct ds_options *opts,
	    struct deviceset **out);
/* Start the deferred-deletion worker thread. Separate from ds_open so
 * the daemon can fork into the background in between (threads do not
 * survive fork). Without it deferred deletions wait for the next start. */
int ds_start_worker(struct deviceset *ds);
/* The daemon went to the background: its child takes STATEDIR's lock
 * again as its own (src/dirlock.h). A negative errno, logged, if it lost
 * the lock: the daemon must stop. */
int ds_daemonized(struct deviceset *ds);
/* Where the log goes when the daemon is in the background and no syslog
 * listens (/dev/log missing): STATEDIR/DS_LOG_NAME, or under -o ro, which
 * writes nothing under STATEDIR, its mount directory's name + ".log". */
#define DS_LOG_NAME "thinfs.log"
void ds_log_path(struct deviceset *ds, char *buf, size_t len);
/* The FUSE mount is gone: the lock says that this thinfs stops, so a
 * start waits for it rather than failing (src/dirlock.h). */
void ds_stopping(struct deviceset *ds);
/* Orderly shutdown: the deferred-deletion worker stopped, mounted devices
 * that nothing uses unmounted and deactivated (those in use stay mounted
 * in STATEDIR/mnt for the next start to adopt; explicit mounts stay
 * recorded, and the next start mounts them again), metadata saved, pool
 * closed. Frees ds. */
void ds_close(struct deviceset *ds);

/* 0 if name is acceptable for a new device, else -EINVAL/-ENAMETOOLONG. */
int ds_check_name(const char *name);

/* Snapshot parent (DS_BASE_NAME for a top-level device) as name.
 * -EEXIST, -ENOENT (no such parent), -EINVAL, -ENOSPC (below
 * dm.min_free_space, or no free device ID). A mounted parent is frozen
 * around the snapshot. */
int ds_add_device(struct deviceset *ds, const char *name, const char *parent);
/* Delete a device. -EBUSY while mounted (unless deferred deletion is on
 * and only the pool is busy: then it is marked deleted, vanishes from
 * lists and a worker retries), -ENOTEMPTY while it has visible children,
 * -ENOENT, -EPERM for the base device. */
int ds_delete_device(struct deviceset *ds, const char *name);
/* -EBUSY while mounted, -EEXIST, -ENOENT, -EINVAL, -EPERM for base. */
int ds_rename_device(struct deviceset *ds, const char *old_name,
		     const char *new_name);
/* Counted mount (the engine's Get): the first activates the device and
 * mounts its filesystem on its mount directory (ds_mount_dir), later ones
 * add one. The count is recorded in the device's file first, so a start
 * mounts it again. -EBUSY if mounted with the other read-only-ness; the
 * file's write's errno. */
int ds_mount(struct deviceset *ds, const char *name, bool read_only);
/* Automount (dm.automount): mount an unmounted device read-only, not
 * counted, because a path walk goes through its rootfs link; it expires
 * after dm.automount_timeout unused. 0 also when there is nothing to do
 * (automount off, already mounted); the failure is logged and kept in
 * last_error. */
int ds_automount(struct deviceset *ds, const char *name);
/* With an autofs on the mount directory (autofs.c), a walk into a
 * device's mount directory automounts it and nothing else does: make the
 * directory (a stat of it then triggers nothing) and return true, and the
 * rootfs link is answered without mounting. false without an autofs, or
 * while the device's layout is not known (a Docker layer's link leads
 * into its rootfs/): the reader of the link automounts. */
bool ds_autofs_link(struct deviceset *ds, const struct ds_device_info *info);
/* After the daemon went to the background: take the autofs's requests
 * (its own process group, a new pipe, a thread). A negative errno if it
 * cannot (logged, the autofs made catatonic): ds_autofs_link is then
 * false and readers of the link mount, as without an autofs. */
int ds_start_autofs(struct deviceset *ds);
/* The directory a device's filesystem is mounted on, STATEDIR/mnt/ID:
 * named by ID so a rename does not move it. It exists only while mounted
 * (in an autofs, autofs.c: as long as the device does). -ENOENT for an
 * unknown device. */
int ds_mount_dir(struct deviceset *ds, const char *name, char *buf, size_t len);
/* Counted unmount (Put): the last one unmounts lazily and deactivates;
 * recorded first, as ds_mount. A filesystem that programs still use
 * lives on, detached: the device is then held (info: detached-busy).
 * -EINVAL if not mounted (0 for a device recorded mounted that the start
 * could not mount: the record goes). */
int ds_unmount(struct deviceset *ds, const char *name);
/* Grow a device and its filesystem to size bytes (-EINVAL if smaller).
 * A mounted filesystem is grown online. */
int ds_resize_device(struct deviceset *ds, const char *name, uint64_t size);
/* Grow the pool's data space. */
int ds_resize_pool(struct deviceset *ds, uint64_t data_size);

/* Lookups for the FUSE layer: memory only, under a lock never held
 * across I/O, so they never wait for another operation's pool work.
 * mapped_bytes is not filled here (see ds_device_usage). */
int ds_device_info(struct deviceset *ds, const char *name,
		   struct ds_device_info *out);
/* Exclusive and shared bytes older than this are looked at again when
 * an info (or .devices) file is read. */
#define USAGE_MAX_AGE_SECONDS 30
/* Fill info's mapped_bytes from the pool, and have the worker read the
 * devices' exclusive and shared bytes if the last figures are over
 * USAGE_MAX_AGE_SECONDS old (for reading a device's info file, never for
 * lookup or getattr). Takes no engine lock; never waits for the worker. */
void ds_device_usage(struct deviceset *ds, struct ds_device_info *info);
/* If info says held: ask sysfs whether its block device still is (a
 * filesystem unmounted lazily lives on until its last user goes), and
 * refresh info if not. Takes the table lock only (ds_device_usage does
 * it too); for reading a device's info or ctl file. */
void ds_device_recheck(struct deviceset *ds, struct ds_device_info *info);
int ds_device_info_by_id(struct deviceset *ds, uint32_t device_id,
			 struct ds_device_info *out);
int ds_pool_info(struct deviceset *ds, struct ds_pool_info *out);
/* Add to out (from ds_pool_info) the ranking of the devices by exclusive
 * bytes, and have the worker read them again as ds_device_usage does
 * (for reading the pool's info file; statfs and ctl need neither). */
void ds_pool_usage(struct deviceset *ds, struct ds_pool_info *out);
/* Visible children of parent (DS_BASE_NAME for the top), sorted by name;
 * caller frees *out. -ENOENT if parent is unknown. */
int ds_list(struct deviceset *ds, const char *parent, struct ds_entry **out,
	    size_t *n);
/* One device of the pool's listing (`thinfs list`, doc/design.md §1):
 * memory only, as the info files' figures are. */
struct ds_list_entry {
	char name[DS_NAME_MAX + 1];
	char parent[DS_NAME_MAX + 1]; /* "" for the base */
	char *path;                   /* under the mount: "a/b" ("" for the base) */
	char *rootfs;                 /* as ds_device_info's */
	uint32_t device_id;
	uint64_t size;
	int mount_count;
	bool automounted, read_only, active, held;
	/* As ds_device_info's (usage_at 0: not looked yet); what it maps
	 * is their sum, as of usage_at. */
	uint64_t exclusive_bytes, shared_bytes;
	int64_t usage_at;
	int64_t created;
};
struct ds_listing {
	struct ds_list_entry *e;
	size_t n;
};
/* Every visible device, the base first, then by path (a device right
 * before its descendants). Has the worker look at usage as
 * ds_pool_usage does; takes the table lock for memory copies only. */
int ds_list_all(struct deviceset *ds, struct ds_listing *out);
void ds_listing_free(struct ds_listing *l);
/* Have the worker read every device's exclusive and shared bytes now,
 * and wait until it has (the pool's ctl `refresh-usage`): seconds on a
 * large pool, never a FUSE request. */
int ds_refresh_usage(struct deviceset *ds);
/* Have fn(arg, device_id, base) called for each device whose exclusive
 * bytes a usage pass changed (base: it is the base device), from the
 * worker, under the hook's own lock: fn must take no engine lock (NULL:
 * no more calls once this returns). For the FUSE layer, whose directory
 * attributes (du's st_blocks) the kernel caches. */
void ds_set_usage_hook(struct deviceset *ds, void (*fn)(void *arg, uint32_t device_id, bool base), void *arg);
/* Record words for the pool's last_error (e.g. a refused ctl command). */
void ds_set_pool_error(struct deviceset *ds, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Record words for a device's last_error (the base device's are the
 * pool's: its directory is the top, whose ctl is the pool's). */
void ds_set_device_error(struct deviceset *ds, const char *name,
			 const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Forget the last_error of a device, or of the pool for name NULL or
 * DS_BASE_NAME (a later command or operation on it succeeded). */
void ds_clear_error(struct deviceset *ds, const char *name);
/* The device's place in the namespace, "/a/b/NAME" ("/" for the base),
 * for messages. -ENOENT for an unknown device. */
int ds_device_path(struct deviceset *ds, const char *name, char *buf, size_t len);
/* Is name the device ancestor or one of its descendants? (Every device
 * is within the base device.) Memory only, under the table lock. */
bool ds_within(struct deviceset *ds, const char *name, const char *ancestor);
/* Would the rmdir of name or of a descendant fail with -EBUSY because it
 * is mounted? 0 if not; -EBUSY with why (the first such device, by its
 * path) if a counted mount or an automount in use is there. Automounts
 * nothing uses are taken away on the way, as rmdir would (doc/design.md
 * §1, "rm -r"). */
int ds_subtree_busy(struct deviceset *ds, const char *name, char *why, size_t len);

/* Compare the metadata with the pool: every device file's ID is in the
 * pool and the reverse, no two files share an ID, the ID bitmap matches,
 * no transaction is open. 0, or -EUCLEAN with every difference logged and
 * the first one in report. The oracle of the crash tests. */
int ds_check_consistency(struct deviceset *ds, char *report, size_t len);

/* Let the deferred-deletion worker run now (tests, shutdown). */
void ds_kick_deferred(struct deviceset *ds);

/* What a start does with the transaction-metadata it finds, given the
 * pool's transaction ID: nothing (open == pool), roll the open transaction
 * back (open == pool + 1, the only gap the protocol leaves: the pool
 * device it names is deleted, its metadata removed, its ID freed), or
 * refuse to start (any other gap: a reset, restored or swapped pool, or
 * metadata of another pool). */
enum ds_txn_action { DS_TXN_CLEAN, DS_TXN_ROLLBACK, DS_TXN_MISMATCH };
enum ds_txn_action ds_txn_decide(uint64_t pool_tid, uint64_t open_tid);

#endif
