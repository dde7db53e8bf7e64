/*
 * dirlock.c - the exclusive flock on STATEDIR (see dirlock.h), and the
 * holders of a refused one: every process with a descriptor whose
 * /proc/PID/fdinfo shows the lock, and, from the same line, the pid of the
 * process that took it and whether it holds it shared (a thinfs that
 * stops); for a thinfs holder, the FUSE mount it serves, from its
 * mountinfo (the mount's source is STATEDIR).
 */
#include "dirlock.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <libmount.h>

#include "elapsed.h"
#include "log.h"

/* The most holders a message names. */
#define DIRLOCK_MAX_NAMED 4
/* How often a start that waits asks again. */
#define DIRLOCK_POLL_MS 20
/* How long a state must last before a waiting start says it waits: a
 * thinfs that goes to the background takes the lock again in its child
 * (dirlock_retake), and for that moment the lock looks shared, or held
 * by a child of an exited taker. */
#define DIRLOCK_QUIET_MS 100

struct holders {
	size_t n; /* processes with a descriptor that carries the lock */
	pid_t pid[DIRLOCK_MAX_NAMED];
	char comm[DIRLOCK_MAX_NAMED][17];
	pid_t taker; /* took the lock, as fdinfo prints it: 0 if not visible here */
	bool shared; /* the lock is held shared: a thinfs that stops */
	bool taker_holds; /* the taker is one of the holders */
	char taker_comm[17]; /* its program, if it holds */
};

/* An fdinfo line "lock:\tN: FLOCK  ADVISORY  WRITE PID MAJ:MIN:INO 0 EOF"
 * (READ for a shared lock). A waiter's line ("N: -> FLOCK ...") and
 * POSIX, OFD and lease locks do not parse. */
static bool parse_flock(const char *line, pid_t *taker, bool *shared, unsigned *maj, unsigned *min,
			unsigned long *ino)
{
	const char *c;
	char kind[16], mode[16];
	int p;

	if (strncmp(line, "lock:", 5) != 0 || !(c = strchr(line + 5, ':')))
		return false;
	if (sscanf(c + 1, " %15s %*s %15s %d %x:%x:%lu", kind, mode, &p, maj, min, ino) != 6)
		return false;
	if (strcmp(kind, "FLOCK") != 0 || (strcmp(mode, "WRITE") != 0 && strcmp(mode, "READ") != 0))
		return false;
	*taker = p;
	*shared = strcmp(mode, "READ") == 0;
	return true;
}

/* Does descriptor fd of process pid carry a flock on the directory st
 * names? The kernel prints the superblock's device, which a btrfs
 * subvolume does not report to stat: then the descriptor's path decides.
 * fdinfo is read, the file itself never touched (it may be on a hung
 * filesystem). */
static bool fd_holds(pid_t pid, const char *fd, const struct stat *st, const char *path, pid_t *taker,
		     bool *shared)
{
	char file[300], *line = NULL, target[4096];
	bool holds = false;
	unsigned maj, min;
	unsigned long ino;
	size_t cap = 0;
	ssize_t n;
	FILE *f;

	snprintf(file, sizeof(file), "/proc/%d/fdinfo/%s", (int)pid, fd);
	f = fopen(file, "re");
	if (!f)
		return false;
	while (!holds && getline(&line, &cap, f) > 0)
		holds = parse_flock(line, taker, shared, &maj, &min, &ino) && ino == (unsigned long)st->st_ino;
	free(line);
	fclose(f);
	if (!holds || (maj == major(st->st_dev) && min == minor(st->st_dev)))
		return holds;
	snprintf(file, sizeof(file), "/proc/%d/fd/%s", (int)pid, fd);
	n = readlink(file, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return strcmp(target, path) == 0;
}

static void read_comm(pid_t pid, char *comm, size_t len)
{
	char file[64];
	FILE *f;

	snprintf(file, sizeof(file), "/proc/%d/comm", (int)pid);
	f = fopen(file, "re");
	if (!f || !fgets(comm, (int)len, f))
		snprintf(comm, len, "?");
	comm[strcspn(comm, "\n")] = '\0';
	if (f)
		fclose(f);
}

/* Who holds the flock on the directory st names. Only a refused start
 * asks, so a walk of every process's descriptors is fine. */
static void find_holders(const struct stat *st, const char *path, struct holders *h)
{
	char dir[64];
	struct dirent *p, *e;
	DIR *procs, *fds;

	memset(h, 0, sizeof(*h));
	procs = opendir("/proc");
	if (!procs)
		return;
	while ((p = readdir(procs))) {
		pid_t pid, taker = 0;
		bool holds = false, shared = false;

		if (!isdigit((unsigned char)p->d_name[0]))
			continue;
		pid = (pid_t)atoi(p->d_name);
		snprintf(dir, sizeof(dir), "/proc/%d/fdinfo", (int)pid);
		fds = opendir(dir);
		if (!fds)
			continue;
		while (!holds && (e = readdir(fds)))
			holds = isdigit((unsigned char)e->d_name[0]) &&
				fd_holds(pid, e->d_name, st, path, &taker, &shared);
		closedir(fds);
		if (!holds)
			continue;
		h->taker = taker;
		h->shared = shared;
		if (taker > 0 && taker == pid) {
			h->taker_holds = true;
			read_comm(pid, h->taker_comm, sizeof(h->taker_comm));
		}
		if (h->n < DIRLOCK_MAX_NAMED) {
			h->pid[h->n] = pid;
			read_comm(pid, h->comm[h->n], sizeof(h->comm[h->n]));
		}
		h->n++;
	}
	closedir(procs);
}

/* "thinfs (pid 12), e2fsck (pid 34) and 2 more". */
static void name_holders(const struct holders *h, char *buf, size_t len)
{
	size_t used = 0, i;

	buf[0] = '\0';
	for (i = 0; i < h->n && i < DIRLOCK_MAX_NAMED && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s (pid %d)", i ? ", " : "", h->comm[i],
					 (int)h->pid[i]);
	if (h->n > DIRLOCK_MAX_NAMED && used < len)
		snprintf(buf + used, len - used, " and %zu more", h->n - DIRLOCK_MAX_NAMED);
}

/* What is known of the taker that holds the lock no more. */
static void name_taker(pid_t taker, char *buf, size_t len)
{
	if (taker <= 0)
		snprintf(buf, len, "not visible here");
	else if (kill(taker, 0) < 0 && errno == ESRCH)
		snprintf(buf, len, "pid %d, which has exited", (int)taker);
	else
		snprintf(buf, len, "pid %d, which let it go", (int)taker);
}

/* One try: 0 once held, -EWOULDBLOCK if another holds it, else logged. */
static int try_lock(int fd, const char *path)
{
	int r;

	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	r = -errno;
	if (r != -EWOULDBLOCK)
		log_err("state directory %s: flock: %s", path, strerror(-r));
	return r;
}

/* The mount point of the thinfs FUSE mount whose source is state_dir, in
 * pid's mount namespace (thinfs names its FUSE mount after its STATEDIR):
 * true if there is one. */
static bool served_mount(pid_t pid, const char *state_dir, char *mnt, size_t len)
{
	char file[64];
	struct libmnt_table *tb;
	struct libmnt_iter *it;
	struct libmnt_fs *fs;
	bool found = false;

	snprintf(file, sizeof(file), "/proc/%d/mountinfo", (int)pid);
	tb = mnt_new_table_from_file(file);
	it = mnt_new_iter(MNT_ITER_BACKWARD);
	while (tb && it && !found && mnt_table_next_fs(tb, it, &fs) == 0) {
		const char *type = mnt_fs_get_fstype(fs), *src = mnt_fs_get_source(fs);

		found = type && strcmp(type, DIRLOCK_FUSE_TYPE) == 0 && src && strcmp(src, state_dir) == 0;
		if (found)
			snprintf(mnt, len, "%s", mnt_fs_get_target(fs));
	}
	mnt_free_iter(it);
	mnt_unref_table(tb);
	return found;
}

/* What a start that found the lock taken does about it. */
enum verdict {
	V_NONE,     /* not judged yet */
	V_REFUSE,   /* a live process that took it holds it: logged */
	V_STOPPING, /* a thinfs that stops: wait for it, DIRLOCK_STOP_WAIT_MS */
	V_STARTING, /* a thinfs that serves no mount yet: DIRLOCK_SETTLE_MS */
	V_ORPHANED, /* the taker is gone, its children hold it: DIRLOCK_WAIT_MS */
};

static enum verdict judge(const struct holders *h, const char *path, const char *who)
{
	char mnt[4096];

	/* Nobody visible here (another pid namespace, or let go between
	 * two looks) is waited for like the children of a gone taker. */
	if (!h->taker_holds)
		return V_ORPHANED;
	if (strcmp(h->taker_comm, "thinfs") != 0) {
		log_err("cannot start on %s: a running process holds this state directory's flock: %s", path, who);
		return V_REFUSE;
	}
	if (served_mount(h->taker, path, mnt, sizeof(mnt))) {
		log_err("cannot start on %s: another thinfs (pid %d) serves %s on %s", path, (int)h->taker, path, mnt);
		return V_REFUSE;
	}
	return h->shared ? V_STOPPING : V_STARTING;
}

int dirlock_take(int fd, const struct stat *st, const char *path)
{
	const struct timespec pause = { 0, DIRLOCK_POLL_MS * 1000000L };
	enum verdict v, said = V_NONE, last = V_NONE;
	char who[256], taker[64];
	struct timespec t0, since;
	struct holders h;
	long limit;
	int r;

	r = try_lock(fd, path);
	if (r != -EWOULDBLOCK)
		return r;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	since = t0;
	for (;;) {
		find_holders(st, path, &h);
		name_holders(&h, who, sizeof(who));
		v = judge(&h, path, who);
		if (v == V_REFUSE)
			return -EBUSY;
		if (v != last) {
			clock_gettime(CLOCK_MONOTONIC, &since);
			last = v;
		}
		limit = v == V_STOPPING ? DIRLOCK_STOP_WAIT_MS : v == V_STARTING ? DIRLOCK_SETTLE_MS : DIRLOCK_WAIT_MS;
		if (ms_since(&since) >= limit) {
			if (v == V_STOPPING)
				log_err("cannot start on %s: thinfs (pid %d) has not finished its stop after %.1f s",
					path, (int)h.taker, limit / 1000.0);
			else if (v == V_STARTING)
				log_err("cannot start on %s: another thinfs (pid %d) holds it and serves no mount "
					"here: it is starting, or its mount was detached (umount -l) and is still in use",
					path, (int)h.taker);
			else
				log_err("cannot start on %s: %s still holds this state directory's flock after %.1f s",
					path, h.n ? who : "a process not visible here", limit / 1000.0);
			return -EBUSY;
		}
		/* Said once the state has lasted: not for the moment a
		 * thinfs takes the lock again in its child. */
		if (v != said && (v == V_STOPPING || v == V_ORPHANED) && ms_since(&since) >= DIRLOCK_QUIET_MS) {
			said = v;
			name_taker(h.taker, taker, sizeof(taker));
			if (v == V_STOPPING)
				log_info("waiting for thinfs (pid %d) to finish its stop", (int)h.taker);
			else if (h.n)
				log_info("state directory %s: its flock is held by %s, not by the process that took it "
					 "(%s); waiting up to %.1f s for it to be let go",
					 path, who, taker, DIRLOCK_WAIT_MS / 1000.0);
			else
				log_info("state directory %s: its flock is held by a process not visible here; "
					 "waiting up to %.1f s for it to be let go", path, DIRLOCK_WAIT_MS / 1000.0);
		}
		nanosleep(&pause, NULL);
		r = try_lock(fd, path);
		if (r == 0 && said == V_ORPHANED)
			log_info("state directory %s: its flock was let go after %ld ms", path, ms_since(&t0));
		else if (r == 0 && said == V_STOPPING)
			log_info("thinfs (pid %d) stopped after %ld ms", (int)h.taker, ms_since(&t0));
		if (r != -EWOULDBLOCK)
			return r;
	}
}

int dirlock_retake(int fd, const char *path)
{
	const struct timespec pause = { 0, DIRLOCK_POLL_MS * 1000000L };
	struct timespec t0;
	int r = 0;

	/* Each flock on a held lock converts it, replacing the kernel's
	 * record (and the pid fdinfo prints). Linux removes the old lock
	 * before it looks for a conflict, so a conversion that fails leaves
	 * no lock at all: none can fail going to shared (nobody else holds
	 * one while this process holds it exclusive), but going back to
	 * exclusive fails if another process took a shared one meanwhile
	 * (only a stranger would). Then this process holds nothing, and
	 * asks again until DIRLOCK_WAIT_MS; never blocking, since the FUSE
	 * mount is up and nothing serves it yet. */
	if (flock(fd, LOCK_SH | LOCK_NB) < 0)
		r = -errno;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (r == 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		if ((r == -EWOULDBLOCK || r == -EINTR) && ms_since(&t0) < DIRLOCK_WAIT_MS) {
			nanosleep(&pause, NULL);
			r = 0;
		}
	}
	if (r < 0)
		log_err("state directory %s: cannot take its flock again after going to the background (%s): "
			"another process may take it meanwhile, so this thinfs stops", path, strerror(-r));
	return r;
}

void dirlock_stopping(int fd, const char *path)
{
	if (flock(fd, LOCK_SH | LOCK_NB) < 0)
		log_warn("state directory %s: marking its flock as stopping: %s", path, strerror(errno));
}

pid_t dirlock_holder(const char *path)
{
	struct holders h;
	struct stat st;

	if (stat(path, &st) < 0)
		return 0;
	find_holders(&st, path, &h);
	return h.taker_holds ? h.taker : h.n ? h.pid[0] : 0;
}
