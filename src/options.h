/*
 * options.h - the dm.* storage options (and backend=) of doc/design.md §6:
 * their defaults, parsing with the original engine's units and bool
 * spellings, and validation. A refused key or value leaves the options
 * unchanged and puts a one-line message naming the key in err.
 */
#ifndef THINFS_OPTIONS_H
#define THINFS_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tf_backend { TF_BACKEND_AUTO, TF_BACKEND_REFLINK, TF_BACKEND_DM };

struct ds_options {
	enum tf_backend backend;       /* backend=auto|reflink|dm, default auto */
	uint64_t base_size;            /* dm.basesize, bytes, default 10G */
	bool base_size_set;            /* given explicitly (grows an existing base) */
	uint64_t loop_data_size;       /* dm.loopdatasize, default 100G */
	bool loop_data_size_set;
	uint64_t loop_metadata_size;   /* dm.loopmetadatasize, default 2G */
	bool loop_metadata_size_set;
	char fs[8];                    /* dm.fs: "xfs", "ext4", or "" = choose at start */
	char **mkfs_args;              /* dm.mkfsarg, may be given several times */
	size_t n_mkfs_args;
	char *mount_opt;               /* dm.mountopt, comma-joined; NULL if none */
	char *data_dev;                /* dm.datadev */
	char *metadata_dev;            /* dm.metadatadev */
	char *thinpool_dev;            /* dm.thinpooldev, without "/dev/mapper/" */
	bool blk_discard;              /* dm.blkdiscard: see options_blk_discard() */
	bool blk_discard_set;
	uint32_t block_size;           /* dm.blocksize, bytes, default 64K */
	bool override_udev_sync_check; /* dm.override_udev_sync_check, default false */
	bool deferred_removal;         /* dm.use_deferred_removal, default false */
	bool deferred_deletion;        /* dm.use_deferred_deletion, default false */
	unsigned min_free_space;       /* dm.min_free_space, percent 0..99, default 10 */
	unsigned low_space_threshold;  /* dm.low_space_threshold, percent 1..99, default 20 */
	/* dm.autoextend=SIZE|N%: grow a loopback data file by this much when
	 * free space falls under the threshold; both 0: off (the default). */
	uint64_t autoextend_bytes;
	unsigned autoextend_percent;
	uint64_t xfs_nospace_max_retries; /* dm.xfs_nospace_max_retries; */
	bool xfs_nospace_max_retries_set; /* unset: leave the kernel's default */
	int libdm_log_level;           /* dm.libdm_log_level 2..7, default 3 */
	bool automount;                /* dm.automount, default true (doc/design.md §1) */
	uint64_t automount_timeout;    /* dm.automount_timeout, seconds, default 60 */
	/* Not a dm.* key: the FUSE mount's allow_other, set by the daemon.
	 * Device filesystems are then mounted nosuid,nodev unless
	 * dm.mountopt says suid/dev, and STATEDIR lets others through. */
	bool allow_other;
	/* Not a dm.* key either: -o ro (doc/design.md §8). Nothing in the
	 * pool or STATEDIR is written, the FUSE mount is read-only (so
	 * devices are reached through rootfs's automount only) and every
	 * device filesystem mounts read-only without journal replay. */
	bool read_only;
};

void options_init(struct ds_options *o);
void options_free(struct ds_options *o);

/* Set one option. key is "dm.basesize" etc. or "backend".
 * 0, or -EINVAL with a message like
 * "dm.basesize: invalid size 'ten' (use e.g. 10G)" in err. */
int options_set(struct ds_options *o, const char *key, const char *value,
		char *err, size_t errlen);

/* "dm.a=1,dm.b=2" (as in -o). Stops at the first refusal. */
int options_parse_list(struct ds_options *o, const char *list,
		       char *err, size_t errlen);

/* Checks that need several keys together (e.g. dm.datadev without
 * dm.metadatadev). 0 or -EINVAL with err. */
int options_validate(const struct ds_options *o, char *err, size_t errlen);

/* A start that will make the base device (state_dir, its real path, is
 * NULL or has no base device's file yet): can dm.fs go on dm.basesize?
 * Checked before anything is made, so mkfs never refuses it halfway
 * through a first start. 0 or -EINVAL with err. */
int options_check_base_size(const struct ds_options *o, const char *state_dir, char *err, size_t errlen);

/* Whether a device's blocks are discarded before it is deleted: as asked
 * by dm.blkdiscard, else on for loopback pools (it gives the space back to
 * the sparse data file) and off on block devices and a taken-over pool,
 * where it is slow and rarely useful -- the original engine's defaults. */
bool options_blk_discard(const struct ds_options *o);

/* The original engine's units.RAMInBytes: "10G", "10g", "10GB", "10GiB",
 * "1.5G", "512" (bytes), binary multiples k m g t p. 0 or -EINVAL. */
int parse_size(const char *s, uint64_t *out);

/* Go's strconv.ParseBool spellings: 1 t T TRUE true True 0 f F FALSE false False. */
int parse_bool(const char *s, bool *out);

/* Print one "  -o KEY=VALUE   description (default X)" line per option. */
void options_print_help(void);

#endif
