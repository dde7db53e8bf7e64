/*
 * fsutil.c - filesystems on thin devices: mkfs, libblkid probes, mount,
 * freeze/thaw, grow, discard, and running the helper programs with their
 * output in our log. The only file that includes libblkid and libmount;
 * it turns their 1/-2 and NULL returns into 0/-errno here.
 */
#include "fsutil.h"

#include <blkid/blkid.h>
#include <libmount/libmount.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

static const char *package_of(const char *prog)
{
	if (strstr(prog, "xfs"))
		return "xfsprogs";
	if (strstr(prog, "ext4") || strstr(prog, "2fs") || strstr(prog, "e2fs"))
		return "e2fsprogs";
	if (strstr(prog, "thin_"))
		return "thin-provisioning-tools";
	return NULL;
}

/* Log each line of buf at prio, prefixed with the program's name. */
static void log_lines(int prio, const char *prog, char *buf)
{
	char *save = NULL;

	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		tf_log(prio, "%s: %s", prog, line);
}

/* Output kept from one program: the log of a runaway program, or a
 * thin_dump of a huge pool, must not take the daemon's memory. */
#define RUN_OUTPUT_MAX ((size_t)64 * 1024 * 1024)
/* What is still read from the pipe after the program exited while a
 * descendant holds it open: at most what a pipe can hold. */
#define RUN_DRAIN_AFTER_EXIT ((size_t)1024 * 1024)

/* The output of a program as it is read: kept up to RUN_OUTPUT_MAX (or
 * until memory runs out), counted beyond. */
struct capture {
	char *buf;      /* NUL-terminated once anything is kept */
	size_t len, cap;
	size_t dropped; /* bytes read and discarded */
	bool nomem;     /* dropped because realloc failed, not the limit */
};

static void capture_add(struct capture *c, const char *data, size_t n)
{
	if (c->dropped == 0 && c->cap - c->len < n + 1 && c->len + n < RUN_OUTPUT_MAX) {
		size_t ncap = c->cap ? c->cap : 65536;
		char *nb;

		while (ncap - c->len < n + 1)
			ncap *= 2;
		if (ncap > RUN_OUTPUT_MAX)
			ncap = RUN_OUTPUT_MAX;
		nb = realloc(c->buf, ncap);
		if (nb) {
			c->buf = nb;
			c->cap = ncap;
		} else {
			c->nomem = true;
		}
	}
	/* Once something was dropped nothing more is kept, so what is kept
	 * is always the head of the output, in one piece. */
	if (c->dropped == 0 && c->cap - c->len >= n + 1) {
		memcpy(c->buf + c->len, data, n);
		c->len += n;
		c->buf[c->len] = '\0';
	} else {
		c->dropped += n;
	}
}

/* Read the output of child pid from fd until EOF, keeping what c can hold
 * and discarding the rest: a child blocked on a full pipe never exits, so
 * whatever happens here the pipe is read to its end. Also stops when the
 * child has exited and its pipe is drained but a descendant it left behind
 * still holds the pipe open (EOF would never come). *reaped tells whether
 * *status was collected here. 0 or -errno (logged). */
static int drain_child(const char *prog, pid_t pid, int fd, struct capture *c,
		       int *status, bool *reaped)
{
	char chunk[16384];
	size_t after_exit = 0;

	*reaped = false;
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		int r = -errno;

		log_err("run %s: make its output pipe non-blocking: %s", prog, strerror(-r));
		return r;
	}
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;
		int pr;

		/* The timeout only matters when the pipe outlives the child. */
		pr = poll(&pfd, 1, *reaped ? 0 : 250);
		if (pr < 0) {
			int r = -errno;

			if (r == -EINTR)
				continue;
			log_err("run %s: poll its output: %s", prog, strerror(-r));
			return r;
		}
		if (pr == 0) {
			pid_t w;

			if (*reaped)
				break;
			w = waitpid(pid, status, WNOHANG);
			if (w < 0) {
				int r = -errno;

				if (r == -EINTR)
					continue;
				log_err("run %s: waitpid: %s", prog, strerror(-r));
				return r;
			}
			*reaped = w == pid;
			continue;
		}
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			int r = -errno;

			if (r == -EINTR || r == -EAGAIN)
				continue;
			log_err("run %s: read its output: %s", prog, strerror(-r));
			return r;
		}
		if (n == 0)
			break;
		capture_add(c, chunk, (size_t)n);
		if (*reaped) {
			after_exit += (size_t)n;
			if (after_exit >= RUN_DRAIN_AFTER_EXIT)
				break;
		}
	}
	if (*reaped)
		log_debug("run %s: exited with its output still open (a process it left behind?)", prog);
	return 0;
}

/* Run argv; *exit_status gets its exit status (-1 if killed). Lines go to
 * the log at debug when the status is accepted (<= ok_max), else error.
 * With output, a successful run's output goes there instead of the log;
 * output that had to be cut short fails the run (-EFBIG past
 * RUN_OUTPUT_MAX, -ENOMEM), as a caller would otherwise parse half of it. */
static int run_status(char *const argv[], int ok_max, int *exit_status, char **output);

int fsutil_run(char *const argv[])
{
	int st;

	return run_status(argv, 0, &st, NULL);
}

int fsutil_run_output(char *const argv[], char **output)
{
	int st;

	*output = NULL;
	return run_status(argv, 0, &st, output);
}

/* In the child between fork and exec: only async-signal-safe calls. */
static void __attribute__((noreturn)) exec_child(char *const argv[], int out_fd, int err_fd)
{
	sigset_t none;
	int nul, e;

	/* The daemon's blocked signals and ignored SIGPIPE would survive exec:
	 * the program gets the defaults it expects. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (dup2(out_fd, STDOUT_FILENO) < 0 || dup2(out_fd, STDERR_FILENO) < 0)
		goto fail;
	/* stdin is /dev/null, or closed: a program that asks a question must
	 * read EOF, never wait on the daemon's terminal. */
	nul = open("/dev/null", O_RDONLY);
	if (nul < 0 || dup2(nul, STDIN_FILENO) < 0)
		close(STDIN_FILENO);
	if (nul > STDIN_FILENO)
		close(nul);
	execvp(argv[0], argv);
fail:
	e = errno;
	if (write(err_fd, &e, sizeof(e)) < 0)
		_exit(127);
	_exit(127);
}

static int run_status(char *const argv[], int ok_max, int *exit_status, char **output)
{
	struct capture c = { 0 };
	int pipefd[2] = { -1, -1 }, status = 0, r = 0;
	int errpipe[2] = { -1, -1 };
	int child_errno = 0;
	bool reaped = false;
	pid_t pid = -1;
	ssize_t n;

	*exit_status = -1;
	if (pipe2(pipefd, O_CLOEXEC) < 0 || pipe2(errpipe, O_CLOEXEC) < 0) {
		r = -errno;
		log_err("run %s: pipe: %s", argv[0], strerror(-r));
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		r = -errno;
		log_err("run %s: fork: %s", argv[0], strerror(-r));
		goto out;
	}
	if (pid == 0)
		exec_child(argv, pipefd[1], errpipe[1]);
	close(pipefd[1]);
	close(errpipe[1]);
	pipefd[1] = errpipe[1] = -1;
	r = drain_child(argv[0], pid, pipefd[0], &c, &status, &reaped);
	if (r < 0) {
		/* The output can no longer be read: a child left writing into
		 * the pipe would block forever, and waitpid with it. */
		if (!reaped)
			kill(pid, SIGKILL);
	} else {
		/* EOF came (or the child is gone): it has exec'd or exited, and
		 * either closed its end of errpipe. */
		while ((n = read(errpipe[0], &child_errno, sizeof(child_errno))) < 0 && errno == EINTR)
			;
		if (n != sizeof(child_errno))
			child_errno = 0;
	}
	while (!reaped && waitpid(pid, &status, 0) < 0) {
		if (errno == EINTR)
			continue;
		/* No status (e.g. SIGCHLD ignored and the child reaped by the
		 * kernel): success cannot be told from failure. */
		if (r == 0) {
			r = -errno;
			log_err("run %s: waitpid: %s", argv[0], strerror(-r));
		}
		break;
	}
	if (r < 0)
		goto out;
	if (child_errno) {
		const char *pkg = package_of(argv[0]);

		r = -child_errno;
		log_err("run %s: %s%s%s%s", argv[0], strerror(child_errno),
			pkg ? " (install the Debian package " : "", pkg ? pkg : "", pkg ? ")" : "");
		goto out;
	}
	*exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	if (WIFEXITED(status) && WEXITSTATUS(status) <= ok_max) {
		if (output) {
			if (c.dropped) {
				r = c.nomem ? -ENOMEM : -EFBIG;
				log_err("run %s: output cut short after %zu bytes (%zu more %s): not used",
					argv[0], c.len, c.dropped,
					c.nomem ? "did not fit in memory" : "past the limit");
				goto out;
			}
			*output = c.buf ? c.buf : strdup("");
			if (!*output)
				r = -ENOMEM;
			else if (*output == c.buf)
				c.buf = NULL;
			goto out;
		}
		if (c.buf)
			log_lines(LOG_DEBUG, argv[0], c.buf);
	} else {
		if (c.buf)
			log_lines(LOG_ERR, argv[0], c.buf);
		if (WIFEXITED(status))
			log_err("%s: exited with status %d", argv[0], WEXITSTATUS(status));
		else
			log_err("%s: killed by signal %d", argv[0], WTERMSIG(status));
		r = -EIO;
	}
	if (c.dropped)
		log_warn("run %s: the last %zu bytes of its output are not in the log (%s)",
			 argv[0], c.dropped, c.nomem ? "out of memory" : "past the limit");
out:
	for (int i = 0; i < 2; i++) {
		if (pipefd[i] >= 0)
			close(pipefd[i]);
		if (errpipe[i] >= 0)
			close(errpipe[i]);
	}
	free(c.buf);
	return r;
}

static bool in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (!path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog);
		if (access(buf, X_OK) == 0)
			return true;
		path += n;
		if (*path == ':')
			path++;
	}
	return false;
}

static bool kernel_has_fs(const char *fs)
{
	FILE *f = fopen("/proc/filesystems", "re");
	char line[256];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *tab = strrchr(line, '\t');
		const char *name = tab ? tab + 1 : line;

		found = strncmp(name, fs, strlen(fs)) == 0 && name[strlen(fs)] == '\n';
	}
	fclose(f);
	return found;
}

const char *fsutil_default_fs(void)
{
	return in_path("mkfs.xfs") && kernel_has_fs("xfs") ? "xfs" : "ext4";
}

uint64_t fsutil_min_size(const char *fs)
{
	return strcmp(fs, "xfs") == 0 ? FSUTIL_XFS_MIN_BYTES : 0;
}

/* Does dm.mkfsarg already set xfs's sector size ("-s size=N", "-ssize=N")? */
static bool has_sector_arg(char *const *extra, size_t n_extra)
{
	for (size_t i = 0; i < n_extra; i++)
		if (strncmp(extra[i], "-s", 2) == 0)
			return true;
	return false;
}

int fsutil_mkfs(const char *dev_path, const char *fs, char *const *extra,
		size_t n_extra)
{
	const char *argv[16 + n_extra];
	size_t n = 0;
	int r;

	if (strcmp(fs, "ext4") == 0) {
		argv[n++] = "mkfs.ext4";
		argv[n++] = "-q";
		argv[n++] = "-F";
		argv[n++] = "-E";
		argv[n++] = "nodiscard,lazy_itable_init=0,lazy_journal_init=0";
		/* mke2fs picks 1K blocks for small devices, which then cannot
		 * grow online far: thin devices are meant to grow. */
		argv[n++] = "-b";
		argv[n++] = "4096";
	} else if (strcmp(fs, "xfs") == 0) {
		argv[n++] = "mkfs.xfs";
		argv[n++] = "-q";
		argv[n++] = "-f";
		argv[n++] = "-K";
		if (!has_sector_arg(extra, n_extra)) {
			argv[n++] = "-s";
			argv[n++] = "size=4096";
		}
	} else {
		log_err("mkfs %s: unsupported filesystem '%s'", dev_path, fs);
		return -EINVAL;
	}
	for (size_t i = 0; i < n_extra; i++)
		argv[n++] = extra[i];
	argv[n++] = dev_path;
	argv[n] = NULL;
	r = fsutil_run((char *const *)argv);
	if (r < 0) {
		log_err("mkfs.%s %s: failed", fs, dev_path);
		return r;
	}
	if (strcmp(fs, "ext4") == 0) {
		const char *tune[] = { "tune2fs", "-c", "-1", "-i", "0", dev_path, NULL };

		r = fsutil_run((char *const *)tune);
	}
	return r;
}

/* Probe path with libblkid; fills what is asked (type, uuid, block_size). */
static int probe(const char *path, char *type, size_t type_len, char *uuid, size_t uuid_len,
		 unsigned *block_size)
{
	blkid_probe pr;
	const char *val = NULL;
	int r;

	if (type_len)
		type[0] = '\0';
	if (uuid_len)
		uuid[0] = '\0';
	errno = 0; /* libblkid does not always set it */
	pr = blkid_new_probe_from_filename(path);
	if (!pr) {
		r = errno ? -errno : -EIO;
		log_err("probe %s: blkid_new_probe_from_filename: %s", path, strerror(-r));
		return r;
	}
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_UUID);
	r = blkid_do_safeprobe(pr);
	if (r == 1 || r == -2) {
		/* 1: nothing found; -2: ambiguous (several signatures). */
		r = -ENODATA;
		goto out;
	}
	if (r < 0) {
		r = -EIO;
		log_err("probe %s: blkid_do_safeprobe failed", path);
		goto out;
	}
	r = 0;
	if (blkid_probe_lookup_value(pr, "TYPE", &val, NULL) == 0 && type_len)
		snprintf(type, type_len, "%s", val);
	if (blkid_probe_lookup_value(pr, "UUID", &val, NULL) == 0 && uuid_len)
		snprintf(uuid, uuid_len, "%s", val);
	if (type_len && !type[0])
		r = -ENODATA;
	if (block_size) {
		if (blkid_probe_lookup_value(pr, "BLOCK_SIZE", &val, NULL) == 0)
			*block_size = (unsigned)strtoul(val, NULL, 10);
		else
			r = -ENODATA;
	}
out:
	blkid_free_probe(pr);
	return r;
}

int fsutil_probe(const char *dev_path, char *type, size_t type_len,
		 char *uuid, size_t uuid_len)
{
	return probe(dev_path, type, type_len, uuid, uuid_len, NULL);
}

int fsutil_min_io_size(const char *path, unsigned *size)
{
	return probe(path, NULL, 0, NULL, 0, size);
}

/* Split dm.mountopt as mount(8) does: VFS flags (nosuid, noatime, ro...)
 * into *flags, filesystem options into *fs_opts (malloc'd, may be NULL).
 * Options only mount(8) itself understands (noauto, user, x-*) and flags
 * that would change what kind of mount this is (bind, move, remount,
 * propagation) are -EINVAL, named in err. */
struct mount_split {
	unsigned long flags;   /* MS_* */
	bool suid, dev;        /* "suid" / "dev" given explicitly */
	char *fs_opts;         /* malloc'd, or NULL */
};

static int split_mount_options(const char *opts, struct mount_split *m, char *err, size_t errlen)
{
	const unsigned long refused = MS_BIND | MS_MOVE | MS_REMOUNT | MS_REC | MS_SHARED |
				      MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE;
	char *user = NULL, *vfs = NULL;
	int r;

	memset(m, 0, sizeof(*m));
	if (!opts || !*opts)
		return 0;
	r = mnt_split_optstr(opts, &user, &vfs, &m->fs_opts, 0, 0);
	if (r < 0) {
		snprintf(err, errlen, "dm.mountopt: cannot parse '%s'", opts);
		r = -EINVAL;
		goto out;
	}
	if (user && *user) {
		snprintf(err, errlen, "dm.mountopt: '%s' is for mount(8), not a filesystem option", user);
		r = -EINVAL;
		goto out;
	}
	if (vfs && mnt_optstr_get_flags(vfs, &m->flags, mnt_get_builtin_optmap(MNT_LINUX_MAP)) < 0) {
		snprintf(err, errlen, "dm.mountopt: cannot read the flags in '%s'", vfs);
		r = -EINVAL;
		goto out;
	}
	if (m->flags & refused) {
		snprintf(err, errlen, "dm.mountopt: '%s' changes what kind of mount this is; only flags "
			 "such as nosuid, nodev, noexec, noatime and filesystem options are taken", vfs);
		r = -EINVAL;
		goto out;
	}
	m->suid = vfs && mnt_optstr_get_option(vfs, "suid", NULL, NULL) == 0;
	m->dev = vfs && mnt_optstr_get_option(vfs, "dev", NULL, NULL) == 0;
	r = 0;
out:
	if (r < 0) {
		free(m->fs_opts);
		m->fs_opts = NULL;
	}
	free(user);
	free(vfs);
	return r;
}

int fsutil_check_mount_options(const char *opts, char *err, size_t errlen)
{
	struct mount_split m;
	int r = split_mount_options(opts, &m, err, errlen);

	free(m.fs_opts);
	return r;
}

int fsutil_mount(const char *dev_path, const char *target, const char *fs, unsigned how,
		 const char *extra)
{
	struct mount_split m;
	unsigned long flags;
	char data[1024], err[256];
	bool xfs = strcmp(fs, "xfs") == 0;
	int r;

	r = split_mount_options(extra, &m, err, sizeof(err));
	if (r < 0) {
		log_err("mount %s on %s: %s", dev_path, target, err);
		return r;
	}
	flags = m.flags;
	if ((how & FSUTIL_SAFE) && !m.suid)
		flags |= MS_NOSUID;
	if ((how & FSUTIL_SAFE) && !m.dev)
		flags |= MS_NODEV;
	if (how & FSUTIL_RDONLY)
		flags |= MS_RDONLY;
	else
		flags &= ~(unsigned long)MS_RDONLY;
	if (how & FSUTIL_REMOUNT)
		flags |= MS_REMOUNT;
	/* Snapshots of an xfs share its UUID, which xfs refuses to mount twice. */
	r = snprintf(data, sizeof(data), "%s%s%s%s", xfs ? "nouuid" : "",
		     !(how & FSUTIL_NORECOVERY) ? "" : xfs ? ",norecovery" : "norecovery",
		     m.fs_opts && (xfs || (how & FSUTIL_NORECOVERY)) ? "," : "", m.fs_opts ? m.fs_opts : "");
	free(m.fs_opts);
	if (r >= (int)sizeof(data)) {
		log_err("mount %s on %s: dm.mountopt is too long", dev_path, target);
		return -E2BIG;
	}
	if (mount(dev_path, target, fs, flags, data) < 0) {
		r = -errno;
		log_err("mount %s on %s (%s, %s%s%s%s): %s", dev_path, target, fs,
			flags & MS_RDONLY ? "ro" : "rw", flags & MS_REMOUNT ? ",remount" : "",
			data[0] ? "," : "", data, strerror(-r));
		return r;
	}
	return 0;
}

int fsutil_unmount(const char *target)
{
	int r;

	if (umount2(target, MNT_DETACH) == 0)
		return 0;
	r = -errno;
	if (r == -EINVAL || r == -ENOENT)
		log_debug("umount %s: %s", target, strerror(-r));
	else
		log_err("umount %s: %s", target, strerror(-r));
	return r;
}

int fsutil_freeze(int fd)
{
	return ioctl(fd, FIFREEZE, 0) < 0 ? -errno : 0;
}

int fsutil_thaw(int fd)
{
	return ioctl(fd, FITHAW, 0) < 0 ? -errno : 0;
}

int fsutil_open_excl(const char *dev)
{
	int fd = open(dev, O_RDONLY | O_EXCL | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int fsutil_bdev_identity(dev_t rdev, char *buf, size_t len)
{
	static const char *const keys[] = { "loop/backing_file", "dm/name" };
	char path[128];
	ssize_t n = -1;
	int fd;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]) && n < 0; i++) {
		snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s", major(rdev), minor(rdev), keys[i]);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, len - 1);
		close(fd);
	}
	if (n <= 0)
		return -ENODEV;
	buf[n] = '\0';
	return 0;
}

int fsutil_grow(const char *dev_path, const char *fs, const char *mount_path)
{
	char tmpdir[] = "/run/thinfs-grow-XXXXXX";
	bool made_dir = false, mounted_here = false;
	int r;

	if (strcmp(fs, "ext4") == 0) {
		const char *fsck[] = { "e2fsck", "-f", "-p", dev_path, NULL };
		const char *argv[] = { "resize2fs", dev_path, NULL };
		int st;

		/* resize2fs grows an unmounted ext4 only after a forced check;
		 * e2fsck -p exits 1 when it fixed something, which is fine. */
		if (!mount_path) {
			r = run_status((char *const *)fsck, 1, &st, NULL);
			if (r < 0)
				return r;
		}
		return fsutil_run((char *const *)argv);
	}
	if (strcmp(fs, "xfs") != 0) {
		log_err("grow %s: unsupported filesystem '%s'", dev_path, fs);
		return -EINVAL;
	}
	if (!mount_path) {
		if (!mkdtemp(tmpdir)) {
			r = -errno;
			log_err("grow %s: mkdtemp %s: %s", dev_path, tmpdir, strerror(-r));
			return r;
		}
		made_dir = true;
		r = fsutil_mount(dev_path, tmpdir, fs, 0, NULL);
		if (r < 0)
			goto out;
		mounted_here = true;
		mount_path = tmpdir;
	}
	{
		const char *argv[] = { "xfs_growfs", mount_path, NULL };

		r = fsutil_run((char *const *)argv);
	}
out:
	if (mounted_here && umount2(tmpdir, 0) < 0)
		log_warn("grow %s: umount %s: %s", dev_path, tmpdir, strerror(errno));
	if (made_dir && rmdir(tmpdir) < 0)
		log_warn("grow %s: remove %s: %s", dev_path, tmpdir, strerror(errno));
	return r;
}

int fsutil_discard(int fd, const char *dev_path)
{
	uint64_t range[2] = { 0, 0 };
	int r = 0;

	if (ioctl(fd, BLKGETSIZE64, &range[1]) < 0) {
		r = -errno;
		log_err("discard %s: BLKGETSIZE64: %s", dev_path, strerror(-r));
	} else if (ioctl(fd, BLKDISCARD, range) < 0) {
		r = -errno;
		if (r != -EOPNOTSUPP)
			log_err("discard %s: BLKDISCARD: %s", dev_path, strerror(-r));
	}
	return r;
}

int fsutil_blockdev_size(const char *dev_path, uint64_t *size)
{
	int fd, r = 0;

	fd = open(dev_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, BLKGETSIZE64, size) < 0)
		r = -errno;
	close(fd);
	return r;
}
