/*
 * docker.h - what thinfs reads of a Docker devicemapper state directory
 * (/var/lib/docker/devicemapper) beside the device files themselves.
 *
 * Docker's device files (STATEDIR/metadata/HASH) carry no parent; the
 * genealogy lives in Docker's layer database, beside the driver's
 * directory: STATEDIR/../image/devicemapper/layerdb.
 *   sha256/CHAIN/cache-id  the layer's device name (the driver's ID)
 *   sha256/CHAIN/parent    "sha256:PARENT-CHAIN" (absent for a bottom layer)
 *   mounts/CID/init-id     a container's "-init" device, a snapshot of
 *                          the image's top layer (mounts/CID/parent)
 *   mounts/CID/mount-id    the container's own device, a snapshot of its
 *                          -init device
 * A bottom layer (and the -init of a container made from no image) is a
 * snapshot of the base device, as the engine made it.
 *
 * Only reads: nothing of Docker's is written here.
 */
#ifndef THINFS_DOCKER_H
#define THINFS_DOCKER_H

#include <stdbool.h>
#include <stddef.h>

#include "deviceset.h"

struct docker_parent {
	char name[DS_NAME_MAX + 1];   /* a device (its metadata file name) */
	char parent[DS_NAME_MAX + 1]; /* the device it is a snapshot of; "base" */
};

/* The layer database of the Docker state directory state_dir, as
 * (device, parent) pairs: every image layer and every container's -init
 * and container device, each at most once, in no particular order. The
 * pairs name devices as Docker knows them; the caller checks that both
 * exist in its table (Docker may have left layers whose device is gone).
 * A missing layer database is no error: 0 with *n = 0 and *out = NULL
 * (not a Docker directory, or Docker made no image yet). A layer or mount
 * whose files cannot be read, or whose parent is not in the database, is
 * logged (naming its directory) and left out. -ENOMEM; -errno of an
 * opendir of the database other than ENOENT (logged). Caller frees *out
 * with free(). */
int docker_genealogy(const char *state_dir, struct docker_parent **out, size_t *n);

/* The dm name Docker gives the pool of the state directory thinfs names
 * prefix ("thinfs-MAJ:MIN-INO", or "thinfs-ro-MAJ:MIN-INO" under -o ro;
 * doc/design.md §5): Docker names it after
 * the same directory, "docker-MAJ:MIN-INO-pool". 0; -EINVAL for a prefix
 * not of that form; -ENAMETOOLONG if len is too small. */
int docker_pool_name(const char *prefix, char *buf, size_t len);

/* Is the filesystem mounted on dir laid out as Docker's devicemapper
 * driver lays out a layer: an "id" file (the layer's ID) and a "rootfs"
 * directory holding the layer's files, nothing else but "lost+found"?
 * Then a device's rootfs link leads into that directory, so that its
 * files are at NAME/rootfs as for any device. */
bool docker_layer_layout(const char *dir);

#endif
