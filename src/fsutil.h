/*
 * fsutil.h - filesystems on thin devices: mkfs (mkfs.xfs / mkfs.ext4 +
 * tune2fs with the original engine's flags), libblkid probes (type, UUID),
 * mount (options split by libmount), freeze/thaw, whether a block device
 * is still claimed or bound (sysfs), grow (resize2fs / xfs_growfs), discard, and running
 * those helper programs with their output in our log.
 */
#ifndef THINFS_FSUTIL_H
#define THINFS_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Run argv (argv[0] looked up in PATH), wait. Its stdout/stderr lines go
 * to the log (debug on success, error on failure). 0, -ENOENT if the
 * program is missing, -EIO if it failed (exit status logged). */
int fsutil_run(char *const argv[]);

/* As fsutil_run, but on success *output gets the program's stdout and
 * stderr (malloc'd, NUL-terminated) instead of the log. */
int fsutil_run_output(char *const argv[], char **output);

/* "xfs" if mkfs.xfs exists and the kernel knows xfs, else "ext4". */
const char *fsutil_default_fs(void);

/* The smallest device mkfs makes fs on (mkfs.xfs refuses less than
 * 300 MiB since xfsprogs 5.19); 0 if no limit matters. */
#define FSUTIL_XFS_MIN_BYTES (300ULL << 20)
uint64_t fsutil_min_size(const char *fs);

/* mkfs of fs ("xfs"|"ext4") on dev_path with the original engine's
 * arguments plus extra (dm.mkfsarg). ext4: -b 4096 -E nodiscard,lazy_itable_init=0,
 * lazy_journal_init=0 then tune2fs -c -1 -i 0. xfs: -f, -K to skip
 * discard, and 4K sectors unless extra sets them (-s). With 4K as the
 * smallest I/O of either, a device can be attached with 4K logical sectors,
 * which direct I/O on a reflinked file needs. */
int fsutil_mkfs(const char *dev_path, const char *fs, char *const *extra,
		size_t n_extra);

/* libblkid probe: filesystem type and UUID. -ENODATA if none found. */
int fsutil_probe(const char *dev_path, char *type, size_t type_len,
		 char *uuid, size_t uuid_len);

/* The smallest I/O the filesystem on path can be read and written in (its
 * sector size for xfs, its block size for ext4: libblkid's BLOCK_SIZE).
 * -ENODATA if there is no filesystem or blkid does not say. */
int fsutil_min_io_size(const char *path, unsigned *size);

/* How fsutil_mount mounts. */
#define FSUTIL_RDONLY  0x1u /* read-only */
#define FSUTIL_SAFE    0x2u /* nosuid,nodev unless extra says suid / dev */
#define FSUTIL_REMOUNT 0x4u /* change the flags of the mount on target */
/* no journal replay (norecovery, which ext4 and xfs both take): for a read-only block
 * device, where a replay would fail, and -o ro, which writes nothing */
#define FSUTIL_NORECOVERY 0x8u

/* mount(2) dev_path on target. extra is dm.mountopt (may be NULL): VFS
 * flags and filesystem options together, split as mount(8) does with
 * libmount; the filesystem's own defaults ("nouuid" for xfs) come first. */
int fsutil_mount(const char *dev_path, const char *target, const char *fs,
		 unsigned how, const char *extra);
/* Check dm.mountopt as fsutil_mount will read it: 0, or -EINVAL with
 * the reason in err (options for mount(8) alone, bind/move/remount or
 * propagation flags, text libmount cannot parse). */
int fsutil_check_mount_options(const char *opts, char *err, size_t errlen);
/* umount2(target, MNT_DETACH). */
int fsutil_unmount(const char *target);

/* FIFREEZE / FITHAW on an fd opened on the mounted filesystem. */
int fsutil_freeze(int fd);
int fsutil_thaw(int fd);
/* Open block device dev exclusively (O_EXCL), as mount(2) and mkfs do:
 * the fd, -EBUSY while a filesystem (mounted, or unmounted lazily and
 * still used) or another exclusive opener claims it, or -errno. */
int fsutil_open_excl(const char *dev);
/* What the kernel says block device rdev is bound to, from sysfs alone
 * (opens no device): a loop device's backing file, a dm device's name.
 * 0, or -ENODEV once it is unbound or gone. */
int fsutil_bdev_identity(dev_t rdev, char *buf, size_t len);

/* Grow the filesystem on dev_path to fill it. ext4: resize2fs dev_path
 * (mounted or not). xfs: needs mount_path (xfs_growfs); an unmounted xfs
 * is mounted on a private temp dir for it. */
int fsutil_grow(const char *dev_path, const char *fs, const char *mount_path);

/* BLKDISCARD of the whole device open on fd (dev_path names it in
 * messages); -EOPNOTSUPP is not an error to log. The caller decides who
 * else may have it open (pool-dm.c opens it O_EXCL). */
int fsutil_discard(int fd, const char *dev_path);

/* Size of a block device in bytes. */
int fsutil_blockdev_size(const char *dev_path, uint64_t *size);

#endif
