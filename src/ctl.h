/*
 * ctl.h - the commands written to the ctl files (doc/design.md §1),
 * parsed without the engine: the write's bytes to one line of text, then
 * the line to a verb and its size. fuse-ops.c runs what these return.
 */
#ifndef THINFS_CTL_H
#define THINFS_CTL_H

#include <stddef.h>
#include <stdint.h>

enum ctl_verb {
	CTL_UNKNOWN,     /* no such command */
	CTL_MOUNT,       /* device: "mount" */
	CTL_MOUNT_RO,    /* device: "mount ro" */
	CTL_UNMOUNT,     /* device: "unmount" */
	CTL_RESIZE,      /* device: "resize SIZE" */
	CTL_RESIZE_POOL, /* pool: "resize-pool SIZE" */
	CTL_REFRESH_USAGE, /* pool: "refresh-usage" */
};

struct ctl_cmd {
	enum ctl_verb verb;
	uint64_t size;    /* CTL_RESIZE, CTL_RESIZE_POOL */
	const char *arg;  /* the SIZE text, inside the parsed line; else NULL */
};

/* The len bytes of a write as a command line in out (outlen bytes): one
 * trailing newline dropped. -EINVAL if it does not fit or holds a NUL. */
int ctl_text(const char *buf, size_t len, char *out, size_t outlen);

/* A device's ctl command. 0, or -EINVAL with verb CTL_UNKNOWN (no such
 * command) or CTL_RESIZE (arg is not a size). */
int ctl_parse_device(const char *line, struct ctl_cmd *out);
/* The pool's ctl command, likewise (CTL_UNKNOWN or CTL_RESIZE_POOL). */
int ctl_parse_pool(const char *line, struct ctl_cmd *out);

#endif
