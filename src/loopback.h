/*
 * loopback.h - loop devices and their backing files: size a file, attach a file (direct I/O where the backing
 * filesystem allows it), find the loop device already attached to a file,
 * set capacity after the file grew, detach.
 */
#ifndef THINFS_LOOPBACK_H
#define THINFS_LOOPBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Make the backing file path (named `what` in the log, e.g. "dm pool data
 * file") of `size` bytes, sparse. An existing file is grown to `size` only
 * when `grow` (the size was asked for: a restart without the option keeps
 * the file as it is rather than growing it to the default), and never
 * shrunk (a warning). 1 when an existing file grew, so that its user takes
 * the new size; 0; -errno. */
int loop_file_size(const char *path, uint64_t size, bool grow, const char *what);
/* Attach path to a free loop device through /dev/loop-control
 * (LOOP_CONFIGURE where available, else LOOP_SET_FD + LOOP_SET_STATUS64),
 * O_RDWR unless read_only; autoclear if asked (the kernel detaches it at
 * last close); logical sectors of block_size bytes (512 or 4096). dev
 * (e.g. "/dev/loop3") filled. Tries direct I/O and keeps buffered I/O
 * where refused. keep_fd: NULL, or where the device's open descriptor is
 * handed over (an autoclear device then lives until it is closed, or the
 * process dies). */
int loop_attach(const char *path, bool read_only, bool autoclear,
		unsigned block_size, char *dev, size_t len, int *keep_fd);
/* The loop device whose backing file is path (same st_dev and st_ino, by
 * LOOP_GET_STATUS64 of each loop device). 1 found, 0 none, -errno. */
int loop_find(const char *path, char *dev, size_t len);
/* 1 if loop device dev was attached read-only, 0 if not, -errno. */
int loop_is_read_only(const char *dev);
/* Call fn for every attached loop device: its node ("/dev/loopN") and
 * the st_dev and st_ino of its backing file. One LOOP_GET_STATUS64 per
 * loop device: a caller with many files to look up walks once instead of
 * calling loop_find for each. fn returns 0 to go on, 1 to stop
 * (loop_for_each then returns 1), or -errno (returned). */
int loop_for_each(int (*fn)(void *arg, const char *dev, uint64_t backing_dev, uint64_t backing_ino),
		  void *arg);
/* The st_dev and st_ino of the file behind loop device dev: 0; -ENXIO if
 * nothing is attached (or the node is gone); -errno. Not logged: asking
 * is how a caller learns that a device it knew was detached. */
int loop_backing(const char *dev, uint64_t *backing_dev, uint64_t *backing_ino);
/* Undo a pending detach: a LOOP_CLR_FD of a device still open only marks
 * it autoclear, and a device found again for reuse must not vanish at its
 * old user's last close. */
int loop_cancel_autoclear(const char *dev);
/* LOOP_SET_CAPACITY after the backing file grew. */
int loop_set_capacity(const char *dev);
/* LOOP_CLR_FD; -EBUSY while open (e.g. mounted). Retries briefly on EBUSY
 * as udev may hold it for a moment. */
int loop_detach(const char *dev);

#endif
