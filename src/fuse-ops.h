/*
 * fuse-ops.h - the namespace of doc/design.md §1 over the engine, as libfuse3
 * low-level operations. Inode numbers are derived from device IDs, so
 * they are stable across lookups, renames and restarts, and the layer
 * keeps no per-inode state.
 */
#ifndef THINFS_FUSE_OPS_H
#define THINFS_FUSE_OPS_H

#define FUSE_USE_VERSION 312 /* fuse_loop_cfg: the worker cap set on purpose */
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <time.h>

#include "rmwalk.h"

struct deviceset;

/* What an open file or directory of the namespace holds (its text or
 * its listing), linked into the context so that whatever the kernel never
 * released (a client still holding a file when the daemon stops: the
 * kernel sends RELEASE asynchronously, and not at all once the session
 * has ended) is freed by tf_fuse_ctx_fini. */
struct tf_handle {
	struct tf_handle *prev, *next; /* under tf_fuse_ctx.handles_lock */
	void (*destroy)(struct tf_handle *h);
};

struct tf_fuse_ctx {
	struct deviceset *ds;
	time_t started;    /* the daemon's start: the times of the pool's ctl and info */
	/* Guards only the links of the open handles list: taken for a list
	 * insert or unlink, never with any engine lock, never across I/O. */
	pthread_mutex_t handles_lock;
	struct tf_handle *handles;
	/* The rm -r walks that met a mounted device (its own lock, a leaf). */
	struct rmwalk walks;
	/* The session, for telling the kernel of changes it did not see
	 * (tf_fuse_ctx_attach); set before the loop runs. */
	struct fuse_session *se;
};

/* Set up / tear down a context: fini frees every handle still open (call
 * it after fuse_session_destroy, when no request can run). */
void tf_fuse_ctx_init(struct tf_fuse_ctx *c, struct deviceset *ds);
void tf_fuse_ctx_fini(struct tf_fuse_ctx *c);
/* Tie the context to its session (before the loop): once the kernel's
 * init is in, its cached attributes of a device directory are dropped
 * when the device's usage figures change, until the session's destroy. */
void tf_fuse_ctx_attach(struct tf_fuse_ctx *c, struct fuse_session *se);

extern const struct fuse_lowlevel_ops tf_fuse_ops;

#endif
