/*
 * metadata.h - the engine's JSON files (json-c), all written atomically:
 * temp file, fsync, rename, fsync of the directory.
 *
 * Layout under the metadata directory (STATEDIR/metadata), with the keys
 * the original engine used so its files stay readable (and Docker's
 * files readable by Docker: Go's json ignores the keys it does not know,
 * and every key it knows keeps its name and type):
 *   <name>                device: device_id, size, transaction_id,
 *                         initialized, deleted, + parent, created,
 *                         renamed_from (only during a rename),
 *                         mount_count and mount_read_only (the explicit
 *                         mounts a start mounts again, 0 when none;
 *                         absent from an older thinfs's file,
 *                         doc/design.md §4)
 *   deviceset-metadata    next_device_id, base_device_uuid, base_device_fs;
 *                         also written as Docker's BaseDeviceUUID and
 *                         BaseDeviceFilesystem, read from them when ours
 *                         are absent (a file Docker wrote)
 *   transaction-metadata  open_transaction_id, device_hash, device_id
 * Temp files start with '.', which no device name can.
 *
 * Also turns the engine's status structs into the JSON of the info files.
 * A missing file is -ENOENT; a truncated or corrupt one -EUCLEAN, logged
 * with its path and what is wrong. Nothing is dropped silently.
 */
#ifndef THINFS_METADATA_H
#define THINFS_METADATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deviceset.h"

struct meta_device {
	char name[DS_NAME_MAX + 1];   /* the file name; not stored inside */
	uint32_t device_id;
	uint64_t size;
	uint64_t transaction_id;
	bool initialized;
	bool deleted;
	char parent[DS_NAME_MAX + 1]; /* "" for the base device */
	int64_t created;              /* unix seconds; 0 if absent */
	char renamed_from[DS_NAME_MAX + 1]; /* "" unless a rename is under way */
	int mount_count;              /* explicit mounts recorded; 0: not mounted */
	bool mount_read_only;         /* those mounts are read-only */
	bool mount_recorded;          /* the file has mount_count (not an older thinfs's); load only */
};

struct meta_deviceset {
	uint32_t next_device_id;
	char base_device_uuid[64];
	char base_device_fs[16];
};

struct meta_transaction {
	uint64_t open_transaction_id;
	char device_hash[DS_NAME_MAX + 1];
	uint32_t device_id;
};

/* Write len bytes as dir/name atomically. */
int meta_write_atomic(const char *dir, const char *name, const char *data,
		      size_t len);
/* fsync a directory (or file) by path: makes a rename or unlink in it
 * durable. */
int meta_fsync_path(const char *path);
/* fsync the directory holding path ("." for a bare name): makes a new
 * entry path durable. */
int meta_fsync_parent(const char *path);
/* mkdir -p with fsync of each new directory's parent. */
int meta_mkdir_p(const char *path, int mode);

int meta_device_save(const char *dir, const struct meta_device *m);
/* Fills m (m->name = name). -ENOENT, -EUCLEAN. */
int meta_device_load(const char *dir, const char *name, struct meta_device *m);
/* Unlink dir/name and fsync dir. -ENOENT if absent. */
int meta_device_remove(const char *dir, const char *name);
/* Rename from_dir/from to to_dir/to, never over an existing file
 * (-EEXIST, nothing changed), and fsync both directories: one durable
 * step, with the file's contents as they were. -ENOENT if from is absent.
 * *moved says whether the rename happened: on a failed fsync it did, but
 * may not survive a crash. */
int meta_device_move(const char *from_dir, const char *from, const char *to_dir, const char *to, bool *moved);
/* Names of device files in dir (not the two engine files, not temp files),
 * sorted; stale temp files are removed (and logged) if remove_temp.
 * Caller frees each name and the array. */
int meta_device_list(const char *dir, bool remove_temp, char ***names, size_t *n);

int meta_deviceset_save(const char *dir, const struct meta_deviceset *m);
int meta_deviceset_load(const char *dir, struct meta_deviceset *m);
int meta_transaction_save(const char *dir, const struct meta_transaction *m);
int meta_transaction_load(const char *dir, struct meta_transaction *m);

/* The reflink pool's transaction_id file, len bytes of it: a decimal
 * number that fits 64 bits, then at most one newline (it is written as
 * "%" PRIu64 "\n"). 0, or -EUCLEAN for anything else (a sign, spaces,
 * trailing text, an overflow). */
int meta_parse_tid(const char *text, size_t len, uint64_t *out);

/* The info files' JSON (pretty, ending in "\n"); malloc'd, NULL on ENOMEM.
 * Keys as doc/design.md §2; figures that are not known are null. */
/* Unix seconds t as ISO 8601 UTC ("2026-11-25T04:23:57Z") in buf (at
 * least META_ISO_TIME_LEN bytes); "" for 0. The one format of every time
 * the namespace shows. */
#define META_ISO_TIME_LEN 32
void meta_iso_time(int64_t t, char *buf, size_t len);
/* A device's state word, the one set info's "state", .devices and `thinfs
 * list` show: "mounted", "automounted", "detached-busy" (held), "active"
 * or "inactive", the first that applies. */
const char *meta_state_word(int mount_count, bool automounted, bool held, bool active);
char *meta_device_info_json(const struct ds_device_info *d);
char *meta_pool_info_json(const struct ds_pool_info *p);
/* The pool's listing (`thinfs list`): JSON lines, one device's object a
 * line, keys as the info file's where they are the same figure; malloc'd,
 * NULL on ENOMEM. And back, for the client: -EINVAL (with a message in
 * err) for text that is not such lines. */
char *meta_listing_json(const struct ds_listing *l);
int meta_listing_parse(const char *text, struct ds_listing *out, char *err, size_t errlen);

#endif
