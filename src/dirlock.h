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
 *
 * A thinfs that goes to the background takes the lock in the parent (the
 * engine opens before the fork, so start errors reach the terminal) and
 * takes it again in the child (dirlock_retake), so the daemon is the
 * lock's taker. A thinfs whose FUSE mount is gone and that tears down
 * holds the lock shared (dirlock_stopping): a start waits for it quietly
 * instead of failing (`umount MOUNTPOINT && thinfs STATEDIR MOUNTPOINT`).
 * A thinfs that serves its FUSE mount (found by the mount's source, which
 * is STATEDIR) is refused at once, naming its pid and mount point.
 */
#ifndef THINFS_DIRLOCK_H
#define THINFS_DIRLOCK_H

#include <sys/stat.h>
#include <sys/types.h>

/* Longest a start waits for a lock whose taker has exited to be let go
 * by the processes it started (they exec or exit within milliseconds). */
#define DIRLOCK_WAIT_MS 5000
/* Longest a start waits for a thinfs that stops (its FUSE mount gone, it
 * unmounts and deactivates the devices nothing uses). */
#define DIRLOCK_STOP_WAIT_MS 60000
/* Longest a start waits for a thinfs that holds the lock and serves no
 * FUSE mount to mount (then it is refused) or to stop: the moment between
 * an unmount and the daemon's noticing it. Longer, it is starting. */
#define DIRLOCK_SETTLE_MS 1000
/* The type of a thinfs FUSE mount (fuse_session_new's subtype). */
#define DIRLOCK_FUSE_TYPE "fuse.thinfs"

/* Take an exclusive flock on the directory open as fd, with st its fstat
 * and path its real path. 0 once held. -EBUSY, logged naming the holders'
 * programs and pids, at once if the process that took the lock still
 * holds it (a thinfs: if it serves a FUSE mount, or, after
 * DIRLOCK_SETTLE_MS, if it serves none and does not stop), after
 * DIRLOCK_STOP_WAIT_MS for a thinfs that stops, or after DIRLOCK_WAIT_MS
 * if the holders left by one that no longer does (or that is not visible
 * here) still hold it; another
 * negative errno, logged, if flock itself fails. */
int dirlock_take(int fd, const struct stat *st, const char *path);

/* In the child of a fork that keeps the lock (the daemon going to the
 * background): make the lock this process's own. A negative errno,
 * logged, if the process no longer holds it (it must stop). */
int dirlock_retake(int fd, const char *path);

/* The FUSE mount is gone and the daemon tears down: hold the lock
 * shared, which says so to a start that waits. Logged if it fails. */
void dirlock_stopping(int fd, const char *path);

/* The pid of the process that holds the flock on path (the taker if it
 * holds it), 0 if none is visible. */
pid_t dirlock_holder(const char *path);

#endif
