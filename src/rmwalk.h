/*
 * rmwalk.h - the walks of `rm -r` (and find -delete, a file manager's
 * delete) that met a mounted device (doc/design.md §1, "rm -r"): which
 * process, which device's tree, and when it last asked. The FUSE layer
 * refuses every later unlink and rmdir such a process makes inside that
 * tree, so the walk deletes nothing of a tree that holds a mounted device.
 * No engine, no FUSE: fuse-ops.c decides, this keeps the marks.
 */
#ifndef THINFS_RMWALK_H
#define THINFS_RMWALK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "deviceset.h"

/* How long a mark outlives its process's last unlink or rmdir in the
 * namespace. A file manager stops its walk on an error dialog until the user
 * answers (mc: Skip, Retry, Abort), so this is minutes, not the
 * milliseconds between two steps of rm. A mark also ends as soon as its
 * tree no longer holds a mounted device, and never applies to another
 * process (a pid reused after its exit is another process). */
#define RMWALK_IDLE_SECONDS 300

/* A process: its thread group and start time (/proc/PID/stat field 22),
 * so that a reused pid is another process. {0, 0} when unknown (a caller
 * outside our pid namespace): never marked, as such callers would share
 * one identity. */
struct rmwalk_who {
	pid_t tgid;
	uint64_t start;
};

struct rmwalk_mark {
	struct rmwalk_who who;
	char top[DS_NAME_MAX + 1]; /* the device whose tree is kept */
	time_t last;               /* CLOCK_MONOTONIC seconds of its last use */
	struct rmwalk_mark *next;
};

struct rmwalk {
	/* Guards marks; a leaf: held for list operations only, never with
	 * an engine call, never across I/O (the /proc reads come before). */
	pthread_mutex_t lock;
	struct rmwalk_mark *marks;
	size_t n;
};

void rmwalk_init(struct rmwalk *w);
void rmwalk_fini(struct rmwalk *w);

/* Who the calling thread tid (a FUSE request's pid) belongs to, from
 * /proc; {0, 0} if it cannot tell. */
void rmwalk_who_of(pid_t tid, struct rmwalk_who *out);

/* Any marks at all? (No lock: a hint for the fast path; a walk's own
 * marks are made by its own earlier, completed requests.) */
bool rmwalk_any(struct rmwalk *w);

/* Mark top's tree for who (or refresh its mark). -ENOMEM. */
int rmwalk_mark(struct rmwalk *w, const struct rmwalk_who *who, const char *top);

/* Copy the tops of who's live marks (idle ones are dropped) into tops,
 * at most max; returns how many there are. */
size_t rmwalk_tops(struct rmwalk *w, const struct rmwalk_who *who, char (*tops)[DS_NAME_MAX + 1],
		   size_t max);

/* Drop who's mark on top (its tree holds no mounted device any more). */
void rmwalk_drop(struct rmwalk *w, const struct rmwalk_who *who, const char *top);

#endif
