/*
 * list.h - `thinfs list`: the pool's devices with their space, read from
 * a running daemon's namespace (its listing file) without mounting or
 * activating anything, as any user the mount lets in.
 */
#ifndef THINFS_LIST_H
#define THINFS_LIST_H

/* The pool's listing at the top of the mount: one read gives every
 * device (doc/design.md §1). Its name cannot be a device's (names begin
 * with a letter or digit), so it reserves nothing. */
#define TF_LIST_FILE ".devices"

/* thinfs list [--json] [--bytes] [--refresh] MOUNTPOINT; argv[0] is
 * "list". Returns the exit status. */
int list_main(int argc, char **argv);

#endif
