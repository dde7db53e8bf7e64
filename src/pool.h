/*
 * pool.h - the pool backend interface the engine calls (doc/design.md §7).
 *
 * A backend owns a thin pool: devices are known to it only by a 24-bit
 * device ID (and, for activation, the name the engine gives the active
 * device). Backends know nothing of device names' meaning, trees or JSON.
 * Every call returns 0 or a negative errno and logs its failure naming the
 * device ID / pool and the failing call.
 *
 * Two implementations: pool_dm_ops (pool-dm.c, kernel dm-thin through
 * libdevmapper) and pool_reflink_ops (pool-reflink.c, one sparse image file
 * per device, snapshots by FICLONE, activation by a loop device).
 *
 * Thread safety: the engine calls the verbs that change the pool, and
 * activate/deactivate/is_active, with its pool lock held (engine.h;
 * for_each_active only at start, before any other thread runs),
 * so those see one call at a time; except create_snap and
 * snap_prepare/snap_publish/snap_drop of a backend that sets
 * concurrent_snap, called without it, beside any other verb. status and dev_status are called
 * without it, concurrently with anything: a backend answers them from
 * the kernel or the filesystem without touching state the other verbs
 * change. discard is called without it too, for a deleted device nothing
 * else reaches; a backend whose library is not thread-safe serialises
 * its own calls into it (pool-dm.c).
 */
#ifndef THINFS_POOL_H
#define THINFS_POOL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "options.h"

#define POOL_MAX_DEVICE_ID 0xffffffu /* 24-bit, as dm-thin */
/* The longest active-device name, NUL included: libdevmapper's
 * DM_NAME_LEN (pool-dm.c checks the two agree). Thin devices are named
 * PREFIX-ID (doc/design.md §5), far shorter. */
#define POOL_DEV_NAME_MAX 128
/* The longest device node path a backend gives: /dev/mapper/NAME or
 * /dev/loopN (a backend that would need more returns -ENAMETOOLONG). */
#define POOL_DEV_PATH_MAX (sizeof("/dev/mapper/") + POOL_DEV_NAME_MAX)

struct pool;

struct pool_config {
	const char *state_dir;  /* STATEDIR, absolute */
	const char *prefix;     /* active device name prefix, "thinfs-MAJ:MIN-INO"
				 * ("thinfs-ro-MAJ:MIN-INO" under -o ro) */
	const char *mnt_dir;    /* the engine's mount directory (a backend may
				 * mount its own store there under -o ro) */
	const struct ds_options *opts;
};

struct pool_status {
	uint64_t transaction_id;
	uint64_t data_used, data_total;         /* bytes */
	uint64_t metadata_used, metadata_total; /* bytes */
	uint32_t sector_size;                   /* 512 */
	uint32_t block_size;                    /* pool allocation unit, bytes */
	char pool_name[PATH_MAX];               /* dm pool name; reflink: image store path */
	char data_file[PATH_MAX];               /* loopback data file or "" */
	char data_loopback[64];                 /* /dev/loopN or "" */
	char metadata_file[PATH_MAX];
	char metadata_loopback[64];
	bool udev_sync_supported;
	bool deferred_remove_supported;
};

struct pool_dev_status {
	uint64_t mapped_bytes;   /* space the device has allocated in the pool */
	uint64_t highest_mapped; /* byte offset past the highest mapped block */
};

struct pool_ops {
	const char *name; /* "dm" or "reflink" */
	/* The engine freezes a mounted origin's filesystem (FIFREEZE) around
	 * create_snap itself when true; when false the backend's own suspend
	 * does it (dm suspend with lockfs). */
	bool engine_freezes_origin;
	/* create_snap of different devices may run side by side, without
	 * the engine's pool lock, while other verbs run under it (reflink:
	 * a clone into a new file of its own). The engine then lets the lock
	 * go while an add writes, and adds commit in groups. */
	bool concurrent_snap;

	/* Make or take over the pool described by cfg. Logs what it found
	 * or made (files, loop devices, pool name). With opts->read_only
	 * (-o ro, doc/design.md §8) it makes, grows and removes nothing,
	 * and the pool and every device it activates are read-only; the
	 * engine then calls no verb that changes the pool. A read-only open
	 * refuses a pool a read-write run holds, and a read-write open one
	 * a read-only run holds. */
	int (*open)(const struct pool_config *cfg, struct pool **out);
	/* Release the pool: deactivate it if this backend activated it. The
	 * engine deactivates the thin devices first. Never fails; logs. */
	void (*close)(struct pool *p);

	int (*get_transaction_id)(struct pool *p, uint64_t *tid);
	/* Compare-and-set, as dm-thin's set_transaction_id message:
	 * -EINVAL (logged) if the pool's ID is not old_tid. */
	int (*set_transaction_id)(struct pool *p, uint64_t old_tid, uint64_t new_tid);

	/* New empty thin device of the given size. -EEXIST if the pool
	 * already has dev_id (the engine retries with another ID). */
	int (*create_thin)(struct pool *p, uint32_t dev_id, uint64_t size);
	/* Snapshot of origin_id as dev_id. For a backend that suspends
	 * origins itself (engine_freezes_origin false), origin_active_name is
	 * the origin's active name when the kernel has it active (the engine
	 * asks is_active), else NULL; it is suspended around the snapshot and
	 * resumed on every path. Always NULL for the others. -EEXIST as
	 * create_thin. */
	int (*create_snap)(struct pool *p, uint32_t dev_id, uint32_t origin_id,
			   uint64_t size, const char *origin_active_name);
	/* Optional (NULL where the backend has no such split): create_snap
	 * in two steps, so the engine can write its record of the add while
	 * the pool works. snap_prepare makes the snapshot durable where the
	 * pool does not count it (a crash leaves nothing the pool knows;
	 * -EEXIST as create_snap) and gives a handle; snap_publish makes it
	 * dev_id (-EEXIST as create_snap; the handle is used up either way);
	 * snap_drop gives up a prepared one. For backends that suspend no
	 * origin (engine_freezes_origin). */
	int (*snap_prepare)(struct pool *p, uint32_t dev_id, uint32_t origin_id, uint64_t size, int *handle);
	int (*snap_publish)(struct pool *p, uint32_t dev_id, int handle);
	void (*snap_drop)(struct pool *p, uint32_t dev_id, int handle);
	/* Remove dev_id from the pool. -ENOENT if the pool has no such ID;
	 * -EBUSY if it is still active/open. */
	int (*delete_thin)(struct pool *p, uint32_t dev_id);
	/* All device IDs the pool holds, sorted ascending; caller frees *ids. */
	int (*list_ids)(struct pool *p, uint32_t **ids, size_t *n);

	/* Make dev_id usable as a block device named name; on success
	 * dev_path holds its node (/dev/mapper/NAME, /dev/loopN). If it is
	 * already active (e.g. after a daemon crash), reuse it, cancelling a
	 * pending deferred removal -- but only if it really is dev_id of
	 * this pool: anything else of that name is -EEXIST, untouched. */
	int (*activate)(struct pool *p, const char *name, uint32_t dev_id,
			uint64_t size, char *dev_path, size_t len);
	/* Undo activate. deferred: if the device is still open, let the
	 * kernel remove it at last close instead of failing with -EBUSY.
	 * Not active: 0. */
	int (*deactivate)(struct pool *p, const char *name, uint32_t dev_id,
			  bool deferred);
	/* 1 if active (dev_path filled), 0 if not, or -errno. */
	int (*is_active)(struct pool *p, const char *name, uint32_t dev_id,
			 char *dev_path, size_t len);
	/* Optional: fn(arg, dev_id, dev_path) once for each active device
	 * of the pool (fn returns 0 to go on, or -errno to stop with it).
	 * A start asks this, where the backend has it, instead of is_active
	 * for every device: reflink answers with one walk of the loop
	 * devices. NULL: the engine asks is_active per device. */
	int (*for_each_active)(struct pool *p, int (*fn)(void *arg, uint32_t dev_id, const char *dev_path),
			       void *arg);
	/* Discard every block of dev_id so the pool (and a sparse data
	 * file) gets the space back, only if nobody has the device open:
	 * -EBUSY otherwise, nothing discarded. Leaves it as it found it
	 * (active or not). Called without the engine's pool lock, for a
	 * deleted device nothing else reaches. NULL where deleting frees the
	 * space anyway. */
	int (*discard)(struct pool *p, const char *name, uint32_t dev_id, uint64_t size);
	/* Largest data size (bytes) resize_pool may grow to: what the
	 * metadata space can map. NULL: no bound beyond resize_pool's own. */
	uint64_t (*max_data_size)(struct pool *p);
	/* Mapped space of a device. -ENODEV if the backend needs the device
	 * active to tell and it is not (the engine reports null then). */
	int (*dev_status)(struct pool *p, const char *name, uint32_t dev_id,
			  struct pool_dev_status *st);
	/* Optional: fn(arg, dev_id, exclusive, shared) for every device of
	 * the pool: the bytes only it maps (what deleting it would free) and
	 * the bytes it shares with others (dm: thin_ls of a metadata
	 * snapshot; reflink: FIEMAP's shared flag). fn returns 0 to go on.
	 * Called from the engine's worker without its pool lock, concurrently
	 * with anything: the backend serialises what must be (dm: one
	 * metadata snapshot at a time). */
	int (*usage)(struct pool *p, int (*fn)(void *arg, uint32_t dev_id, uint64_t exclusive, uint64_t shared),
		     void *arg);
	/* Grow a thin device to new_size bytes (active or not). */
	int (*resize_thin)(struct pool *p, const char *name, uint32_t dev_id,
			   uint64_t new_size);

	int (*status)(struct pool *p, struct pool_status *st);
	/* Grow the pool's data space to new_size bytes; -EINVAL if smaller. */
	int (*resize_pool)(struct pool *p, uint64_t new_size);
};

extern const struct pool_ops pool_reflink_ops;
extern const struct pool_ops pool_dm_ops;

/* 1 if /dev/mapper/control answers and the thin-pool target is available,
 * 0 otherwise (reason logged at info level). Used by backend=auto. */
int pool_dm_available(void);

#endif
