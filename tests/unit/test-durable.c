/*
 * test-durable.c - what the engine writes is durable and atomic, and its
 * errors keep their errno:
 *  - every file the engine creates is fsynced and so is its directory
 *    (loopback pool files, metadata files, reflink images and their
 *    sizes): fsync is wrapped (-Wl,--wrap=fsync) to record which inodes
 *    were fsynced;
 *  - a reflink image exists under its name only whole: ftruncate is
 *    wrapped to kill the process in the middle of making one;
 *  - the log path is replaced by one that changes errno, as syslog or a
 *    failing stderr can, so an error read from errno after the log call
 *    shows up as the wrong code.
 * The pool parts need root, loop devices and mkfs.xfs (the reflink store is
 * an XFS loopback file here); without them they are skipped, with the
 * reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "loopback.h"
#include "metadata.h"
#include "options.h"
#include "pool.h"
#include "tap.h"

/* ---- the log: prints, then clobbers errno ------------------------------ */

void tf_log_init(bool to_stderr, int max_prio)
{
	(void)to_stderr, (void)max_prio;
}

int tf_log_max_prio(void)
{
	return LOG_DEBUG;
}

void tf_vlog(int prio, const char *fmt, va_list ap)
{
	if (prio <= LOG_INFO) {
		fprintf(stderr, "thinfs: ");
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	errno = EBADF; /* as a failed write to a closed stderr would */
}

void tf_log(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tf_vlog(prio, fmt, ap);
	va_end(ap);
}

/* ---- fsync and ftruncate, wrapped --------------------------------------- */

#define MAX_SYNCED 4096
static struct { dev_t dev; ino_t ino; } synced[MAX_SYNCED];
static int n_synced;
static bool crash_in_ftruncate;

int __real_fsync(int fd);
int __wrap_fsync(int fd);
int __wrap_fsync(int fd)
{
	struct stat st;
	int r = __real_fsync(fd);

	if (r == 0 && fstat(fd, &st) == 0 && n_synced < MAX_SYNCED) {
		synced[n_synced].dev = st.st_dev;
		synced[n_synced].ino = st.st_ino;
		n_synced++;
	}
	return r;
}

int __real_ftruncate(int fd, off_t len);
int __wrap_ftruncate(int fd, off_t len);
int __wrap_ftruncate(int fd, off_t len)
{
	if (crash_in_ftruncate)
		_exit(99); /* the power goes out */
	return __real_ftruncate(fd, len);
}

/* Was path's inode fsynced since the last reset? */
static bool was_synced(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return false;
	for (int i = 0; i < n_synced; i++)
		if (synced[i].dev == st.st_dev && synced[i].ino == st.st_ino)
			return true;
	return false;
}

static char work[] = "/var/tmp/thinfs-durable-XXXXXX";

static void test_files(void)
{
	char dir[600], path[700];
	struct stat st;

	/* A loopback pool file made by the first start. */
	snprintf(dir, sizeof(dir), "%s/devicemapper", work);
	is_int(meta_mkdir_p(dir, 0700), 0, "mkdir -p STATEDIR/devicemapper");
	ok(was_synced(work), "mkdir -p: the new directory's parent fsynced");
	n_synced = 0;
	snprintf(path, sizeof(path), "%s/data", dir);
	is_int(loop_file_size(path, 1 << 20, false, "test data file"), 0, "new loopback file sized");
	ok(stat(path, &st) == 0 && st.st_size == 1 << 20, "loopback file is 1 MiB");
	ok(was_synced(path), "new loopback file fsynced");
	ok(was_synced(dir), "new loopback file: its directory fsynced");

	/* Found again: nothing new, nothing to sync in the directory. */
	n_synced = 0;
	is_int(loop_file_size(path, 2 << 20, false, "test data file"), 0, "existing loopback file kept");
	ok(stat(path, &st) == 0 && st.st_size == 1 << 20, "not grown when not asked");

	/* A metadata file. */
	n_synced = 0;
	is_int(meta_write_atomic(dir, "x", "{}", 2), 0, "meta_write_atomic");
	snprintf(path, sizeof(path), "%s/x", dir);
	ok(was_synced(path), "metadata file fsynced");
	ok(was_synced(dir), "metadata file: its directory fsynced");
	ok(unlink(path) == 0, "cleanup");

	/* errno: an open that fails, with the log changing errno after it. */
	snprintf(path, sizeof(path), "%s/loop", dir);
	ok(symlink("loop", path) == 0, "symlink loop");
	is_int(loop_file_size(path, 1 << 20, false, "test data file"), -ELOOP,
	       "loopback file behind a symlink loop: -ELOOP");
	ok(unlink(path) == 0, "cleanup");
}

/* ---- the reflink pool --------------------------------------------------- */

static const char *why_no_pool(void)
{
	if (geteuid() != 0)
		return "needs root (loop devices, mount)";
	if (access("/dev/loop-control", W_OK) < 0)
		return "needs /dev/loop-control";
	if (system("command -v mkfs.xfs >/dev/null 2>&1") != 0)
		return "needs mkfs.xfs (xfsprogs)";
	return NULL;
}

static int open_pool(struct ds_options *o, const char *state, struct pool **p)
{
	struct pool_config cfg = { .state_dir = state, .prefix = "thinfs-test", .opts = o };

	return pool_reflink_ops.open(&cfg, p);
}

static bool has_id(struct pool *p, uint32_t id)
{
	uint32_t *ids = NULL;
	size_t n = 0;
	bool found = false;

	if (pool_reflink_ops.list_ids(p, &ids, &n) < 0)
		return false;
	for (size_t i = 0; i < n; i++)
		found = found || ids[i] == id;
	free(ids);
	return found;
}

static void test_pool(void)
{
	const struct pool_ops *ops = &pool_reflink_ops;
	char state[600], store[650], images[700], path[800], err[256];
	struct ds_options o;
	struct pool *p = NULL;
	struct stat st;
	uint64_t tid = 1;
	pid_t pid;
	int status = 0;
	const char *why = why_no_pool();

	if (why) {
		printf("ok %d # SKIP reflink pool: %s\n", ++tap_n, why);
		return;
	}
	snprintf(state, sizeof(state), "%s/state", work);
	snprintf(store, sizeof(store), "%s/reflink", state);
	snprintf(images, sizeof(images), "%s/images", store);
	options_init(&o);
	if (!ok(options_parse_list(&o, "dm.loopdatasize=512M", err, sizeof(err)) == 0,
		"options: %s", err))
		return;
	n_synced = 0;
	if (!ok(open_pool(&o, state, &p) == 0, "reflink pool opened (XFS loopback store)"))
		goto out;
	snprintf(path, sizeof(path), "%s/devicemapper", state);
	ok(was_synced(path), "the store's data file: its directory fsynced");

	/* Making an image dies between create and size: no image of that ID
	 * may be left, or a later start would take a 0-byte file for a device. */
	pid = fork();
	if (pid == 0) {
		crash_in_ftruncate = true;
		ops->create_thin(p, 7, 64 << 20);
		_exit(0);
	}
	ok(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	   WEXITSTATUS(status) == 99, "create_thin killed in ftruncate");
	snprintf(path, sizeof(path), "%s/7", images);
	ok(stat(path, &st) < 0 && errno == ENOENT, "no image 7 after the crash");
	ok(!has_id(p, 7), "the pool does not list 7");

	/* The next one works, and is durable: file and directory. */
	n_synced = 0;
	is_int(ops->create_thin(p, 7, 64 << 20), 0, "create_thin 7 after the crash");
	ok(stat(path, &st) == 0 && st.st_size == 64 << 20, "image 7 is 64 MiB");
	ok(was_synced(path), "image 7 fsynced");
	ok(was_synced(images), "image 7: images/ fsynced");
	is_int(ops->create_thin(p, 7, 64 << 20), -EEXIST, "create_thin 7 again: -EEXIST");

	n_synced = 0;
	is_int(ops->create_snap(p, 8, 7, 64 << 20, NULL), 0, "snapshot 8 of 7");
	snprintf(path, sizeof(path), "%s/8", images);
	ok(was_synced(path), "image 8 fsynced");
	ok(was_synced(images), "image 8: images/ fsynced");

	/* A grown device: the engine records the size next, so it must be on
	 * disk first. */
	n_synced = 0;
	is_int(ops->resize_thin(p, "eight", 8, 128 << 20), 0, "resize 8 to 128 MiB");
	ok(stat(path, &st) == 0 && st.st_size == 128 << 20, "image 8 is 128 MiB");
	ok(was_synced(path), "image 8's new size fsynced");
	is_int(ops->resize_thin(p, "eight", 8, 1 << 20), -EINVAL, "shrink refused");
	ok(stat(path, &st) == 0 && st.st_size == 128 << 20, "... and image 8 unchanged");

	/* The transaction ID: written atomically and durably. */
	n_synced = 0;
	is_int(ops->set_transaction_id(p, 0, 5), 0, "transaction ID 0 -> 5");
	is_int(ops->get_transaction_id(p, &tid), 0, "read it back");
	is_int(tid, 5, "transaction ID is 5");
	snprintf(path, sizeof(path), "%s/transaction_id", store);
	ok(was_synced(path), "transaction_id fsynced");
	ok(was_synced(store), "transaction_id: its directory fsynced");
	is_int(ops->set_transaction_id(p, 4, 6), -EINVAL, "compare-and-set with a stale ID refused");
	is_int(ops->get_transaction_id(p, &tid), 0, "read it back");
	is_int(tid, 5, "... and the ID is still 5");

	/* errno survives the log call: an open that fails with ELOOP. */
	ok(unlink(path) == 0 && symlink("transaction_id", path) == 0, "transaction_id made a symlink loop");
	is_int(ops->get_transaction_id(p, &tid), -ELOOP, "get_transaction_id: -ELOOP, the open's own error");
	ok(unlink(path) == 0, "cleanup");

	/* A stale temp file of the transaction ID and a half-made image are
	 * removed at the next open. */
	snprintf(path, sizeof(path), "%s/.transaction_id.tmp-1-abc", store);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	snprintf(path, sizeof(path), "%s/.new-9", images);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	is_int(ops->delete_thin(p, 8), 0, "delete 8");
	is_int(ops->delete_thin(p, 7), 0, "delete 7");
	ops->close(p);
	p = NULL;
	if (!ok(open_pool(&o, state, &p) == 0, "reflink pool opened again"))
		goto out;
	ok(access(path, F_OK) < 0, "half-made image removed");
	snprintf(path, sizeof(path), "%s/.transaction_id.tmp-1-abc", store);
	ok(access(path, F_OK) < 0, "stale transaction ID temp file removed");
out:
	if (p)
		ops->close(p);
	options_free(&o);
}

int main(void)
{
	char cmd[700];

	if (!mkdtemp(work))
		tap_skip_all("mkdtemp failed");
	test_files();
	test_pool();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", work);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", work);
	return tap_done();
}
