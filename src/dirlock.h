/*
 * dirlock.h - one process per directory: the exclusive flock a start takes
 * on STATEDIR, and, when it is refused, who holds it (doc/design.md §4,
 * "What a start does", step 0).
 *
 * A flock belongs to an open file description, so a program that a thinfs
 * forks holds a copy of it from fork() until its exec() closes it
 * (O_CLOEXEC). A thinfs killed in that window (it runs e2fsck, resize2fs,
 * mkfs) leaves the lock held for a moment by a process that is not a
 * thinfs at all. A start tells that case (the process that took the lock
 * has exited) from a thinfs that still runs, and waits for the first.
 */
#ifndef THINFS_DIRLOCK_H
#define THINFS_DIRLOCK_H

#include <sys/stat.h>

/* Longest a start waits for a lock whose taker has exited to be let go
 * by the processes it started (they exec or exit within milliseconds). */
#define DIRLOCK_WAIT_MS 5000

/* Take an exclusive flock on the directory open as fd, with st its fstat
 * and path its real path. 0 once held. -EBUSY, logged naming the holders'
 * programs and pids, at once if the process that took the lock still
 * holds it, or after DIRLOCK_WAIT_MS if the holders left by one that no
 * longer does (or that is not visible here) still hold it; another
 * negative errno, logged, if flock itself fails. */
int dirlock_take(int fd, const struct stat *st, const char *path);

#endif
