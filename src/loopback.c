/*
 * loopback.c - loop devices: attach a file through /dev/loop-control,
 * find the device already backing a file, set capacity, detach.
 */
#include "loopback.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/loop.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metadata.h"

#ifndef LOOP_CONFIGURE
#define LOOP_CONFIGURE 0x4C0A
struct loop_config {
	__u32 fd;
	__u32 block_size;
	struct loop_info64 info;
	__u64 __reserved[8];
};
#endif

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* A sparse file larger than the free space behind it: writes into the
 * pool fail with ENOSPC before the pool looks full. Said, as LVM warns of
 * an overcommitted thin pool; not refused (the space may be freed). */
static void warn_overcommit(int fd, const char *path, const char *what)
{
	struct statvfs vfs;
	struct stat st;
	uint64_t size, held, avail;

	if (fstat(fd, &st) < 0 || fstatvfs(fd, &vfs) < 0)
		return;
	size = (uint64_t)st.st_size;
	held = (uint64_t)st.st_blocks * 512;
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	if (size > held && size - held > avail)
		log_warn("%s %s is %" PRIu64 " MiB, of which %" PRIu64 " MiB not yet written, and its filesystem has "
			 "only %" PRIu64 " MiB free: the pool is overcommitted, and writes fail once that space is "
			 "used; free space there or choose a smaller size", what, path, size >> 20,
			 (size - held) >> 20, avail >> 20);
}

int loop_file_size(const char *path, uint64_t size, bool grow, const char *what)
{
	struct stat st;
	bool created = false;
	int fd, r = 0;

	/* Tell a file made here from one found, as only a new one needs its
	 * directory fsynced. */
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
		created = fd >= 0;
	}
	if (fd < 0) {
		r = -errno;
		log_err("%s %s: open: %s", what, path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		log_err("%s %s: stat: %s", what, path, strerror(-r));
		goto out;
	}
	if (st.st_size != 0 && !grow)
		goto out;
	if ((uint64_t)st.st_size < size) {
		if (ftruncate(fd, (off_t)size) < 0) {
			r = -errno;
			log_err("%s %s: grow to %" PRIu64 " bytes: %s", what, path, size, strerror(-r));
			goto out;
		}
		if (st.st_size) {
			log_info("%s %s grown from %jd to %" PRIu64 " bytes", what, path,
				 (intmax_t)st.st_size, size);
			r = 1;
		}
	} else if ((uint64_t)st.st_size > size) {
		log_warn("%s %s is %jd bytes, more than the %" PRIu64 " asked: it is never shrunk",
			 what, path, (intmax_t)st.st_size, size);
	}
	if (fsync(fd) < 0) {
		r = -errno;
		log_err("%s %s: fsync: %s", what, path, strerror(-r));
		goto out;
	}
	warn_overcommit(fd, path, what);
	/* The file's size is on disk; its name must be too. */
	if (created)
		r = meta_fsync_parent(path);
out:
	close(fd);
	return r;
}

/* Bind file fd to loop device lfd: LOOP_CONFIGURE, else the two-step way. */
static int configure(int lfd, int ffd, const char *path, uint32_t flags, unsigned block_size)
{
	struct loop_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.fd = (__u32)ffd;
	/* Always the caller's sector size: a filesystem made through one attach
	 * must mount through the next, and with direct I/O the kernel would
	 * otherwise take the backing file's direct-I/O alignment. */
	cfg.block_size = block_size;
	cfg.info.lo_flags = flags;
	snprintf((char *)cfg.info.lo_file_name, sizeof(cfg.info.lo_file_name), "%s", path);
	if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOTTY)
		return -errno;
	if (ioctl(lfd, LOOP_SET_FD, ffd) < 0)
		return -errno;
	if (ioctl(lfd, LOOP_SET_STATUS64, &cfg.info) < 0) {
		int r = -errno;

		ioctl(lfd, LOOP_CLR_FD, 0);
		return r;
	}
	return 0;
}

/* Can path be read with O_DIRECT? Some filesystems (tmpfs before 6.6,
 * an overlay on one) accept a loop device's direct-I/O flag and then fail
 * every read, so ask the file itself first. */
static bool direct_io_works(const char *path)
{
	void *buf = NULL;
	bool ok = false;
	int fd;

	fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (posix_memalign(&buf, 4096, 4096) == 0)
		ok = pread(fd, buf, 4096, 0) >= 0;
	free(buf);
	close(fd);
	return ok;
}

int loop_attach(const char *path, bool read_only, bool autoclear,
		unsigned block_size, char *dev, size_t len, int *keep_fd)
{
	uint32_t flags = (read_only ? LO_FLAGS_READ_ONLY : 0) |
			 (autoclear ? LO_FLAGS_AUTOCLEAR : 0);
	int cfd = -1, ffd = -1, lfd = -1, r = 0;

	ffd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (ffd < 0) {
		r = -errno;
		log_err("loop attach %s: open: %s", path, strerror(-r));
		goto out;
	}
	cfd = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (cfd < 0) {
		r = -errno;
		log_err("loop attach %s: open /dev/loop-control: %s", path, strerror(-r));
		goto out;
	}
	/* Another process may take the free device between the two calls. */
	for (int attempt = 0; attempt < 20; attempt++) {
		int nr = ioctl(cfd, LOOP_CTL_GET_FREE);

		if (nr < 0) {
			r = -errno;
			log_err("loop attach %s: LOOP_CTL_GET_FREE: %s", path, strerror(-r));
			goto out;
		}
		snprintf(dev, len, "/dev/loop%d", nr);
		lfd = open(dev, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
		if (lfd < 0) {
			r = -errno;
			if (r == -ENOENT) {
				sleep_ms(10);
				continue;
			}
			log_err("loop attach %s: open %s: %s", path, dev, strerror(-r));
			goto out;
		}
		r = direct_io_works(path) ? configure(lfd, ffd, path, flags | LO_FLAGS_DIRECT_IO, block_size) : -EINVAL;
		if (r == -EINVAL) {
			/* Direct I/O refused (alignment, filesystem): buffered. */
			log_debug("loop attach %s: %s: direct I/O refused, using buffered I/O", path, dev);
			r = configure(lfd, ffd, path, flags, block_size);
		}
		if (r != -EBUSY)
			break;
		close(lfd);
		lfd = -1;
	}
	if (r < 0)
		log_err("loop attach %s: configure %s: %s", path, dev, strerror(-r));
	else
		log_debug("loop attach %s: %s", path, dev);
	if (r == 0 && keep_fd) {
		*keep_fd = lfd;
		lfd = -1;
	}
out:
	if (lfd >= 0)
		close(lfd);
	if (cfd >= 0)
		close(cfd);
	if (ffd >= 0)
		close(ffd);
	return r;
}

int loop_for_each(int (*fn)(void *arg, const char *dev, uint64_t backing_dev, uint64_t backing_ino),
		  void *arg)
{
	char node[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int r = 0;

	d = opendir("/sys/block");
	if (!d)
		return -errno;
	while (r == 0 && (e = readdir(d))) {
		struct loop_info64 info;
		int fd;

		if (strncmp(e->d_name, "loop", 4) != 0)
			continue;
		snprintf(node, sizeof(node), "/dev/%s", e->d_name);
		fd = open(node, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		/* ENXIO: a loop device with nothing attached. */
		if (ioctl(fd, LOOP_GET_STATUS64, &info) == 0)
			r = fn(arg, node, info.lo_device, info.lo_inode);
		close(fd);
	}
	closedir(d);
	return r;
}

int loop_backing(const char *dev, uint64_t *backing_dev, uint64_t *backing_ino)
{
	struct loop_info64 info;
	int fd, r = 0;

	fd = open(dev, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ENXIO : -errno;
	if (ioctl(fd, LOOP_GET_STATUS64, &info) < 0) {
		r = -errno;
	} else {
		*backing_dev = info.lo_device;
		*backing_ino = info.lo_inode;
	}
	close(fd);
	return r;
}

struct find_arg {
	struct stat want;
	char *dev;
	size_t len;
};

static int match_backing(void *arg, const char *dev, uint64_t backing_dev, uint64_t backing_ino)
{
	struct find_arg *a = arg;

	if (backing_ino != (uint64_t)a->want.st_ino || backing_dev != (uint64_t)a->want.st_dev)
		return 0;
	snprintf(a->dev, a->len, "%s", dev);
	return 1;
}

int loop_is_read_only(const char *dev)
{
	struct loop_info64 info;
	int fd = open(dev, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		return -errno;
	r = ioctl(fd, LOOP_GET_STATUS64, &info) < 0 ? -errno : !!(info.lo_flags & LO_FLAGS_READ_ONLY);
	close(fd);
	return r;
}

int loop_find(const char *path, char *dev, size_t len)
{
	struct find_arg a = { .dev = dev, .len = len };

	if (stat(path, &a.want) < 0)
		return -errno;
	return loop_for_each(match_backing, &a);
}

/* An fd on loop device dev for its ioctls; -errno (logged). */
static int open_loop(const char *dev)
{
	int fd = open(dev, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		fd = -errno;
		log_err("loop %s: open: %s", dev, strerror(-fd));
	}
	return fd;
}

int loop_cancel_autoclear(const char *dev)
{
	struct loop_info64 info;
	int fd = open_loop(dev), r = 0;

	if (fd < 0)
		return fd;
	if (ioctl(fd, LOOP_GET_STATUS64, &info) < 0) {
		r = -errno;
		log_err("loop %s: LOOP_GET_STATUS64: %s", dev, strerror(-r));
	} else if (info.lo_flags & LO_FLAGS_AUTOCLEAR) {
		info.lo_flags &= ~(uint32_t)LO_FLAGS_AUTOCLEAR;
		if (ioctl(fd, LOOP_SET_STATUS64, &info) < 0) {
			r = -errno;
			log_err("loop %s: clear autoclear: %s", dev, strerror(-r));
		} else {
			log_debug("loop %s: pending detach cancelled for reuse", dev);
		}
	}
	close(fd);
	return r;
}

int loop_set_capacity(const char *dev)
{
	int fd = open_loop(dev), r = 0;

	if (fd < 0)
		return fd;
	if (ioctl(fd, LOOP_SET_CAPACITY, 0) < 0) {
		r = -errno;
		log_err("loop %s: LOOP_SET_CAPACITY: %s", dev, strerror(-r));
	}
	close(fd);
	return r;
}

int loop_detach(const char *dev)
{
	int fd = open_loop(dev), r = 0;

	if (fd < 0)
		return fd;
	/* The kernel turns a detach of a device still open into autoclear;
	 * EBUSY only comes from a short race with an opener (udev). */
	for (int attempt = 0; attempt < 20; attempt++) {
		if (ioctl(fd, LOOP_CLR_FD, 0) == 0) {
			r = 0;
			break;
		}
		r = -errno;
		if (r == -ENXIO) { /* not bound: already detached */
			r = 0;
			break;
		}
		if (r != -EBUSY)
			break;
		sleep_ms(50);
	}
	if (r < 0)
		log_err("loop %s: LOOP_CLR_FD: %s", dev, strerror(-r));
	close(fd);
	return r;
}
