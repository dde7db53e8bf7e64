/*
 * dirlock.c - the exclusive flock on STATEDIR (see dirlock.h), and the
 * holders of a refused one, read from /proc/locks (who took it) and
 * /proc/PID/fdinfo (which processes hold a descriptor that carries it).
 */
#include "dirlock.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* The most holders a message names. */
#define DIRLOCK_MAX_NAMED 4
/* How often a start that waits asks again. */
#define DIRLOCK_POLL_MS 20

/* A held flock as the kernel prints it: "FLOCK ADVISORY WRITE PID MAJ:MIN:INO". */
struct flock_id {
	unsigned maj, min;
	unsigned long ino;
};

struct holders {
	pid_t locker; /* took the lock (/proc/locks); 0 if not seen */
	bool locker_holds; /* ... and still holds a descriptor with it */
	size_t n; /* processes holding a descriptor with the lock */
	pid_t pid[DIRLOCK_MAX_NAMED];
	char comm[DIRLOCK_MAX_NAMED][17];
};

/* line: "N: FLOCK  ADVISORY  WRITE PID MAJ:MIN:INO START END" (a waiter's
 * line, "N: -> FLOCK ...", is not a holder's and does not parse). */
static bool parse_flock(const char *line, pid_t *pid, struct flock_id *id)
{
	const char *c = strchr(line, ':');
	char kind[16], mode[16];
	int p;

	if (!c || sscanf(c + 1, " %15s %*s %15s %d %x:%x:%lu", kind, mode, &p, &id->maj, &id->min, &id->ino) != 6)
		return false;
	if (strcmp(kind, "FLOCK") != 0 || strcmp(mode, "WRITE") != 0)
		return false;
	*pid = p;
	return true;
}

static bool same_flock(const struct flock_id *a, const struct flock_id *b)
{
	return a->maj == b->maj && a->min == b->min && a->ino == b->ino;
}

/* The taker of the exclusive flock on the inode st names, and the device
 * numbers the kernel prints for it: st's own, or, where the filesystem
 * reports another device to stat than its superblock's (btrfs
 * subvolumes), those of the one lock on that inode number. */
static bool find_locker(const struct stat *st, pid_t *locker, struct flock_id *id)
{
	struct flock_id want = { major(st->st_dev), minor(st->st_dev), (unsigned long)st->st_ino }, got, loose = { 0 };
	pid_t p, loose_pid = 0;
	int loose_n = 0;
	bool found = false;
	char *line = NULL;
	size_t cap = 0;
	FILE *f;

	f = fopen("/proc/locks", "re");
	if (!f)
		return false;
	while (!found && getline(&line, &cap, f) > 0) {
		if (!parse_flock(line, &p, &got) || got.ino != want.ino)
			continue;
		if (same_flock(&got, &want)) {
			*locker = p;
			*id = got;
			found = true;
		} else if (loose_n++ == 0) {
			loose = got;
			loose_pid = p;
		}
	}
	if (!found && loose_n == 1) {
		*locker = loose_pid;
		*id = loose;
		found = true;
	}
	free(line);
	fclose(f);
	return found;
}

/* Does one of pid's descriptors carry the lock id? */
static bool pid_holds(pid_t pid, const struct flock_id *id)
{
	char path[300], *line = NULL;
	bool holds = false;
	struct flock_id got;
	struct dirent *e;
	size_t cap = 0;
	pid_t taker;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo", (int)pid);
	d = opendir(path);
	if (!d)
		return false;
	while (!holds && (e = readdir(d))) {
		FILE *f;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", (int)pid, e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		while (!holds && getline(&line, &cap, f) > 0)
			holds = strncmp(line, "lock:", 5) == 0 && parse_flock(line + 5, &taker, &got) &&
				same_flock(&got, id);
		fclose(f);
	}
	free(line);
	closedir(d);
	return holds;
}

static void read_comm(pid_t pid, char *comm, size_t len)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	f = fopen(path, "re");
	if (!f || !fgets(comm, (int)len, f))
		snprintf(comm, len, "?");
	comm[strcspn(comm, "\n")] = '\0';
	if (f)
		fclose(f);
}

/* Who holds the exclusive flock on the inode st names. Only a refused
 * start asks, so a walk of every process's descriptors is fine. */
static void find_holders(const struct stat *st, struct holders *h)
{
	struct flock_id id;
	struct dirent *e;
	DIR *d;

	memset(h, 0, sizeof(*h));
	if (!find_locker(st, &h->locker, &id))
		return;
	d = opendir("/proc");
	if (!d)
		return;
	while ((e = readdir(d))) {
		pid_t pid;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		pid = (pid_t)atoi(e->d_name);
		if (!pid_holds(pid, &id))
			continue;
		if (pid == h->locker)
			h->locker_holds = true;
		if (h->n < DIRLOCK_MAX_NAMED) {
			h->pid[h->n] = pid;
			read_comm(pid, h->comm[h->n], sizeof(h->comm[h->n]));
		}
		h->n++;
	}
	closedir(d);
}

/* "thinfs (pid 12), e2fsck (pid 34) and 2 more", or what is known. */
static void name_holders(const struct holders *h, char *buf, size_t len)
{
	size_t used = 0, i;

	buf[0] = '\0';
	for (i = 0; i < h->n && i < DIRLOCK_MAX_NAMED && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s (pid %d)", i ? ", " : "", h->comm[i],
					 (int)h->pid[i]);
	if (h->n > DIRLOCK_MAX_NAMED && used < len)
		snprintf(buf + used, len - used, " and %zu more", h->n - DIRLOCK_MAX_NAMED);
	else if (h->n == 0 && h->locker > 0)
		snprintf(buf, len, "a process not visible here (pid %d took it)", (int)h->locker);
	else if (h->n == 0)
		snprintf(buf, len, "a process not visible here");
}

static long ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)((now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000);
}

int dirlock_take(int fd, const char *path)
{
	const struct timespec poll = { 0, DIRLOCK_POLL_MS * 1000000L };
	struct timespec t0;
	struct holders h;
	char who[256];
	struct stat st;
	int r = 0;

	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	if (errno != EWOULDBLOCK || fstat(fd, &st) < 0) {
		r = -errno;
		log_err("state directory %s: flock: %s", path, strerror(-r));
		return r;
	}
	find_holders(&st, &h);
	name_holders(&h, who, sizeof(who));
	if (h.locker_holds) {
		log_err("cannot start on %s: another thinfs runs on this state directory (its flock is held by %s)",
			path, who);
		return -EBUSY;
	}
	/* The taker has exited (or is not visible here): what holds the lock
	 * is a program it started, between fork and exec. */
	log_info("state directory %s: its flock is still held by %s, started by a process that has exited; "
		 "waiting up to %d s for it to be let go",
		 path, who, DIRLOCK_WAIT_MS / 1000);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (ms_since(&t0) < DIRLOCK_WAIT_MS) {
		nanosleep(&poll, NULL);
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			log_info("state directory %s: its flock was let go after %ld ms", path, ms_since(&t0));
			return 0;
		}
		if (errno != EWOULDBLOCK) {
			r = -errno;
			log_err("state directory %s: flock: %s", path, strerror(-r));
			return r;
		}
	}
	find_holders(&st, &h);
	name_holders(&h, who, sizeof(who));
	log_err("cannot start on %s: another thinfs runs on this state directory, or a program it started "
		"(its flock is still held by %s after %d s)",
		path, who, DIRLOCK_WAIT_MS / 1000);
	return -EBUSY;
}
