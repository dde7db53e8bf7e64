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
#include <time.h>

struct deviceset;

struct tf_fuse_ctx {
	struct deviceset *ds;
	time_t started;    /* the daemon's start: the times of the pool's ctl and info */
};

extern const struct fuse_lowlevel_ops tf_fuse_ops;

#endif
