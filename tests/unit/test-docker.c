/*
 * test-docker.c - docker_genealogy over a layer database laid out as
 * Docker's devicemapper driver leaves it (STATEDIR/../image/devicemapper/
 * layerdb): layers and their parents, a container's -init and own device,
 * and the damaged entries it must leave out without failing; Docker's
 * deviceset-metadata keys read and written back by metadata.c; the name
 * of Docker's pool.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "docker.h"
#include "log.h"
#include "metadata.h"
#include "tap.h"

static char root[PATH_MAX];

static void put(const char *rel, const char *text)
{
	char path[PATH_MAX * 2], *slash;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	for (slash = strchr(path + strlen(root) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		mkdir(path, 0700);
		*slash = '/';
	}
	f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
}

static const char *parent_of(const struct docker_parent *v, size_t n, const char *name)
{
	const char *found = NULL;

	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0) {
			if (found)
				return "(twice)";
			found = v[i].parent;
		}
	return found ? found : "(absent)";
}

#define LDB "image/devicemapper/layerdb/"
#define C1 "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1"
#define C2 "c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2"
#define C3 "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3"

int main(void)
{
	char state[PATH_MAX + 32], cmd[PATH_MAX + 16], meta[PATH_MAX + 64], pool[128];
	struct docker_parent *v = NULL;
	struct meta_deviceset ds;
	size_t n = 99;
	FILE *f;
	char buf[512];
	size_t len;

	tf_log_init(true, LOG_ERR);
	snprintf(root, sizeof(root), "%s/thinfs-docker-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(state, sizeof(state), "%s/devicemapper", root);
	mkdir(state, 0700);

	ok(docker_genealogy(state, &v, &n) == 0 && n == 0 && v == NULL,
	   "no layer database: 0, no pairs");

	/* img:1 = layer A (bottom); img:2 = B on A; C on B whose parent
	 * file has a trailing newline; container c1 on img:2; container c2
	 * with no image (no parent file) and no init; damaged: a layer
	 * without cache-id, a layer whose parent is unknown, a mount
	 * without mount-id, a cache-id that is not a device name. */
	put(LDB "sha256/aaaa/cache-id", "devA");
	put(LDB "sha256/bbbb/cache-id", "devB");
	put(LDB "sha256/bbbb/parent", "sha256:aaaa");
	put(LDB "sha256/cccc/cache-id", "devC\n");
	put(LDB "sha256/cccc/parent", "sha256:bbbb\n");
	put(LDB "sha256/dddd/diff", "sha256:whatever");
	put(LDB "sha256/eeee/cache-id", "devE");
	put(LDB "sha256/eeee/parent", "sha256:ffff");
	put(LDB "sha256/gggg/cache-id", "../../etc");
	put(LDB "mounts/" C1 "/mount-id", "m1");
	put(LDB "mounts/" C1 "/init-id", "m1-init");
	put(LDB "mounts/" C1 "/parent", "sha256:bbbb");
	put(LDB "mounts/" C2 "/mount-id", "m2");
	put(LDB "mounts/" C3 "/init-id", "m3-init");
	put(LDB "tmp/write-set-1/cache-id", "devTmp");

	if (!ok(docker_genealogy(state, &v, &n) == 0, "a layer database: 0"))
		return tap_done();
	is_int(n, 6, "six pairs: three layers, c1's two devices, c2's one");
	is_str(parent_of(v, n, "devA"), "base", "a bottom layer: on the base device");
	is_str(parent_of(v, n, "devB"), "devA", "a layer: on its parent's device");
	is_str(parent_of(v, n, "devC"), "devB", "trailing newlines are dropped");
	is_str(parent_of(v, n, "m1-init"), "devB", "a container's -init: on its image's top layer");
	is_str(parent_of(v, n, "m1"), "m1-init", "a container's device: on its -init");
	is_str(parent_of(v, n, "m2"), "base", "a container of no image, without -init: on the base");
	is_str(parent_of(v, n, "devE"), "(absent)", "a layer whose parent is unknown is left out");
	is_str(parent_of(v, n, "../../etc"), "(absent)", "a cache-id that is no device name is left out");
	is_str(parent_of(v, n, "m3-init"), "(absent)", "a mount without mount-id is left out");
	is_str(parent_of(v, n, "devTmp"), "(absent)", "layerdb/tmp is not a layer");
	free(v);

	/* Docker's deviceset-metadata: its keys are read, and written back
	 * beside ours. */
	snprintf(meta, sizeof(meta), "%s/metadata", state);
	mkdir(meta, 0700);
	put("devicemapper/metadata/deviceset-metadata",
	    "{\"next_device_id\":5,\"BaseDeviceUUID\":\"d11f2529-3665-48b0-9177-204d5b7046f8\","
	    "\"BaseDeviceFilesystem\":\"xfs\"}");
	ok(meta_deviceset_load(meta, &ds) == 0, "Docker's deviceset-metadata loads");
	is_int(ds.next_device_id, 5, "  next_device_id");
	is_str(ds.base_device_uuid, "d11f2529-3665-48b0-9177-204d5b7046f8", "  BaseDeviceUUID as the base UUID");
	is_str(ds.base_device_fs, "xfs", "  BaseDeviceFilesystem as the base filesystem");
	ok(meta_deviceset_save(meta, &ds) == 0, "saved again");
	snprintf(meta, sizeof(meta), "%s/metadata/deviceset-metadata", state);
	f = fopen(meta, "r");
	len = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	buf[len] = '\0';
	if (f)
		fclose(f);
	ok(strstr(buf, "\"BaseDeviceUUID\":\"d11f2529-3665-48b0-9177-204d5b7046f8\"") &&
	   strstr(buf, "\"BaseDeviceFilesystem\":\"xfs\"") && strstr(buf, "\"next_device_id\":5"),
	   "the saved file keeps the keys Docker reads");

	ok(docker_pool_name("thinfs-253:0-1234", pool, sizeof(pool)) == 0 &&
	   strcmp(pool, "docker-253:0-1234-pool") == 0, "Docker's pool name of a state directory");
	ok(docker_pool_name("thinfs-ro-253:0-1234", pool, sizeof(pool)) == 0 &&
	   strcmp(pool, "docker-253:0-1234-pool") == 0, "-o ro's prefix names the same Docker pool (%s)", pool);
	ok(docker_pool_name("thinfs-ro-", pool, sizeof(pool)) == -EINVAL, "-o ro's tag alone: EINVAL");
	ok(docker_pool_name("other-1:2-3", pool, sizeof(pool)) == -EINVAL, "a prefix not thinfs's: EINVAL");
	ok(docker_pool_name("thinfs-253:0-1234", pool, 8) == -ENAMETOOLONG, "a short buffer: ENAMETOOLONG");

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", root);
	return tap_done();
}
