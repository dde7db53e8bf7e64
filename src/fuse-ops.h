/*
 * fuse-ops.h - the namespace of DESIGN §1 over the engine, as libfuse3
 * low-level operations. Inode numbers are derived from device IDs, so
 * they are stable across lookups, renames and restarts, and the layer
 * keeps no per-inode state.
 */
#ifndef THINFS_FUSE_OPS_H
#define THINFS_FUSE_OPS_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

struct deviceset;

struct tf_fuse_ctx {
	struct deviceset *ds;
	char *mountpoint;  /* absolute; device rootfs paths are built under it */
};

extern const struct fuse_lowlevel_ops tf_fuse_ops;

#endif
